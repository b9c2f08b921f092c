"""What ``pgjax train``, ``pgjax eval`` and ``pgjax envs`` do, given their parsed arguments.

:mod:`pgjax.cli` parses the command line and calls these; each returns the exit code. Input a
person must fix raises ConfigError or RunError (one line, exit code 2) before anything
compiles. ``pgjax render`` is :mod:`pgjax.host.render`'s, ``pgjax compare``
:mod:`pgjax.host.compare`'s.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pgjax.config import apply_overrides, save_config
from pgjax.host import distributed, rundir
from pgjax.host.checks import (build_trainer, check_eval_memory, check_memory, check_resume,
                               check_run_config)
from pgjax.host.config_io import (config_diff, read_config, read_scaled_config,
                                  resolve_config_path, run_config, scaling_lines, with_devices,
                                  with_logging)
from pgjax.host.distributed import say
from pgjax.host.loop import train_run
from pgjax.host.display import steps_text
from pgjax.host.programs import (abstract_state, compile_programs, env_steps_done,
                                   per_seed_returns)
from pgjax.host.errors import RunError, StorageError
from pgjax.host.tracking import check_backends


def train(args: argparse.Namespace) -> int:
    """``pgjax train``: a new run directory, or ``--resume`` of one."""
    if args.resume:
        return _resume(args)
    if getattr(args, "restart", False):
        raise RunError("--restart starts a run again in place: use it with --resume RUN_DIR")
    path = resolve_config_path(args.config)
    config, scaling = read_scaled_config(path, args.set, args.seeds, args.devices)
    config = with_logging(config, getattr(args, "log", None))
    check_backends(config.logging.backends)
    directory = rundir.choose_run_dir(path, args.out, args.force)
    join(config, args)
    trainer = build_trainer(config)
    note = check_memory(config, trainer.env, config.training.num_seeds,
                        trainer.sharding.num_devices)
    lock = None
    if distributed.is_primary():  # only now: everything above is validated
        lock = rundir.create_run_dir(directory, args.force, warn=say)
    try:
        if lock is not None:
            _save_config(config, directory)
        distributed.barrier("pgjax run directory")
        say("\n".join([f"run directory: {directory}", *scaling_lines(scaling)]))
        result = train_run(directory, trainer, label=directory.name, memory_note=note)
    finally:
        if lock is not None:
            lock.release()
    return result.exit_code


def _save_config(config, directory: Path) -> None:
    try:
        save_config(config, directory / "config.yaml")
    except OSError as error:
        raise StorageError.from_os(error, directory / "config.yaml") from None


def _resume(args: argparse.Namespace) -> int:
    """``pgjax train --resume RUN_DIR [--restart]``."""
    if args.out or args.force:
        raise RunError("--resume continues RUN_DIR in place; drop --out and --force")
    directory = Path(args.resume)
    config = with_devices(run_config(directory, "--resume"), args.devices)
    if args.config or args.set or args.seeds is not None:
        base = resolve_config_path(args.config) if args.config else directory / "config.yaml"
        diff = config_diff(config, read_config(base, args.set, args.seeds))
        if diff:
            raise RunError(f"--resume {directory}: the requested config differs from the "
                           f"run's in {', '.join(diff)}; resume without changes, or start "
                           "a new run")
    # --log adds trackers for this session (logging.backends may change on resume)
    config = with_logging(config, getattr(args, "log", None))
    check_backends(config.logging.backends)
    join(config, args)
    lock = rundir.RunLock(directory, say).acquire() if distributed.is_primary() else None
    try:
        return _resume_locked(args, directory, config)
    finally:
        if lock is not None:
            lock.release()


def _resume_locked(args: argparse.Namespace, directory: Path, config) -> int:
    restart = getattr(args, "restart", False)
    summary = _read_summary(directory)
    if summary.get("status") == "complete" and not restart:
        say(f"{directory}: already complete ({summary.get('chunks_done')}/"
            f"{summary.get('num_chunks')} chunks, summary.json); nothing to do")
        return 0
    checkpoints = rundir.Checkpoints(directory / "checkpoints", warn=say)
    good = None if restart else checkpoints.latest_good()
    if good is None and not restart and not rundir.never_started(directory):
        found = checkpoints.steps()
        why = ("none of its checkpoints can be read" if found else
               "it has no checkpoint (checkpoints/ is missing or empty) but has results")
        raise RunError(f"--resume {directory}: {why}; to train it again from the start "
                       f"(replacing them), add --restart")
    trainer = build_trainer(config)
    if good is not None:
        check_resume(directory, config, trainer.derived, *good)
    note = check_memory(config, trainer.env, config.training.num_seeds,
                        trainer.sharding.num_devices)
    if distributed.is_primary():
        removed = checkpoints.clean()
        if removed:
            say(f"removed what an interrupted save left in {checkpoints.directory}: "
                + ", ".join(removed))
        if good is None:  # a fresh start in place: the run's results so far go
            for name in ("metrics.csv", "summary.json", "curve.png"):
                (directory / name).unlink(missing_ok=True)
            checkpoints.drop_after(0)
    distributed.barrier("pgjax run directory")
    say(f"resuming run directory: {directory}" if good else
        f"starting run directory {directory} from the beginning")
    result = train_run(directory, trainer, label=directory.name, resumed=good is not None,
                       memory_note=note)
    return result.exit_code


def _read_summary(directory: Path) -> dict:
    try:
        data = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (ValueError, UnicodeDecodeError):
        return {}  # a damaged summary is rewritten when the run ends
    except OSError as error:
        raise StorageError.from_os(error, directory / "summary.json", "read") from None
    return data if isinstance(data, dict) else {}


def join(config, args: argparse.Namespace) -> None:
    """Joins the multi-host job of ``config`` (training.num_processes != 1) before JAX starts."""
    distributed.initialize(config, getattr(args, "process_id", None))


def restore(directory: Path, trainer, which: str, config=None):
    """The vmapped TrainState of a run's ``latest`` or ``best`` good checkpoint, and its chunk.

    A reader: it takes no lock and changes nothing, so it may run while the run trains (a
    checkpoint the writer deletes meanwhile is skipped for the next one). A damaged
    checkpoint is reported in one line and an older one used. ``config`` (the run's
    config.yaml as read, before any override) is checked against the checkpoint's.
    """
    checkpoints = rundir.Checkpoints(directory / "checkpoints", warn=say)
    if not checkpoints.steps():
        raise RunError(f"{directory}: no checkpoint yet; train it first (or resume it)")
    if config is not None:
        good = checkpoints.latest_good()
        if good is not None:
            check_run_config(directory, config, *good)
    seeds = trainer.config.training.num_seeds
    found = checkpoints.restore_good(abstract_state(trainer, seeds), which)
    if found is None:
        raise RunError(f"{directory}: none of its checkpoints can be read")
    state, _, step = found
    return state, step


def evaluate(args: argparse.Namespace) -> int:
    """``pgjax eval``: the greedy and sampled returns of a run's checkpoint, over its seeds."""
    directory = Path(args.run_dir)
    saved = run_config(directory)
    config = with_devices(saved, args.devices)
    episodes = args.episodes or config.training.eval_episodes or 64
    config = apply_overrides(config, [f"training.eval_episodes={episodes}"])
    join(config, args)
    trainer = build_trainer(config)
    check_eval_memory(config, trainer, "--episodes" if args.episodes else
                      "training.eval_episodes")
    state, step = restore(directory, trainer, args.checkpoint, saved)
    # The program of the run's final evaluation (both policies), whichever this prints.
    programs = compile_programs(trainer, config.training.num_seeds, train=False)
    greedy, sampled = per_seed_returns(programs.evaluate(state, programs.keys))
    d = trainer.derived
    say(f"{directory}: {args.checkpoint} checkpoint, chunk {step}/{d.num_chunks} "
        f"({steps_text(env_steps_done(d, state, step))} per seed)")
    shown = {"greedy": greedy, "sampled": sampled}
    names = ["sampled"] if args.sample else ["greedy"] if args.greedy else list(shown)
    for name in names:
        per_seed = shown[name]
        say(f"{name} return {per_seed.mean():.1f} ± {per_seed.std():.1f} over "
            f"{len(per_seed)} seed(s), {episodes} episodes each")
        if len(per_seed) > 1:
            say(f"{name} per seed: " + " ".join(f"{r:.1f}" for r in per_seed))
    return 0


def envs(args: argparse.Namespace) -> int:
    """``pgjax envs``: every registered env with its spaces, or why it is not supported; then
    the env families, installed or not (with the extra that installs each missing one)."""
    from pgjax.envs import env_names, make_env  # noqa: PLC0415

    names = env_names()
    width = max(len(name) for _, name, _ in names)
    for family, name, reason in names:
        if reason:
            print(f"{name:<{width}}  not supported: {reason}")
            continue
        try:
            spec = make_env(f"{family}:{name}").spec
        except Exception as error:  # noqa: BLE001  (list what cannot be built, with why)
            print(f"{name:<{width}}  not supported: {' '.join(str(error).split())}")
            continue
        space = spec.action_space
        action = (f"Discrete({space.n})" if spec.discrete
                  else f"Box(shape={space.shape}, low={space.low}, high={space.high})")
        obs = spec.obs_shape
        if spec.discrete_obs:  # indices, one-hot encoded: one, or an image of them
            obs = (f"{spec.obs_shape} of " if spec.obs_shape else "") + \
                f"Discrete({spec.obs_num_values})"
        print(f"{name:<{width}}  obs {obs}  action {action}  "
              f"max_steps {spec.max_steps_in_episode}")
    for line in family_lines(names):
        print(line)
    return 0


def family_lines(names: list[tuple[str, str, str | None]]) -> list[str]:
    """The end of ``pgjax envs``: the installed env families (with how many envs each lists,
    from ``names``, :func:`pgjax.envs.env_names`'s rows), then those whose extra is missing."""
    from pgjax.envs import families  # noqa: PLC0415

    counts: dict[str, int] = {}
    for family, _, _ in names:
        counts[family] = counts.get(family, 0) + 1
    installed, absent = [], []
    for family in families().values():
        if family.missing() is not None:
            absent.append(f"{family.name} (pip install 'pgjax[{family.extra or family.name}]')")
        else:  # a family that lists no names builds names of its own form (import paths)
            installed.append(f"{family.name} ({counts[family.name]} envs)"
                             if family.name in counts else family.name)
    lines = [f"env families: {', '.join(installed)}"]
    if absent:
        lines.append(f"not installed: {', '.join(absent)}")
    return lines
