"""What ends a ``pgjax`` command early, and the exit code each ending gets.

One meaning per code, so scripts can branch on it:

====  ==========================================================================
0     done (or nothing to do: ``--resume`` of a complete run)
1     the run diverged (a non-finite metric or parameter; the last finite checkpoint stays)
2     bad input a person must fix (:class:`RunError`, ``ConfigError``): one line, nothing written
3     could not read or write a file (:class:`StorageError`: disk full, permissions, a path
      under a regular file): one line naming the path and the OS error; completed
      checkpoints are kept
130   stopped by SIGINT (Ctrl-C); 143 by SIGTERM (:class:`Interrupted`): what was kept and
      the command that continues are printed
====  ==========================================================================
"""

from __future__ import annotations

import errno
import os
import signal

EXIT_DONE = 0
EXIT_DIVERGED = 1
EXIT_INPUT = 2
EXIT_STORAGE = 3


def exit_code_of(signum: int) -> int:
    """The shell's code for a process ended by ``signum``: 130 for SIGINT, 143 for SIGTERM."""
    return 128 + int(signum)


class RunError(Exception):
    """Command input or a run directory that a person must fix: one line, exit code 2."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


class StorageError(Exception):
    """A file pgjax could not read or write: one line naming the path and the OS error, exit 3."""

    def __init__(self, path: os.PathLike | str, reason: str, action: str = "write"):
        self.path, self.reason = str(path), " ".join(str(reason).split())
        super().__init__(f"could not {action} {self.path}: {self.reason}")

    @classmethod
    def from_os(cls, error: OSError, path: os.PathLike | str | None = None,
                action: str = "write") -> "StorageError":
        reason = error.strerror or (os.strerror(error.errno) if error.errno else str(error))
        return cls(path or error.filename or "?", reason, action)


def storage_reason(error: BaseException) -> str:
    """A one-line reason for a failed read or write, whatever library raised it (orbax and
    tensorstore wrap the OS error in their own exceptions)."""
    if isinstance(error, OSError) and error.errno:
        return error.strerror or os.strerror(error.errno)
    text = " ".join(str(error).split())
    for code in (errno.ENOSPC, errno.EACCES, errno.EROFS, errno.ENOTDIR, errno.EDQUOT):
        if os.strerror(code).lower() in text.lower():
            return os.strerror(code)
    return text[:200] or type(error).__name__


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM outside a chunk (start-up, compilation, the final evaluation): the
    command stops at once, keeps what it had saved, and exits 130 or 143."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = int(signum)


def raise_interrupted(signum, frame) -> None:
    """A signal handler: stop now (see :class:`Interrupted`)."""
    raise Interrupted(signum)
