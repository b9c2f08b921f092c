"""Compile time of the training program, first against cached: ``pgjax bench --compile-cache``.

Two (or more) fresh processes share a new, empty persistent compilation cache: the first fills
it, the others read it, so the ratio is what ``pgjax train`` gains from its second run on.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from pgjax.bench.machine import load_average
from pgjax.config import Config, apply_overrides

_COMPILE_CHILD = """
import json, sys, time
start = time.perf_counter()
import pgjax
from pgjax.bench import compile_training_program
result = compile_training_program(sys.argv[1], json.loads(sys.argv[2]))
result["process_s"] = time.perf_counter() - start
print(json.dumps(result))
"""


def compile_training_program(cache_dir: str | None, overrides: list[str]) -> dict[str, float]:
    """Compiles what ``pgjax train`` compiles (:func:`pgjax.host.programs.compile_programs`: init, a
    chunk of updates and evaluation) for the default config with ``overrides``, using the
    persistent compilation cache in ``cache_dir`` (None: no cache). Returns trace+lower and
    compile seconds."""
    from pgjax.host.cache import use_compilation_cache  # noqa: PLC0415
    from pgjax.host.programs import compile_programs  # noqa: PLC0415
    from pgjax.train import make_train  # noqa: PLC0415

    if cache_dir is not None:
        use_compilation_cache(cache_dir)
    start = time.perf_counter()
    config = apply_overrides(Config(), overrides)
    trainer = make_train(config)
    built = time.perf_counter()
    # Not pipelined: every program is lowered before any compiles, so the two times split.
    programs = compile_programs(trainer, config.training.num_seeds, pipeline=False)
    done = time.perf_counter()
    return {"make_train_s": built - start, "trace_and_lower_s": programs.lower_s,
            "compile_s": programs.compile_s - programs.lower_s, "total_s": done - start}


def compile_cache_times(overrides: list[str] = (), runs: int = 2) -> dict[str, Any]:
    """Compile time of the default a2c training program in ``runs`` fresh processes that share
    a new, empty persistent compilation cache: the first fills it, the others read it."""
    results = []
    with tempfile.TemporaryDirectory(prefix="pgjax-bench-cache-") as cache:
        for _ in range(runs):
            proc = subprocess.run([sys.executable, "-c", _COMPILE_CHILD, cache, json.dumps(list(overrides))],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"compile child failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        entries = len(os.listdir(cache))
    first, cached = results[0], results[1:]
    compile_ratio = statistics.median(r["compile_s"] for r in cached) / first["compile_s"]
    ratio = statistics.median(r["trace_and_lower_s"] + r["compile_s"] for r in cached) / (
        first["trace_and_lower_s"] + first["compile_s"])
    return {"overrides": list(overrides), "runs": results, "cache_entries": entries,
            "compile_cached_over_first": compile_ratio, "cached_over_first": ratio,
            "load_average": load_average()}
