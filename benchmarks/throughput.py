"""Throughput: env steps/s against N for env only, rollout, learning and full training.

A thin script over :mod:`pgjax.bench` (the same as ``pgjax bench``), which holds the logic so
the installed command works without this folder. See ``python benchmarks/throughput.py --help``.

Usage (from the repository root):
  .venv/bin/python benchmarks/throughput.py                          # CartPole-v1 a2c, N = 64 .. 16384
  .venv/bin/python benchmarks/throughput.py --num-envs 2048          # the issue's target point
  .venv/bin/python benchmarks/throughput.py --algorithm ppo --json out.json --plot out.png
  .venv/bin/python benchmarks/throughput.py --compile-cache          # first vs cached compile
  .venv/bin/python benchmarks/throughput.py --reference --num-envs 2048              # vs plain JAX a2c
  .venv/bin/python benchmarks/throughput.py --reference --algorithm ppo --num-envs 64,2048 --busy-core
"""

import sys

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede any computation)
from pgjax.bench import main

if __name__ == "__main__":
    sys.exit(main(prog=".venv/bin/python benchmarks/throughput.py"))
