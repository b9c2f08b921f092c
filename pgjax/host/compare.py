"""``pgjax compare``: train several configs one after another, then one figure and one table.

Writes ``DIR/<name>/`` (a run directory per config, by :func:`pgjax.host.loop.train_run`),
``DIR/compare.png``, ``compare.csv`` and ``compare.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from pgjax.config import save_config
from pgjax.host import distributed, rundir
from pgjax.host.checks import build_trainer, check_memory
from pgjax.host.config_io import (read_scaled_config, resolve_config_path, scaling_lines,
                                  with_logging)
from pgjax.host.distributed import say
from pgjax.host.loop import train_run
from pgjax.host.errors import RunError, StorageError
from pgjax.host.tracking import check_backends


REQUEST = "compare-request.json"  # what was asked, for --resume


def compare(args: argparse.Namespace) -> int:
    from pgjax import plot  # noqa: PLC0415

    if args.resume:
        if args.configs or args.out or args.force:
            raise RunError("--resume DIR continues that comparison as it was asked; drop "
                           "CONFIG, --out and --force")
        out = Path(args.resume)
        request = _read_request(out)
        args.configs, args.set = request["configs"], request["set"]
        args.seeds, args.devices = request["seeds"], request["devices"]
        args.log = [*request["log"], *getattr(args, "log", [])]
    elif not args.configs:
        raise RunError("give one or more CONFIGs to compare, or --resume DIR")
    paths = [resolve_config_path(c) for c in args.configs]
    scaled = [read_scaled_config(p, args.set, args.seeds, args.devices) for p in paths]
    log = list(getattr(args, "log", None) or [])
    configs = [with_logging(s.config, log) for s in scaled]  # --log: every variant logs
    check_backends(dict.fromkeys(b for c in configs for b in c.logging.backends))
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
    if not args.resume:
        out = _out_dir(args)
    trainers = [build_trainer(c) for c in configs]  # every variant checked before any compile
    notes = [check_memory(c, t.env, c.training.num_seeds, t.sharding.num_devices)
             for c, t in zip(configs, trainers)]
    # The comparison's own lock: a second compare writing to DIR meanwhile is refused.
    lock = rundir.create_run_dir(out, force=args.force, warn=say) if not args.resume else \
        rundir.RunLock(out, say).acquire()
    try:
        if not args.resume:
            rundir.write_json(out / REQUEST, {
                "configs": [str(p) for p in paths], "set": list(args.set),
                "seeds": args.seeds, "devices": args.devices, "log": log})
        say(f"compare directory: {out}")
        results = []
        for label, path, config, trainer, note in zip(labels, paths, configs, trainers, notes):
            result = _variant(out, label, path, config, trainer, note,
                              scaled[labels.index(label)].changes, args.resume)
            if result.status != "complete":
                say(f"compare stopped in {label}; continue the comparison with: "
                    f"pgjax compare --resume {out}")
                return result.exit_code
            results.append((label, path, result.summary))
        return _report(plot, out, configs, results)
    finally:
        lock.release()


def _read_request(out: Path) -> dict:
    try:
        request = json.loads((out / REQUEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"--resume {out}: not a pgjax compare directory (no {REQUEST})") from None
    except ValueError:
        raise RunError(f"--resume {out}: {REQUEST} is damaged; start the comparison again "
                       "with --force") from None
    except OSError as error:
        raise StorageError.from_os(error, out / REQUEST, "read") from None
    if not isinstance(request, dict) or not isinstance(request.get("configs"), list):
        raise RunError(f"--resume {out}: {REQUEST} is damaged; start the comparison again")
    return {"configs": request["configs"], "set": list(request.get("set") or []),
            "seeds": request.get("seeds"), "devices": request.get("devices"),
            "log": list(request.get("log") or [])}


def _variant(out: Path, label: str, path: Path, config, trainer, note, changes, resume):
    """Trains one variant in ``out/label`` (resumed, kept or started afresh on --resume)."""
    from pgjax.config import load_config  # noqa: PLC0415
    from pgjax.host.config_io import config_diff  # noqa: PLC0415
    from pgjax.host.loop import Result  # noqa: PLC0415

    directory = out / label
    hint = f"pgjax compare --resume {out}"
    say(f"--- {label} ({path})")
    if resume and (directory / "config.yaml").is_file() and not rundir.never_started(directory):
        if config_diff(load_config(directory / "config.yaml"), config):
            raise RunError(f"--resume {out}: {label}'s config.yaml differs from {path} now; "
                           "restore it, or start the comparison again")
        with rundir.RunLock(directory, say):
            summary = _summary(directory)
            if summary.get("status") == "complete":
                say(f"{label}: already complete")
                return Result("complete", 0, summary)
            return train_run(directory, trainer, label=label, resumed=True, memory_note=note,
                             resume_hint=hint)
    lock = rundir.create_run_dir(directory, force=True, warn=say)
    try:
        try:
            save_config(config, directory / "config.yaml")
        except OSError as error:
            raise StorageError.from_os(error, directory / "config.yaml") from None
        for line in scaling_lines(changes):
            say(line)
        return train_run(directory, trainer, label=label, memory_note=note, resume_hint=hint)
    finally:
        lock.release()


def _summary(directory: Path) -> dict:
    try:
        data = json.loads((directory / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _report(plot, out: Path, configs, results) -> int:
    """compare.png, compare.csv, compare.json and the table."""
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
    say(table(rows))
    say(f"figure: {out / 'compare.png'}")
    return 0


def _out_dir(args: argparse.Namespace) -> Path:
    """``--out``, checked, or a new ``runs/compare-<YYYYmmdd-HHMMSS>``."""
    if args.out is None:
        out = Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
        i = 1
        while out.exists():
            i += 1
            out = out.with_name(f"compare-{time.strftime('%Y%m%d-%H%M%S')}-{i}")
        return out
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out}: is a file, not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        hint = (f", or --resume {out} to continue its comparison"
                if (out / REQUEST).is_file() else "")
        raise RunError(f"--out {out}: the directory exists and is not empty; pass --force to "
                       f"replace its runs{hint}")
    rundir.check_writable(out, "--out")
    return out


def table(rows: list[dict]) -> str:
    """The comparison as an aligned text table, one line per variant."""
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
