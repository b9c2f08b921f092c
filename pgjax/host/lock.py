"""One writer per run directory: an exclusive lock on ``DIR/.pgjax-lock``.

``pgjax train`` (new or ``--resume``) and ``pgjax compare`` take the lock before they write
anything in a run directory and hold it until they exit. The lock is an ``flock`` on the
file, which the kernel drops when its holder dies (kill -9 included), and the file names the
holder (pid, host, command). So:

* a second writer is refused with one line naming the holder (exit code 2);
* a lock file left by a process that died is taken over, with a warning naming it;
* readers (``pgjax eval``, ``render``, :func:`pgjax.load_run`) take no lock: checkpoints
  appear and disappear atomically (:mod:`pgjax.host.checkpoints`), so they always read a
  complete one.

On filesystems without ``flock`` the holder's pid decides (same host: alive or not; another
host: refused, naming it).
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable

from pgjax.host.errors import RunError, StorageError

LOCK_FILE = ".pgjax-lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _describe(holder: dict) -> str:
    since = holder.get("started")
    when = time.strftime(" since %Y-%m-%d %H:%M:%S", time.localtime(since)) if since else ""
    return f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}{when}"


def _read(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    try:
        holder = json.loads(os.read(fd, 65536).decode("utf-8", "replace") or "{}")
    except ValueError:
        return {"pid": "?", "host": "?"}
    return holder if isinstance(holder, dict) else {}


class RunLock:
    """The exclusive writer's lock of ``directory`` (which must exist); a context manager."""

    def __init__(self, directory: Path, warn: Callable[[str], None] = print):
        self.directory, self.path, self._warn, self._fd = Path(directory), None, warn, None
        self.path = self.directory / LOCK_FILE

    def acquire(self) -> "RunLock":
        import fcntl  # noqa: PLC0415

        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as error:
                raise StorageError.from_os(error, self.path) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = True
            except OSError as error:
                if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    locked = False  # no flock here: the holder's pid decides
                else:
                    holder = _read(fd)
                    os.close(fd)
                    raise RunError(
                        f"{self.directory}: another pgjax ({_describe(holder)}) is writing this "
                        "run directory; wait for it to finish or stop it") from None
            try:  # the file we locked may have been removed by a holder that just finished
                if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                    os.close(fd)
                    continue
            except FileNotFoundError:
                os.close(fd)
                continue
            break
        holder = _read(fd)
        if holder and holder.get("pid") != os.getpid():
            same_host = holder.get("host") == socket.gethostname()
            if not locked and (not same_host or _alive(int(holder.get("pid") or 0))):
                os.close(fd)
                raise RunError(f"{self.directory}: another pgjax ({_describe(holder)}) is writing "
                               "this run directory; wait for it to finish or stop it")
            self._warn(f"warning: {self.directory}: took over the lock left by pgjax "
                       f"{_describe(holder)}, which is no longer running")
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
              "command": " ".join(sys.argv[:6])}
        try:
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(me) + "\n").encode())
            os.fsync(fd)
        except OSError as error:
            os.close(fd)
            raise StorageError.from_os(error, self.path) from None
        self._fd = fd
        return self

    def release(self) -> None:
        """Removes the lock file, then drops the lock (a holder is never left unnamed)."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except OSError:
            pass
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
