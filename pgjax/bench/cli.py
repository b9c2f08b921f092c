"""pgjax bench: env steps per second against N, phase by phase, beside the machine's ceiling.

For an environment and algorithm (default CartPole-v1, a2c) and each number of parallel
environments N, over T steps per rollout, four phases are compiled and then timed
alternately (so all see the same background load), each call ended by
``block_until_ready``:

  (a) env      env only: a ``lax.scan`` of ``vmap(env.step)`` under uniformly random actions;
  (b) rollout  the policy acting, no learning: ``pgjax.rollout.make_rollout`` (or the episodic
               rollout for REINFORCE) with the trainer's networks, full Transition out;
  (c) learn    the update without its rollout, on a stored batch: advantages, then forward,
               backward and the optimiser (PPO: epochs x minibatches, with the shuffles);
  (d) train    the trainer's ``update`` (rollout and learning), ``lax.scan``-ed over updates.

Each call covers U rollouts or updates (U chosen so a call holds about 2^20 env steps), the
median of the repeats is reported, and compilation is timed separately. In every row a large
float32 matrix product is timed alternately with the phases, for the machine's achievable
FLOP/s under the same load, and the FLOP utilisation of (d) is printed: model FLOPs per env
step (the rollout's actor and critic forward, plus forward and backward of the loss, ~3x
forward, times PPO's epochs) times (d)'s steps/s over the matmul's FLOP/s.

``--reference`` times only (d), alternately with a plain-JAX A2C or PPO of the same
mathematics written as a user's single-file script (pgjax/bench/reference.py: same env,
networks, T, N, epochs, minibatches, GAE, clipping and Adam; compiled with jax.jit's
defaults), from the same initial state, and prints both steps/s and the ratio: the median
of the per-round ratios and their range, against the 1.5x target of issue 19.
``--busy-core`` keeps one core busy with a spinning Python subprocess while it measures
(the load of another program), and says so.

``--compile-cache`` instead measures the compile time of the default a2c training program in
two fresh processes sharing a new persistent compilation cache (first run vs cached).

Usage:
  pgjax bench                                  # CartPole-v1 a2c, N = 64 .. 16384, T = 128
  pgjax bench --quick                          # a smoke run (seconds)
  pgjax bench --algorithm ppo --num-envs 2048 --json out.json --plot out.png
  pgjax bench --config cartpole_ppo --steps 32   # a preset, or a YAML path
  pgjax bench --reference --algorithm ppo --num-envs 64,2048 --busy-core
  pgjax bench --compile-cache
  python -m pgjax.bench ...                    # the same without the pgjax command
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
from pathlib import Path
from typing import Iterator

from pgjax.bench.algorithms import algorithm_names, is_episodic, schedule_text
from pgjax.bench.compile_cache import compile_cache_times
from pgjax.bench.flops import model_flops
from pgjax.bench.machine import busy_core, format_rate, header, load_average, machine_info
from pgjax.bench.phases import PHASES, STEPS_PER_CALL, bench_config, bench_phases
from pgjax.bench.report import REFERENCE_TARGET, plot, reference_table, results_table
from pgjax.config import Config, ConfigError, apply_overrides, load_config
from pgjax.host.errors import EXIT_STORAGE, StorageError
from pgjax.memory import env_sizes, network_shape

DEFAULT_NUM_ENVS = (64, 256, 1024, 4096, 16384)
QUICK_NUM_ENVS = (16, 64)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pgjax bench`` (also ``python -m pgjax.bench``)."""
    parser.add_argument("--config", metavar="CONFIG",
                        help="preset name or YAML file to benchmark (default: pgjax's defaults)")
    parser.add_argument("--env", metavar="NAME", help="gymnax env (default CartPole-v1, or the config's)")
    parser.add_argument("--algorithm", choices=algorithm_names(),
                        help="algorithm (default a2c, or the config's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (repeatable)")
    parser.add_argument("--num-envs", metavar="N,N,...",
                        help="comma-separated N (default " + ",".join(map(str, DEFAULT_NUM_ENVS)) + ")")
    parser.add_argument("--steps", type=int, metavar="T",
                        help="rollout length T (default 128, or the config's n_steps with --config)")
    parser.add_argument("--phases",
                        help="comma-separated subset of " + ",".join(PHASES) + " (default all; "
                             "train with --reference)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per phase (median reported)")
    parser.add_argument("--matmul-size", type=int,
                        help="size of the float32 matmul (default 4096; 1024 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: N in 16,64, T=16, 2 repeats, a 1024 matmul")
    parser.add_argument("--reference", action="store_true",
                        help="time (d) alternately with a plain-JAX A2C/PPO of the same "
                             "mathematics (pgjax/bench/reference.py); print both and the ratio")
    parser.add_argument("--busy-core", action="store_true",
                        help="keep one core busy (a spinning Python subprocess) while measuring")
    parser.add_argument("--compile-cache", action="store_true",
                        help="measure first vs cached compile of the default a2c training program "
                             "(two fresh processes sharing a new cache) instead")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a log-log plot of steps/s against N")


def resolve_config(args: argparse.Namespace) -> tuple[Config, int | None]:
    """The config to benchmark and T (None: the config's own n_steps)."""
    config = load_config(args.config) if args.config else Config()
    overrides = []
    if args.env:
        overrides.append(f"env.name={args.env}")
    if args.algorithm:
        overrides.append(f"algorithm.name={args.algorithm}")
    config = apply_overrides(config, overrides + list(args.set))
    steps = args.steps if args.steps is not None else (None if args.config else 128)
    if args.quick and args.steps is None:
        steps = 16
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps={steps}: must be >= 1")
    return config, steps


def command_line(argv: list[str] | None, prog: str = "pgjax bench") -> str:
    """The command line as typed: ``prog`` and the options (``sys.argv`` after the
    subcommand when ``argv`` is None, as under ``pgjax bench``)."""
    if argv is None:
        argv = sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]
    return " ".join([prog, *(shlex.quote(a) for a in argv)])


def run_compile_cache(args: argparse.Namespace, machine: dict, command: str) -> int:
    """``pgjax bench --compile-cache``: prints (and writes ``--json``) first vs cached compile."""
    print(header("pgjax bench --compile-cache: first vs cached compile", machine, command), flush=True)
    result = compile_cache_times(list(args.set))
    print(f"program: the default a2c config ({', '.join(result['overrides']) or 'as is'}): "
          "init, a vmapped chunk of updates, greedy evaluation; "
          f"{result['cache_entries']} cache entries")
    print("| process | make_train s | trace+lower s | compile s | whole process s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for i, r in enumerate(result["runs"]):
        print(f"| {'first (empty cache)' if i == 0 else 'cached'} | {r['make_train_s']:.2f} | "
              f"{r['trace_and_lower_s']:.2f} | {r['compile_s']:.2f} | {r['process_s']:.2f} |")
    print(f"cached / first: XLA compile {result['compile_cached_over_first']:.1%} (target <= 10%); "
          f"trace+lower+compile {result['cached_over_first']:.1%} (tracing is not cached); "
          f"load average {result['load_average']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "command": command, "compile_cache": result}, f, indent=2)
    return 0


def _check_outputs(args: argparse.Namespace) -> None:
    """``--json`` and ``--plot`` can be written, and ``--plot`` names a format matplotlib
    writes: checked before the benchmark runs, not after."""
    from pgjax.host.rundir import check_writable  # noqa: PLC0415

    if args.plot and Path(args.plot).suffix.lower() not in (".png", ".pdf", ".svg"):
        raise ConfigError(f"--plot {args.plot}: must end in .png, .pdf or .svg")
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        if path:
            if Path(path).is_dir():
                raise ConfigError(f"{flag} {path}: is a directory; name a file")
            check_writable(Path(path), flag)


def _check_memory(config: Config, env, num_envs: list[int], steps: int | None) -> None:
    """Refuses an N whose buffers would not fit, naming --num-envs (not the config keys the
    benchmark sets for it)."""
    from pgjax.memory import available_memory, estimate_memory  # noqa: PLC0415

    limit = available_memory()
    for n in num_envs:
        try:
            parts = estimate_memory(bench_config(config, n, steps, env.spec.max_steps_in_episode),
                                    env=env).parts
            need = sum(v for k, v in parts.items() if k != "metrics")  # one chunk per call
        except ConfigError as error:
            raise ConfigError(f"--num-envs {n}: {error}") from None
        if need > limit:
            raise ConfigError(f"--num-envs {n}: needs about {need / 2**30:.1f} GiB, over the "
                              f"{limit / 2**30:.1f} GiB available; use a smaller N")


def run(args: argparse.Namespace, *, command: str | None = None) -> int:
    """Runs the benchmark ``args`` describe, prints its tables; returns an exit status."""
    from pgjax.envs import make_env  # noqa: PLC0415

    command = command or command_line(None)
    machine = machine_info()
    try:
        _check_outputs(args)
    except ConfigError as error:
        print(f"pgjax bench: error: {error}", file=sys.stderr)
        return 2
    except StorageError as error:
        print(f"pgjax bench: error: {error}", file=sys.stderr)
        return EXIT_STORAGE
    if args.compile_cache:
        if args.reference or args.busy_core:
            print("pgjax bench: error: --compile-cache measures compile time only; drop "
                  "--reference and --busy-core", file=sys.stderr)
            return 2
        return run_compile_cache(args, machine, command)

    try:
        config, steps = resolve_config(args)
        env = make_env(config.env.name, **dict(config.env.params))
        text = args.num_envs or ",".join(map(str, QUICK_NUM_ENVS if args.quick else DEFAULT_NUM_ENVS))
        try:
            num_envs = [int(n) for n in text.split(",") if n]
        except ValueError:
            raise ConfigError(f"--num-envs {text}: must be whole numbers separated by commas, "
                              "e.g. 64,1024") from None
        phases = tuple(p for p in (args.phases or ",".join(PHASES)).split(",") if p)
        if args.reference:
            _check_reference(args, config, env, steps)
            phases = ("train",)
        _check_memory(config, env, num_envs, steps)
    except (ConfigError, ValueError) as error:
        print(f"pgjax bench: error: {error}", file=sys.stderr)
        return 2
    bad = [p for p in phases if p not in PHASES]
    if bad or not phases or any(n < 1 for n in num_envs) or not num_envs or args.repeats < 1:
        print(f"pgjax bench: error: --phases from {','.join(PHASES)}, positive --num-envs and "
              "--repeats", file=sys.stderr)
        return 2
    repeats = min(2, args.repeats) if args.quick else args.repeats
    per_call = STEPS_PER_CALL // 64 if args.quick else STEPS_PER_CALL
    matmul_size = args.matmul_size or (1024 if args.quick else 4096)
    if args.reference:
        return run_reference(args, config, env, num_envs, steps, repeats=repeats,
                             per_call=per_call, machine=machine, command=command)
    a = config.algorithm
    print(header("pgjax bench: env steps/s against N", machine, command))
    episodic = is_episodic(config)
    T = "max_steps_in_episode (whole episodes)" if episodic else (steps or a.n_steps)
    net = config.network
    print(f"{config.env.name}, {a.name}, T={T}, networks "
          f"{'x'.join(map(str, net.hidden_sizes))} {net.activation}"
          f"{' shared trunk' if net.shared_trunk else ''}"
          f"{schedule_text(config)}; "
          f"median of {repeats} calls, each of U rollouts/updates (~{per_call} env steps)",
          flush=True)
    print(f"the {matmul_size}x{matmul_size} float32 matmul is timed in every row, alternately with "
          "the phases", flush=True)
    _, _, action_size = env_sizes(env)
    flops = model_flops(config, network_shape(config, env.spec.obs_shape, action_size,
                                              discrete=env.spec.discrete,
                                              obs_num_values=env.spec.obs_num_values))
    print(f"model FLOPs per env step: {flops.total:,} (rollout forward {flops.rollout:,}, "
          f"training forward+backward {flops.train:,})", flush=True)
    results = []
    with _maybe_busy(args.busy_core) as busy:
        for n in num_envs:
            r = bench_phases(config, env, num_envs=n, num_steps=steps, repeats=repeats,
                             phases=phases, steps_per_call=per_call, matmul_size=matmul_size)
            results.append(r)
            print(f"N={n:<6d} " + "  ".join(f"{p} {format_rate(r['steps_per_s'][p]):>7s}"
                                             for p in PHASES if p in r["steps_per_s"])
                  + f"  matmul {r['matmul']['flops_per_s'] / 1e9:.0f} GFLOP/s"
                  + f"  (compile {sum(r['compile_s'].values()):.1f}s, "
                  f"load {r['load_average'][-1][0]})", flush=True)
    print()
    print(results_table(results, flops))
    print(f"\nFLOP utilisation: (d)'s model FLOP/s over the row's matmul FLOP/s (median of its "
          f"calls). load average at end: {load_average()}")
    if args.plot:
        plot(results, args.plot, f"{config.env.name} {a.name}, {machine['cpu']}, {machine['date']}")
        print(f"wrote {args.plot}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "command": command, "config": str(config),
                       "model_flops": flops._asdict(), "busy_core": busy,
                       "results": results}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


@contextlib.contextmanager
def _maybe_busy(on: bool) -> Iterator[dict | None]:
    """:func:`~pgjax.bench.machine.busy_core` for the block when ``on`` (printing that it
    is), else nothing; yields what the JSON records of it (None when off)."""
    if not on:
        yield None
        return
    with busy_core() as proc:
        print(f"busy core: on (pid {proc.pid}, a spinning Python process, for the whole "
              "measurement)", flush=True)
        yield {"on": True, "pid": proc.pid}


def _check_reference(args: argparse.Namespace, config: Config, env, steps: int | None) -> None:
    """``--reference`` times the training phase only, for a config the reference implements."""
    from pgjax.bench.reference import unsupported  # noqa: PLC0415

    if args.phases and args.phases != "train":
        raise ConfigError(f"--phases {args.phases}: --reference times the train phase only")
    if args.matmul_size or args.plot:
        raise ConfigError("--matmul-size, --plot: --reference times no matmul and prints a "
                          "table, no plot")
    problems = unsupported(bench_config(config, 1, steps), env)
    if problems:
        raise ConfigError("--reference: the plain JAX reference does not implement "
                          + "; ".join(problems))


def run_reference(args: argparse.Namespace, config: Config, env, num_envs: list[int],
                  steps: int | None, *, repeats: int, per_call: int, machine: dict,
                  command: str) -> int:
    """``pgjax bench --reference``: (d) and the plain-JAX reference timed alternately for
    each N; prints steps/s of both, the ratio and its range, with the load average."""
    a, net = config.algorithm, config.network
    T = steps or a.n_steps
    print(header("pgjax bench --reference: pgjax's training against a plain JAX reference",
                  machine, command))
    print(f"{config.env.name}, {a.name}, T={T}, networks {'x'.join(map(str, net.hidden_sizes))} "
          f"{net.activation} (separate actor and critic){schedule_text(config)}; "
          f"{repeats} rounds, each timing pgjax's training then the reference, one call each "
          f"of U updates (~{per_call} env steps)", flush=True)
    print("reference: pgjax/bench/reference.py, the same mathematics in plain JAX, compiled "
          "with jax.jit's defaults (pgjax: its own options, LLVM -O1 on CPU); both from "
          "pgjax's initial state; compilation excluded", flush=True)
    results = []
    with _maybe_busy(args.busy_core) as busy:
        for n in num_envs:
            r = bench_phases(config, env, num_envs=n, num_steps=steps, repeats=repeats,
                             phases=("train",), steps_per_call=per_call, reference=True)
            r["busy_core"] = busy is not None
            results.append(r)
            sps, ratio = r["steps_per_s"], r["reference"]
            print(f"N={n:<6d} pgjax {format_rate(sps['train']):>7s}  reference "
                  f"{format_rate(sps['reference']):>7s}  pgjax/reference {ratio['median']:.2f} "
                  f"(per-round {ratio['min']:.2f}-{ratio['max']:.2f}, {repeats} rounds)  "
                  f"(compile pgjax {r['compile_s']['train']:.1f}s, reference "
                  f"{r['compile_s']['reference']:.1f}s; load {r['load_average'][-1][0]})",
                  flush=True)
    print()
    print(reference_table(results, a.name + schedule_text(config).replace(",", "")))
    met = [r["reference"]["median"] >= REFERENCE_TARGET for r in results]
    print(f"\ntarget pgjax >= {REFERENCE_TARGET}x the reference (median of the per-round "
          f"ratios): met at {sum(met)} of {len(met)} N; busy core "
          f"{'on' if busy else 'off'}; load average at end: {load_average()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "command": command, "config": str(config),
                       "busy_core": busy, "results": results}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def make_parser(prog: str = "pgjax bench") -> argparse.ArgumentParser:
    """The parser of ``pgjax bench``: :func:`add_arguments`, with this module's docstring as
    the description (first paragraph) and epilog (the rest)."""
    doc = __doc__ or ""
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(doc.split("\n\n")[1:]))
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None, *, prog: str = "python -m pgjax.bench") -> int:
    """``python -m pgjax.bench [options]``: the same as ``pgjax bench``; ``prog`` is the
    command as printed in ``--help`` and recorded in the results."""
    args = make_parser(prog).parse_args(argv)
    return run(args, command=command_line(argv, prog))
