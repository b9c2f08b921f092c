"""A run's checkpoints: ``DIR/checkpoints/chunk_<k>/``, each complete and verified, or absent.

Each checkpoint holds ``state`` (the vmapped TrainState, PRNG keys stored as key data) and
``progress`` (host-side JSON: chunk, updates, elapsed time, config), written by orbax, and
``pgjax.json``: the size and SHA-256 of every file, the chunk's mean return and the progress.

* **Atomic.** A save goes to ``.partial-chunk_<k>``, gets its ``pgjax.json`` last, and is
  then renamed to ``chunk_<k>``; a checkpoint is deleted by renaming it to
  ``.deleting-chunk_<k>`` first. So ``chunk_<k>`` is always complete, and a reader (``pgjax
  eval`` while the run trains) never sees half of one. What an interrupted save or clean-up
  leaves (``.partial-*``, ``.deleting-*``, orbax's ``*.orbax-checkpoint-tmp-*``) is removed by
  the next writer (:meth:`Checkpoints.clean`).
* **Verified.** :meth:`Checkpoints.restore_good` checks every file against ``pgjax.json``
  before restoring; a damaged checkpoint is reported in one line and the next older good one
  is used.
* **Kept.** After each save the store keeps the latest, the previous and the best (by mean
  episode return) checkpoints and deletes the rest.

Checkpoints written by pgjax before ``pgjax.json`` existed are read without verification.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import sys
from pathlib import Path
from typing import Any, Callable

from pgjax.host.distributed import barrier as _barrier
from pgjax.host.distributed import is_primary as _primary
from pgjax.host.errors import RunError, StorageError, storage_reason

MANIFEST = "pgjax.json"
_STEP = re.compile(r"^chunk_(\d+)$")
KEEP_LATEST = 2  # the latest and the previous, and the best besides


class DamagedCheckpoint(Exception):
    """A checkpoint whose files do not match its ``pgjax.json`` (one line)."""


def _is_key(x) -> bool:
    import jax  # noqa: PLC0415

    return jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _files(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*")
                  if p.is_file() and p.name != MANIFEST)


def _fsync_tree(directory: Path) -> None:
    for p in [*directory.rglob("*"), directory]:
        flags = os.O_RDONLY | (os.O_DIRECTORY if p.is_dir() else 0)
        fd = os.open(p, flags)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


MUTE_AFTER_FAILED_SAVE = False  # the pgjax command sets it: its process ends after one
_unmuted = None  # sys.stderr as it was before a failed save muted it


def stderr():
    """Where the command's last line goes: ``sys.stderr``, or what it was before a failed
    save muted it."""
    return _unmuted or sys.stderr


@contextlib.contextmanager
def _quiet_orbax():
    """Orbax and tensorstore report a failed write from their threads, with tracebacks
    (absl's log, 'Event loop is closed'), before, while and after it raises; pgjax reports
    it in one line (StorageError). So during a save Python's logging is off and what they
    print to ``sys.stderr`` is held back, shown only if the save succeeds; after a failure,
    with :data:`MUTE_AFTER_FAILED_SAVE`, both stay muted (the command prints its one line to
    ``sys.__stderr__`` and exits)."""
    held, real = io.StringIO(), sys.stderr
    sys.stderr = held
    logging.disable(logging.CRITICAL)  # orbax's own log (absl): not pgjax's output
    try:
        yield
    except BaseException:
        if MUTE_AFTER_FAILED_SAVE:
            global _unmuted
            _unmuted = real
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115
        else:
            sys.stderr = real
            logging.disable(logging.NOTSET)
        raise
    sys.stderr = real
    logging.disable(logging.NOTSET)
    if held.getvalue():
        real.write(held.getvalue())


class Checkpoints:
    """The checkpoints of one run directory (``directory`` is its ``checkpoints/``).

    A writer (the host loop, holding the run's lock) calls :meth:`clean`, :meth:`save` and
    :meth:`drop_after`; readers call :meth:`steps`, :meth:`latest`, :meth:`best` and
    :meth:`restore_good`, and never change anything.
    """

    def __init__(self, directory: Path, warn: Callable[[str], None] = print):
        self.directory = Path(directory).absolute()
        self._warn = warn

    # ------------------------------------------------------------ listing
    def steps(self) -> list[int]:
        """The chunks with a complete checkpoint, oldest first."""
        if not self.directory.is_dir():
            return []
        found = []
        for p in self.directory.iterdir():
            m = _STEP.match(p.name)
            if m and p.is_dir() and ((p / MANIFEST).is_file() or self._legacy(p)):
                found.append(int(m.group(1)))
        return sorted(found)

    @staticmethod
    def _legacy(path: Path) -> bool:  # written by orbax's CheckpointManager (pgjax < issue 15)
        return (path / "_CHECKPOINT_METADATA").is_file() and (path / "state").is_dir()

    def manifest(self, chunk: int) -> dict:
        """``pgjax.json`` of ``chunk`` ({} for an older, unverified checkpoint)."""
        path = self.directory / f"chunk_{chunk}"
        try:
            data = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
        except FileNotFoundError:
            if self._legacy(path):
                return {}
            raise DamagedCheckpoint(f"chunk_{chunk}: {MANIFEST} is missing") from None
        except (ValueError, UnicodeDecodeError):
            raise DamagedCheckpoint(f"chunk_{chunk}: {MANIFEST} is not valid JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
            raise DamagedCheckpoint(f"chunk_{chunk}: {MANIFEST} lists no files")
        return data

    def _mean_return(self, chunk: int) -> float:
        try:
            manifest = self.manifest(chunk)
            if not manifest:
                legacy = self.directory / f"chunk_{chunk}" / "metrics" / "metrics"
                manifest = json.loads(legacy.read_text(encoding="utf-8"))
            value = float(manifest.get("mean_return", math.nan))
        except (OSError, ValueError, TypeError, DamagedCheckpoint):
            return -math.inf
        return value if math.isfinite(value) else -math.inf

    def latest(self) -> int | None:
        steps = self.steps()
        return steps[-1] if steps else None

    def best(self) -> int | None:
        """The chunk with the highest mean return (the latest of equals; None if none)."""
        steps = self.steps()
        return max(steps, key=lambda s: (self._mean_return(s), s)) if steps else None

    # ------------------------------------------------------------ verifying and restoring
    def verify(self, chunk: int) -> dict:
        """Checks every file of ``chunk`` against its ``pgjax.json``; returns the progress.

        Raises:
          DamagedCheckpoint: a file is missing, of another size, or of another checksum.
        """
        path = self.directory / f"chunk_{chunk}"
        manifest = self.manifest(chunk)
        if not manifest:
            return self._progress_legacy(chunk)
        files = manifest["files"]
        present = set(_files(path))
        for name, (size, digest) in sorted(files.items()):
            target = path / name
            if name not in present:
                raise DamagedCheckpoint(f"chunk_{chunk}: {name} is missing")
            if target.stat().st_size != size:
                raise DamagedCheckpoint(f"chunk_{chunk}: {name} has {target.stat().st_size} "
                                        f"bytes, not {size}")
            if _digest(target) != digest:
                raise DamagedCheckpoint(f"chunk_{chunk}: {name} fails its checksum")
        extra = present - set(files)
        if extra:
            raise DamagedCheckpoint(f"chunk_{chunk}: unexpected file {sorted(extra)[0]}")
        progress = manifest.get("progress")
        if not isinstance(progress, dict) or progress.get("chunk") != chunk:
            raise DamagedCheckpoint(f"chunk_{chunk}: {MANIFEST} has no progress of this chunk")
        return progress

    def _progress_legacy(self, chunk: int) -> dict:
        path = self.directory / f"chunk_{chunk}" / "progress" / "metadata"
        try:
            return dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError) as error:
            raise DamagedCheckpoint(f"chunk_{chunk}: progress unreadable ({error})") from None

    def progress(self, chunk: int) -> dict:
        """The host-side progress saved with ``chunk`` (verified; without the state)."""
        return self.verify(chunk)

    def restore(self, chunk: int, abstract_state: Any) -> tuple[Any, dict]:
        """The state and progress of ``chunk``, verified first (DamagedCheckpoint if not)."""
        import jax  # noqa: PLC0415
        import orbax.checkpoint as ocp  # noqa: PLC0415

        progress = self.verify(chunk)
        device = jax.sharding.SingleDeviceSharding(jax.devices()[0])

        def target(a):
            # Restored straight into the target's sharding (the run's devices, which
            # need not be the devices the checkpoint was saved from); one device if none.
            sharding = getattr(a, "sharding", None) or device
            a = jax.eval_shape(jax.random.key_data, a) if _is_key(a) else a
            return jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sharding)

        path = self.directory / f"chunk_{chunk}"
        with _quiet_orbax(), ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
            out = checkpointer.restore(path, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(jax.tree.map(target, abstract_state))))
        state = jax.tree.map(lambda x, a: jax.random.wrap_key_data(x) if _is_key(a) else x,
                             out.state, abstract_state)
        return state, progress

    def latest_good(self) -> tuple[int, dict] | None:
        """The newest checkpoint whose files verify, and its progress (None if none); each
        damaged one newer than it is reported in one line."""
        for chunk in reversed(self.steps()):
            try:
                return chunk, self.verify(chunk)
            except DamagedCheckpoint as error:
                self._warn(f"warning: checkpoint {error}; using an older one")
            except OSError:
                continue  # deleted while we read it
        return None

    def restore_good(self, abstract_state: Any, which: str = "latest",
                     before: int | None = None) -> tuple[Any, dict, int] | None:
        """The newest (or best) checkpoint that verifies and restores: ``(state, progress,
        chunk)``, or None if there is none. A damaged one is reported in one line and
        skipped; one deleted meanwhile (a writer moved on) is skipped silently."""
        tried: set[int] = set()
        while True:
            steps = [s for s in self.steps() if s not in tried
                     and (before is None or s <= before)]
            if not steps:
                return None
            if which == "best":
                chunk = max(steps, key=lambda s: (self._mean_return(s), s))
            else:
                chunk = steps[-1]
            tried.add(chunk)
            try:
                state, progress = self.restore(chunk, abstract_state)
                return state, progress, chunk
            except DamagedCheckpoint as error:
                if (self.directory / f"chunk_{chunk}").is_dir():
                    self._warn(f"warning: checkpoint {error}; using an older one")
            except Exception as error:  # noqa: BLE001  (orbax: many kinds of unreadable)
                if not (self.directory / f"chunk_{chunk}").is_dir():
                    continue  # deleted while we read it: a writer saved a newer one
                if isinstance(error, (TypeError, ValueError)) and "shape" in str(error).lower():
                    raise RunError(f"{self.directory / f'chunk_{chunk}'}: the checkpoint does "
                                   "not fit the run's config.yaml (its arrays have other "
                                   "shapes); restore the run's config.yaml") from None
                self._warn(f"warning: checkpoint chunk_{chunk} cannot be read "
                           f"({storage_reason(error)}); using an older one")

    # ------------------------------------------------------------ writing (the lock holder)
    def clean(self) -> list[str]:
        """Removes what interrupted saves and clean-ups left; returns the names removed."""
        removed = []
        if not self.directory.is_dir() or not _primary():
            return removed
        complete = {f"chunk_{s}" for s in self.steps()}
        for p in self.directory.iterdir():
            if p.name in complete:
                continue
            if p.name.startswith((".partial-", ".deleting-")) or "orbax-checkpoint-tmp" in p.name \
                    or _STEP.match(p.name):  # a chunk_<k> with neither pgjax.json nor orbax's
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
                removed.append(p.name)
        return removed

    def save(self, chunk: int, state: Any, progress: dict, mean_return: float) -> None:
        """Saves ``chunk`` atomically with its manifest, then keeps latest, previous and best.

        Raises:
          StorageError: the checkpoint could not be written (the earlier ones stay).
        """
        import jax  # noqa: PLC0415
        import orbax.checkpoint as ocp  # noqa: PLC0415

        saved = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)
        final = self.directory / f"chunk_{chunk}"
        partial = self.directory / f".partial-chunk_{chunk}"
        try:
            if _primary():
                self.directory.mkdir(parents=True, exist_ok=True)
                if partial.exists():
                    shutil.rmtree(partial)
            _barrier(f"pgjax checkpoint {chunk} start")
            with _quiet_orbax(), ocp.Checkpointer(ocp.CompositeCheckpointHandler()) as checkpointer:
                checkpointer.save(partial, args=ocp.args.Composite(
                    state=ocp.args.StandardSave(saved), progress=ocp.args.JsonSave(progress)))
            if _primary():
                files = {name: [(partial / name).stat().st_size, _digest(partial / name)]
                         for name in _files(partial)}
                mean = mean_return if math.isfinite(mean_return) else None
                manifest = {"chunk": chunk, "mean_return": mean, "progress": progress,
                            "files": files}
                tmp = partial / (MANIFEST + ".tmp")
                tmp.write_text(json.dumps(manifest, allow_nan=False) + "\n", encoding="utf-8")
                os.replace(tmp, partial / MANIFEST)
                _fsync_tree(partial)
                if final.exists():  # a damaged one this run is replacing
                    self._discard(final)
                os.rename(partial, final)
                fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            _barrier(f"pgjax checkpoint {chunk} done")
        except Exception as error:  # noqa: BLE001  (orbax wraps OS errors in its own)
            if _primary():  # ours and orbax's temporary directories: nothing half-written stays
                for leftover in self.directory.glob(f".partial-chunk_{chunk}*"):
                    shutil.rmtree(leftover, ignore_errors=True)
            raise StorageError(final, storage_reason(error)) from error
        self._prune()

    def _discard(self, path: Path) -> None:
        doomed = path.with_name(f".deleting-{path.name}")
        if doomed.exists():
            shutil.rmtree(doomed, ignore_errors=True)
        os.rename(path, doomed)  # atomic: readers see the checkpoint whole or not at all
        shutil.rmtree(doomed, ignore_errors=True)

    def _prune(self) -> None:
        if not _primary():
            return
        steps = self.steps()
        keep = set(steps[-KEEP_LATEST:]) | ({self.best()} if steps else set())
        for step in steps:
            if step not in keep:
                try:
                    self._discard(self.directory / f"chunk_{step}")
                except OSError:
                    pass  # left for the next writer's clean()

    def drop_after(self, chunk: int) -> list[int]:
        """Deletes the checkpoints after ``chunk`` (damaged ones a resume goes back past)."""
        dropped = [s for s in self.steps() if s > chunk]
        if _primary():
            for step in dropped:
                self._discard(self.directory / f"chunk_{step}")
        return dropped

    def close(self) -> None:
        """Nothing to release (kept for callers of the orbax-manager version)."""
