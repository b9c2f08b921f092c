"""The host loop behind ``pgjax train``: validation, compiled chunks, progress, signals, summary.

A run trains ``S = training.num_seeds`` seeds as one program. Seed ``i`` uses
``key_i = jax.random.split(jax.random.key(training.seed), S)[i]`` and
``train_key, eval_key = jax.random.split(key_i)`` (as ``benchmarks/learning.py`` does):
``init(train_key)``, then ``derived.num_chunks`` calls of one compiled chunk,
``vmap(lax.scan(update))`` over ``derived.updates_per_chunk`` updates (chunk ``c`` runs
``derived.chunk_updates(c)`` of them: when the chunks do not divide the updates evenly, the
shorter chunks skip the last step), and finally ``evaluate_both(state, eval_key)`` (greedy
and sampled episodes). Between chunks, and only there, the host draws progress, appends to
``metrics.csv`` and saves a checkpoint (the files are :mod:`pgjax.rundir`'s).

A checkpoint holds the whole vmapped ``TrainState`` and the host's progress, so ``--resume``
continues exactly: the same compiled chunk on the same bits, ending with bit-identical
parameters and metrics (on one backend). Rows of ``metrics.csv`` past the latest checkpoint
are dropped on resume.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import gc
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede any computation)
from pgjax.config import (Config, ConfigError, apply_overrides, config_from_dict, config_to_dict,
                          load_config)
from pgjax import distributed
from pgjax.presets import is_preset_name, preset_path
from pgjax.rundir import Checkpoints, MetricsFile, RunError, chunk_rows, write_json

DEFAULT_CONFIG = "cartpole_a2c"  # a preset (pgjax.presets)
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}


def say(*parts: Any) -> None:
    """Prints a line (process 0 only, in a multi-host run)."""
    if distributed.is_primary():
        print(*parts, flush=True)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def _fmt_time(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _fmt_rate(x: float) -> str:
    return f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x / 1e3:.1f}k" if x >= 1e3 else f"{x:.0f}"


# ------------------------------------------------------------------ config and validation
def resolve_config_path(path: str | None) -> Path:
    """CONFIG as given: an existing file, else a preset's name (``cartpole_ppo``, see
    :mod:`pgjax.presets`); none means :data:`DEFAULT_CONFIG`.

    Raises:
      ConfigError: (one line, listing the presets) for a name that is neither.
    """
    given = path or DEFAULT_CONFIG
    if Path(given).exists() or not is_preset_name(given):
        return Path(given)
    try:
        return preset_path(given)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def read_config(path: Path, overrides: list[str], seeds: int | None,
                devices: int | str | None = None) -> Config:
    """Loads a YAML config and applies ``--set`` overrides, ``--seeds`` and ``--devices``.

    An override that changes ``training.num_envs`` re-derives the settings that depend on the
    batch (:mod:`pgjax.scaling`); :func:`scaling_lines` says what changed.
    """
    return read_scaled_config(path, overrides, seeds, devices).config


def read_scaled_config(path: Path, overrides: list[str], seeds: int | None,
                       devices: int | str | None = None):
    """:func:`read_config` with the batch rule's changes: a :class:`pgjax.scaling.Scaled`."""
    from pgjax.scaling import apply_overrides_scaled  # noqa: PLC0415

    scaled = apply_overrides_scaled(load_config(path), [*overrides, *(
        [] if seeds is None else [f"training.num_seeds={seeds}"])])
    return scaled._replace(config=with_devices(scaled.config, devices))


def scaling_lines(changes) -> list[str]:
    """What the batch rule derived, as lines to print before a run (none if nothing)."""
    if len(changes) < 2:  # only training.num_envs itself, or nothing
        return []
    return [f"{changes[0]}: the batch settings follow (pgjax.scaling; an explicit --set wins, "
            "training.scale_with_num_envs=false keeps the config's):",
            *(f"  {line}" for line in changes[1:])]


def with_devices(config: Config, devices: int | str | None) -> Config:
    """``config`` with ``training.devices`` set (unchanged for None)."""
    return config if devices is None else apply_overrides(config, [f"training.devices={devices}"])


# Where a run executes, not what it computes: a run may resume with other values.
RUNTIME_KEYS = ("training.devices", "training.split", "training.num_processes",
                "training.coordinator_address")


def config_diff(old: Config, new: Config) -> list[str]:
    """``section.key (old -> new)`` for every key where the two configs differ, except
    :data:`RUNTIME_KEYS` (a run saved on 4 devices resumes on 1, or on 8)."""
    a, b = config_to_dict(old), config_to_dict(new)
    return [f"{section}.{key} ({a[section][key]!r} -> {b[section][key]!r})"
            for section in a for key in a[section]
            if a[section][key] != b[section][key] and f"{section}.{key}" not in RUNTIME_KEYS]


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
    for name, values in metrics.items():
        bad = ~np.isfinite(values)
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


# ------------------------------------------------------------------ compiled programs
class Programs(NamedTuple):
    """The compiled pieces of a run, all vmapped over seeds."""

    keys: Any  # [S] seed keys
    abstract: Any  # shapes and dtypes of the vmapped TrainState
    init: Callable | None  # keys -> states
    # (states, updates) -> (states, metrics [S, U], params finite [S]): runs the chunk's
    # `updates` (Derived.chunk_updates) of U = updates_per_chunk steps; metrics[:, updates:]
    # are zeros, of steps skipped
    chunk: Callable | None
    evaluate: Callable | None  # (states, keys) -> EvalReturns, greedy and sampled [S, E]
    compile_s: float  # tracing, lowering and XLA compilation together
    lower_s: float = 0.0  # of which tracing and lowering


def seed_keys(config: Config, seeds: int):
    """The ``[S]`` per-seed keys; seed ``i`` trains with ``split(key_i)[0]``, evaluates with ``[1]``."""
    import jax  # noqa: PLC0415

    return jax.random.split(jax.random.key(config.training.seed), seeds)


def over_seeds(fn: Callable, seeds: int, in_axes: Any = 0) -> Callable:
    """``jax.vmap(fn, in_axes)`` over the seed axis; for one seed, ``fn`` on the only seed
    with the axis put back, the same numbers without vmap's batching rules: a program that
    traces and compiles ~0.25 s faster (the default a2c chunk)."""
    import jax  # noqa: PLC0415

    if seeds != 1:
        return jax.vmap(fn, in_axes=in_axes)

    def one(*args):
        axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
        args = [a if ax is None else jax.tree.map(lambda x: x[0], a) for a, ax in zip(args, axes)]
        return jax.tree.map(lambda x: x[None], fn(*args))

    return one


def _vmapped_init(trainer, seeds: int):
    """``(keys [S], hparams) -> TrainState [S]``; hparams is an argument, not a constant, so
    runs that differ only in float hyperparameters share one compiled program."""
    import jax  # noqa: PLC0415

    def init(key, hparams):
        return trainer.init(jax.random.split(key)[0], hparams)

    return over_seeds(init, seeds, in_axes=(0, None))


def abstract_state(trainer, seeds: int):
    """Shapes, dtypes and shardings of the vmapped TrainState of ``seeds`` seeds.

    Nothing is computed. The shardings are those of ``training.devices``
    (:meth:`pgjax.sharding.Sharding.state`): the compiled programs take and
    return states laid out so, and checkpoints are restored into it, whatever
    device count they were saved with.
    """
    import jax  # noqa: PLC0415

    shapes = jax.eval_shape(_vmapped_init(trainer, seeds), seed_keys(trainer.config, seeds),
                            trainer.hparams)
    return _laid_out(trainer, shapes)


def _laid_out(trainer, shapes):
    """``shapes`` (a TrainState of ShapeDtypeStructs) with the shardings of training.devices."""
    import jax  # noqa: PLC0415

    return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                        shapes, trainer.sharding.state(shapes))


def compiler_options(*, runs_once: bool = False) -> dict[str, Any] | None:
    """The XLA options pgjax compiles its programs with (``lowered.compile(options)``).

    On the CPU backend: LLVM optimisation level 1 instead of XLA's default 2. XLA's fusion
    emitters already hand LLVM tight loops, so -O1 runs at the same steps/s (CartPole a2c and
    ppo at N=2048, Breakout-MinAtar PPO, Pendulum PPO) and compiles ~25% faster, which is most
    of a small run's time to result (benchmarks/RESULTS.md, "Time to solve"). A program run
    once (``runs_once``: init) compiles at -O0. None (XLA's defaults) on accelerators, or when
    ``XLA_FLAGS`` sets ``--xla_backend_optimization_level`` itself.
    """
    import jax  # noqa: PLC0415

    if (jax.default_backend() != "cpu"
            or "xla_backend_optimization_level" in os.environ.get("XLA_FLAGS", "")):
        return None
    return {"xla_backend_optimization_level": 0 if runs_once else 1}


@contextlib.contextmanager
def gc_paused():
    """Python's cyclic garbage collector off for the block (tracing): tracing allocates many
    short-lived objects, and each full collection walks the whole heap (gymnax, matplotlib,
    JAX): 0.1-0.15 s of the default a2c program's 0.8 s trace and lower. Refcounting still
    frees everything else; the cycles are collected when the block ends."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def compile_programs(trainer, seeds: int, *, train: bool = True,
                     pipeline: bool = True) -> Programs:
    """Lowers and compiles init, the chunk and evaluate (evaluate only, without ``train``).

    Evaluate is ``trainer.evaluate_both``: the greedy and the sampled returns from one
    program, which ``pgjax eval`` compiles too (so it finds the run's in the cache and
    reproduces the final evaluation, whichever returns it prints).

    With ``pipeline``, each program compiles on one of two worker threads as soon as it is
    lowered, so XLA (C++, without the GIL) compiles while Python traces the next program:
    ~0.5 s of the default a2c config's ~3.7 s (two workers measured ~0.1 s faster than one
    or three on 2 cores). Without it, all are lowered first, then compiled, which
    splits ``lower_s`` from XLA's time cleanly (the compilation-cache benchmark).
    """
    with gc_paused():
        return _compile_programs(trainer, seeds, train=train, pipeline=pipeline)


def _compile_programs(trainer, seeds: int, *, train: bool, pipeline: bool) -> Programs:
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    start = time.perf_counter()

    # Whole on every device, or split over them with training.split = "seeds".
    keys = trainer.sharding.put_seeds(seed_keys(trainer.config, seeds))
    init = _vmapped_init(trainer, seeds)

    derived = trainer.derived

    def chunk(state, updates):
        if derived.even:  # every chunk is updates_per_chunk long: the plain scan (jit drops
            # the unused `updates`: the program and its numbers are those without it)
            state, metrics = jax.lax.scan(lambda s, _: trainer.update(s), state, None,
                                          length=derived.updates_per_chunk)
        else:
            # Chunks of updates_per_chunk and one fewer updates share this program: step i
            # runs an update only if i < updates, an argument that no seed batches, so the
            # cond stays a branch (not a select of both) under vmap. The skipped step gives
            # zero metrics, which the host drops. eval_shape traces the update; the cond's
            # call of the same jitted update reuses that trace (one trace, not two).
            update = jax.jit(trainer.update)
            skipped = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype),
                                   jax.eval_shape(update, state)[1])

            def body(s, i):
                return jax.lax.cond(i < updates, update, lambda s: (s, skipped), s)

            state, metrics = jax.lax.scan(body, state, jnp.arange(derived.updates_per_chunk))
        finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(p))
                                    for p in jax.tree.leaves(state.params)]))
        return state, metrics, finite

    def evaluate(state, key):
        return trainer.evaluate_both(state, jax.random.split(key)[1])

    traced_init = None
    if train and trainer.sharding.num_devices == 1:
        # One device holds every array, so init needs no out_shardings, and its one trace
        # gives the state's shapes too (no separate eval_shape: ~0.1 s before compiling starts).
        traced_init = jax.jit(init).trace(keys, trainer.hparams)
        abstract = _laid_out(trainer, traced_init.out_info)
    else:
        abstract = abstract_state(trainer, seeds)
    shardings = jax.tree.map(lambda a: a.sharding, abstract)
    # Metrics and returns come back whole to every process (multi-host: read by each).
    whole = trainer.sharding.replicate
    pool = (concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="pgjax-compile")
            if pipeline else None)
    pending = {}  # name -> () -> the compiled program

    def submit(name, jitted, *args, runs_once=False):
        lowered = jitted.lower(*args) if args else jitted.lower()
        options = compiler_options(runs_once=runs_once)
        pending[name] = (pool.submit(lowered.compile, options).result if pool
                         else functools.partial(lowered.compile, options))

    try:
        if traced_init is not None:
            submit("init", traced_init, runs_once=True)
        elif train:
            submit("init", jax.jit(init, out_shardings=shardings), keys, trainer.hparams,
                   runs_once=True)
        if trainer.config.training.eval_episodes > 0 or not train:
            submit("evaluate", jax.jit(over_seeds(evaluate, seeds), out_shardings=whole),
                   abstract, keys)
        if train:
            submit("chunk", jax.jit(over_seeds(chunk, seeds, in_axes=(0, None)),
                                    donate_argnums=0, out_shardings=(shardings, whole, whole)),
                   abstract, jax.ShapeDtypeStruct((), jnp.int32, sharding=whole))
        lower_s = time.perf_counter() - start
        compiled = {name: get() for name, get in pending.items()}
    finally:
        if pool:
            pool.shutdown(cancel_futures=True)
    # hparams is an argument of the compiled init (see _vmapped_init); the run's are fixed.
    compiled_init = (lambda k: compiled["init"](k, trainer.hparams)) if train else None
    compiled_chunk = None
    if train:
        def compiled_chunk(states, updates: int):
            # The count, whole on every device (of every process, multi-host), as lowered.
            count = jax.make_array_from_callback((), whole, lambda _: np.int32(updates))
            return compiled["chunk"](states, count)

    return Programs(keys, abstract, compiled_init, compiled_chunk, compiled.get("evaluate"),
                    time.perf_counter() - start, lower_s)


# ------------------------------------------------------------------ progress and signals
class Display:
    """Progress between chunks: a live rich bar on a terminal, a plain line per chunk otherwise.

    The bar's second line keeps elapsed time and ETA ticking while a chunk runs.
    """

    def __init__(self, label: str, total_steps: int, chunks: int, done_steps: int,
                 elapsed: float):
        self.label, self.total, self.chunks = label, total_steps, chunks
        self._steps, self._chunk, self._rate, self._return = done_steps, 0, None, math.nan
        self._elapsed, self._eta, self._since = elapsed, None, time.perf_counter()
        self._bar = None
        if sys.stdout.isatty() and distributed.is_primary():
            from rich.progress import BarColumn, Progress, SpinnerColumn, TaskProgressColumn  # noqa
            from rich.progress import TextColumn  # noqa: PLC0415
            from rich.text import Text  # noqa: PLC0415

            display = self

            class _Progress(Progress):
                def get_renderables(self):
                    yield self.make_tasks_table(self.tasks)
                    yield Text(display.stats(live=True))

            self._bar = _Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                  BarColumn(bar_width=30), TaskProgressColumn(),
                                  TextColumn("{task.fields[chunk]}"))
            self._task = self._bar.add_task(label, total=total_steps, completed=done_steps,
                                            chunk="")
            self._bar.start()

    def stats(self, live: bool = False) -> str:
        now = time.perf_counter() - self._since if live else 0.0
        elapsed = self._elapsed + now
        eta = "-" if self._eta is None else _fmt_time(self._eta - now)
        rate = "-" if self._rate is None else _fmt_rate(self._rate)
        ret = "-" if not math.isfinite(self._return) else f"{self._return:.1f}"
        return (f"{self._steps:,}/{self.total:,} env steps  {rate} steps/s  return {ret}  "
                f"elapsed {_fmt_time(elapsed)}  ETA {eta}")

    def print(self, message: str) -> None:
        if self._bar is not None:
            self._bar.console.print(message, highlight=False, markup=False, soft_wrap=True)
        else:
            say(message)

    def update(self, *, chunk: int, steps: int, rate: float, mean_return: float,
               elapsed: float, eta: float) -> None:
        self._chunk, self._steps, self._rate, self._return = chunk, steps, rate, mean_return
        self._elapsed, self._eta, self._since = elapsed, eta, time.perf_counter()
        if self._bar is not None:
            self._bar.update(self._task, completed=steps, chunk=f"chunk {chunk}/{self.chunks}")
        else:
            say(f"{self.label} chunk {chunk}/{self.chunks} | {self.stats()}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class StopRequest:
    """SIGINT/SIGTERM set a flag read between chunks; a second SIGINT aborts at once."""

    def __init__(self, display: Display):
        self.signum: int | None = None
        self._display = display
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self._display.print(f"{signal.Signals(signum).name}: finishing the current chunk and "
                            "saving a checkpoint (Ctrl-C again to abort)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._old[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._old.items():
            signal.signal(signum, handler)


# ------------------------------------------------------------------ the loop
class Result(NamedTuple):
    status: str  # "complete", "interrupted" or "diverged"
    exit_code: int
    summary: dict


def _stop_after() -> int | None:
    value = os.environ.get("PGJAX_STOP_AFTER_CHUNKS")  # test hook: act as if Ctrl-C came
    return int(value) if value else None


def train_run(directory: Path, trainer, *, label: str, resumed: bool = False,
              memory_note: str | None = None) -> Result:
    """Trains (or continues) the run in ``directory`` whose config.yaml is written."""
    import jax  # noqa: PLC0415

    config, derived = trainer.config, trainer.derived
    seeds = config.training.num_seeds
    checkpoints = Checkpoints(directory / "checkpoints")  # every process saves and restores
    primary = distributed.is_primary()  # process 0 alone writes the other files
    metrics_file = MetricsFile(directory / "metrics.csv")
    if memory_note:
        say(memory_note)
    if config.training.total_env_steps != derived.env_steps:
        say(f"training.total_env_steps {config.training.total_env_steps:,} is not a multiple of "
            f"{derived.steps_per_update:,} env steps per update: running "
            f"{derived.num_updates:,} updates = {derived.env_steps:,} env steps")
    say(f"compiling {config.algorithm.name} on {config.env.name}: {seeds} seed(s) x "
        f"{derived.num_chunks} chunks of {chunk_lengths(derived)} updates "
        f"({derived.steps_per_update:,} env steps each)")
    programs = compile_programs(trainer, seeds)
    say(f"compiled in {programs.compile_s:.1f} s")
    latest = checkpoints.latest() if resumed else None
    if latest is None:
        state, done, elapsed = programs.init(programs.keys), 0, 0.0
        if primary:
            metrics_file.truncate(0)
    else:
        state, progress = checkpoints.restore(latest, programs.abstract)
        done, elapsed = int(progress["chunk"]), float(progress["elapsed_s"])
        if primary:
            metrics_file.truncate(done)
        say(f"resuming after chunk {done}/{derived.num_chunks} "
            f"({derived.updates_after(done) * derived.steps_per_update:,} env steps)")
    display = Display(label, derived.env_steps, derived.num_chunks,
                      derived.updates_after(done) * derived.steps_per_update, elapsed)
    status, message, session_steps, session_s = "complete", "", 0, 0.0
    stop_after, ran = _stop_after(), 0
    try:
        with StopRequest(display) as stop:
            for chunk in range(done + 1, derived.num_chunks + 1):
                start = time.perf_counter()
                updates = derived.chunk_updates(chunk)
                new_state, metrics, finite = programs.chunk(state, updates)
                metrics, finite = jax.device_get((metrics, finite))
                metrics = {name: values[:, :updates] for name, values in metrics.items()}
                first_update = derived.updates_after(chunk - 1)
                update = first_update + updates
                wall = elapsed + session_s + (time.perf_counter() - start)
                rows = chunk_rows(metrics, chunk=chunk, update=update,
                                  env_steps=update * derived.steps_per_update, wall_s=wall)
                if primary:
                    metrics_file.append(rows)
                problem = first_non_finite(metrics, np.asarray(finite), first_update)
                if problem:
                    status = "diverged"
                    kept = checkpoints.latest()
                    message = (f"training stopped: {problem}; kept the last finite checkpoint "
                               + (f"(chunk {kept})" if kept else "(none: the first chunk failed)"))
                    break
                state = new_state
                returns = np.array([r["episode_return"] for r in rows])
                mean_return = float(np.nanmean(returns)) if np.isfinite(returns).any() else math.nan
                checkpoints.save(chunk, state, {
                    "chunk": chunk, "updates": update, "elapsed_s": wall,
                    "config": config_to_dict(config)}, mean_return)
                session_s += time.perf_counter() - start
                session_steps += updates * derived.steps_per_update * seeds
                rate = session_steps / max(session_s, 1e-9)
                eta = ((derived.num_updates - update) * derived.steps_per_update * seeds
                       / max(rate, 1e-9))
                display.update(chunk=chunk, steps=update * derived.steps_per_update, rate=rate,
                               mean_return=mean_return, elapsed=wall, eta=eta)
                done, ran = chunk, ran + 1
                if chunk < derived.num_chunks and (stop.signum or ran == stop_after):
                    status = "interrupted"
                    signum = stop.signum or signal.SIGINT
                    message = (f"{signal.Signals(signum).name}: stopped after chunk {chunk}/"
                               f"{derived.num_chunks}, checkpoint saved; resume with: "
                               f"pgjax train --resume {directory}")
                    break
    except KeyboardInterrupt:  # a second Ctrl-C: no new checkpoint, the last one stays
        display.close()
        say(f"aborted; continue from the last checkpoint with: pgjax train --resume {directory}")
        raise
    finally:
        display.close()
    elapsed += session_s
    summary = _summarise(directory, trainer, programs, state if status == "complete" else None,
                         status=status, chunks_done=done, wall_s=elapsed,
                         session=(session_steps, session_s), checkpoints=checkpoints)
    checkpoints.close()
    if message:
        say(message)
    code = {"complete": 0, "diverged": 1}.get(status)
    if code is None:
        code = EXIT_SIGNAL[stop.signum or signal.SIGINT]
    return Result(status, code, summary)


def per_seed_returns(returns) -> tuple[np.ndarray, np.ndarray]:
    """Each seed's mean greedy and mean sampled return (float64 ``[S]`` each), from what
    :attr:`Programs.evaluate` returns."""
    import jax  # noqa: PLC0415

    returns = jax.device_get(returns)
    return (np.asarray(returns.greedy, np.float64).mean(axis=1),
            np.asarray(returns.sampled, np.float64).mean(axis=1))


def _summarise(directory: Path, trainer, programs: Programs, final_state, *, status: str,
               chunks_done: int, wall_s: float, session: tuple[int, float],
               checkpoints: Checkpoints) -> dict:
    """Evaluates a finished run, draws curve.png, writes summary.json and prints a summary."""
    import jax  # noqa: PLC0415

    from pgjax import plot  # noqa: PLC0415

    config, derived = trainer.config, trainer.derived
    seeds = config.training.num_seeds
    summary: dict[str, Any] = {
        "status": status, "env": config.env.name, "algorithm": config.algorithm.name,
        "seeds": seeds, "chunks_done": chunks_done, "num_chunks": derived.num_chunks,
        "env_steps_per_seed": derived.updates_after(chunks_done) * derived.steps_per_update,
        "total_env_steps_per_seed": derived.env_steps, "wall_s": round(wall_s, 3),
        "compile_s": round(programs.compile_s, 3),
        "steps_per_s": round(session[0] / session[1], 1) if session[1] > 0 else None,
        "latest_checkpoint": checkpoints.latest(), "best_checkpoint": checkpoints.best(),
    }
    metrics_csv = directory / "metrics.csv"
    primary = distributed.is_primary()
    curve = plot.read_curve(metrics_csv, label=config.algorithm.name) \
        if primary and metrics_csv.exists() else None
    if curve is not None and curve.returns.size:
        last = curve.returns[:, -1]
        summary["final_train_return_mean"] = float(np.nanmean(last)) if np.isfinite(last).any() \
            else None
        summary["final_train_return_std"] = float(np.nanstd(last)) if np.isfinite(last).any() \
            else None
        threshold = plot.solve_threshold(config.env.name, config.env.params)
        plot.plot_curves([curve], directory / "curve.png", threshold=threshold,
                         title=f"{config.env.name}, {config.algorithm.name}")
    lines = [f"{status}: {config.env.name} {config.algorithm.name}, {seeds} seed(s), "
             f"{summary['env_steps_per_seed']:,}/{derived.env_steps:,} env steps per seed"]
    if final_state is not None and programs.evaluate is not None:
        greedy, sampled = per_seed_returns(programs.evaluate(final_state, programs.keys))
        summary.update(eval_return_mean=float(greedy.mean()), eval_return_std=float(greedy.std()),
                       eval_returns=greedy.tolist(),
                       eval_sampled_return_mean=float(sampled.mean()),
                       eval_sampled_return_std=float(sampled.std()),
                       eval_sampled_returns=sampled.tolist(),
                       eval_episodes=config.training.eval_episodes)
        lines.append(f"final evaluation: greedy {greedy.mean():.1f} ± {greedy.std():.1f}, "
                     f"sampled {sampled.mean():.1f} ± {sampled.std():.1f} over {seeds} seed(s) "
                     f"({config.training.eval_episodes} episodes each)")
    rate = summary["steps_per_s"]
    lines.append(f"wall time {wall_s:.1f} s, compile {programs.compile_s:.1f} s"
                 + (f", {rate:,.0f} env steps/s (all seeds)" if rate else ""))
    lines.append(f"run directory: {directory}")
    if primary:
        write_json(directory / "summary.json", summary)
    for line in lines:
        say(line)
    return summary
