"""Time to solve CartPole-v1: wall seconds from make_train to the first greedy evaluation >= 475.

For each shipped config, training runs in chunks as ``pgjax train`` runs it (a jitted
``lax.scan`` of ``updates_per_chunk`` updates, shorter chunks skipping the last), with the
command's evaluation after every chunk (``trainer.evaluate_both``: ``training.eval_episodes``
fresh greedy episodes and as many sampled, in one rollout; the greedy mean counts). The
budget is split into ``--chunks`` chunks (default 50, finer than the command's 20, so the
solve time is resolved to 1/50 of the budget); the run stops at the first evaluation whose
greedy mean is >= 475.

Per seed, in one process, after ``jax.clear_caches()`` so every seed compiles afresh:

* compile: ``make_train`` plus lowering and compiling init, the chunk and the evaluation;
* train: the chunks' wall time up to the solving evaluation;
* eval: the evaluations' wall time (reported apart: how often one evaluates is this
  benchmark's choice); time to solve = compile + train (+ eval, shown too).

Before the first seed, the env is built once (importing gymnax and starting the backend), so
seed 0 does not pay the process's start-up. With ``--compile-cache`` the programs go through
JAX's persistent compilation cache (a fresh temporary folder, filled by one untimed compile
per config first), as ``pgjax train`` uses it from its second run on: compile is then
tracing, lowering and reading the cache.

Then the same config with ``--batch-seeds`` (default 64) seeds in one vmapped program
(init, chunk and evaluation vmapped), run until every seed has solved or the budget ends:
the batch's wall time against the single seed's median (target <= 3x), and the batch's
per-chunk time against one seed's (how vmap scales).

Usage (from the repository root):
  .venv/bin/python benchmarks/time_to_solve.py                     # 4 configs, 5 seeds, 64 batched
  .venv/bin/python benchmarks/time_to_solve.py --configs a2c,ppo --seeds 7
  .venv/bin/python benchmarks/time_to_solve.py --quick             # a2c, 2 seeds, 8 batched
  .venv/bin/python benchmarks/time_to_solve.py --compile-cache --batch-seeds 0   # warm cache
  .venv/bin/python benchmarks/time_to_solve.py --json out.json
  PGJAX_CPU_DEVICES=2 .venv/bin/python benchmarks/time_to_solve.py --configs a2c \
      --batch-set training.devices=2 --batch-set training.split=seeds   # batch: a seed per device
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import tempfile

import pgjax  # first: its XLA CPU workaround must precede any computation

import jax

from pgjax.bench import load_average, machine_info, time_to_solve
from pgjax.host.cache import use_compilation_cache
from pgjax.host.programs import compile_programs

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ("a2c", "ppo", "reinforce", "reinforce_baseline")
THRESHOLD = 475.0


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    med = statistics.median(values)
    return f"{med:.2f} [{min(values):.2f}, {max(values):.2f}]"


def run_config(name: str, seeds: int, batch: int, chunks: int, cached: bool = False,
               overrides: list[str] = (), batch_overrides: list[str] = ()) -> dict:
    path = ROOT / "configs" / f"cartpole_{name}.yaml"
    config = pgjax.apply_overrides(pgjax.load_config(path),
                                   [f"training.num_chunks={chunks}", *overrides])
    batch_config = pgjax.apply_overrides(config, [f"training.num_seeds={batch or 1}",
                                                  *batch_overrides])
    pgjax.make_env(config.env.name, **dict(config.env.params))  # imports gymnax, starts the backend
    if cached:  # fill the persistent cache, untimed
        jax.clear_caches()
        compile_programs(pgjax.make_train(config), 1)
        if batch:
            compile_programs(pgjax.make_train(batch_config), batch)
    singles = []
    for seed in range(seeds):
        r = time_to_solve(config, seed, None, threshold=THRESHOLD)
        singles.append(r)
        steps = r["solve_env_steps"][0]
        print(f"  {name} seed {seed}: compile {r['compile_s']:.2f}s, "
              + (f"solved at {steps} env steps after {r['solve_train_s'][0]:.2f}s training "
                 f"(+{r['solve_eval_s'][0]:.2f}s eval)" if steps else
                 f"not solved in {r['env_steps_run']} env steps")
              + f", load {r['load_average'][0]}", flush=True)
    batched = time_to_solve(batch_config, 0, batch, threshold=THRESHOLD) if batch else None
    if batched:
        solved = sum(batched["solved"])
        print(f"  {name} {batch} seeds vmapped: compile {batched['compile_s']:.2f}s, "
              f"{solved}/{batch} solved, {batched['chunks_run']} chunks in {batched['train_s']:.2f}s "
              f"(+{batched['eval_s']:.2f}s eval), load {batched['load_average'][0]}", flush=True)
    return {"config": str(path.relative_to(ROOT)), "chunks": chunks, "singles": singles,
            "batched": batched}


def summarise(r: dict) -> dict:
    singles = r["singles"]
    ok = [s for s in singles if s["solved"][0]]
    compile_s = [s["compile_s"] for s in singles]
    total = [s["compile_s"] + s["solve_train_s"][0] for s in ok]
    total_eval = [s["compile_s"] + s["solve_train_s"][0] + s["solve_eval_s"][0] for s in ok]
    out = {
        "solved": f"{len(ok)}/{len(singles)}",
        "compile": _spread(compile_s),
        "train": _spread([s["solve_train_s"][0] for s in ok]),
        "steps": _spread([s["solve_env_steps"][0] / 1e3 for s in ok]),
        "total": _spread(total),
        "total_with_eval": _spread(total_eval),
        "total_median": statistics.median(total) if total else None,
        "resolution": f"{singles[0]['steps_per_chunk']:,} steps",
        "chunk_s": statistics.median(s["chunk_s_median"] for s in singles),
    }
    b = r["batched"]
    if b:
        all_solved = all(b["solved"])
        batch_total = b["compile_s"] + b["train_s"]
        out.update(
            batch_seeds=b["seeds"],
            batch_solved=f"{sum(b['solved'])}/{b['seeds']}",
            batch_compile=b["compile_s"],
            batch_train=b["train_s"],
            batch_total=batch_total,
            batch_all_solved=all_solved,
            batch_over_single=(batch_total / out["total_median"]) if out["total_median"] else None,
            chunk_ratio=b["chunk_s_median"] / out["chunk_s"],
            batch_median_seed=statistics.median(
                [b["compile_s"] + x for x in b["solve_train_s"] if x is not None] or [float("nan")]),
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default=",".join(CONFIGS),
                        help="comma-separated algorithms of configs/cartpole_<name>.yaml")
    parser.add_argument("--seeds", type=int, default=5, help="single-seed runs per config (default 5)")
    parser.add_argument("--batch-seeds", type=int, default=64,
                        help="seeds vmapped in one program (default 64; 0 skips)")
    parser.add_argument("--chunks", type=int, default=50,
                        help="chunks the budget is split into: the evaluation resolution (default 50)")
    parser.add_argument("--quick", action="store_true", help="a2c only, 2 seeds, 8 batched")
    parser.add_argument("--compile-cache", action="store_true",
                        help="compile through JAX's persistent cache (a new temporary folder, "
                             "filled first): the time to solve of a second pgjax train")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field in every run (repeatable)")
    parser.add_argument("--batch-set", dest="batch_overrides", action="append", default=[],
                        metavar="KEY=VALUE",
                        help="override a config field of the vmapped batch only (repeatable), e.g. "
                             "training.devices=2 and training.split=seeds with PGJAX_CPU_DEVICES=2")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.configs, args.seeds, args.batch_seeds = "a2c", 2, 8
    names = [n for n in args.configs.split(",") if n]
    for n in names:
        if not (ROOT / "configs" / f"cartpole_{n}.yaml").exists():
            parser.error(f"--configs: no configs/cartpole_{n}.yaml")
    if args.seeds < 1 or args.chunks < 1 or args.batch_seeds < 0:
        parser.error("--seeds and --chunks must be >= 1, --batch-seeds >= 0")

    machine = machine_info()
    command = " ".join([".venv/bin/python", os.path.relpath(__file__)] + list(argv or sys.argv[1:]))
    print("# pgjax time to solve CartPole-v1 (first greedy evaluation >= 475)")
    print(f"date: {machine['date']}")
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
          f"JAX {machine['jax']} ({machine['backend']}); XLA_FLAGS={machine['xla_flags']}")
    print(f"load average at start: {machine['load_average']}")
    print(f"command: {command}\n", flush=True)
    cache = tempfile.TemporaryDirectory(prefix="pgjax-tts-cache-") if args.compile_cache else None
    if cache:
        use_compilation_cache(cache.name)
        print(f"persistent compilation cache: {cache.name} (filled by an untimed compile per config)\n")
    results = []
    for name in names:
        print(f"{name}:", flush=True)
        try:
            results.append(run_config(name, args.seeds, args.batch_seeds, args.chunks,
                                      cached=bool(cache), overrides=args.overrides,
                                      batch_overrides=args.batch_overrides))
        except pgjax.ConfigError as e:
            parser.error(str(e))
    print()
    print(f"Single seeds ({args.seeds} per config; median [min, max] over the seeds that solved; "
          f"compile includes make_train{'; warm persistent cache' if cache else ''}):\n")
    print("| config | solved | env steps to 475 (k) | compile s | train s | "
          "compile + train s | + eval s | eval resolution | load |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    summaries = []
    for r in results:
        s = summarise(r)
        summaries.append(s)
        loads = [x["load_average"][0] for x in r["singles"]]
        print(f"| `{r['config']}` | {s['solved']} | {s['steps']} | {s['compile']} | {s['train']} | "
              f"**{s['total']}** | {s['total_with_eval']} | {s['resolution']} | "
              f"{min(loads)}-{max(loads)} |")
    if args.batch_seeds:
        print(f"\n{args.batch_seeds} seeds in one vmapped program, run until every seed solved "
              "(or the budget ended):\n")
        print("| config | solved | compile s | train s | compile + train s | median seed solved at s | "
              "batch / single seed (median) | s per chunk: batch / single | load |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
        for r, s in zip(results, summaries):
            if "batch_total" not in s:
                continue
            ratio = f"{s['batch_over_single']:.2f}x" if s["batch_over_single"] else "-"
            print(f"| `{r['config']}` | {s['batch_solved']} | {s['batch_compile']:.2f} | "
                  f"{s['batch_train']:.2f} | {s['batch_total']:.2f} | {s['batch_median_seed']:.2f} | "
                  f"{ratio} | {s['chunk_ratio']:.2f}x | {r['batched']['load_average'][0]} |")
    print(f"\nload average at end: {load_average()}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"machine": machine, "command": command, "compile_cache": bool(cache),
             "results": results, "summaries": summaries}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
