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
    request = rundir.read_request(out, REQUEST, "compare", ["configs"])
    if not isinstance(request["configs"], list):
        raise RunError(f"--resume {out}: {REQUEST} is damaged; start the compare again")
    return {"configs": request["configs"], "set": list(request.get("set") or []),
            "seeds": request.get("seeds"), "devices": request.get("devices"),
            "log": list(request.get("log") or [])}


def _variant(out: Path, label: str, path: Path, config, trainer, note, changes, resume, *,
             runs=None, hint: str | None = None):
    """Trains one variant in ``out/label`` (resumed, kept or started afresh on --resume);
    ``runs`` and ``hint`` as :func:`pgjax.host.loop.train_run` takes them (``pgjax sweep``'s
    programs are variants too)."""
    from pgjax.config import load_config  # noqa: PLC0415
    from pgjax.host.config_io import config_diff  # noqa: PLC0415
    from pgjax.host.loop import Result  # noqa: PLC0415

    directory = out / label
    hint = hint or f"pgjax compare --resume {out}"
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
                             resume_hint=hint, runs=runs)
    lock = rundir.create_run_dir(directory, force=True, warn=say)
    try:
        try:
            save_config(config, directory / "config.yaml")
        except OSError as error:
            raise StorageError.from_os(error, directory / "config.yaml") from None
        for line in scaling_lines(changes):
            say(line)
        return train_run(directory, trainer, label=label, memory_note=note, resume_hint=hint,
                         runs=runs)
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
            **iqm_columns("eval_return", s.get("eval_returns")),
            **iqm_columns("eval_sampled_return", s.get("eval_sampled_returns")),
            "wall_s": s["wall_s"], "compile_s": s["compile_s"], "steps_per_s": s["steps_per_s"]})
    with open(out / "compare.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "compare.json").write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")
    say(table(rows))
    say(f"figure: {out / 'compare.png'}")
    return 0


def iqm_columns(name: str, scores) -> dict[str, float | None]:
    """``<name>_iqm``, ``_iqm_low`` and ``_iqm_high``: the interquartile mean over runs of
    ``scores`` (one per seed; None when missing) and its 95% bootstrap interval
    (:mod:`pgjax.stats`)."""
    from pgjax import stats  # noqa: PLC0415

    summary = stats.summarize(scores if scores else [])
    return {f"{name}_iqm": summary["iqm"], f"{name}_iqm_low": summary["iqm_low"],
            f"{name}_iqm_high": summary["iqm_high"]}


def pm(mean, std) -> str:
    """``mean ± std`` for a table ("-" when missing)."""
    return "-" if mean is None else f"{mean:.1f} ± {std:.1f}"


def iqm_text(row: dict, name: str) -> str:
    """``IQM [low, high]`` of ``row``'s ``<name>_iqm*`` columns ("-" when missing)."""
    value = row.get(f"{name}_iqm")
    if value is None:
        return "-"
    return f"{value:.1f} [{row[f'{name}_iqm_low']:.1f}, {row[f'{name}_iqm_high']:.1f}]"


def format_table(header: list[str], body: list[list[str]]) -> str:
    """Aligned columns, one line per row."""
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip()
                     for line in [header, *body])


def _out_dir(args: argparse.Namespace, command: str = "compare",
             request: str = REQUEST) -> Path:
    """``--out``, checked, or a new ``runs/<command>-<YYYYmmdd-HHMMSS>``."""
    if args.out is None:
        out = Path("runs") / f"{command}-{time.strftime('%Y%m%d-%H%M%S')}"
        i = 1
        while out.exists():
            i += 1
            out = out.with_name(f"{command}-{time.strftime('%Y%m%d-%H%M%S')}-{i}")
        return out
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise RunError(f"--out {out}: is a file, not a directory; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        hint = (f", or --resume {out} to continue it" if (out / request).is_file() else "")
        raise RunError(f"--out {out}: the directory exists and is not empty; pass --force to "
                       f"replace its runs{hint}")
    rundir.check_writable(out, "--out")
    return out


def table(rows: list[dict]) -> str:
    """The comparison as an aligned text table, one line per variant: mean ± std over seeds
    and the interquartile mean with its 95% bootstrap interval."""
    header = ["variant", "algorithm", "seeds", "env steps", "final train return",
              "greedy eval return", "greedy IQM [95% CI]", "sampled eval return",
              "sampled IQM [95% CI]", "wall s", "steps/s"]
    body = [[r["variant"], r["algorithm"], str(r["seeds"]), f"{r['env_steps_per_seed']:,}",
             pm(r["final_train_return_mean"], r["final_train_return_std"]),
             pm(r["eval_return_mean"], r["eval_return_std"]), iqm_text(r, "eval_return"),
             pm(r.get("eval_sampled_return_mean"), r.get("eval_sampled_return_std")),
             iqm_text(r, "eval_sampled_return"),
             f"{r['wall_s']:.1f}", f"{r['steps_per_s'] or 0:,.0f}"] for r in rows]
    return format_table(header, body)
