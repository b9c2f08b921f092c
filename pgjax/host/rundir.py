"""A run directory on disk: its files, the metrics table and the orbax checkpoints.

Layout (see :mod:`pgjax.host.loop` for the loop that fills it)::

    config.yaml    the fully resolved config (what --resume, eval and render read)
    metrics.csv    one row per chunk per seed, appended, flushed and fsynced after each chunk
    curve.png      episode return (mean ± std over seeds) against env steps
    summary.json   final evaluation, timings, status (written atomically)
    checkpoints/   orbax: chunk_<k>/ for the latest chunk and for the best (by mean return)

Checkpoints hold the vmapped ``TrainState`` with PRNG keys stored as raw key data
(``jax.random.key_data``), and a small JSON ``progress`` item (chunk, elapsed time, config).
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

RUN_FILES = ("config.yaml", "metrics.csv", "curve.png", "summary.json", "checkpoints")
FIXED_COLUMNS = ("chunk", "seed", "update", "env_steps", "wall_s")
_EPISODE = ("episode_return", "episode_length", "episode_count")  # weighted by episode count


class RunError(Exception):
    """Command input or a run directory that a person must fix: one line, exit code 2."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


def choose_run_dir(config_path: Path, out: str | None, force: bool) -> Path:
    """The directory a new run will use; checked, not created."""
    if out is None:
        base = Path("runs") / f"{config_path.stem}-{time.strftime('%Y%m%d-%H%M%S')}"
        path, i = base, 1
        while path.exists():
            i += 1
            path = base.with_name(f"{base.name}-{i}")
        return path
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunError(f"--out {out}: exists and is not a directory")
    if path.exists() and any(path.iterdir()) and not force:
        raise RunError(f"--out {out}: the directory exists and is not empty; pass --force to "
                       f"replace its run files, or --resume {out} to continue its run")
    return path


def create_run_dir(path: Path, force: bool) -> None:
    if force and path.is_dir():
        for name in RUN_FILES:
            target = path / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    path.mkdir(parents=True, exist_ok=True)


def write_json(path: Path, data: Any) -> None:
    """Writes JSON atomically: a temporary file, then ``os.replace``."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)


class MetricsFile:
    """``metrics.csv``: one row per chunk per seed, flushed and fsynced after every chunk."""

    def __init__(self, path: Path):
        self.path = path

    def truncate(self, last_chunk: int) -> None:
        """Drops rows of chunks after ``last_chunk`` (reported, but not checkpointed)."""
        if not self.path.exists():
            return
        with open(self.path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        keep = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= last_chunk]
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(keep)
        os.replace(tmp, self.path)

    def append(self, rows: list[dict[str, Any]]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            if new:
                writer.writeheader()
            writer.writerows({k: repr(v) if isinstance(v, float) else v for k, v in r.items()}
                             for r in rows)
            f.flush()
            os.fsync(f.fileno())


def chunk_rows(metrics: dict[str, np.ndarray], *, chunk: int, update: int, env_steps: int,
               wall_s: float) -> list[dict[str, Any]]:
    """One row per seed: per-chunk means of the update metrics (``[S, U]`` arrays).

    ``episode_return`` and ``episode_length`` are averaged over the episodes that ended in the
    chunk (NaN when none did), and ``episode_count`` is their number.
    """
    count = metrics["episode_count"].astype(np.float64)
    rows = []
    for s in range(count.shape[0]):
        row: dict[str, Any] = dict(chunk=chunk, seed=s, update=update, env_steps=env_steps,
                                   wall_s=round(wall_s, 3))
        n = count[s].sum()
        for name in (*_EPISODE, *sorted(set(metrics) - set(_EPISODE))):
            values = metrics[name][s].astype(np.float64)
            if name == "episode_count":
                row[name] = int(n)
            elif name in _EPISODE:  # NaN in updates where no episode ended: weight 0
                values = np.where(count[s] > 0, values, 0.0)
                row[name] = float((values * count[s]).sum() / n) if n > 0 else math.nan
            else:
                row[name] = float(values.mean())
        rows.append(row)
    return rows


# ------------------------------------------------------------------ checkpoints
def _is_key(x) -> bool:
    import jax  # noqa: PLC0415

    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


class Checkpoints:
    """Orbax checkpoints of a run: ``checkpoints/chunk_<k>``, the latest and the best.

    Each holds ``state`` (the vmapped TrainState with PRNG keys stored as key data) and
    ``progress`` (host-side JSON). Orbax writes a step into a temporary directory and renames
    it when complete, so an interrupted save leaves the previous checkpoints intact.
    """

    def __init__(self, directory: Path):
        import orbax.checkpoint as ocp  # noqa: PLC0415
        from orbax.checkpoint import checkpoint_managers as policy  # noqa: PLC0415

        self._ocp = ocp

        def best(metrics):
            return metrics["mean_return"]

        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=False, step_prefix="chunk", best_fn=best,
            best_mode="max",
            preservation_policy=policy.AnyPreservationPolicy(
                [policy.LatestN(n=1), policy.BestN(get_metric_fn=best, n=1)]))
        self._manager = ocp.CheckpointManager(directory.absolute(), options=options)

    def latest(self) -> int | None:
        return self._manager.latest_step()

    def best(self) -> int | None:
        return self._manager.best_step()

    def save(self, chunk: int, state: Any, progress: dict, mean_return: float) -> None:
        import jax  # noqa: PLC0415

        saved = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)
        ocp = self._ocp
        metric = mean_return if math.isfinite(mean_return) else -1e30
        self._manager.save(chunk, metrics={"mean_return": metric}, args=ocp.args.Composite(
            state=ocp.args.StandardSave(saved), progress=ocp.args.JsonSave(progress)))
        self._manager.wait_until_finished()

    def restore(self, chunk: int, abstract_state: Any) -> tuple[Any, dict]:
        import jax  # noqa: PLC0415

        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])

        def target(a):
            # Restored straight into the target's sharding (the run's devices, which
            # need not be the devices the checkpoint was saved from); one device if none.
            sharding = getattr(a, "sharding", None) or device
            a = jax.eval_shape(jax.random.key_data, a) if _is_key(a) else a
            return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding)

        ocp = self._ocp
        out = self._manager.restore(chunk, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(jax.tree.map(target, abstract_state)),
            progress=ocp.args.JsonRestore()))
        state = jax.tree.map(lambda x, a: jax.random.wrap_key_data(x) if _is_key(a) else x,
                             out.state, abstract_state)
        return state, dict(out.progress)

    def progress(self, chunk: int) -> dict:
        """The host-side progress saved with checkpoint ``chunk`` (without the state)."""
        ocp = self._ocp
        out = self._manager.restore(chunk, args=ocp.args.Composite(progress=ocp.args.JsonRestore()))
        return dict(out.progress)

    def close(self) -> None:
        self._manager.close()
