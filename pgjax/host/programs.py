"""The compiled programs of a run: init, the chunk and evaluate, all vmapped over seeds.

A run trains ``S = training.num_seeds`` seeds as one program. Seed ``i`` uses
``key_i = jax.random.split(jax.random.key(training.seed), S)[i]`` and
``train_key, eval_key = jax.random.split(key_i)`` (as ``benchmarks/learning.py`` does):
``init(train_key)``, then ``derived.num_chunks`` calls of one compiled chunk,
``vmap(lax.scan(update))`` over ``derived.updates_per_chunk`` updates (chunk ``c`` runs
``derived.chunk_updates(c)`` of them: when the chunks do not divide the updates evenly, the
shorter chunks skip the last step; an episodic algorithm's chunk runs each seed's updates
until it has taken ``derived.chunk_target(c)`` env steps), and finally ``evaluate_both(state, eval_key)`` (greedy
and sampled episodes). :mod:`pgjax.host.loop` runs them; ``pgjax eval`` and the benchmarks
compile the same programs.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import gc
import os
import time
from typing import Any, Callable, NamedTuple

import numpy as np

from pgjax.config import Config


class Programs(NamedTuple):
    """The compiled pieces of a run, all vmapped over seeds."""

    keys: Any  # [S] seed keys
    abstract: Any  # shapes and dtypes of the vmapped TrainState
    init: Callable | None  # keys -> states
    # (states, updates) -> (states, metrics [S, U], params finite [S]): runs the chunk's
    # `updates` (Derived.chunk_updates) of U = updates_per_chunk steps; metrics[:, updates:]
    # are zeros, of steps skipped. Episodic algorithms: the second argument is the chunk's
    # env-step target (Derived.chunk_target); each seed runs updates until its
    # state.env_steps reaches it, and its rows past the updates it ran are NaN (0 for
    # episode_count and env_steps_taken).
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


class RunBatch(NamedTuple):
    """Runs that differ in their float hyperparameters too (``pgjax sweep``): the vmapped
    axis is then runs, each with its own key and :class:`pgjax.HParams`, not seeds of one."""

    keys: Any  # [R] run keys, used as seed keys are (split(key)[0] trains, [1] evaluates)
    hparams: Any  # pgjax.HParams with leaves [R]


def _vmapped_init(trainer, seeds: int, batched: bool = False):
    """``(keys [S], hparams) -> TrainState [S]``; hparams is an argument, not a constant, so
    runs that differ only in float hyperparameters share one compiled program (``batched``:
    one per run, leaves ``[S]``; else the same for all)."""
    import jax  # noqa: PLC0415

    def init(key, hparams):
        return trainer.init(jax.random.split(key)[0], hparams)

    return over_seeds(init, seeds, in_axes=(0, 0 if batched else None))


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
                     pipeline: bool = True, runs: RunBatch | None = None) -> Programs:
    """Lowers and compiles init, the chunk and evaluate (evaluate only, without ``train``).

    Evaluate is ``trainer.evaluate_both``: the greedy and the sampled returns from one
    program, which ``pgjax eval`` compiles too (so it finds the run's in the cache and
    reproduces the final evaluation, whichever returns it prints).

    With ``pipeline``, each program compiles on one of two worker threads as soon as it is
    lowered, so XLA (C++, without the GIL) compiles while Python traces the next program:
    ~0.5 s of the default a2c config's ~3.7 s (two workers measured ~0.1 s faster than one
    or three on 2 cores). Without it, all are lowered first, then compiled, which
    splits ``lower_s`` from XLA's time cleanly (the compilation-cache benchmark).

    With ``runs`` (``seeds`` of them), each run starts from its own key and hyperparameters
    instead of :func:`seed_keys` and ``trainer.hparams``: the same programs, whose init
    takes hparams batched.
    """
    with gc_paused():
        return _compile_programs(trainer, seeds, train=train, pipeline=pipeline, runs=runs)


def _compile_programs(trainer, seeds: int, *, train: bool, pipeline: bool,
                      runs: RunBatch | None = None) -> Programs:
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    start = time.perf_counter()

    # Whole on every device, or split over them with training.split = "seeds".
    keys = trainer.sharding.put_seeds(seed_keys(trainer.config, seeds) if runs is None
                                      else runs.keys)
    hparams = trainer.hparams if runs is None else runs.hparams
    init = _vmapped_init(trainer, seeds, batched=runs is not None)

    derived = trainer.derived

    def chunk(state, updates):
        if derived.episodic:  # `updates` is the env-step target: run each seed's updates
            # until its count of env steps taken reaches it (Derived.chunk_target)
            state, metrics, _ = trainer.run_until(state, updates, derived.updates_per_chunk)
        elif derived.even:  # every chunk is updates_per_chunk long: the plain scan (jit drops
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
        traced_init = jax.jit(init).trace(keys, hparams)
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
            submit("init", jax.jit(init, out_shardings=shardings), keys, hparams,
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
    compiled_init = (lambda k: compiled["init"](k, hparams)) if train else None
    compiled_chunk = None
    if train:
        def compiled_chunk(states, updates: int):
            # The count, whole on every device (of every process, multi-host), as lowered.
            count = jax.make_array_from_callback((), whole, lambda _: np.int32(updates))
            return compiled["chunk"](states, count)

    return Programs(keys, abstract, compiled_init, compiled_chunk, compiled.get("evaluate"),
                    time.perf_counter() - start, lower_s)


def per_seed_returns(returns) -> tuple[np.ndarray, np.ndarray]:
    """Each seed's mean greedy and mean sampled return (float64 ``[S]`` each), from what
    :attr:`Programs.evaluate` returns."""
    import jax  # noqa: PLC0415

    returns = jax.device_get(returns)
    return (np.asarray(returns.greedy, np.float64).mean(axis=1),
            np.asarray(returns.sampled, np.float64).mean(axis=1))



def env_steps_done(derived, state, chunks: int) -> np.ndarray:
    """The env steps each seed has taken after ``chunks`` chunks, ``[S]`` int64: read from the
    vmapped ``state`` for episodic algorithms (their count depends on the episodes), else
    ``updates_after(chunks) * steps_per_update``, the same for every seed."""
    import jax  # noqa: PLC0415

    if derived.episodic:
        return np.asarray(jax.device_get(state.env_steps), np.int64).reshape(-1)
    seeds = jax.tree.leaves(state.update)[0].shape[0]
    return np.full(seeds, derived.updates_after(chunks) * derived.steps_per_update, np.int64)


def progress_by_seed(derived, seeds: int, chunks: int,
                     progress: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Env steps taken and updates done per seed (``[S]`` int64 each) after ``chunks`` chunks:
    from a checkpoint's ``progress`` for episodic algorithms (their counts depend on the
    episodes; :class:`pgjax.host.callbacks.SaveCheckpoints` saves them), else from ``derived``;
    zeros for a new run."""
    if chunks == 0 or not derived.episodic:
        updates = 0 if chunks == 0 else derived.updates_after(chunks)
        return (np.full(seeds, updates * derived.steps_per_update, np.int64),
                np.full(seeds, updates, np.int64))
    if not progress or "env_steps_by_seed" not in progress:
        from pgjax.host.errors import RunError  # noqa: PLC0415

        raise RunError(f"checkpoint chunk_{chunks} was written by a pgjax that counted "
                       f"{derived.rollout_length}-step padded rollouts as env steps (its progress "
                       "has no env_steps_by_seed); start a new run, or resume with that pgjax")
    return (np.asarray(progress["env_steps_by_seed"], np.int64),
            np.asarray(progress["updates_by_seed"], np.int64))

