"""The host loop's callback protocol, and the callbacks that write metrics.csv and checkpoints.

:func:`pgjax.host.loop.train_run` runs compiled chunks and, between them and only there,
hands what it has to a list of callbacks. It knows none of them: metrics.csv
(:class:`MetricsCSV`), checkpoints (:class:`SaveCheckpoints`), the progress display
(:class:`pgjax.host.display.ProgressDisplay`) and summary.json, curve.png and the closing
lines (:class:`pgjax.host.summary.Summary`) are all callbacks, in that order in
:func:`pgjax.host.loop.default_callbacks`. Each is called in list order:

* ``on_start(ctx)``: once, after the state is initialised (or restored, on resume) and
  before the first chunk of this session.
* ``on_chunk(ctx, info)``: after every chunk, with a :class:`ChunkInfo`: the chunk's
  metrics (per update, and as metrics.csv's rows), step counts, rate and, when every number
  came out finite, the new state. A chunk with a non-finite metric or parameter still
  reaches ``on_chunk`` (its rows are the evidence), with ``info.problem`` set and
  ``info.state`` None; the loop then stops, and nothing may save that state.
* ``on_end(ctx, end)``: once the run stops (complete, interrupted or diverged), with a
  :class:`RunEnd`; ``end.summary`` is the dict the run returns, which callbacks may extend.
* ``on_error(ctx, error)``: instead of ``on_end`` when the loop leaves with an exception (a
  second Ctrl-C, an XLA error): release what is live (a progress bar); nothing is saved.

A new logger is one class. Subclass :class:`Callback` and override what you need; for
example, one that prints each chunk's mean episode return (``ctx.say`` prints above a live
progress bar, and only in process 0 of a multi-host run)::

    from pgjax.host.callbacks import Callback
    from pgjax.host.loop import default_callbacks, train_run

    class PrintReturn(Callback):
        def on_chunk(self, ctx, info):
            if info.problem is None:
                ctx.say(f"chunk {info.chunk}: return {info.mean_return:.1f}")

    train_run(directory, trainer, label="demo", callbacks=[*default_callbacks(), PrintReturn()])

Callbacks run on the host between chunks, so they may print, write files and read the clock;
a slow one slows the run by its own time and no more. In a multi-host run every process
calls them: write files only where ``ctx.primary`` (checkpoints are the exception: every
process takes part in saving them).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, NamedTuple

import numpy as np

from pgjax.config import config_to_dict
from pgjax.host.distributed import say
from pgjax.host.programs import Programs
from pgjax.host.rundir import Checkpoints, MetricsFile


@dataclasses.dataclass
class RunContext:
    """What stays fixed while a run trains: its directory, trainer, programs and checkpoints."""

    directory: Path  # the run directory (config.yaml, metrics.csv, ...)
    trainer: Any  # pgjax.train.Trainer: config, derived sizes, env, networks
    label: str  # the run's name for people (the progress bar's)
    programs: Programs  # the compiled init, chunk and evaluate, with the seed keys
    checkpoints: Checkpoints  # the run's checkpoint store (restored from on resume)
    start_chunk: int  # chunks done before this session: 0, or the resumed checkpoint's
    start_elapsed_s: float  # wall time of the earlier sessions of a resumed run
    primary: bool  # process 0 (or the only process): the one that writes the run's files
    printer: Callable[[str], None] = say  # where ctx.say goes: a live display replaces it
    # what the vmapped axis holds, for people: the config's seeds, or a sweep's runs
    # (points x seeds, each with its own hyperparameters)
    unit: str = "seed"

    @property
    def config(self):
        return self.trainer.config

    @property
    def derived(self):
        return self.trainer.derived

    @property
    def seeds(self) -> int:
        return self.trainer.config.training.num_seeds

    def say(self, message: str) -> None:
        """Prints a line for people (above a live progress bar; process 0 only)."""
        self.printer(message)


class ChunkInfo(NamedTuple):
    """What one chunk produced, as ``on_chunk`` receives it (S seeds, U updates)."""

    chunk: int  # 1-based index of the chunk, of derived.num_chunks
    updates: int  # updates this chunk ran (U)
    update: int  # updates done per seed after it
    env_steps: int  # env steps done per seed after it
    metrics: dict[str, np.ndarray]  # name -> [S, U] per-update metrics
    rows: list[dict[str, Any]]  # the chunk's metrics.csv rows, one per seed
    mean_return: float  # episode return averaged over seeds (NaN if no episode ended)
    wall_s: float  # the run's wall time so far, all sessions
    rate: float  # env steps per second in this session, all seeds together
    eta_s: float  # seconds left at that rate
    state: Any  # the vmapped TrainState after the chunk; None when `problem` is set
    problem: str | None  # the first non-finite metric or parameter, if any: the run stops


class RunEnd(NamedTuple):
    """How the run stopped, as ``on_end`` receives it."""

    status: str  # "complete", "interrupted" or "diverged"
    exit_code: int  # 0, 1 (diverged), 130 or 143 (SIGINT, SIGTERM)
    message: str  # printed after on_end: why it stopped and how to resume ("" if complete)
    chunks_done: int  # chunks whose state is checkpointed
    wall_s: float  # wall time of all sessions
    final_state: Any  # the vmapped TrainState when complete, else None
    evaluation: tuple[np.ndarray, np.ndarray] | None  # greedy and sampled return [S] each
    summary: dict[str, Any]  # returned as Result.summary; callbacks may add keys


class Callback:
    """Base class of the host loop's callbacks; every method does nothing by default."""

    def on_start(self, ctx: RunContext) -> None:
        pass

    def on_chunk(self, ctx: RunContext, info: ChunkInfo) -> None:
        pass

    def on_end(self, ctx: RunContext, end: RunEnd) -> None:
        pass

    def on_error(self, ctx: RunContext, error: BaseException) -> None:
        pass


class MetricsCSV(Callback):
    """``metrics.csv``: every chunk's rows, flushed and fsynced (process 0 only).

    A new run starts the file afresh; a resumed one drops the rows of chunks after its
    checkpoint (reported, but not checkpointed) and malformed rows (a row cut short by a
    kill or a full disk), with a warning. A diverged chunk's rows are written too.
    """

    def on_start(self, ctx: RunContext) -> None:
        self.file = MetricsFile(ctx.directory / "metrics.csv")
        if ctx.primary:
            dropped = self.file.truncate(ctx.start_chunk, ctx.seeds)
            if dropped:
                ctx.say(f"warning: {self.file.path}: dropped {dropped} malformed row(s) "
                        "(cut short or unparsable)")

    def on_chunk(self, ctx: RunContext, info: ChunkInfo) -> None:
        if ctx.primary:
            self.file.append(info.rows)


class SaveCheckpoints(Callback):
    """A checkpoint after every finite chunk: the state and the progress ``--resume`` needs.

    The store keeps the latest chunk and the best by mean episode return
    (:class:`pgjax.host.rundir.Checkpoints`); every process takes part.
    """

    def on_chunk(self, ctx: RunContext, info: ChunkInfo) -> None:
        if info.problem is not None:  # a non-finite state is never saved
            return
        progress = {"chunk": info.chunk, "updates": info.update, "elapsed_s": info.wall_s,
                    "config": config_to_dict(ctx.config)}
        if ctx.derived.episodic:  # each seed's counts (they depend on its episodes)
            progress["env_steps_by_seed"] = [int(r["env_steps"]) for r in info.rows]
            progress["updates_by_seed"] = [int(r["update"]) for r in info.rows]
        ctx.checkpoints.save(info.chunk, info.state, progress, info.mean_return)
