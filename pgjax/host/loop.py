"""The host loop behind ``pgjax train``: compiled chunks, signals and callbacks between them.

:func:`train_run` compiles the run's programs (:mod:`pgjax.host.programs`), initialises the
state (or restores the latest checkpoint, on resume), then runs ``derived.num_chunks``
compiled chunks. Between chunks, and only there, it checks the numbers are finite and hands
each chunk to its callbacks (:mod:`pgjax.host.callbacks`): by default metrics.csv,
checkpoints, the progress display and the summary (the run directory's files are
:mod:`pgjax.host.rundir`'s). A new logger is one more callback::

    train_run(directory, trainer, label="demo", callbacks=[*default_callbacks(), MyLogger()])

A checkpoint holds the whole vmapped ``TrainState`` and the host's progress, so ``--resume``
continues exactly: the same compiled chunk on the same bits, ending with bit-identical
parameters and metrics (on one backend). Rows of ``metrics.csv`` past the latest checkpoint
are dropped on resume.

SIGINT or SIGTERM during a chunk stops the run after it, with a checkpoint (exit 130 or
143); a second Ctrl-C aborts at once. Outside a chunk (compilation, restoring, the final
evaluation) the run stops at once, with the same codes: nothing is lost there but time.
Either way the last line says what was kept and the command that continues. A chunk with a non-finite metric or parameter stops the
run (exit 1); its rows are written, its state is not saved, and the last finite checkpoint
stays.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede any computation)
from pgjax.host import distributed
from pgjax.host.callbacks import Callback, ChunkInfo, MetricsCSV, RunContext, RunEnd
from pgjax.host.callbacks import SaveCheckpoints
from pgjax.host.checks import chunk_lengths, first_non_finite
from pgjax.host.display import ProgressDisplay, steps_text
from pgjax.host.distributed import say
from pgjax.host.errors import Interrupted, RunError, StorageError, exit_code_of
from pgjax.host.programs import compile_programs, per_seed_returns, progress_by_seed
from pgjax.host.rundir import Checkpoints, chunk_rows
from pgjax.host.summary import Summary
from pgjax.host.tracking import ConfigTrackers

EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number


def default_callbacks() -> list[Callback]:
    """What ``pgjax train`` runs with, in order: metrics.csv, checkpoints, progress, summary,
    and the experiment trackers of the run's ``logging.backends`` (:mod:`pgjax.host.tracking`;
    none by default)."""
    return [MetricsCSV(), SaveCheckpoints(), ProgressDisplay(), Summary(), ConfigTrackers()]


class StopRequest:
    """SIGINT/SIGTERM set a flag read between chunks; a second SIGINT aborts at once."""

    def __init__(self, say: Callable[[str], None]):
        self.signum: int | None = None
        self._say = say
        self._old: dict[int, Any] = {}

    def _handle(self, signum, frame):
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum
        self._say(f"{signal.Signals(signum).name}: finishing the current chunk and "
                  "saving a checkpoint (Ctrl-C again to abort)")

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._old[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._old.items():
            signal.signal(signum, handler)


class Result(NamedTuple):
    status: str  # "complete", "interrupted" or "diverged"
    exit_code: int
    summary: dict


def _stop_after() -> int | None:
    value = os.environ.get("PGJAX_STOP_AFTER_CHUNKS")  # test hook: act as if Ctrl-C came
    return int(value) if value else None


def train_run(directory: Path, trainer, *, label: str, resumed: bool = False,
              memory_note: str | None = None,
              callbacks: Sequence[Callback] | None = None,
              resume_hint: str | None = None, runs=None) -> Result:
    """Trains (or continues) the run in ``directory`` whose config.yaml is written.

    Args:
      directory: the run directory.
      trainer: ``make_train(config)``'s :class:`pgjax.train.Trainer`.
      label: the run's name for people (the progress bar's).
      resumed: continue from the latest checkpoint in ``directory`` (a new run if none).
      memory_note: a line printed first (the memory estimate).
      callbacks: called between chunks, in order (:mod:`pgjax.host.callbacks`); default
        :func:`default_callbacks`.
      resume_hint: the command that continues the run, printed when it stops early
        (default ``pgjax train --resume DIRECTORY``).
      runs: a :class:`pgjax.host.programs.RunBatch` of ``training.num_seeds`` runs with
        their own keys and hyperparameters (``pgjax sweep``); None: the config's seeds.

    Returns:
      A :class:`Result`: status, exit code (0; 1 diverged; 130 or 143 interrupted) and the
      summary (``RunEnd.summary`` as the callbacks left it; {} when stopped before a chunk).

    Raises:
      RunError: ``resumed`` and no checkpoint of the run can be read.
      StorageError: a run file could not be written (the checkpoints saved before stay).
    """
    import jax  # noqa: PLC0415

    callbacks = default_callbacks() if callbacks is None else list(callbacks)
    config, derived = trainer.config, trainer.derived
    seeds = config.training.num_seeds
    hint = resume_hint or f"pgjax train --resume {directory}"
    unit = "seed" if runs is None else "run"
    checkpoints = Checkpoints(directory / "checkpoints", warn=say)  # every process restores
    if memory_note:
        say(memory_note)
    if not derived.episodic and config.training.total_env_steps != derived.env_steps:
        say(f"training.total_env_steps {config.training.total_env_steps:,} is not a multiple of "
            f"{derived.steps_per_update:,} env steps per update: running "
            f"{derived.num_updates:,} updates = {derived.env_steps:,} env steps")
    phase = "compilation"
    try:
        each = (f"whole episodes, up to {derived.steps_per_update:,} env steps each; chunks "
                f"end at every {derived.chunk_target(1):,} env steps taken" if derived.episodic
                else f"{derived.steps_per_update:,} env steps each")
        say(f"compiling {config.algorithm.name} on {config.env.name}: {seeds} {unit}(s) x "
            f"{derived.num_chunks} chunks of {chunk_lengths(derived)} updates ({each})")
        programs = compile_programs(trainer, seeds, runs=runs)
        say(f"compiled in {programs.compile_s:.1f} s")
        phase = "restoring the checkpoint"
        restored = checkpoints.restore_good(programs.abstract) if resumed else None
        if restored is None:
            if resumed and checkpoints.steps():
                raise RunError(f"--resume {directory}: no checkpoint in {checkpoints.directory} "
                               "can be read; start again with: pgjax train --resume "
                               f"{directory} --restart")
            phase = "initialisation"
            state, done, elapsed = programs.init(programs.keys), 0, 0.0
        else:
            state, progress, done = restored
            elapsed = float(progress["elapsed_s"])
            dropped = checkpoints.drop_after(done)
            if dropped:
                say(f"removed damaged checkpoint(s) {', '.join(f'chunk_{c}' for c in dropped)}; "
                    f"chunks {done + 1}.. run again")
        # Per seed, on the host: an episodic algorithm's counts come with its checkpoints.
        steps_done, updates_done = progress_by_seed(derived, seeds, done,
                                                    progress if restored else None)
        if restored is not None:
            say(f"resuming after chunk {done}/{derived.num_chunks} ({steps_text(steps_done)})")
    except KeyboardInterrupt as stop:  # Interrupted too (SIGTERM)
        return _stopped_early(stop, phase, checkpoints, hint)
    ctx = RunContext(directory, trainer, label, programs, checkpoints, start_chunk=done,
                     start_elapsed_s=elapsed, primary=distributed.is_primary(), unit=unit)
    status, message, session_steps, session_s = "complete", "", 0, 0.0
    stop_after, ran = _stop_after(), 0
    try:
        for callback in callbacks:
            callback.on_start(ctx)
        with StopRequest(ctx.say) as stop:
            for chunk in range(done + 1, derived.num_chunks + 1):
                start = time.perf_counter()
                seed_updates = None  # updates each seed ran: all `updates` unless episodic
                if derived.episodic:  # until each seed has taken the chunk's env steps
                    new_state, metrics, finite = programs.chunk(state,
                                                                derived.chunk_target(chunk))
                    metrics, finite = jax.device_get((metrics, finite))
                    # Every update takes env steps; the rows after a seed's last are padding.
                    taken = np.asarray(metrics["env_steps_taken"], np.int64)
                    seed_updates = (taken > 0).sum(axis=1)
                    updates = int(seed_updates.max())
                    first_update, update = updates_done, updates_done + seed_updates
                    steps_before, steps_after = steps_done, steps_done + taken.sum(axis=1)
                else:
                    updates = derived.chunk_updates(chunk)
                    new_state, metrics, finite = programs.chunk(state, updates)
                    metrics, finite = jax.device_get((metrics, finite))
                    first_update = derived.updates_after(chunk - 1)
                    update = first_update + updates
                    steps_before = np.full(seeds, first_update * derived.steps_per_update)
                    steps_after = np.full(seeds, update * derived.steps_per_update)
                metrics = {name: values[:, :updates] for name, values in metrics.items()}
                wall = elapsed + session_s + (time.perf_counter() - start)
                rows = chunk_rows(metrics, chunk=chunk, update=update, env_steps=steps_after,
                                  wall_s=wall, ran=seed_updates)
                problem = first_non_finite(metrics, np.asarray(finite), first_update,
                                           seed_updates)
                returns = np.array([r["episode_return"] for r in rows])
                mean_return = float(np.nanmean(returns)) if np.isfinite(returns).any() else math.nan
                steps = session_steps + int((steps_after - steps_before).sum())
                rate = steps / max(session_s + (time.perf_counter() - start), 1e-9)
                left = np.maximum(derived.env_steps - steps_after, 0).sum()
                eta = float(left) / max(rate, 1e-9)
                if problem is None:
                    state = new_state
                # Every seed has taken at least this many env steps (episodic: the seeds'
                # counts differ by less than an update; metrics.csv has each).
                info = ChunkInfo(chunk, updates, int(np.max(update)), int(steps_after.min()),
                                 metrics, rows, mean_return, wall, rate, eta,
                                 state=None if problem else state, problem=problem)
                for callback in callbacks:  # metrics.csv first: a diverged chunk's rows too
                    callback.on_chunk(ctx, info)
                if problem:
                    status = "diverged"
                    kept = checkpoints.latest()
                    message = (f"training stopped: {problem}; kept the last finite checkpoint "
                               + (f"(chunk {kept})" if kept else "(none: the first chunk failed)"))
                    break
                session_s += time.perf_counter() - start
                session_steps, steps_done, updates_done = steps, steps_after, update
                done, ran = chunk, ran + 1
                if chunk < derived.num_chunks and (stop.signum or ran == stop_after):
                    status = "interrupted"
                    signum = stop.signum or signal.SIGINT
                    message = (f"{signal.Signals(signum).name}: stopped after chunk {chunk}/"
                               f"{derived.num_chunks}, checkpoint saved; continue with: "
                               f"{hint}")
                    break
    except BaseException as error:
        for callback in callbacks:
            callback.on_error(ctx, error)
        kept = checkpoints.latest()
        kept = f"checkpoint chunk_{kept}" if kept else "no checkpoint"
        if isinstance(error, KeyboardInterrupt):  # a second Ctrl-C: the last checkpoint stays
            say(f"aborted; kept {kept}; continue with: {hint}")
        elif isinstance(error, StorageError):
            say(f"kept {kept}; once the path is writable (space, permissions), continue "
                f"with: {hint}")
        raise
    elapsed += session_s
    code = {"complete": 0, "diverged": 1}.get(status)
    if code is None:
        code = EXIT_SIGNAL[stop.signum or signal.SIGINT]
    final_state = state if status == "complete" else None
    evaluation = None
    if final_state is not None and programs.evaluate is not None:
        try:
            if stop.signum is not None:  # came during the last chunk: stop before evaluating
                raise Interrupted(stop.signum)
            if os.environ.get("PGJAX_SIGTERM_IN_EVALUATION"):  # test hook: SIGTERM comes now
                os.kill(os.getpid(), signal.SIGTERM)
            evaluation = per_seed_returns(programs.evaluate(final_state, programs.keys))
        except KeyboardInterrupt as stop:
            for callback in callbacks:
                callback.on_error(ctx, stop)
            return _stopped_early(stop, "the final evaluation", checkpoints, hint)
    steps_by_seed = steps_done
    summary: dict[str, Any] = {
        "status": status, "env": config.env.name, "algorithm": config.algorithm.name,
        "seeds": seeds, "chunks_done": done, "num_chunks": derived.num_chunks,
        # env steps taken: the least of any seed (episodic: each seed's count, in
        # env_steps_by_seed, ends less than one update past the budget)
        "env_steps_per_seed": int(steps_by_seed.min()),
        "env_steps_by_seed": steps_by_seed.tolist(),
        "total_env_steps_per_seed": derived.env_steps, "wall_s": round(elapsed, 3),
        "compile_s": round(programs.compile_s, 3),
        "steps_per_s": round(session_steps / session_s, 1) if session_s > 0 else None,
        "latest_checkpoint": checkpoints.latest(), "best_checkpoint": checkpoints.best(),
    }
    end = RunEnd(status, code, message, done, elapsed, final_state, evaluation, summary)
    with StopRequest(lambda _: None):  # the closing files are short: finish them
        for callback in callbacks:
            callback.on_end(ctx, end)
    checkpoints.close()
    if message:
        say(message)
    return Result(status, code, summary)


def _stopped_early(stop: KeyboardInterrupt, phase: str, checkpoints: Checkpoints,
                   hint: str) -> Result:
    """A signal outside a chunk: nothing was lost but time; say what is kept and how to go on."""
    signum = getattr(stop, "signum", signal.SIGINT)
    kept = checkpoints.latest()
    what = (f"checkpoint chunk_{kept} is kept" if kept else
            "no checkpoint yet (the run directory can be reused as it is)")
    say(f"{signal.Signals(signum).name} during {phase}: stopped; {what}; continue with: {hint}")
    return Result("interrupted", exit_code_of(signum), {})

