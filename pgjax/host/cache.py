"""JAX's persistent compilation cache, as the ``pgjax`` command sets it up.

Compiled programs are kept in ``~/.cache/pgjax/jax`` (or ``$XDG_CACHE_HOME/pgjax/jax``), so a
second run of the same config skips most of its compile time. ``--cache-dir DIR`` or
``PGJAX_CACHE_DIR`` moves it; ``--no-cache`` or ``PGJAX_NO_CACHE=1`` turns it off. Only the
command (and the benchmarks that time cached compiles) call this: ``import pgjax`` never
touches JAX's configuration.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pgjax" / "jax"


def cache_dir(args: argparse.Namespace) -> Path | None:
    """The compilation-cache directory: ``--cache-dir``, ``$PGJAX_CACHE_DIR``, or the default;
    None with ``--no-cache`` or ``PGJAX_NO_CACHE=1``."""
    if getattr(args, "no_cache", False) or os.environ.get("PGJAX_NO_CACHE", "") not in ("", "0"):
        return None
    return Path(getattr(args, "cache_dir", None) or os.environ.get("PGJAX_CACHE_DIR")
                or default_cache_dir()).expanduser()


def setup_cache(args: argparse.Namespace) -> Path | None:
    """Points JAX's persistent compilation cache at :func:`cache_dir` (or turns it off)."""
    path = cache_dir(args)
    use_compilation_cache(path)
    return path


def use_compilation_cache(path: str | Path | None) -> None:
    """JAX's persistent compilation cache in ``path``, caching every program (None: off).
    The ``pgjax`` command's setting; the benchmarks that time cached compiles use it too."""
    import jax  # noqa: PLC0415

    jax.config.update("jax_enable_compilation_cache", path is not None)
    if path is not None:
        jax.config.update("jax_compilation_cache_dir", str(path))
        # Cache every program: CPU programs compile in seconds and are small, below JAX's
        # defaults (1 s; a minimum entry size chosen for the filesystem; -1 disables it).
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
