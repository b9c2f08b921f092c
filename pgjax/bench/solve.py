"""Time to solve: wall seconds from ``make_train`` to the first greedy evaluation at a target.

The programs are those ``pgjax train`` compiles and runs (:func:`pgjax.host.programs.compile_programs`);
``benchmarks/time_to_solve.py`` and ``benchmarks/single_env_loop.py`` report with it.
"""

from __future__ import annotations

import statistics
import time

import numpy as np

from pgjax.bench.machine import load_average
from pgjax.config import Config, apply_overrides


def time_to_solve(config: Config, seed: int, seeds: int | None, *, threshold: float) -> dict:
    """Compiles and trains ``config`` until its greedy evaluation reaches ``threshold``.

    Training runs in the config's chunks as ``pgjax train`` runs them, with the command's
    evaluation after every chunk; the run stops at the first evaluation whose greedy mean is
    ``>= threshold`` (for every seed of a batch), or at the end of the budget. It starts with
    ``jax.clear_caches()``, so every call compiles afresh.

    Args:
      config: the training config (``training.seed`` and ``training.num_seeds`` are replaced).
      seed: the first seed.
      seeds: None for one seed, else the size of a vmapped batch of seeds.
      threshold: the greedy mean return that counts as solved.

    Returns:
      A dict of seconds (``compile_s``, ``train_s``, ``eval_s``, per seed ``solve_train_s``),
      env steps taken (``solve_env_steps``: REINFORCE's are its episodes' steps, not the
      padded rollout) and ``solved`` per seed, with the load average at the end.

    The programs are those ``pgjax train`` compiles (:func:`pgjax.host.programs.compile_programs`:
    init, the chunk and evaluate, vmapped over the seeds, with pgjax's compiler options).
    """
    import jax  # noqa: PLC0415

    from pgjax.host.programs import compile_programs, env_steps_done  # noqa: PLC0415
    from pgjax.train import make_train  # noqa: PLC0415

    jax.clear_caches()
    start = time.perf_counter()
    n = 1 if seeds is None else seeds
    config = apply_overrides(config, [f"training.seed={seed}", f"training.num_seeds={n}"])
    trainer = make_train(config)
    programs = compile_programs(trainer, n)
    compile_s = time.perf_counter() - start
    state = programs.init(programs.keys)
    jax.block_until_ready(state)
    eval_root = jax.random.key(10_000 + seed)
    derived = trainer.derived
    solved_at = np.full(n, -1)
    solve_train_s = np.full(n, np.nan)
    solve_eval_s = np.full(n, np.nan)
    solve_steps = np.full(n, -1, np.int64)
    steps_done = env_steps_done(derived, state, 0)
    train_s = eval_s = 0.0
    chunk_times = []
    for c in range(derived.num_chunks):
        t = time.perf_counter()
        # Each chunk as pgjax train runs it (episodic: until its target of env steps taken).
        bound = derived.chunk_target(c + 1) if derived.episodic else derived.chunk_updates(c + 1)
        state, metrics, _ = programs.chunk(state, bound)
        jax.block_until_ready(state)
        steps_done = env_steps_done(derived, state, c + 1)  # env steps actually taken
        chunk_times.append(time.perf_counter() - t)
        train_s += chunk_times[-1]
        t = time.perf_counter()
        keys = jax.random.split(jax.random.fold_in(eval_root, c), n)
        returns = np.asarray(programs.evaluate(state, keys).greedy).reshape(n, -1).mean(axis=1)
        eval_s += time.perf_counter() - t
        new = (returns >= threshold) & (solved_at < 0)
        solved_at[new] = c
        solve_train_s[new], solve_eval_s[new] = train_s, eval_s
        solve_steps[new] = steps_done[new]
        if (solved_at >= 0).all():
            break
    return {
        "seed": seed,
        "seeds": n,
        "compile_s": compile_s,
        "train_s": train_s,  # all chunks run (until every seed solved, or the budget)
        "eval_s": eval_s,
        "chunks_run": len(chunk_times),
        "chunk_s_median": statistics.median(chunk_times),
        # env steps per seed a chunk runs (the evaluation's resolution; episodic: at least)
        "steps_per_chunk": (derived.chunk_target(1) if derived.episodic
                            else derived.updates_after(1) * derived.steps_per_update),
        "env_steps_run": int(steps_done.max()),
        "num_chunks": derived.num_chunks,
        "solved": (solved_at >= 0).tolist(),
        # env steps taken (REINFORCE: its episodes' steps, not the padded rollout)
        "solve_env_steps": [int(x) if x >= 0 else None for x in solve_steps],
        "env_steps_per_s": float(steps_done.sum() / train_s),
        "solve_train_s": [None if np.isnan(x) else float(x) for x in solve_train_s],
        "solve_eval_s": [None if np.isnan(x) else float(x) for x in solve_eval_s],
        "load_average": load_average(),
    }
