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
      env steps (``solve_env_steps``; ``solve_valid_env_steps`` without REINFORCE's padding)
      and ``solved`` per seed, with the load average at the end.

    The programs are those ``pgjax train`` compiles (:func:`pgjax.host.programs.compile_programs`:
    init, the chunk and evaluate, vmapped over the seeds, with pgjax's compiler options).
    """
    import jax  # noqa: PLC0415

    from pgjax.host.programs import compile_programs  # noqa: PLC0415
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
    solve_valid = np.full(n, np.nan)
    valid = np.zeros(n)
    train_s = eval_s = 0.0
    chunk_times = []
    for c in range(derived.num_chunks):
        t = time.perf_counter()
        updates = derived.chunk_updates(c + 1)
        state, metrics, _ = programs.chunk(state, updates)
        jax.block_until_ready(state)
        # Env steps actually stepped: REINFORCE's padded rollout counts only its valid steps.
        steps = metrics.get("env_steps_valid")
        valid += (np.asarray(steps)[..., :updates].sum(axis=-1) if steps is not None
                  else updates * derived.steps_per_update)
        chunk_times.append(time.perf_counter() - t)
        train_s += chunk_times[-1]
        t = time.perf_counter()
        keys = jax.random.split(jax.random.fold_in(eval_root, c), n)
        returns = np.asarray(programs.evaluate(state, keys).greedy).reshape(n, -1).mean(axis=1)
        eval_s += time.perf_counter() - t
        new = (returns >= threshold) & (solved_at < 0)
        solved_at[new] = c
        solve_train_s[new], solve_eval_s[new] = train_s, eval_s
        solve_valid[new] = valid[new]
        if (solved_at >= 0).all():
            break
    steps_after = [derived.updates_after(c) * derived.steps_per_update
                   for c in range(derived.num_chunks + 1)]
    return {
        "seed": seed,
        "seeds": n,
        "compile_s": compile_s,
        "train_s": train_s,  # all chunks run (until every seed solved, or the budget)
        "eval_s": eval_s,
        "chunks_run": len(chunk_times),
        "chunk_s_median": statistics.median(chunk_times),
        "steps_per_chunk": steps_after[1],  # the first chunk's; later ones may be shorter
        "env_steps_run": steps_after[len(chunk_times)],
        "num_chunks": derived.num_chunks,
        "solved": (solved_at >= 0).tolist(),
        "solve_env_steps": [steps_after[c + 1] if c >= 0 else None for c in solved_at],
        # env steps actually stepped (REINFORCE: excluding the padding after episodes end)
        "solve_valid_env_steps": [None if np.isnan(x) else int(x) for x in solve_valid],
        "valid_env_steps_per_s": float(valid.sum() / train_s),
        "solve_train_s": [None if np.isnan(x) else float(x) for x in solve_train_s],
        "solve_eval_s": [None if np.isnan(x) else float(x) for x in solve_eval_s],
        "load_average": load_average(),
    }
