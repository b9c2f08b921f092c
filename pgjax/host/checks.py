"""Checks made before and between compiled chunks: the env and its spaces, memory, resuming,
and non-finite numbers. Each problem a person must fix is one line (ConfigError or RunError,
exit code 2); a run that turns non-finite stops with exit code 1 (:mod:`pgjax.host.loop`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pgjax.config import Config, ConfigError, config_from_dict, config_to_dict
from pgjax.host.config_io import config_diff
from pgjax.host.rundir import Checkpoints, RunError


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def build_trainer(config: Config):
    """``make_train(config)``, with env and action-space problems raised as ConfigError."""
    from pgjax.envs import find_family, make_env  # noqa: PLC0415
    from pgjax.train import make_train  # noqa: PLC0415

    name = config.env.name
    try:
        find_family(name)
    except ValueError as e:
        raise ConfigError(f"env.name: {e} (see pgjax envs)") from e
    try:
        env = make_env(name, **dict(config.env.params))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"env.params={dict(config.env.params)!r}: {e}") from e
    spec = env.spec
    if config.network.cnn and len(spec.obs_shape) != 3:
        raise ConfigError(f"network.cnn=True: needs image observations [H, W, C]; {name} has "
                          f"obs_shape {spec.obs_shape}; use network.cnn=false")
    if not spec.discrete and len(spec.action_space.shape) != 1:
        raise ConfigError(f"env.name={name!r}: action shape {spec.action_space.shape} is not "
                          "supported; pgjax handles discrete and 1-D continuous actions")
    return make_train(config, env=env)


def check_memory(config: Config, env, seeds: int, devices: int = 1) -> str:
    """Refuses a run whose buffers would not fit; returns the estimate as a line to print.

    With ``devices`` accelerators the run's arrays are spread over all of them (the env batch
    split, the rest replicated), so the limit is their memory together; CPU devices, forced or
    not, share the host's memory.
    """
    import jax  # noqa: PLC0415

    from pgjax import memory  # noqa: PLC0415
    estimate = memory.estimate_memory(config, seeds=seeds, env=env).total_bytes
    limit = memory.available_memory()
    if jax.default_backend() != "cpu":
        limit *= devices
    t, a = config.training, config.algorithm
    if estimate > limit:
        raise ConfigError(
            f"training.num_envs={t.num_envs}: with algorithm.n_steps={a.n_steps} and {seeds} "
            f"seed(s) the estimated memory is {_fmt_bytes(estimate)}, over the "
            f"{_fmt_bytes(limit)} available; lower training.num_envs, algorithm.n_steps or --seeds")
    return f"memory estimate {_fmt_bytes(estimate)} of {_fmt_bytes(limit)} available"


def first_non_finite(metrics: dict[str, np.ndarray], finite_params: np.ndarray,
                     first_update: int) -> str | None:
    """Names the earliest non-finite metric (update, seed), or non-finite params; else None."""
    found = None
    ended = metrics.get("episode_count")
    for name, values in metrics.items():
        bad = ~np.isfinite(values)
        if name in ("episode_return", "episode_length") and ended is not None:
            bad &= ended > 0  # NaN by definition where no episode ended
        if bad.any():
            u = int(np.argmax(bad.any(axis=0)))
            if found is None or u < found[0]:
                found = (u, name, int(np.argmax(bad[:, u])))
    if found is not None:
        u, name, seed = found
        return f"non-finite {name} in update {first_update + u + 1} (seed {seed})"
    if not finite_params.all():
        seed = int(np.argmin(finite_params))
        return (f"non-finite parameters after update {first_update + metrics_len(metrics)} "
                f"(seed {seed})")
    return None


def metrics_len(metrics: dict[str, np.ndarray]) -> int:
    return next(iter(metrics.values())).shape[1]


def check_resume(directory: Path, config: Config, derived) -> None:
    """Refuses to resume when config.yaml no longer matches the latest checkpoint's config,
    or when the checkpoint's chunks ran other update counts than ``derived`` splits the run
    into (one written before uneven chunks, which dropped ``num_updates % num_chunks``
    updates; its progress has no ``updates``)."""
    checkpoints = Checkpoints(directory / "checkpoints")
    latest = checkpoints.latest()
    progress = checkpoints.progress(latest) if latest is not None else {}
    checkpoints.close()
    saved = progress.get("config")
    if saved is not None and saved != config_to_dict(config):
        try:
            diff = ", ".join(config_diff(config_from_dict(saved), config))
        except ConfigError:
            diff = "keys this version of pgjax does not read"
        if diff:  # else only RUNTIME_KEYS differ (e.g. training.devices)
            raise RunError(f"--resume {directory}: config.yaml differs from the config of "
                           f"checkpoint chunk_{latest} in {diff}; restore the run's config.yaml")
    if latest is None:
        return
    expected = derived.updates_after(int(progress["chunk"]))
    if progress.get("updates", expected if derived.even else None) != expected:
        raise RunError(
            f"--resume {directory}: checkpoint chunk_{latest} was written by a pgjax that split "
            f"the run's updates into chunks differently (this version runs all "
            f"{derived.num_updates:,}, in {derived.num_chunks} chunks of "
            f"{chunk_lengths(derived)}); start a new run, or resume with the pgjax that wrote it")


def chunk_lengths(derived) -> str:
    """The chunks' updates, for people: ``"195"``, or ``"195-196"`` when they differ."""
    shortest = derived.chunk_updates(derived.num_chunks)
    longest = derived.updates_per_chunk
    return f"{longest}" if shortest == longest else f"{shortest}-{longest}"


