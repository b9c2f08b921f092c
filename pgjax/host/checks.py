"""Checks made before and between compiled chunks: the env and its spaces, memory, resuming,
and non-finite numbers. Each problem a person must fix is one line (ConfigError or RunError,
exit code 2); a run that turns non-finite stops with exit code 1 (:mod:`pgjax.host.loop`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pgjax.config import Config, ConfigError, config_from_dict, config_to_dict
from pgjax.host.config_io import config_diff
from pgjax.host.errors import RunError


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
    params = dict(config.env.params)
    try:
        env = make_env(name, **params)
    except (ValueError, TypeError) as e:
        text = " ".join(str(e).split())
        if any(text.startswith(f"{key}=") for key in params):  # names its own key
            raise ConfigError(f"env.params.{text}") from None
        raise ConfigError(f"env.params={params!r}: {text[:300]}") from None
    except Exception as e:  # noqa: BLE001  (a family's constructor: downloads, files, ...)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise ConfigError(f"env.name={name!r}: cannot be built here ({first}); "
                          "pgjax envs lists what can") from None
    spec = env.spec
    if spec.max_steps_in_episode < 1:
        key = ("env.params.max_steps_in_episode" if "max_steps_in_episode" in params
               else "env.name")
        value = params.get("max_steps_in_episode", name)
        raise ConfigError(f"{key}={value!r}: the env's max_steps_in_episode is "
                          f"{spec.max_steps_in_episode}; it must be >= 1")
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
    parts = memory.estimate_memory(config, seeds=seeds, env=env).parts
    estimate = sum(parts.values())
    limit = memory.available_memory()
    if jax.default_backend() != "cpu":
        limit *= devices
    if estimate > limit:
        t, a = config.training, config.algorithm
        largest = max(("activations", "rollout_buffers", "env_states", "params_and_optimizer",
                       "evaluation"), key=parts.__getitem__)
        at_fault = {  # the settings that size the largest part
            "evaluation": f"training.eval_episodes={t.eval_episodes}",
            "params_and_optimizer": f"network.hidden_sizes={list(config.network.hidden_sizes)}",
            "env_states": f"training.num_envs={t.num_envs}",
        }.get(largest, f"training.num_envs={t.num_envs} with algorithm.n_steps={a.n_steps}")
        raise ConfigError(
            f"{at_fault}: with {seeds} seed(s) the estimated memory is {_fmt_bytes(estimate)} "
            f"({largest.replace('_', ' ')} {_fmt_bytes(parts[largest])}), over the "
            f"{_fmt_bytes(limit)} available; lower it (or --seeds)")
    return f"memory estimate {_fmt_bytes(estimate)} of {_fmt_bytes(limit)} available"


def check_eval_memory(config: Config, trainer, flag: str) -> None:
    """``pgjax eval``: refuses an evaluation (``training.eval_episodes`` per seed, given by
    ``flag``) whose episode buffers would not fit, before anything is compiled."""
    import jax  # noqa: PLC0415

    from pgjax import memory  # noqa: PLC0415
    seeds = config.training.num_seeds
    parts = memory.estimate_memory(config, seeds=seeds, env=trainer.env).parts
    need = sum(parts[k] for k in ("runtime", "compilation", "params_and_optimizer", "evaluation"))
    limit = memory.available_memory()
    if jax.default_backend() != "cpu":
        limit *= trainer.sharding.num_devices
    if need > limit:
        raise RunError(f"{flag} {config.training.eval_episodes}: evaluating {seeds} seed(s) "
                       f"needs about {_fmt_bytes(need)}, over the {_fmt_bytes(limit)} "
                       "available; ask for fewer episodes")


def first_non_finite(metrics: dict[str, np.ndarray], finite_params: np.ndarray,
                     first_update: int | np.ndarray,
                     ran: np.ndarray | None = None) -> str | None:
    """Names the earliest non-finite metric (update, seed), or non-finite params; else None.

    ``first_update``: updates done before the chunk (one per seed, or the same for all);
    ``ran``: the updates each seed ran in the chunk (episodic algorithms), whose rows after
    them are padding and never checked; None: all of them.
    """
    found = None
    ended = metrics.get("episode_count")
    seeds, length = next(iter(metrics.values())).shape[:2]
    first = np.broadcast_to(np.asarray(first_update), (seeds,))
    ran = np.full(seeds, length) if ran is None else np.asarray(ran)
    valid = np.arange(length)[None, :] < ran[:, None]
    for name, values in metrics.items():
        bad = ~np.isfinite(values) & valid
        if name in ("episode_return", "episode_length") and ended is not None:
            bad &= ended > 0  # NaN by definition where no episode ended
        if bad.any():
            u = int(np.argmax(bad.any(axis=0)))
            if found is None or u < found[0]:
                found = (u, name, int(np.argmax(bad[:, u])))
    if found is not None:
        u, name, seed = found
        return f"non-finite {name} in update {int(first[seed]) + u + 1} (seed {seed})"
    if not finite_params.all():
        seed = int(np.argmin(finite_params))
        return (f"non-finite parameters after update {int(first[seed] + ran[seed])} "
                f"(seed {seed})")
    return None


def check_resume(directory: Path, config: Config, derived, latest: int | None,
                 progress: dict) -> None:
    """Refuses to resume when config.yaml no longer matches the config of the checkpoint
    ``latest`` (whose saved ``progress`` is given), or when the checkpoint's chunks ran other
    update counts than ``derived`` splits the run into (one written before uneven chunks,
    which dropped ``num_updates % num_chunks`` updates; its progress has no ``updates``)."""
    diff = checkpoint_config_diff(config, progress)
    if diff:
        raise RunError(f"--resume {directory}: config.yaml differs from the config of "
                       f"checkpoint chunk_{latest} in {diff}; restore the run's config.yaml")
    if latest is None or derived.episodic:  # episodic: each seed's count is in its state
        return
    expected = derived.updates_after(int(progress["chunk"]))
    if progress.get("updates", expected if derived.even else None) != expected:
        raise RunError(
            f"--resume {directory}: checkpoint chunk_{latest} was written by a pgjax that split "
            f"the run's updates into chunks differently (this version runs all "
            f"{derived.num_updates:,}, in {derived.num_chunks} chunks of "
            f"{chunk_lengths(derived)}); start a new run, or resume with the pgjax that wrote it")


def checkpoint_config_diff(config: Config, progress: dict) -> str:
    """The keys (``a.b (old -> new)``) where ``config`` differs from the config saved in a
    checkpoint's progress, except where a run executes (devices); "" if none or unknown."""
    saved = progress.get("config")
    if saved is None or saved == config_to_dict(config):
        return ""
    try:
        return ", ".join(config_diff(config_from_dict(saved), config))
    except ConfigError:
        return "keys this version of pgjax does not read"


def check_run_config(directory: Path, config: Config, chunk: int, progress: dict) -> None:
    """For eval, render and load_run: refuses a config.yaml edited since checkpoint ``chunk``
    was written (its arrays would not fit), naming the keys that differ."""
    diff = checkpoint_config_diff(config, progress)
    if diff:
        raise RunError(f"{directory}: config.yaml differs from the config of checkpoint "
                       f"chunk_{chunk} in {diff}; restore the run's config.yaml")


def chunk_lengths(derived) -> str:
    """The chunks' updates, for people: ``"195"``, or ``"195-196"`` when they differ
    (episodic algorithms: ``"up to 125"``, their updates depending on the episodes)."""
    if derived.episodic:
        return f"up to {derived.updates_per_chunk}"
    shortest = derived.chunk_updates(derived.num_chunks)
    longest = derived.updates_per_chunk
    return f"{longest}" if shortest == longest else f"{shortest}-{longest}"


