"""Rollout throughput: env steps per second, pgjax's rollout against env-only stepping.

For each environment and number of parallel environments N, over T steps:

  (a) env only: random actions in a plain jitted ``lax.scan`` of
      ``jax.vmap(env.step)`` (the ceiling: what stepping the envs costs);
  (b) pgjax: ``make_rollout(env, make_networks(spec).apply, ...)``, a 2x64 tanh
      actor and a separate 2x64 tanh critic, returning the full Transition
      ``[T, N, ...]`` and EpisodeStats;

and reports (b)/(a). With ``--with-minimal`` it also times

  (c) a minimal hand-written actor-critic scan with the same networks (policy,
      sample, log-prob, env step, stacked outputs; no next values, no episode
      statistics), and reports (b)/(c): what pgjax's bookkeeping costs.

Compilation is excluded: each function is called once
to compile and warm up, then (a) and (b) are timed alternately (so both see the
same background load) with ``block_until_ready``; the median is reported.
Both carry their env state from call to call, as a training loop would.

Usage:
  python benchmarks/rollout.py                      # full table (~5-10 min on 2 CPU cores)
  python benchmarks/rollout.py --quick              # smoke run
  python benchmarks/rollout.py --envs CartPole-v1 --num-envs 1024,4096 --repeats 9
  python benchmarks/rollout.py --json results.json
  python benchmarks/rollout.py --with-minimal --num-envs 1024,4096   # pgjax's overhead
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import jax
import jax.numpy as jnp

from pgjax.envs import make_env
from pgjax.networks import env_action, make_networks
from pgjax.rollout import make_rollout

from pgjax.bench import load_average, machine_info, make_env_only  # (a), shared with pgjax bench

DEFAULT_ENVS = ("CartPole-v1", "Pendulum-v1", "Breakout-MinAtar")
DEFAULT_NUM_ENVS = (1, 64, 1024, 4096, 16384)


def _minimal(env, apply_fn, num_envs: int, num_steps: int):
    """(c): the least an actor-critic rollout must do, written out by hand."""
    step = jax.vmap(env.env.step, in_axes=(0, 0, 0, None))

    def run(params, carry, key):
        def body(carry, step_key):
            state, obs = carry
            act_key, env_key = jax.random.split(step_key)
            dist, value = apply_fn(params, obs)
            action = dist.sample(act_key)
            next_obs, state, reward, terminated, truncated, _ = step(
                jax.random.split(env_key, num_envs), state, env_action(env.spec, action), env.params
            )
            return (state, next_obs), (obs, action, reward, terminated, truncated, dist.log_prob(action), value)

        return jax.lax.scan(body, carry, jax.random.split(key, num_steps))

    return jax.jit(run)


def _bench(env_name: str, num_envs: int, num_steps: int, repeats: int, with_minimal: bool = False) -> dict:
    env = make_env(env_name)
    a_reset, a_run = make_env_only(env, num_envs, num_steps)
    a_run = jax.jit(a_run)
    nets = make_networks(env.spec)  # 2x64 tanh actor + separate 2x64 tanh critic
    params = nets.init(jax.random.key(0))
    reset, rollout = make_rollout(env, nets.apply, num_envs=num_envs, num_steps=num_steps)
    b_run = jax.jit(rollout)

    a_carry = a_reset(jax.random.key(1))
    b_state = reset(jax.random.key(1))
    keys = jax.random.split(jax.random.key(2), repeats + 1)

    def call_a(key):
        nonlocal a_carry
        a_carry, reward_sum = a_run(a_carry, key)
        jax.block_until_ready((a_carry, reward_sum))

    def call_b(key):
        nonlocal b_state
        out = b_run(params, b_state, key)
        jax.block_until_ready(out)
        b_state = out[0]  # drop the Transition before the next call

    c_run, c_carry = _minimal(env, nets.apply, num_envs, num_steps), a_reset(jax.random.key(1))

    def call_c(key):
        nonlocal c_carry
        out = c_run(params, c_carry, key)
        jax.block_until_ready(out)
        c_carry = out[0]

    calls = [(call_a, []), (call_b, [])] + ([(call_c, [])] if with_minimal else [])

    t0 = time.perf_counter()
    for call, _ in calls:
        call(keys[0])
    warmup_s = time.perf_counter() - t0
    for key in keys[1:]:
        for call, times in calls:
            start = time.perf_counter()
            call(key)
            times.append(time.perf_counter() - start)

    steps = num_envs * num_steps
    a_times, b_times = calls[0][1], calls[1][1]
    a_sps = steps / statistics.median(a_times)
    b_sps = steps / statistics.median(b_times)
    result = {
        "env": env_name,
        "num_envs": num_envs,
        "num_steps": num_steps,
        "env_only_steps_per_s": a_sps,
        "pgjax_steps_per_s": b_sps,
        "ratio": b_sps / a_sps,
        "env_only_times_s": a_times,
        "pgjax_times_s": b_times,
        "compile_and_warmup_s": warmup_s,
    }
    if with_minimal:
        c_times = calls[2][1]
        c_sps = steps / statistics.median(c_times)
        result.update(minimal_steps_per_s=c_sps, pgjax_over_minimal=b_sps / c_sps, minimal_times_s=c_times)
    return result


def _fmt(steps_per_s: float) -> str:
    if steps_per_s >= 1e6:
        return f"{steps_per_s / 1e6:.2f}M"
    return f"{steps_per_s / 1e3:.1f}k"


def _table(results: list[dict]) -> str:
    minimal = "minimal_steps_per_s" in results[0]
    head = "| env | N | (a) env only, steps/s | (b) pgjax rollout, steps/s | (b)/(a) | (b) ms/rollout |"
    rule = "| --- | ---: | ---: | ---: | ---: | ---: |"
    if minimal:
        head += " (c) minimal actor-critic scan, steps/s | (b)/(c) |"
        rule += " ---: | ---: |"
    lines = [head, rule]
    for r in results:
        b_ms = 1e3 * r["num_envs"] * r["num_steps"] / r["pgjax_steps_per_s"]
        line = (
            f"| {r['env']} | {r['num_envs']} | {_fmt(r['env_only_steps_per_s'])} | "
            f"{_fmt(r['pgjax_steps_per_s'])} | {r['ratio']:.2f} | {b_ms:.1f} |"
        )
        if minimal:
            line += f" {_fmt(r['minimal_steps_per_s'])} | {r['pgjax_over_minimal']:.2f} |"
        lines.append(line)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", default=",".join(DEFAULT_ENVS), help="comma-separated gymnax names")
    parser.add_argument("--num-envs", default=",".join(map(str, DEFAULT_NUM_ENVS)), help="comma-separated N values")
    parser.add_argument("--num-steps", type=int, default=128, help="T, steps per rollout")
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per function (median reported)")
    parser.add_argument("--quick", action="store_true", help="smoke run: N in {1, 64}, 2 repeats")
    parser.add_argument(
        "--with-minimal", action="store_true", help="also time (c), a minimal hand-written actor-critic scan"
    )
    parser.add_argument("--json", metavar="PATH", help="also write results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.num_envs, args.repeats = "1,64", 2
    envs = [e for e in args.envs.split(",") if e]
    num_envs = [int(n) for n in args.num_envs.split(",") if n]
    if args.repeats < 1 or args.num_steps < 1 or any(n < 1 for n in num_envs):
        parser.error("--repeats, --num-steps and --num-envs must be positive")
    for name in envs:
        make_env(name)  # fail fast on a bad name, before anything compiles

    machine = machine_info()
    command = "python " + " ".join([os.path.relpath(sys.argv[0])] + (argv if argv is not None else sys.argv[1:]))
    print("# pgjax rollout throughput")
    print(f"date: {machine['date']}")
    print(
        f"machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['memory_gib']} GiB; JAX {machine['jax']}, backend {machine['backend']}; "
        f"Python {machine['python']}"
    )
    print(f"XLA_FLAGS: {machine['xla_flags'] or '(none)'}")
    print(f"load average at start: {machine['load_average']}")
    print(f"command: {command}")
    print(f"T={args.num_steps}, repeats={args.repeats} (median), policy: make_networks default 2x64 tanh actor + critic")
    print(flush=True)

    results = []
    for name in envs:
        for n in num_envs:
            r = _bench(name, n, args.num_steps, args.repeats, args.with_minimal)
            results.append(r)
            extra = f"(c) {_fmt(r['minimal_steps_per_s']):>7s}  " if args.with_minimal else ""
            print(
                f"{name:18s} N={n:<6d} (a) {_fmt(r['env_only_steps_per_s']):>7s}  "
                f"(b) {_fmt(r['pgjax_steps_per_s']):>7s}  ratio {r['ratio']:.2f}  {extra}"
                f"(compile+warmup {r['compile_and_warmup_s']:.1f}s)",
                flush=True,
            )
    machine["load_average_end"] = load_average()
    print()
    print(_table(results))
    print(f"\nload average at end: {machine['load_average_end']}")
    if args.json:
        config = {"num_steps": args.num_steps, "repeats": args.repeats, "command": command}
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "config": config, "results": results}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
