"""A run directory on disk: its files, the metrics table and the orbax checkpoints.

Layout (see :mod:`pgjax.host.loop` for the loop that fills it)::

    config.yaml    the fully resolved config (what --resume, eval and render read)
    metrics.csv    one row per chunk per seed, appended, flushed and fsynced after each chunk
    curve.png      episode return (mean ± std over seeds) against env steps
    summary.json   final evaluation, timings, status (written atomically)
    checkpoints/   chunk_<k>/: the latest, the previous and the best (by mean return), each
                   verified by checksums (:mod:`pgjax.host.checkpoints`)
    tensorboard/, wandb/, mlflow.db, trackers.json
                   with logging.backends: the experiment trackers' files and run ids
                   (:mod:`pgjax.host.tracking`)
    .pgjax-lock    while a writer runs: who it is (:mod:`pgjax.host.lock`)

One writer at a time holds the directory's lock; readers need none.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from pgjax.host.checkpoints import Checkpoints, DamagedCheckpoint, _is_key  # noqa: F401
from pgjax.host.errors import RunError, StorageError
from pgjax.host.lock import LOCK_FILE, RunLock  # noqa: F401

RUN_FILES = ("config.yaml", "metrics.csv", "curve.png", "summary.json", "checkpoints")
# What the experiment trackers (pgjax.host.tracking) leave: replaced with the run files, and
# no evidence that a run kept anything (its checkpoints are)
TRACKER_FILES = ("tensorboard", "wandb", "mlflow.db", "mlflow-artifacts", "trackers.json")
FIXED_COLUMNS = ("chunk", "seed", "update", "env_steps", "wall_s")
_EPISODE = ("episode_return", "episode_length", "episode_count")  # weighted by episode count


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
        raise RunError(f"--out {out}: is a file, not a directory; choose another --out")
    if path.is_dir() and not force and not never_started(path):
        raise RunError(f"--out {out}: the directory exists and is not empty; pass --force to "
                       f"replace its run files, or --resume {out} to continue its run")
    check_writable(path, "--out")
    return path


def check_writable(path: Path, flag: str) -> None:
    """Refuses (StorageError, exit 3) a path that cannot be created or written: one under a
    regular file, or in a directory this process may not write. Nothing is created."""
    parent = Path(os.path.abspath(path))
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise StorageError(path, f"{parent} is a file, not a directory ({flag})", "create")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise StorageError(path, f"{os.strerror(13)} in {parent} ({flag})", "write")


def never_started(path: Path) -> bool:
    """Whether ``path`` holds nothing a run kept: at most a config.yaml, the rows of a first
    chunk that was never checkpointed, a checkpoints/ without a checkpoint, and what an
    interrupted start leaves (a stale lock, temporary files, the trackers' files). Such a directory (a run stopped
    before its first checkpoint) may be reused by a new run without --force, and
    ``--resume`` starts it from the beginning.

    Rows of chunk 2 or later are written only after chunk 1's checkpoint was saved, so a
    directory that has them and no checkpoint lost its checkpoints: it is not reusable, and
    ``--resume`` refuses it (unless ``--restart``).
    """
    for p in path.iterdir():
        if p.name in ("config.yaml", LOCK_FILE, *TRACKER_FILES) or p.name.endswith(".tmp"):
            continue
        if p.name == "metrics.csv" and p.is_file() and MetricsFile(p).max_chunk() <= 1:
            continue
        if p.name == "checkpoints" and p.is_dir() and not Checkpoints(p).steps():
            continue
        return False
    return True


def create_run_dir(path: Path, force: bool, warn=print) -> RunLock:
    """Creates ``path`` and takes its writer's lock (held until released or the process
    ends), then, under the lock, checks again that it may be used (another process may have
    claimed it since :func:`choose_run_dir`) and clears the old run files with ``force``."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StorageError.from_os(error, path, "create") from None
    lock = RunLock(path, warn).acquire()
    try:
        if not force and not never_started(path):
            raise RunError(f"--out {path}: the directory exists and is not empty (another run "
                           f"wrote it just now); choose another --out, or --resume {path}")
        for target in path.iterdir():
            if target.name in (*RUN_FILES, *TRACKER_FILES) or target.name.endswith(".tmp"):
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink()
    except OSError as error:
        lock.release()
        raise StorageError.from_os(error, path) from None
    except BaseException:
        lock.release()
        raise
    return lock


def write_json(path: Path, data: Any) -> None:
    """Writes JSON atomically: a temporary file, then ``os.replace``."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(data, indent=2, allow_nan=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise StorageError.from_os(error, path) from None


def read_request(out: Path, name: str, command: str, keys: Sequence[str]) -> dict:
    """The JSON request file ``name`` of a ``pgjax COMMAND`` directory (compare, sweep) for
    ``--resume``: a dict with every one of ``keys``, else a one-line RunError."""
    path, again = out / name, f"start the {command} again"
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"--resume {out}: not a pgjax {command} directory (no {name})") from None
    except ValueError:
        raise RunError(f"--resume {out}: {name} is damaged; {again} with --force") from None
    except OSError as error:
        raise StorageError.from_os(error, path, "read") from None
    if not isinstance(request, dict) or any(k not in request for k in keys):
        raise RunError(f"--resume {out}: {name} is damaged; {again}")
    return request


class MetricsFile:
    """``metrics.csv``: one row per chunk per seed, flushed and fsynced after every chunk."""

    def __init__(self, path: Path):
        self.path = path

    def read(self) -> tuple[list[str], list[list[str]]]:
        """The header and the data rows as text (a last line without its newline, half
        written when the run was killed, is not a row); ([], []) when there is no file."""
        try:
            with open(self.path, newline="", encoding="utf-8", errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return [], []
        except OSError as error:
            raise StorageError.from_os(error, self.path, "read") from None
        self.partial = bool(text) and not text.endswith("\n")
        if self.partial:
            text = text[:text.rfind("\n") + 1]
        rows = [r for r in csv.reader(text.splitlines()) if r]
        return (rows[0], rows[1:]) if rows else ([], [])

    def max_chunk(self) -> int:
        """The last chunk with a well-formed row (0 if none)."""
        _, rows, _ = self.valid_rows(1 << 62, 1 << 30)
        return max((int(r[0]) for r in rows), default=0)

    def valid_rows(self, last_chunk: int, seeds: int) -> tuple[list[str], list[list[str]], int]:
        """The header, the rows of chunks 1..``last_chunk`` that parse, and how many rows were
        dropped as malformed (cut short, unparsable, of an unknown seed, or repeated)."""
        header, rows = self.read()
        cut = int(getattr(self, "partial", False))
        if header[:2] != ["chunk", "seed"] or len(set(header)) != len(header):
            return [], [], len(rows) + (1 if header else 0) + cut
        whole = [i for i, name in enumerate(header) if name in FIXED_COLUMNS[:4]]
        keep, seen, bad = [], set(), 0
        for row in rows:
            try:
                ok = len(row) == len(header)
                chunk, seed = int(row[0]), int(row[1])
                ok = ok and all(int(row[i]) >= 0 for i in whole) and chunk >= 1
                ok = ok and 0 <= seed < seeds and (chunk, seed) not in seen
                [float(x) for x in row]
            except (ValueError, IndexError):
                ok, chunk = False, 0
            if not ok:
                bad += 1
            elif chunk <= last_chunk:
                keep.append(row)
                seen.add((chunk, seed))
        return header, keep, bad + cut

    def truncate(self, last_chunk: int, seeds: int = 1 << 30) -> int:
        """Keeps the well-formed rows of chunks up to ``last_chunk`` (the checkpoint a run
        resumes from); rows after it were reported but not checkpointed. Returns how many
        malformed rows were dropped."""
        if not self.path.exists():
            return 0
        header, keep, bad = self.valid_rows(last_chunk, seeds)
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows([header, *keep] if header else [])
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as error:
            tmp.unlink(missing_ok=True)
            raise StorageError.from_os(error, self.path) from None
        return bad

    def append(self, rows: list[dict[str, Any]]) -> None:
        new = not self.path.exists() or self.path.stat().st_size == 0
        try:
            with open(self.path, "a", newline="", encoding="utf-8") as f:
                writer = csv.DictWriter(f, fieldnames=list(rows[0]))
                if new:
                    writer.writeheader()
                writer.writerows({k: repr(v) if isinstance(v, float) else v
                                  for k, v in r.items()} for r in rows)
                f.flush()
                os.fsync(f.fileno())
        except OSError as error:
            raise StorageError.from_os(error, self.path) from None


def chunk_rows(metrics: dict[str, np.ndarray], *, chunk: int, update: int | Sequence[int],
               env_steps: int | Sequence[int], wall_s: float,
               ran: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """One row per seed: per-chunk means of the update metrics (``[S, U]`` arrays).

    ``episode_return`` and ``episode_length`` are averaged over the episodes that ended in the
    chunk (NaN when none did), and ``episode_count`` is their number. ``update`` and
    ``env_steps`` (done after the chunk) are one per seed or the same for all; ``ran``: the
    updates each seed ran (episodic algorithms; its later rows are padding), else all ``U``.
    """
    count = metrics["episode_count"].astype(np.float64)
    seeds = count.shape[0]
    update = np.broadcast_to(np.asarray(update), (seeds,))
    env_steps = np.broadcast_to(np.asarray(env_steps), (seeds,))
    rows = []
    for s in range(seeds):
        row: dict[str, Any] = dict(chunk=chunk, seed=s, update=int(update[s]),
                                   env_steps=int(env_steps[s]), wall_s=round(wall_s, 3))
        used = count.shape[1] if ran is None else int(ran[s])
        n = count[s, :used].sum()
        for name in (*_EPISODE, *sorted(set(metrics) - set(_EPISODE))):
            values = metrics[name][s, :used].astype(np.float64)
            if name == "episode_count":
                row[name] = int(n)
            elif name in _EPISODE:  # NaN in updates where no episode ended: weight 0
                values = np.where(count[s, :used] > 0, values, 0.0)
                row[name] = float((values * count[s, :used]).sum() / n) if n > 0 else math.nan
            else:  # NaN for a seed that ran no update (its earlier chunk passed this target)
                row[name] = float(values.mean()) if used else math.nan
        rows.append(row)
    return rows
