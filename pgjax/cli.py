"""The ``pgjax`` command: train, resume, evaluate, render, compare, list envs, benchmark.

Every command checks its input before anything compiles; a problem a person must fix (a bad
config key or value, a missing file, an existing run directory, ...) is reported on one line
and the command exits with code 2, without a traceback and without writing anything.
``pgjax train`` and ``pgjax compare`` stop cleanly on Ctrl-C or SIGTERM after the current
chunk (exit 130 / 143) and print how to resume; a diverged run exits 1.

Compiled programs are kept in a persistent cache (``~/.cache/pgjax/jax``, or
``$XDG_CACHE_HOME/pgjax/jax``), so a second run of the same config skips most of its
compile time. ``--cache-dir DIR`` or ``PGJAX_CACHE_DIR`` moves it; ``--no-cache`` or
``PGJAX_NO_CACHE=1`` turns it off. Only the command does this: ``import pgjax`` never
touches JAX's configuration.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import os
import sys
import time
from pathlib import Path

import pgjax  # first: its XLA CPU workaround must precede any computation
from pgjax.config import ConfigError, apply_overrides, load_config, save_config
from pgjax import distributed
from pgjax.rundir import RunError

EXAMPLES = """examples:
  pgjax train                                      # configs/cartpole_a2c.yaml, 1 seed
  pgjax train configs/cartpole_ppo.yaml --seeds 8 --set training.total_env_steps=200000
  pgjax train --resume runs/cartpole_a2c-20260101-120000
  pgjax eval runs/cartpole_a2c-20260101-120000 --episodes 100
  pgjax compare configs/cartpole_reinforce.yaml configs/cartpole_reinforce_baseline.yaml --seeds 10
"""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def _devices(text: str) -> int | str:
    if text == "all":
        return text
    try:
        return _positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer or 'all'") from None


# ------------------------------------------------------------------ compilation cache
def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pgjax" / "jax"


def cache_dir(args: argparse.Namespace) -> Path | None:
    """The compilation-cache directory: ``--cache-dir``, ``$PGJAX_CACHE_DIR``, or the default;
    None with ``--no-cache`` or ``PGJAX_NO_CACHE=1``."""
    if getattr(args, "no_cache", False) or os.environ.get("PGJAX_NO_CACHE", "") not in ("", "0"):
        return None
    return Path(getattr(args, "cache_dir", None) or os.environ.get("PGJAX_CACHE_DIR")
                or default_cache_dir()).expanduser()


def setup_cache(args: argparse.Namespace) -> Path | None:
    """Points JAX's persistent compilation cache at :func:`cache_dir` (or turns it off)."""
    path = cache_dir(args)
    use_compilation_cache(path)
    return path


def use_compilation_cache(path: str | Path | None) -> None:
    """JAX's persistent compilation cache in ``path``, caching every program (None: off).
    The ``pgjax`` command's setting; the benchmarks that time cached compiles use it too."""
    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_compilation_cache", path is not None)
    if path is not None:
        jax.config.update("jax_compilation_cache_dir", str(path))
        # Cache every program: CPU programs compile in seconds and are small, below JAX's
        # defaults (1 s; a minimum entry size chosen for the filesystem; -1 disables it).
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


# ------------------------------------------------------------------ commands
def _train(args: argparse.Namespace) -> int:
    from pgjax import run, rundir  # noqa: PLC0415

    if args.resume:
        if args.out or args.force:
            raise RunError("--resume continues RUN_DIR in place; drop --out and --force")
        directory = Path(args.resume)
        config = run.with_devices(_run_config(directory, "--resume"), args.devices)
        if args.config or args.set or args.seeds is not None:
            base = run.resolve_config_path(args.config) if args.config else directory / "config.yaml"
            diff = run.config_diff(config, run.read_config(base, args.set, args.seeds))
            if diff:
                raise RunError(f"--resume {directory}: the requested config differs from the "
                               f"run's in {', '.join(diff)}; resume without changes, or start "
                               "a new run")
        _join(config, args)
        trainer = run.build_trainer(config)
        run.check_resume(directory, config, trainer.derived)
        note = run.check_memory(config, trainer.env, config.training.num_seeds,
                                trainer.sharding.num_devices)
        say = f"resuming run directory: {directory}"
    else:
        path = run.resolve_config_path(args.config)
        config, scaling = run.read_scaled_config(path, args.set, args.seeds, args.devices)
        directory = rundir.choose_run_dir(path, args.out, args.force)
        _join(config, args)
        trainer = run.build_trainer(config)
        note = run.check_memory(config, trainer.env, config.training.num_seeds,
                                trainer.sharding.num_devices)
        if distributed.is_primary():  # only now: everything above is validated
            rundir.create_run_dir(directory, args.force)
            save_config(config, directory / "config.yaml")
        distributed.barrier("pgjax run directory")
        say = "\n".join([f"run directory: {directory}", *run.scaling_lines(scaling)])
    run.say(say)
    result = run.train_run(directory, trainer, label=directory.name, resumed=bool(args.resume),
                           memory_note=note)
    return result.exit_code


def _join(config, args: argparse.Namespace) -> None:
    """Joins the multi-host job of ``config`` (training.num_processes != 1) before JAX starts."""
    distributed.initialize(config, getattr(args, "process_id", None))


def _run_config(directory: Path, flag: str = ""):
    if not (directory / "config.yaml").is_file():
        raise RunError(f"{flag} {directory}: not a pgjax run directory (no config.yaml)".strip())
    return load_config(directory / "config.yaml")


def _restore(directory: Path, trainer, which: str):
    """The vmapped TrainState of a run's ``latest`` or ``best`` checkpoint, and its chunk."""
    from pgjax import run, rundir  # noqa: PLC0415

    step = None
    if (directory / "checkpoints").is_dir():
        checkpoints = rundir.Checkpoints(directory / "checkpoints")
        step = checkpoints.latest() if which == "latest" else checkpoints.best()
    if step is None:
        raise RunError(f"{directory}: no checkpoint yet; train it first (or resume it)")
    seeds = trainer.config.training.num_seeds
    state, _ = checkpoints.restore(step, run.abstract_state(trainer, seeds))
    checkpoints.close()
    return state, step


def _eval(args: argparse.Namespace) -> int:
    from pgjax import run  # noqa: PLC0415

    directory = Path(args.run_dir)
    config = run.with_devices(_run_config(directory), args.devices)
    episodes = args.episodes or config.training.eval_episodes or 64
    config = apply_overrides(config, [f"training.eval_episodes={episodes}"])
    _join(config, args)
    trainer = run.build_trainer(config)
    state, step = _restore(directory, trainer, args.checkpoint)
    # The program of the run's final evaluation (both policies), whichever this prints.
    programs = run.compile_programs(trainer, config.training.num_seeds, train=False)
    greedy, sampled = run.per_seed_returns(programs.evaluate(state, programs.keys))
    d = trainer.derived
    run.say(f"{directory}: {args.checkpoint} checkpoint, chunk {step}/{d.num_chunks} "
            f"({d.updates_after(step) * d.steps_per_update:,} env steps per seed)")
    shown = {"greedy": greedy, "sampled": sampled}
    names = ["sampled"] if args.sample else ["greedy"] if args.greedy else list(shown)
    for name in names:
        per_seed = shown[name]
        run.say(f"{name} return {per_seed.mean():.1f} ± {per_seed.std():.1f} over "
                f"{len(per_seed)} seed(s), {episodes} episodes each")
        if len(per_seed) > 1:
            run.say(f"{name} per seed: " + " ".join(f"{r:.1f}" for r in per_seed))
    return 0


def _render(args: argparse.Namespace) -> int:
    import jax  # noqa: PLC0415
    import numpy as np  # noqa: PLC0415

    from pgjax import plot, run  # noqa: PLC0415

    directory = Path(args.run_dir)
    config = _run_config(directory)
    seeds = config.training.num_seeds
    if not 0 <= args.seed_index < seeds:
        raise RunError(f"--seed-index {args.seed_index}: the run has {seeds} seed(s), "
                       f"so it must be in 0..{seeds - 1}")
    # One episode of one seed: one device, whatever the run trained on.
    trainer = run.build_trainer(apply_overrides(config, ["training.eval_episodes=1",
                                                         "training.devices=1"]))
    render_problem = getattr(trainer.env, "render_problem", None)
    problem = (f"{config.env.name} cannot be drawn: its env has no render method"
               if not hasattr(trainer.env, "render") else render_problem and render_problem())
    if problem:
        raise RunError(problem)
    state, step = _restore(directory, trainer, args.checkpoint)
    state = jax.tree.map(lambda x: x[args.seed_index], state)
    key = jax.random.split(run.seed_keys(config, seeds)[args.seed_index])[1]
    states, returns, alive = jax.device_get(
        jax.jit(_episode_fn(trainer, greedy=not args.sample))(state, key))
    length = int(np.asarray(alive).sum())
    frames = [jax.tree.map(lambda x: x[t], states) for t in range(length)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    trainer.env.render(frames, [float(r) for r in np.asarray(returns)[:length]], out)
    run.say(f"{out}: seed {args.seed_index}, {args.checkpoint} checkpoint (chunk {step}), "
            f"{length} steps, return {float(np.asarray(returns)[length - 1]):.1f}")
    return 0


def _episode_fn(trainer, *, greedy: bool):
    """``(state, key) -> (env states [T], return so far [T], alive [T])`` of one episode."""
    import jax  # noqa: PLC0415

    from pgjax.envs import normalize_obs  # noqa: PLC0415
    from pgjax.networks import env_action  # noqa: PLC0415
    from pgjax.train import observation_stats  # noqa: PLC0415

    env, spec = trainer.env, trainer.env.spec

    def episode(state, key):
        obs_stats = observation_stats(state)
        reset_key, key = jax.random.split(key)
        obs, env_state = env.reset(reset_key)

        def step(carry, step_key):
            obs, env_state, alive, total = carry
            act_key, env_key = jax.random.split(step_key)
            policy_obs = obs if obs_stats is None else normalize_obs(obs_stats, obs)
            dist = trainer.networks.actor(state.params, policy_obs)
            action = dist.mode() if greedy else dist.sample(act_key)
            next_obs, next_state, reward, terminated, truncated, _ = env.step(
                env_key, env_state, env_action(spec, action))
            total = total + reward
            done = terminated | truncated
            return (next_obs, next_state, alive & ~done, total), (env_state, total, alive)

        carry = (obs, env_state, True, 0.0)
        _, out = jax.lax.scan(step, carry, jax.random.split(key, spec.max_steps_in_episode))
        return out

    return episode


def _compare(args: argparse.Namespace) -> int:
    import json  # noqa: PLC0415

    from pgjax import plot, run, rundir  # noqa: PLC0415

    paths = [run.resolve_config_path(c) for c in args.configs]
    scaled = [run.read_scaled_config(p, args.set, args.seeds, args.devices) for p in paths]
    configs = [s.config for s in scaled]
    for path, config in zip(paths, configs):
        if distributed.wanted(config):
            raise RunError(f"{path}: training.num_processes={config.training.num_processes}: "
                           "pgjax compare runs on one host; use pgjax train for multi-host runs")
    labels: list[str] = []
    for p in paths:
        label, i = p.stem, 1
        while label in labels:
            i += 1
            label = f"{p.stem}-{i}"
        labels.append(label)
    if args.out is None:
        out = Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
        i = 1
        while out.exists():
            i += 1
            out = out.with_name(f"compare-{time.strftime('%Y%m%d-%H%M%S')}-{i}")
    else:
        out = Path(args.out)
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.force:
            raise RunError(f"--out {out}: exists and is not empty; pass --force to replace it")
    trainers = [run.build_trainer(c) for c in configs]  # every variant checked before any compile
    notes = [run.check_memory(c, t.env, c.training.num_seeds, t.sharding.num_devices)
             for c, t in zip(configs, trainers)]
    out.mkdir(parents=True, exist_ok=True)
    run.say(f"compare directory: {out}")
    results = []
    for label, path, config, trainer, note in zip(labels, paths, configs, trainers, notes):
        directory = out / label
        rundir.create_run_dir(directory, force=True)
        save_config(config, directory / "config.yaml")
        run.say(f"--- {label} ({path})")
        for line in run.scaling_lines(scaled[labels.index(label)].changes):
            run.say(line)
        result = run.train_run(directory, trainer, label=label, memory_note=note)
        if result.status != "complete":
            run.say(f"compare stopped in {label}; its run directory is {directory}")
            return result.exit_code
        results.append((label, path, result.summary))
    curves = [plot.read_curve(out / label / "metrics.csv", label) for label, _, _ in results]
    envs = {(c.env.name, c.env.params) for c in configs}
    threshold = plot.solve_threshold(*next(iter(envs))) if len(envs) == 1 else None
    plot.plot_curves(curves, out / "compare.png", threshold=threshold,
                     title=", ".join(sorted({c.env.name for c in configs})))
    rows = []
    for label, path, s in results:
        rows.append({
            "variant": label, "config": str(path), "algorithm": s["algorithm"],
            "seeds": s["seeds"], "env_steps_per_seed": s["env_steps_per_seed"],
            "final_train_return_mean": s.get("final_train_return_mean"),
            "final_train_return_std": s.get("final_train_return_std"),
            "eval_return_mean": s.get("eval_return_mean"),
            "eval_return_std": s.get("eval_return_std"),
            "eval_sampled_return_mean": s.get("eval_sampled_return_mean"),
            "eval_sampled_return_std": s.get("eval_sampled_return_std"),
            "wall_s": s["wall_s"], "compile_s": s["compile_s"], "steps_per_s": s["steps_per_s"]})
    with open(out / "compare.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "compare.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    run.say(_table(rows))
    run.say(f"figure: {out / 'compare.png'}")
    return 0


def _table(rows: list[dict]) -> str:
    def pm(mean, std):
        return "-" if mean is None else f"{mean:.1f} ± {std:.1f}"

    header = ["variant", "algorithm", "seeds", "env steps", "final train return",
              "greedy eval return", "sampled eval return", "wall s", "steps/s"]
    body = [[r["variant"], r["algorithm"], str(r["seeds"]), f"{r['env_steps_per_seed']:,}",
             pm(r["final_train_return_mean"], r["final_train_return_std"]),
             pm(r["eval_return_mean"], r["eval_return_std"]),
             pm(r.get("eval_sampled_return_mean"), r.get("eval_sampled_return_std")),
             f"{r['wall_s']:.1f}", f"{r['steps_per_s'] or 0:,.0f}"] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip()
                     for line in [header, *body])


def _envs(args: argparse.Namespace) -> int:
    from pgjax.envs import env_names, make_env

    names = env_names()
    width = max(len(name) for _, name, _ in names)
    for family, name, reason in names:
        if reason:
            print(f"{name:<{width}}  not supported: {reason}")
            continue
        try:
            spec = make_env(name).spec
        except Exception as error:  # noqa: BLE001  (list what cannot be built, with why)
            print(f"{name:<{width}}  not supported: {error}")
            continue
        space = spec.action_space
        action = (f"Discrete({space.n})" if spec.discrete
                  else f"Box(shape={space.shape}, low={space.low}, high={space.high})")
        obs = (f"Discrete({spec.obs_num_values})" if spec.discrete_obs  # one-hot encoded
               else spec.obs_shape)
        print(f"{name:<{width}}  obs {obs}  action {action}  "
              f"max_steps {spec.max_steps_in_episode}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    if importlib.util.find_spec("pgjax.bench") is None:
        print("pgjax bench is not available", file=sys.stderr)
        return 2
    from pgjax import bench  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="pgjax bench", description=(bench.__doc__ or "").split(
        "\n\n")[0] or None)
    bench.add_arguments(parser)
    return bench.run(parser.parse_args(args.bench_args))


# ------------------------------------------------------------------ parser
CACHE_HELP = ("persistent compilation cache (default $PGJAX_CACHE_DIR, else "
              "$XDG_CACHE_HOME/pgjax/jax or ~/.cache/pgjax/jax)")


def build_parser() -> argparse.ArgumentParser:
    cache = argparse.ArgumentParser(add_help=False)
    cache.add_argument("--cache-dir", metavar="DIR", default=argparse.SUPPRESS,
                       help=CACHE_HELP)
    cache.add_argument("--no-cache", action="store_true", default=argparse.SUPPRESS,
                       help="do not use the compilation cache (also PGJAX_NO_CACHE=1)")
    parser = argparse.ArgumentParser(
        prog="pgjax", description="High-throughput policy-gradient RL in JAX.", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"pgjax {pgjax.__version__}")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help=CACHE_HELP)
    parser.add_argument("--no-cache", action="store_true",
                        help="do not use the compilation cache (also PGJAX_NO_CACHE=1)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser(
        "train", parents=[cache], help="train a config, with progress, run directory and checkpoints",
        description="Train CONFIG in compiled chunks; write a run directory (config.yaml, "
                    "metrics.csv, curve.png, summary.json, checkpoints/). Ctrl-C stops after "
                    "the current chunk with a checkpoint; --resume continues exactly.")
    train.add_argument("config", nargs="?", metavar="CONFIG",
                       help="YAML config (default configs/cartpole_a2c.yaml)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, e.g. --set algorithm.gamma=0.95 (repeatable)")
    train.add_argument("--seeds", type=_positive_int, metavar="N",
                       help="seeds trained together in one vmapped program "
                            "(sets training.num_seeds)")
    train.add_argument("--devices", type=_devices, metavar="D",
                       help="devices that split each seed's environments: a count or 'all' "
                            "(sets training.devices; README 'Scaling out')")
    train.add_argument("--process-id", type=int, metavar="I", default=None,
                       help="this process's index in a multi-host run (training.num_processes; "
                            "default $PGJAX_PROCESS_ID or the cluster's)")
    train.add_argument("--out", metavar="DIR",
                       help="run directory (default runs/<config name>-<YYYYmmdd-HHMMSS>)")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue the run in RUN_DIR from its latest checkpoint")
    train.add_argument("--force", action="store_true",
                       help="replace the run files in an existing --out directory")

    ev = commands.add_parser(
        "eval", parents=[cache], help="evaluate a run's checkpoint (mean ± std over seeds)",
        description="Evaluate every seed of a run on fresh episodes and print the greedy "
                    "return (the policy's mode) and the sampled return (actions sampled), "
                    "mean ± std over seeds; with the defaults, the run's final evaluation.")
    ev.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by pgjax train")
    ev.add_argument("--devices", type=_devices, metavar="D",
                    help="devices to evaluate on: a count or 'all' (default: the run's "
                         "training.devices)")
    ev.add_argument("--episodes", type=_positive_int, metavar="N",
                    help="episodes per seed (default training.eval_episodes)")
    mode = ev.add_mutually_exclusive_group()
    mode.add_argument("--sample", action="store_true",
                      help="print only the sampled return (actions sampled from the policy); "
                           "default: both the greedy and the sampled return")
    mode.add_argument("--greedy", action="store_true",
                      help="print only the greedy return (the policy's mode at every step)")
    ev.add_argument("--checkpoint", choices=("latest", "best"), default="latest",
                    help="which checkpoint (default latest)")

    render = commands.add_parser(
        "render", parents=[cache], help="animate one episode of a trained policy (GIF)",
        description="Run one episode of a seed's trained policy and draw it with gymnax's "
                    "visualiser (classic control needs pygame; MinAtar, Catch and the misc "
                    "mazes need only matplotlib).")
    render.add_argument("run_dir", metavar="RUN_DIR", help="a run directory written by pgjax train")
    render.add_argument("--out", required=True, metavar="PATH",
                        help="where to write the animation, e.g. episode.gif")
    render.add_argument("--seed-index", type=int, default=0, metavar="I",
                        help="which of the run's seeds (default 0)")
    render.add_argument("--checkpoint", choices=("latest", "best"), default="latest",
                        help="which checkpoint (default latest)")
    render.add_argument("--sample", action="store_true",
                        help="sample actions instead of taking the policy's mode")

    compare = commands.add_parser(
        "compare", parents=[cache], help="train several configs and draw their curves on one figure",
        description="Train every CONFIG (each one vmapped program over its seeds), then draw "
                    "their mean ± std curves on one figure and print a table. Writes DIR/<name>/ "
                    "(a run directory per config), DIR/compare.png, compare.csv, compare.json.")
    compare.add_argument("configs", nargs="+", metavar="CONFIG", help="YAML configs to compare")
    compare.add_argument("--seeds", type=_positive_int, metavar="N",
                         help="seeds per config (sets training.num_seeds)")
    compare.add_argument("--devices", type=_devices, metavar="D",
                         help="devices that split each seed's environments (training.devices)")
    compare.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a field in every config (repeatable)")
    compare.add_argument("--out", metavar="DIR",
                         help="output directory (default runs/compare-<YYYYmmdd-HHMMSS>)")
    compare.add_argument("--force", action="store_true",
                         help="replace an existing, non-empty --out directory's runs")

    commands.add_parser("envs", help="list the gymnax environments with their observation and "
                                     "action spaces")
    # Its options belong to pgjax.bench, imported only when it runs: main() passes them on.
    commands.add_parser("bench", add_help=False, help="throughput benchmarks (pgjax bench --help)")
    return parser


COMMANDS = {"train": _train, "eval": _eval, "render": _render, "compare": _compare,
            "envs": _envs, "bench": _bench}
COMPILING = ("train", "eval", "render", "compare", "bench")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    if args.command == "bench":
        args.bench_args = rest
    elif rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.command is None:
        parser.print_help()
        return 0
    try:
        if args.command in COMPILING:
            setup_cache(args)
        return COMMANDS[args.command](args)
    except (ConfigError, RunError) as error:
        print(f"pgjax {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pgjax {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
