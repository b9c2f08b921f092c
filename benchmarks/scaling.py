"""Scaling out: training steps/s against the device count (pgjax.sharding).

Each row trains one config with ``training.devices`` = D in a fresh process
whose devices are what the machine offers; on a CPU the devices are forced
with ``--xla_force_host_platform_device_count`` (they then share the same
cores, so the table shows correctness and overhead, not speed-up). Every run
compiles a chunk (a ``lax.scan`` of updates, vmapped over ``--seeds``), runs
it once to warm up and then times ``--repeats`` chunks; compile time is
reported apart. The parameters after the first (warm-up) chunk of every D are
compared with D=1's (same keys, same global batch): the largest relative
difference is printed.

Usage (from the repository root):
  .venv/bin/python benchmarks/scaling.py                        # a2c and ppo, D = 1, 2, 4
  .venv/bin/python benchmarks/scaling.py --devices 1,2,4,8 --envs 4096
  .venv/bin/python benchmarks/scaling.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede any computation)

from pgjax.bench import load_average, machine_info
from pgjax.host.programs import compiler_options

ALGORITHMS = {  # overrides of the CartPole default config (2x64 tanh actor and critic)
    "a2c": ["algorithm.name=a2c", "algorithm.n_steps=128"],
    "ppo": ["algorithm.name=ppo", "algorithm.n_steps=128", "algorithm.epochs=4",
            "algorithm.minibatches=4"],
}


def child(spec: dict) -> dict:
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from pgjax.config import Config, apply_overrides  # noqa: PLC0415
    from pgjax.train import make_train  # noqa: PLC0415

    config = apply_overrides(Config(), spec["overrides"])
    trainer = make_train(config)
    seeds, updates = spec["seeds"], spec["updates"]
    keys = jax.random.split(jax.random.key(0), seeds)

    def chunk(state):
        return jax.lax.scan(lambda s, _: (trainer.update(s)[0], None), state, None,
                            length=updates)[0]

    init = jax.jit(jax.vmap(trainer.init))
    state = jax.block_until_ready(init(keys))
    start = time.perf_counter()
    run = jax.jit(jax.vmap(chunk)).lower(state).compile(compiler_options())
    compile_s = time.perf_counter() - start
    state = jax.block_until_ready(run(state))  # warm-up
    # Compared after this first chunk: later, an action sampled from logits that differ in
    # float32 rounding (sums split over devices) can flip, and the runs part as any two
    # reduction orders do (PPO: 7e-7 after 3 updates, 3e-3 after 8, unrelated after 12).
    params = jax.tree.map(lambda x: np.asarray(x).tolist(), jax.device_get(state.params))
    times = []
    for _ in range(spec["repeats"]):
        start = time.perf_counter()
        state = jax.block_until_ready(run(state))
        times.append(time.perf_counter() - start)
    steps = seeds * updates * trainer.derived.steps_per_update
    return {"compile_s": compile_s, "steps_per_s": steps / float(np.median(times)),
            "devices": trainer.sharding.num_devices, "params": params,
            "shard_envs": int(state.rollout.obs.addressable_shards[0].data.shape[1])}


def rel_diff(a, b) -> float:
    import numpy as np  # noqa: PLC0415

    if isinstance(a, dict):
        return max(rel_diff(a[k], b[k]) for k in a)
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-6))


def measure(algorithm: str, devices: int, forced: int, args) -> dict:
    spec = {"overrides": ALGORITHMS[algorithm] + [f"training.num_envs={args.envs}",
                                                  f"training.devices={devices}"],
            "seeds": args.seeds, "updates": args.updates, "repeats": args.repeats}
    env = dict(os.environ)
    if forced:
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                            f" --xla_force_host_platform_device_count={forced}").strip()
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"child failed ({algorithm}, D={devices}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="1,2,4", help="device counts (default 1,2,4)")
    parser.add_argument("--algorithms", default="a2c,ppo", help="of " + ", ".join(ALGORITHMS))
    parser.add_argument("--envs", type=int, default=2048, help="num_envs, the global batch")
    parser.add_argument("--seeds", type=int, default=1, help="seeds vmapped (default 1)")
    parser.add_argument("--updates", type=int, default=5, help="updates per timed chunk")
    parser.add_argument("--repeats", type=int, default=3, help="timed chunks (median)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    counts = [int(d) for d in args.devices.split(",")]
    machine = machine_info()
    # On a CPU, force as many host devices as the largest count; accelerators are used as they are.
    forced = max(counts) if machine["backend"] == "cpu" else 0
    command = " ".join([".venv/bin/python", os.path.relpath(__file__)] + list(argv or sys.argv[1:]))
    print("# pgjax scaling: training steps/s against training.devices")
    print(f"date: {machine['date']}")
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
          f"JAX {machine['jax']} ({machine['backend']}"
          + (f", {forced} forced host devices on {machine['cores']} cores" if forced else "") + ")")
    print(f"load average at start: {machine['load_average']}")
    print(f"command: {command}\n")
    print(f"CartPole-v1, 2x64 tanh actor and critic, N={args.envs} (global), T=128, "
          f"{args.seeds} seed(s); ppo: 4 epochs x 4 minibatches\n", flush=True)
    print("| algorithm | devices | envs per device | steps/s | vs 1 device | compile s "
          "| params rel. diff vs 1 device, first chunk |")
    print("| --- | --- | --- | --- | --- | --- | --- |", flush=True)
    results = []
    for algorithm in args.algorithms.split(","):
        base = None
        for d in counts:
            r = measure(algorithm, d, forced, args)
            base = base or r
            diff = rel_diff(r["params"], base["params"])
            results.append({"algorithm": algorithm, "devices": d, "steps_per_s": r["steps_per_s"],
                            "compile_s": r["compile_s"], "params_rel_diff": diff,
                            "envs_per_device": r["shard_envs"]})
            print(f"| {algorithm} | {d} | {r['shard_envs']} | {r['steps_per_s'] / 1e3:,.0f}k | "
                  f"{r['steps_per_s'] / base['steps_per_s']:.2f}x | {r['compile_s']:.1f} | "
                  f"{diff:.1e} |", flush=True)
    print(f"\nload average at end: {load_average()}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"machine": machine, "command": command, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
