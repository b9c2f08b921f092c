"""`pgjax sweep` against the same runs done one `pgjax train` at a time (issue 18, item 5).

A 16-point x 4-seed CartPole sweep: ``optimizer.actor_lr`` x ``optimizer.critic_lr``, a 4 x 4
grid, on the ``cartpole_a2c`` preset with ``--total-env-steps`` per run (default 100,000).

* (a) sweep: one ``pgjax sweep ... --seeds 4`` command, wall time of the whole process (start,
  compile of the one program over 64 runs, training, evaluation, files), cold compilation
  cache (a fresh temporary folder).
* (b) sequential: the 64 runs as 64 ``pgjax train --seeds 1`` commands, one after another,
  each with its point's learning rates and ``training.seed`` = its seed index (the same
  workload; the keys differ from the sweep's, which splits one key over the 4 seeds). The
  compilation cache is shared, as a person's repeated ``pgjax train`` would share it: the
  first run compiles cold, the rest read the cache (the learning rates are arguments of the
  programs, so all 64 runs have the same ones). With ``--sample K`` (default 4) only the
  first K runs are timed and (b) = first + 63 x the mean of the other K - 1: **an
  extrapolation**, printed as such; ``--sample 64`` times all of them.
* (c) per point: the 16 points as 16 ``pgjax train --seeds 4`` commands (each vmapped over its
  seeds; a stronger baseline), sampled the same way (``--sample-points``, default 2).

Prints the wall times and the ratios (b)/(a) and (c)/(a), with the load average before and
after (a shared 2-core machine: other jobs change the numbers).

Usage (from the repository root):
  .venv/bin/python benchmarks/sweep.py                        # 100k env steps per run
  .venv/bin/python benchmarks/sweep.py --total-env-steps 50000 --sample 8
  .venv/bin/python benchmarks/sweep.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pgjax.bench import load_average, machine_info

ACTOR_LRS = ("1e-4", "3e-4", "1e-3", "3e-3")
CRITIC_LRS = ("3e-4", "1e-3", "3e-3", "1e-2")
SEEDS = 4


def pgjax(cache: Path, *args: str) -> float:
    """Runs ``python -m pgjax.cli --cache-dir CACHE ARGS``; its wall seconds."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pgjax.cli", "--cache-dir", str(cache), *args],
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode != 0:
        sys.exit(f"pgjax {' '.join(args)}: exit {out.returncode}\n{out.stderr[-2000:]}")
    return wall


def sampled_total(times: list[float], total: int) -> float:
    """The first (cold) run plus ``total - 1`` times the mean of the warm ones timed."""
    if len(times) == 1:
        return times[0] * total
    warm = sum(times[1:]) / (len(times) - 1)
    return times[0] + (total - 1) * warm


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="cartpole_a2c")
    parser.add_argument("--total-env-steps", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=4,
                        help="single-seed train runs timed of the 64 (64: all)")
    parser.add_argument("--sample-points", type=int, default=2,
                        help="4-seed train runs timed of the 16 (0 skips (c))")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    common = ["--set", f"training.total_env_steps={args.total_env_steps}"]
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="pgjax-sweep-bench-") as tmp:
        tmp = Path(tmp)
        # (a) the sweep, cold cache
        sweep_s = pgjax(tmp / "cache-sweep", "sweep", args.config, *common,
                        "--grid", "optimizer.actor_lr=" + ",".join(ACTOR_LRS),
                        "--grid", "optimizer.critic_lr=" + ",".join(CRITIC_LRS),
                        "--seeds", str(SEEDS), "--out", str(tmp / "sweep"))
        print(f"(a) pgjax sweep, 16 points x {SEEDS} seeds: {sweep_s:.1f} s", flush=True)
        result = json.loads((tmp / "sweep" / "sweep.json").read_text())
        # (b) one run at a time, a shared cache that starts cold
        runs = [(a, c, s) for a in ACTOR_LRS for c in CRITIC_LRS for s in range(SEEDS)]
        single = []
        for i, (a, c, s) in enumerate(runs[:args.sample]):
            single.append(pgjax(tmp / "cache-train", "train", args.config, *common,
                                "--set", f"optimizer.actor_lr={a}",
                                "--set", f"optimizer.critic_lr={c}",
                                "--set", f"training.seed={s}", "--seeds", "1",
                                "--out", str(tmp / f"train-{i}")))
            print(f"(b) pgjax train run {i + 1}/{len(runs)}: {single[-1]:.1f} s", flush=True)
        sequential_s = sampled_total(single, len(runs))
        # (c) one point (4 seeds vmapped) at a time
        points = [(a, c) for a in ACTOR_LRS for c in CRITIC_LRS]
        per_point = []
        for i, (a, c) in enumerate(points[:args.sample_points]):
            per_point.append(pgjax(tmp / "cache-points", "train", args.config, *common,
                                   "--set", f"optimizer.actor_lr={a}",
                                   "--set", f"optimizer.critic_lr={c}",
                                   "--seeds", str(SEEDS), "--out", str(tmp / f"point-{i}")))
            print(f"(c) pgjax train --seeds {SEEDS}, point {i + 1}/16: {per_point[-1]:.1f} s",
                  flush=True)
        points_s = sampled_total(per_point, len(points)) if per_point else None
    load_after = load_average()
    timed = "all 64 timed" if len(single) == len(runs) else (
        f"EXTRAPOLATED from {len(single)} timed runs: first (cold compile) + 63 x mean of "
        f"the other {len(single) - 1}")
    print(f"\n{args.config}, {args.total_env_steps:,} env steps per run, 16 points x {SEEDS} "
          f"seeds = 64 runs; load average {load_before} before, {load_after} after")
    print(f"(a) pgjax sweep (one program):            {sweep_s:8.1f} s")
    print(f"(b) 64 x pgjax train --seeds 1:           {sequential_s:8.1f} s  ({timed})")
    if points_s is not None:
        print(f"(c) 16 x pgjax train --seeds {SEEDS}:           {points_s:8.1f} s  (from "
              f"{len(per_point)} timed)")
    print(f"(b)/(a) = {sequential_s / sweep_s:.1f}x" + (
        f"; (c)/(a) = {points_s / sweep_s:.1f}x" if points_s else ""))
    print(f"best point: {result['best']} (greedy {result['points'][0]['greedy_return_mean']:.1f}"
          f" ± {result['points'][0]['greedy_return_std']:.1f})")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "machine": machine_info(), "config": args.config,
            "total_env_steps": args.total_env_steps, "sweep_s": sweep_s,
            "single_runs_s": single, "sequential_s": sequential_s,
            "per_point_runs_s": per_point, "per_point_s": points_s,
            "load_before": load_before, "load_after": load_after,
            "best": result["best"]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
