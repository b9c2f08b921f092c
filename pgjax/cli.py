"""The ``pgjax`` command: train, resume, evaluate, render, compare, sweep, envs, benchmark.

Every command checks its input before anything compiles; a problem a person must fix (a bad
config key or value, a missing file, an existing run directory, ...) is reported on one line
and the command exits with code 2, without a traceback and without writing anything. A file
that cannot be read or written (disk full, permissions, a path under a regular file) is one
line naming the path and the OS error, exit code 3. ``pgjax train`` and ``pgjax compare``
stop cleanly on Ctrl-C or SIGTERM (after the current chunk, or at once outside one; exit 130
/ 143) and print what was kept and the command that continues; a diverged run exits 1.
(:mod:`pgjax.host.errors` lists the codes.)

Compiled programs are kept in a persistent cache (``~/.cache/pgjax/jax``, or
``$XDG_CACHE_HOME/pgjax/jax``), so a second run of the same config skips most of its
compile time. ``--cache-dir DIR`` or ``PGJAX_CACHE_DIR`` moves it; ``--no-cache`` or
``PGJAX_NO_CACHE=1`` turns it off (:mod:`pgjax.host.cache`). Only the command does this:
``import pgjax`` never touches JAX's configuration.

This module only parses the command line and dispatches: what each command does is in
:mod:`pgjax.host` (``commands``, ``render``, ``compare``, ``sweep``), and ``pgjax bench`` is
:mod:`pgjax.bench`'s, imported only when it runs.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import threading

import pgjax  # first: its XLA CPU workaround must precede any computation
from pgjax.config import LOG_BACKENDS, ConfigError
from pgjax.host import commands as _commands
from pgjax.host import compare as _compare
from pgjax.host import render as _render
from pgjax.host import sweep as _sweep
from pgjax.host import checkpoints
from pgjax.host.cache import setup_cache
from pgjax.host.errors import (EXIT_INPUT, EXIT_STORAGE, RunError, StorageError,
                               exit_code_of, raise_interrupted)

EXAMPLES = """examples:
  pgjax train                                      # the cartpole_a2c preset, 1 seed
  pgjax train cartpole_ppo --seeds 8 --set training.total_env_steps=200000
  pgjax train my_config.yaml --set algorithm.gamma=0.95
  pgjax train --resume runs/cartpole_a2c-20260101-120000
  pgjax eval runs/cartpole_a2c-20260101-120000 --episodes 100
  pgjax compare cartpole_reinforce cartpole_reinforce_baseline --seeds 10
  pgjax sweep cartpole_a2c --grid optimizer.actor_lr=1e-4,3e-4,1e-3 --seeds 4
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
LOG_HELP = (f"also log metrics, final evaluation and config to BACKEND: {', '.join(LOG_BACKENDS)} "
            "(repeatable; adds to logging.backends; each needs its extra, e.g. "
            "pip install 'pgjax[tensorboard]')")
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
                       help="a YAML file or a preset's name (default cartpole_a2c; the presets: "
                            "pgjax/presets, also linked as configs/)")
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
    train.add_argument("--restart", action="store_true",
                       help="with --resume: train RUN_DIR again from the start (its config.yaml), "
                            "replacing its metrics and checkpoints")
    train.add_argument("--log", action="append", default=[], metavar="BACKEND", help=LOG_HELP)

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
                    "visualiser (classic control with pgjax's own renderer; MinAtar, Catch and the misc "
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
    compare.add_argument("configs", nargs="*", metavar="CONFIG",
                         help="YAML files or preset names to compare")
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
    compare.add_argument("--resume", metavar="DIR",
                         help="continue the interrupted comparison in DIR: finished variants "
                              "are kept, the stopped one resumes, the rest start")
    compare.add_argument("--log", action="append", default=[], metavar="BACKEND",
                         help=LOG_HELP + "; one tracker run per config")

    sweep = commands.add_parser(
        "sweep", parents=[cache], help="sweep hyperparameters: one compiled program over "
                                       "points x seeds",
        description="Train every point of a grid (or of random draws) with S seeds: the float "
                    "hyperparameters in one vmapped program, one program per distinct shape "
                    "key. Writes DIR/program-<i>/ (run directories), DIR/sweep.csv, sweep.json, "
                    "sweep.png and best.yaml, and prints the points ranked.")
    sweep.add_argument("config", nargs="?", metavar="CONFIG",
                       help="a YAML file or a preset's name (default cartpole_a2c)")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2,...",
                       help="values of a config key, e.g. --grid optimizer.actor_lr=1e-4,3e-4 "
                            "(repeatable: the points are every combination)")
    sweep.add_argument("--random", type=_positive_int, metavar="N",
                       help="N points drawn from the --range intervals (with each grid point)")
    sweep.add_argument("--range", action="append", default=[], metavar="KEY=LO:HI[:log]",
                       help="a float hyperparameter's interval for --random (log: "
                            "log-uniform), e.g. optimizer.actor_lr=1e-5:1e-3:log")
    sweep.add_argument("--seeds", type=_positive_int, metavar="S",
                       help="seeds per point (training.num_seeds)")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field for every point (repeatable)")
    sweep.add_argument("--devices", type=_devices, metavar="D",
                       help="devices that split each run's environments (training.devices)")
    sweep.add_argument("--log", action="append", default=[], metavar="BACKEND", help=LOG_HELP)
    sweep.add_argument("--out", metavar="DIR",
                       help="output directory (default runs/sweep-<YYYYmmdd-HHMMSS>)")
    sweep.add_argument("--force", action="store_true",
                       help="replace an existing, non-empty --out directory's runs")
    sweep.add_argument("--resume", metavar="DIR",
                       help="continue the interrupted sweep in DIR")

    commands.add_parser("envs", help="list the environments of every installed env family with "
                                     "their observation and action spaces, then the families")
    # Its options belong to pgjax.bench, imported only when it runs: main() passes them on.
    commands.add_parser("bench", add_help=False, help="throughput benchmarks (pgjax bench --help)")
    return parser


# What each command runs (pgjax.host's; pgjax.bench's is imported only when it runs).
COMMANDS = {"train": _commands.train, "eval": _commands.evaluate, "render": _render.render,
            "compare": _compare.compare, "sweep": _sweep.sweep, "envs": _commands.envs,
            "bench": _bench}
COMPILING = ("train", "eval", "render", "compare", "sweep", "bench")


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
    checkpoints.MUTE_AFTER_FAILED_SAVE = __name__ == "__main__" or sys.argv[0].endswith("pgjax")
    main_thread = threading.current_thread() is threading.main_thread()
    # SIGTERM stops as Ctrl-C does (the train loop defers both to the end of a chunk).
    old_handler = signal.signal(signal.SIGTERM, raise_interrupted) if main_thread else None
    try:
        return _dispatch(args)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old_handler)


def _dispatch(args: argparse.Namespace) -> int:
    """Runs the command; what ends it early becomes one line and its exit code."""
    try:
        if args.command in COMPILING:
            setup_cache(args)
        return COMMANDS[args.command](args)
    except (ConfigError, RunError) as error:
        print(f"pgjax {args.command}: error: {error}", file=sys.stderr)
        return EXIT_INPUT
    except (StorageError, OSError) as error:
        if not isinstance(error, StorageError):
            error = StorageError.from_os(error)
        print(f"pgjax {args.command}: error: {error}", file=checkpoints.stderr(), flush=True)
        return EXIT_STORAGE
    except KeyboardInterrupt as stop:  # errors.Interrupted (SIGTERM) too
        signum = getattr(stop, "signum", signal.SIGINT)
        print(f"pgjax {args.command}: {signal.Signals(signum).name}: stopped", file=sys.stderr)
        return exit_code_of(signum)


if __name__ == "__main__":
    sys.exit(main())
