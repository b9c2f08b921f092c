"""Peak memory of training against N, measured, next to pgjax.memory.estimate_memory.

Each configuration trains in a fresh Python process, as ``pgjax train`` does: build the
trainer, compile a chunk (a ``lax.scan`` of updates, vmapped over seeds) and the greedy
evaluation, run two chunks and one evaluation. The child reports its peak resident memory
(``VmHWM`` from ``/proc/self/status``, the kernel's high-water mark of RSS); the parent
prints it beside the estimate and their ratio (target: within 25%).

Usage (from the repository root):
  .venv/bin/python benchmarks/memory.py                     # the default table
  .venv/bin/python benchmarks/memory.py --quick             # N = 64, 1024 only
  .venv/bin/python benchmarks/memory.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

import pgjax  # first: its XLA CPU workaround must precede any computation
from pgjax.config import Config, apply_overrides, derive
from pgjax.envs import Env, make_env

from pgjax.bench import load_average, machine_info

# (label, overrides, seeds). N x T sets the rollout buffers; 4 updates in 2 chunks.
A2C_NS = (64, 256, 1024, 4096, 16384)
CASES = (
    [(f"a2c N={n}", ["algorithm.name=a2c", f"training.num_envs={n}", "algorithm.n_steps=128"], 1)
     for n in A2C_NS]
    + [
        ("a2c N=16384 T=8", ["training.num_envs=16384", "algorithm.n_steps=8"], 1),
        ("a2c N=1024 2x256", ["training.num_envs=1024", "algorithm.n_steps=128",
                              "network.hidden_sizes=[256,256]"], 1),
        ("a2c N=4096 shared trunk", ["training.num_envs=4096", "algorithm.n_steps=128",
                                     "network.shared_trunk=true"], 1),
        ("a2c N=1024 4 seeds", ["training.num_envs=1024", "algorithm.n_steps=128"], 4),
        ("ppo N=4096 4x4", ["algorithm.name=ppo", "training.num_envs=4096", "algorithm.n_steps=128",
                            "algorithm.epochs=4", "algorithm.minibatches=4"], 1),
        ("ppo N=4096 1x1", ["algorithm.name=ppo", "training.num_envs=4096", "algorithm.n_steps=128",
                            "algorithm.epochs=1", "algorithm.minibatches=1"], 1),
        ("reinforce N=256", ["algorithm.name=reinforce", "training.num_envs=256"], 1),
        ("reinforce N=1024", ["algorithm.name=reinforce", "training.num_envs=1024"], 1),
        ("reinforce_baseline N=1024", ["algorithm.name=reinforce_baseline", "training.num_envs=1024"], 1),
        ("Breakout-MinAtar a2c N=1024", ["env.name=Breakout-MinAtar", "training.num_envs=1024",
                                         "algorithm.n_steps=128"], 1),
        ("Breakout-MinAtar ppo N=256 cnn", ["env.name=Breakout-MinAtar", "algorithm.name=ppo",
                                            "training.num_envs=256", "algorithm.n_steps=64",
                                            "algorithm.epochs=1", "network.cnn=true"], 1),
        ("Pendulum-v1 ppo N=4096", ["env.name=Pendulum-v1", "algorithm.name=ppo",
                                    "training.num_envs=4096", "algorithm.n_steps=128"], 1),
    ]
)
QUICK = ("a2c N=64", "a2c N=1024")


def _sized(overrides: list[str], env_name: str = "CartPole-v1", updates: int = 4) -> tuple[Config, Env]:
    """The config with a budget of ``updates`` updates in 2 chunks, and its env."""
    config = apply_overrides(Config(), [f"env.name={env_name}", *overrides,
                                        "training.total_env_steps=1000000000"])
    env = make_env(config.env.name, **dict(config.env.params))
    steps = derive(config, env.spec.max_steps_in_episode).steps_per_update
    return apply_overrides(config, [f"training.total_env_steps={steps * updates}",
                                    "training.num_chunks=2"]), env


def _status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0]) * 1024
    return out


def child(overrides: list[str], seeds: int) -> dict:
    """Trains as ``pgjax train`` does and returns the peak resident memory (run in a child)."""
    import jax  # noqa: PLC0415

    config, env = _sized(overrides)
    trainer = pgjax.make_train(config, env=env)
    k = trainer.derived.updates_per_chunk

    def chunk(state):
        return jax.lax.scan(lambda s, _: trainer.update(s), state, None, length=k)

    keys = jax.random.split(jax.random.key(0), seeds)
    states = jax.jit(jax.vmap(trainer.init))(keys)
    before = _status()
    run_chunk = jax.jit(jax.vmap(chunk)).lower(states).compile()
    evaluate = jax.jit(jax.vmap(trainer.evaluate_both)).lower(states, keys).compile()
    compiled = _status()
    for _ in range(trainer.derived.num_chunks):
        states, metrics = run_chunk(states)
        jax.block_until_ready((states, metrics))
    jax.block_until_ready(evaluate(states, keys))
    return {"before_compile": before["VmHWM"], "after_compile": compiled["VmHWM"],
            "peak": _status()["VmHWM"]}


def baseline_child() -> dict:
    """Resident memory of a process that imported pgjax and gymnax and compiled a small program,
    then built a CartPole trainer and compiled its ``init`` (run in a child)."""
    import gymnax  # noqa: F401, PLC0415
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    jax.block_until_ready(jax.jit(lambda x: x @ x)(jnp.ones((8, 8))))
    imported = _status()["VmHWM"]
    trainer = pgjax.make_train(Config())
    jax.block_until_ready(jax.jit(trainer.init)(jax.random.key(0)))
    return {"imported": imported, "trainer_built": _status()["VmHWM"]}


def _run_child(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{spec}: child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(label: str, overrides: list[str], seeds: int) -> dict:
    """Runs :func:`child` in a fresh process; returns the measurement beside the estimate."""
    from pgjax.memory import estimate_memory  # noqa: PLC0415

    config, env = _sized(overrides)
    estimate = estimate_memory(config, seeds=seeds, env=env, backend="cpu")
    measured = _run_child({"overrides": overrides, "seeds": seeds})
    derived = derive(config, env.spec.max_steps_in_episode)
    return {"label": label, "overrides": overrides, "seeds": seeds,
            "num_envs": config.training.num_envs, "T": derived.rollout_length,
            **measured, "estimate": estimate.total_bytes, "estimate_parts": estimate.parts,
            "ratio": estimate.total_bytes / measured["peak"], "load_average": load_average()}


def table(results: list[dict]) -> str:
    mib = 2**20
    lines = ["| config | N | T | seeds | measured peak RSS | estimate | estimate / measured | "
             "largest estimated parts | load |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |"]
    for r in results:
        parts = sorted(r["estimate_parts"].items(), key=lambda kv: -kv[1])[:3]
        shown = ", ".join(f"{k} {v / mib:.0f}" for k, v in parts)
        lines.append(f"| {r['label']} | {r['num_envs']} | {r['T']} | {r['seeds']} | "
                     f"{r['peak'] / mib:.0f} MiB | {r['estimate'] / mib:.0f} MiB | {r['ratio']:.2f} | "
                     f"{shown} (MiB) | {r['load_average'][0]} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="only " + ", ".join(QUICK))
    parser.add_argument("--cases", default="", help="only cases whose label contains this")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        spec = json.loads(args.child)
        print(json.dumps(baseline_child() if spec.get("baseline") else
                         child(spec["overrides"], spec["seeds"])))
        return 0
    cases = [c for c in CASES if args.cases in c[0] and (not args.quick or c[0] in QUICK)]
    machine = machine_info()
    command = " ".join([".venv/bin/python", os.path.relpath(__file__)] + list(argv or sys.argv[1:]))
    print("# pgjax peak memory: measured (fresh process per row) against estimate_memory")
    print(f"date: {machine['date']}")
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
          f"JAX {machine['jax']} ({machine['backend']})")
    print(f"load average at start: {machine['load_average']}")
    print(f"command: {command}\n", flush=True)
    from pgjax.memory import estimate_memory  # noqa: PLC0415

    base = _run_child({"baseline": True})
    runtime = estimate_memory(Config(), backend="cpu").parts["runtime"]
    print(f"runtime baseline: {base['imported'] / 2**20:.0f} MiB after importing pgjax and gymnax and "
          f"compiling a small program, {base['trainer_built'] / 2**20:.0f} MiB with a trainer built; "
          f"estimate_memory's runtime part: {runtime / 2**20:.0f} MiB\n", flush=True)
    results = []
    for label, overrides, seeds in cases:
        r = measure(label, overrides, seeds)
        results.append(r)
        print(f"{label:28s} measured {r['peak'] / 2**20:7.0f} MiB  estimate {r['estimate'] / 2**20:7.0f} MiB"
              f"  ratio {r['ratio']:.2f}", flush=True)
    print()
    print(table(results))
    worst = max(abs(r["ratio"] - 1) for r in results)
    print(f"\nlargest deviation: {100 * worst:.0f}% (target: within 25%)")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"machine": machine, "command": command,
                                                       "baseline": base, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
