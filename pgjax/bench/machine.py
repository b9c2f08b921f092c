"""The machine a benchmark runs on, its load, and the results file every benchmark writes to.

Every benchmark prints :func:`header` first (what ran, where, when, with what software) and
records :func:`load_average` beside its timings, since other work on the machine skews them.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pgjax  # first: its XLA CPU workaround must precede any computation


def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews timings."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


# A plain Python spin loop that also ends by itself once its parent is gone (reparented),
# should the parent be killed before it can stop it.
_SPIN = ("import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n"
         "    for _ in range(10**6):\n        pass\n")


@contextlib.contextmanager
def busy_core() -> Iterator[subprocess.Popen]:
    """Keeps one core busy for the block: a subprocess spinning a plain Python loop, the load
    of another program on the machine (``pgjax bench --busy-core``). Killed and reaped when
    the block ends, by an error or Ctrl-C too; in its own session, so a Ctrl-C reaches only
    this process, which then stops it."""
    proc = subprocess.Popen([sys.executable, "-c", _SPIN], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def write_section(path, begin: str, end: str, text: str) -> None:
    """Replaces the text between the ``begin`` and ``end`` marker lines of ``path`` (a results
    file such as benchmarks/RESULTS.md) with ``text``; appends the marked section if absent."""
    path = Path(path)
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{begin}\n{text.rstrip(chr(10))}\n{end}"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + section + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(current)


def machine_info() -> dict[str, Any]:
    """Date, CPU, cores, memory, accelerator and software: the header of every result."""
    import jax  # noqa: PLC0415

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
        mem_gib = round(kib / 2**20, 1)
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": mem_gib,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
        "pgjax": pgjax.__version__,
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compilation_cache": (jax.config.jax_compilation_cache_dir
                              if jax.config.jax_enable_compilation_cache else None),
        "load_average": load_average(),
    }


def header(title: str, machine: dict[str, Any], command: str) -> str:
    """The lines every benchmark prints first: what ran, where, when, how."""
    return "\n".join([
        f"# {title}",
        f"date: {machine['date']}",
        f"machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['memory_gib']} GiB; backend {machine['backend']} {machine['devices']}",
        f"software: JAX {machine['jax']}, pgjax {machine['pgjax']}, Python {machine['python']}; "
        f"XLA_FLAGS={machine['xla_flags'] or '(none)'}",
        f"persistent compilation cache: {machine['compilation_cache'] or 'off'}"
        + (" (compile times are cache reads once it is warm)" if machine["compilation_cache"] else ""),
        f"load average at start: {machine['load_average']}",
        f"command: {command}",
    ])


def format_rate(x: float) -> str:
    """A rate in k, M or G per second, as the tables print it (``format_rate(2.5e6) == '2.50M'``)."""
    if x >= 1e9:
        return f"{x / 1e9:.2f}G"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    return f"{x / 1e3:.1f}k"
