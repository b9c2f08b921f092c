"""``pgjax sweep``: a hyperparameter sweep as few compiled programs as its shapes allow.

Float hyperparameters (:class:`pgjax.HParams`: ``algorithm.gamma``, ``gae_lambda``,
``entropy_coef``, ``value_coef``, ``clip_eps``, ``optimizer.actor_lr``, ``critic_lr``,
``max_grad_norm``) are traced arrays in the state, so every point of a sweep that differs only
in them trains in ONE vmapped program: its batch axis is points x seeds, run ``r = j * S + s``
being seed ``s`` of the program's point ``j``, with that point's hyperparameters and the key
``pgjax train --seeds S`` gives seed ``s`` (:class:`pgjax.host.programs.RunBatch`). Any other
key (``training.num_envs``, ``network.hidden_sizes``, ``algorithm.n_steps``, ...) sets shapes
or code: one program per distinct combination of them, trained one after another.

Each program is a run directory ``DIR/program-<i>/`` written by
:func:`pgjax.host.loop.train_run` (progress, checkpoints, metrics.csv with one "seed" per run,
Ctrl-C, ``--resume``), through :mod:`pgjax.host.compare`'s variant runner. Then
``DIR/sweep.csv``, ``sweep.json`` (per point: mean ± std and the interquartile mean with its
95% bootstrap interval over seeds, :mod:`pgjax.stats`, of the final greedy and sampled
returns and of the area under the learning curve), ``sweep.png`` and ``best.yaml`` (the best
point's config, which ``pgjax train`` runs), and a ranked table.

The area under the learning curve (``auc``) is the mean over chunks of a seed's training
episode return: the area under the curve of metrics.csv divided by its length, in units of
return. Points are ranked by mean greedy return, then by ``auc`` (by ``auc`` alone when
``training.eval_episodes`` is 0).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from pgjax.config import ConfigError, config_from_dict, config_to_dict, save_config
from pgjax.host import compare, distributed, rundir
from pgjax.host.checks import build_trainer, check_memory
from pgjax.host.config_io import read_config, resolve_config_path, with_logging
from pgjax.host.distributed import say
from pgjax.host.errors import RunError, StorageError
from pgjax.host.tracking import check_backends

REQUEST = "sweep-request.json"  # what was asked, with the points drawn, for --resume

# The config keys of the traced float hyperparameters (pgjax.HParams), in its field order.
FLOAT_KEYS = ("algorithm.gamma", "algorithm.gae_lambda", "optimizer.actor_lr",
              "optimizer.critic_lr", "algorithm.entropy_coef", "algorithm.value_coef",
              "algorithm.clip_eps", "optimizer.max_grad_norm")


class Program(NamedTuple):
    """Points that share one compiled program: they differ only in float hyperparameters."""

    label: str  # its run directory's name, program-<i>
    config: Any  # the points' config, num_seeds = points x seeds, HParams fields the base's
    points: list[int]  # indices into the sweep's points, in run order
    shape_overrides: list[str]  # KEY=VALUE that set it apart from the base config ([]: none)


# ------------------------------------------------------------------ the points
def _split_values(text: str) -> list[str]:
    """``V1,V2,...`` split at the commas outside brackets (``[64,64],[128]`` is two values)."""
    values, depth, current = [], 0, ""
    for ch in text:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            values.append(current.strip())
            current = ""
        else:
            current += ch
    values.append(current.strip())
    return values


def parse_grid(items: list[str]) -> list[tuple[str, list[str]]]:
    """``--grid KEY=V1,V2`` options as ``(key, [raw values])``; the values are checked when
    the points' configs are built."""
    axes: list[tuple[str, list[str]]] = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        values = _split_values(raw) if sep else []
        if not key or not sep or not all(values):
            raise ConfigError(f"--grid {item!r}: expected KEY=V1,V2,..., e.g. "
                              "--grid optimizer.actor_lr=1e-4,3e-4")
        if key in [k for k, _ in axes]:
            raise ConfigError(f"--grid {key}: given twice; list all its values in one --grid")
        if len(set(values)) != len(values):
            raise ConfigError(f"--grid {item!r}: a value is listed twice")
        axes.append((key, values))
    return axes


def parse_ranges(items: list[str]) -> list[tuple[str, float, float, bool]]:
    """``--range KEY=LO:HI[:log]`` options as ``(key, low, high, log)``; only float
    hyperparameters (:data:`FLOAT_KEYS`) can be drawn."""
    ranges = []
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        parts = raw.split(":")
        if not sep or len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "log"):
            raise ConfigError(f"--range {item!r}: expected KEY=LO:HI or KEY=LO:HI:log, e.g. "
                              "--range optimizer.actor_lr=1e-5:1e-3:log")
        if key not in FLOAT_KEYS:
            raise ConfigError(f"--range {key}: not a float hyperparameter; --range takes "
                              f"{', '.join(FLOAT_KEYS)} (use --grid for other keys)")
        try:
            low, high = float(parts[0]), float(parts[1])
        except ValueError:
            raise ConfigError(f"--range {item!r}: LO and HI must be numbers") from None
        log = len(parts) == 3
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ConfigError(f"--range {item!r}: needs finite LO < HI")
        if log and low <= 0:
            raise ConfigError(f"--range {item!r}: a log range needs LO > 0")
        if key in [r[0] for r in ranges]:
            raise ConfigError(f"--range {key}: given twice")
        ranges.append((key, low, high, log))
    return ranges


def draw_points(ranges, n: int, seed: int) -> list[dict[str, str]]:
    """``n`` points drawn uniformly (log-uniformly for ``log``) from ``ranges``, as YAML
    values; deterministic for ``seed`` (the config's training.seed)."""
    rng = np.random.default_rng(seed)
    points = [{} for _ in range(n)]
    for key, low, high, log in ranges:
        draws = (np.exp(rng.uniform(math.log(low), math.log(high), n)) if log
                 else rng.uniform(low, high, n))
        for point, value in zip(points, draws):
            point[key] = f"{float(value):.6g}"
    return points


def make_points(args: argparse.Namespace, seed: int) -> list[dict[str, str]]:
    """Every point of the sweep, as ``{key: raw value}``: the grid's combinations, each
    with every drawn point when ``--random``."""
    axes, ranges = parse_grid(args.grid), parse_ranges(args.range)
    if args.random is not None and args.random < 1:
        raise ConfigError(f"--random {args.random}: must be a positive number of points")
    if (args.random is None) != (not ranges):
        raise ConfigError("--random N and --range KEY=LO:HI go together: --random draws its "
                          "points from the --range intervals")
    if not axes and not ranges:
        raise ConfigError("give the points to sweep: --grid KEY=V1,V2,... and/or --random N "
                          "--range KEY=LO:HI")
    both = {k for k, _ in axes} & {r[0] for r in ranges}
    if both:
        raise ConfigError(f"{sorted(both)[0]}: both in --grid and --range; choose one")
    grid = [dict(zip([k for k, _ in axes], values))
            for values in itertools.product(*[v for _, v in axes])]
    drawn = draw_points(ranges, args.random, seed) if ranges else [{}]
    return [{**g, **d} for g in grid for d in drawn]


def group_points(base, configs: list) -> list[Program]:
    """The points' programs: points whose configs agree outside the float hyperparameters
    share one (``max_grad_norm`` only between numbers: ``null`` turns clipping off, code)."""
    base_dict = config_to_dict(base)
    groups: dict[str, tuple[dict, list[int]]] = {}
    for i, config in enumerate(configs):
        data = config_to_dict(config)
        for key in FLOAT_KEYS:
            section, name = key.split(".")
            if data[section][name] is not None and base_dict[section][name] is not None:
                data[section][name] = base_dict[section][name]
        groups.setdefault(json.dumps(data, sort_keys=True), (data, []))[1].append(i)
    programs = []
    for n, (data, points) in enumerate(groups.values(), start=1):
        seeds = data["training"]["num_seeds"]
        data["training"]["num_seeds"] = seeds * len(points)
        shape = [f"{section}.{key}={value!r}" for section in data for key, value in
                 data[section].items() if section != "training" or key != "num_seeds"
                 if value != base_dict[section][key]]
        programs.append(Program(f"program-{n}", config_from_dict(data), points, shape))
    return programs


def run_batch(program: Program, configs: list, seeds: int):
    """The program's runs: point ``j``'s seed ``s`` is run ``j * seeds + s``, with the key
    ``pgjax train --seeds S`` gives seed ``s`` and the point's hyperparameters."""
    import jax.numpy as jnp  # noqa: PLC0415

    from pgjax.hparams import HParams, default_hparams  # noqa: PLC0415
    from pgjax.host.programs import RunBatch, seed_keys  # noqa: PLC0415

    keys = seed_keys(program.config, seeds)[np.tile(np.arange(seeds), len(program.points))]
    per_point = [default_hparams(configs[i]) for i in program.points]
    hparams = HParams(*(jnp.repeat(jnp.stack(field), seeds) for field in zip(*per_point)))
    return RunBatch(keys, hparams)


# ------------------------------------------------------------------ the command
def sweep(args: argparse.Namespace) -> int:
    """``pgjax sweep``: every point trained, then the table, files and figure."""
    if args.resume:
        if (args.config or args.out or args.force or args.grid or args.range or args.set
                or args.random is not None or args.seeds is not None):  # --log may add one
            raise RunError("--resume DIR continues that sweep as it was asked; drop CONFIG "
                           "and the other options")
        out = Path(args.resume)
        request = _read_request(out)
        path, overrides = Path(request["config"]), request["set"]
        seeds, devices, points = request["seeds"], request["devices"], request["points"]
        log = [*(request.get("log") or []), *(getattr(args, "log", None) or [])]
    else:
        path, overrides, devices = resolve_config_path(args.config), args.set, args.devices
        base = read_config(path, overrides, args.seeds, devices)
        seeds = base.training.num_seeds
        points = make_points(args, base.training.seed)
        log = list(getattr(args, "log", None) or [])
    # --log: every program logs (its runs as seeds), like pgjax compare's variants
    base = with_logging(read_config(path, overrides, seeds, devices), log)
    check_backends(base.logging.backends)
    if distributed.wanted(base):
        raise RunError(f"{path}: training.num_processes={base.training.num_processes}: "
                       "pgjax sweep runs on one host")
    configs = []
    for point in points:  # every value checked before anything compiles
        configs.append(with_logging(read_config(
            path, [*overrides, *(f"{k}={v}" for k, v in point.items())], seeds, devices), log))
        if configs[-1].training.num_seeds != seeds:
            raise ConfigError("training.num_seeds: give the seeds with --seeds, not --grid")
    programs = group_points(base, configs)
    trainers = [build_trainer(p.config) for p in programs]
    notes = [check_memory(p.config, t.env, p.config.training.num_seeds, t.sharding.num_devices)
             for p, t in zip(programs, trainers)]
    if not args.resume:
        out = compare._out_dir(args, "sweep", REQUEST)
    lock = (rundir.RunLock(out, say).acquire() if args.resume
            else rundir.create_run_dir(out, force=args.force, warn=say))
    try:
        if not args.resume:
            rundir.write_json(out / REQUEST, {
                "config": str(path), "set": list(overrides), "seeds": seeds,
                "devices": devices, "grid": list(args.grid), "range": list(args.range),
                "random": args.random, "points": points, "log": log})
        say(f"sweep directory: {out}: {len(points)} point(s) x {seeds} seed(s) in "
            f"{len(programs)} program(s)")
        summaries = []
        for program, trainer, note in zip(programs, trainers, notes):
            what = ", ".join(program.shape_overrides) or "the config's shapes"
            say(f"{program.label}: {len(program.points)} point(s) x {seeds} seed(s) = "
                f"{program.config.training.num_seeds} runs in one program ({what})")
            result = compare._variant(out, program.label, path, program.config, trainer, note,
                                      [], args.resume, runs=run_batch(program, configs, seeds),
                                      hint=f"pgjax sweep --resume {out}")
            if result.status != "complete":
                say(f"sweep stopped in {program.label}; continue the sweep with: "
                    f"pgjax sweep --resume {out}")
                return result.exit_code
            summaries.append(result.summary)
        return report(out, path, points, configs, programs, summaries, seeds)
    finally:
        lock.release()


def _read_request(out: Path) -> dict:
    return rundir.read_request(out, REQUEST, "sweep",
                               ("config", "set", "seeds", "devices", "points"))


# ------------------------------------------------------------------ the results
def point_label(point: dict[str, str]) -> str:
    """``actor_lr=0.001 critic_lr=0.003``: the point's values by their keys' last part."""
    return " ".join(f"{k.split('.')[-1]}={v}" for k, v in point.items()) or "base"


def point_results(points, programs, summaries, seeds: int, out: Path) -> list[dict]:
    """Per point: its values, program, per-seed scores and their statistics."""
    from pgjax import plot, stats  # noqa: PLC0415

    results: list[dict] = [{} for _ in points]
    for program, summary in zip(programs, summaries):
        curve = plot.read_curve(out / program.label / "metrics.csv")
        greedy, sampled = summary.get("eval_returns"), summary.get("eval_sampled_returns")
        with warnings.catch_warnings():  # a run that finished no episode in any chunk: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            auc = np.nanmean(curve.returns, axis=1)
        for j, i in enumerate(program.points):
            runs = slice(j * seeds, (j + 1) * seeds)
            scores = {"greedy_return": greedy[runs] if greedy else None,
                      "sampled_return": sampled[runs] if sampled else None,
                      "auc": auc[runs].tolist()}
            row = {"point": i, "label": point_label(points[i]), "values": points[i],
                   "program": program.label, "seeds": seeds}
            for name, values in scores.items():
                row[name] = values
                for stat, value in stats.summarize(values or []).items():
                    row[f"{name}_{stat}"] = value
            results[i] = row
            results[i]["_curve"] = plot.Curve(row["label"], curve.env_steps,
                                              curve.returns[runs])
    return results


def _rank_key(row: dict):
    greedy, auc = row["greedy_return_mean"], row["auc_mean"]
    return (-greedy if greedy is not None else math.inf, -auc if auc is not None else math.inf)


def report(out: Path, path: Path, points, configs, programs, summaries, seeds: int) -> int:
    """sweep.csv, sweep.json, sweep.png, best.yaml and the ranked table."""
    from pgjax import plot  # noqa: PLC0415

    results = point_results(points, programs, summaries, seeds, out)
    ranked = sorted(results, key=_rank_key)
    for rank, row in enumerate(ranked, start=1):
        row["rank"] = rank
    curves = [row.pop("_curve") for row in results]
    best = ranked[0]
    best_config = configs[best["point"]]
    try:
        save_config(best_config, out / "best.yaml")
    except OSError as error:
        raise StorageError.from_os(error, out / "best.yaml") from None
    keys = list(points[0])
    stat_names = ("mean", "std", "iqm", "iqm_low", "iqm_high")
    columns = ["rank", "point", *keys, "program", "seeds",
               *(f"{s}_{t}" for s in ("greedy_return", "sampled_return", "auc")
                 for t in stat_names)]
    try:
        with open(out / "sweep.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in ranked:
                writer.writerow({c: row["values"][c] if c in keys else row[c] for c in columns})
    except OSError as error:
        raise StorageError.from_os(error, out / "sweep.csv") from None
    rundir.write_json(out / "sweep.json", {
        "config": str(path), "seeds": seeds, "keys": keys, "best": best["label"],
        "best_config": "best.yaml",
        "programs": [{"name": p.label, "shape_overrides": p.shape_overrides,
                      "points": p.points, "runs": p.config.training.num_seeds,
                      "compile_s": s.get("compile_s"), "wall_s": s.get("wall_s")}
                     for p, s in zip(programs, summaries)],
        "points": ranked})
    config = configs[0]
    heatmap = _heatmap(points, results) if len(keys) == 2 else None
    plot.plot_sweep(curves, out / "sweep.png", heatmap=heatmap,
                    title=f"{config.env.name}, {config.algorithm.name}: {len(points)} points "
                          f"x {seeds} seeds",
                    threshold=plot.solve_threshold(config.env.name, config.env.params))
    say(table(ranked))
    say(f"best: {best['label']}; its config: {out / 'best.yaml'} (pgjax train "
        f"{out / 'best.yaml'})")
    say(f"figure: {out / 'sweep.png'}")
    return 0


def _heatmap(points, results):
    """``(x_key, x_values, y_key, y_values, scores [Y, X], what)`` of a two-key sweep."""
    x_key, y_key = list(points[0])
    xs = list(dict.fromkeys(p[x_key] for p in points))
    ys = list(dict.fromkeys(p[y_key] for p in points))
    if len(xs) * len(ys) != len(points):  # not a full grid (drawn points)
        return None
    name = "greedy_return" if results[0]["greedy_return_mean"] is not None else "auc"
    scores = np.full((len(ys), len(xs)), np.nan)
    for point, row in zip(points, results):
        value = row[f"{name}_mean"]
        scores[ys.index(point[y_key]), xs.index(point[x_key])] = np.nan if value is None else value
    return x_key, xs, y_key, ys, scores, name.replace("_", " ") + " (mean over seeds)"


def table(ranked: list[dict]) -> str:
    """The points, best first: mean ± std and IQM [95% CI] over seeds."""
    header = ["rank", "point", "greedy return", "greedy IQM [95% CI]", "sampled return",
              "sampled IQM [95% CI]", "AUC", "program"]
    body = [[str(r["rank"]), r["label"],
             compare.pm(r["greedy_return_mean"], r["greedy_return_std"]),
             compare.iqm_text(r, "greedy_return"),
             compare.pm(r["sampled_return_mean"], r["sampled_return_std"]),
             compare.iqm_text(r, "sampled_return"),
             compare.pm(r["auc_mean"], r["auc_std"]), r["program"]] for r in ranked]
    return compare.format_table(header, body)
