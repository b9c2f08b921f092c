"""The host layer: everything that runs between compiled programs, and the ``pgjax`` commands.

Nothing below this layer prints, writes files or reads the clock. Its modules, from the loop
outwards:

* :mod:`pgjax.host.loop`: :func:`~pgjax.host.loop.train_run`, the chunked training loop
  (signals, divergence, resume), which hands every chunk to a list of callbacks;
* :mod:`pgjax.host.callbacks`: the callback protocol (``on_start``, ``on_chunk``, ``on_end``,
  ``on_error``) and the metrics.csv and checkpoint callbacks; :mod:`pgjax.host.display` (the
  progress bar) and :mod:`pgjax.host.summary` (summary.json, curve.png, the closing lines);
* :mod:`pgjax.host.programs`: the compiled init, chunk and evaluate, vmapped over seeds (or
  over a sweep's runs, each with its own hyperparameters: ``RunBatch``);
* :mod:`pgjax.host.rundir`: a run directory's files; :mod:`pgjax.host.lock`, its one
  writer's lock; :mod:`pgjax.host.checkpoints`, its atomic, checksummed checkpoints;
  :mod:`pgjax.host.errors`, the exit codes (0 done, 1 diverged, 2 bad input, 3 could not
  read or write, 130/143 signals);
* :mod:`pgjax.host.checks`, :mod:`pgjax.host.config_io`: input checked before anything
  compiles (one line and exit code 2 for what a person must fix);
* :mod:`pgjax.host.commands`, :mod:`pgjax.host.render`, :mod:`pgjax.host.compare`,
  :mod:`pgjax.host.sweep`: what ``pgjax train``, ``eval``, ``envs``, ``render``, ``compare``
  and ``sweep`` do
  (:mod:`pgjax.cli` only parses and dispatches);
* :mod:`pgjax.host.cache` (the persistent compilation cache) and
  :mod:`pgjax.host.distributed` (multi-host runs: process 0 alone writes and prints).

A new logger is one class passed in the list of callbacks::

    from pgjax.host import Callback, default_callbacks, train_run

    class PrintLoss(Callback):
        def on_chunk(self, ctx, info):  # info: a ChunkInfo (rows, metrics [S, U], state, ...)
            ctx.say(f"chunk {info.chunk}: loss {info.metrics['loss'].mean():.3f}")

    result = train_run(directory, trainer, label="demo",
                       callbacks=[*default_callbacks(), PrintLoss()])

The names below are imported on first use, so ``import pgjax.host.rundir`` loads no more
than that module.
"""

import importlib

# Public name -> module that defines it, imported lazily (PEP 562), as pgjax/__init__.py does.
_LAZY = {
    "Callback": "pgjax.host.callbacks",
    "ChunkInfo": "pgjax.host.callbacks",
    "MetricsCSV": "pgjax.host.callbacks",
    "RunContext": "pgjax.host.callbacks",
    "RunEnd": "pgjax.host.callbacks",
    "SaveCheckpoints": "pgjax.host.callbacks",
    "ProgressDisplay": "pgjax.host.display",
    "Summary": "pgjax.host.summary",
    "Result": "pgjax.host.loop",
    "default_callbacks": "pgjax.host.loop",
    "train_run": "pgjax.host.loop",
    "Programs": "pgjax.host.programs",
    "compile_programs": "pgjax.host.programs",
    "Checkpoints": "pgjax.host.rundir",
    "RunError": "pgjax.host.errors",
    "StorageError": "pgjax.host.errors",
    "RunLock": "pgjax.host.lock",
    "build_trainer": "pgjax.host.checks",
}

__all__ = list(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pgjax.host' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
