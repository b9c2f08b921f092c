"""Experiment trackers as host-loop callbacks: TensorBoard, Weights & Biases, MLflow.

``pgjax train --log tensorboard --log wandb --log mlflow`` (or ``logging.backends`` in the
config) sends what metrics.csv gets to each tracker as well: after every chunk, each metric
of metrics.csv as one series per seed (``episode_return/seed_0``, ...; step: that seed's env
steps) and the mean over seeds (``episode_return/mean``; step: env steps per seed, the least
of any seed), ``wall_s``; when the run completes, the final evaluation
(``eval/greedy_return/...``, ``eval/sampled_return/...``, the same series); and, when a tracker's
run starts, the resolved config as hyperparameters (``algorithm.gamma``, ...). A value that is
NaN in metrics.csv (no episode ended in the chunk) is left out.

Each backend is an optional extra, imported only when used:

================  =========================  ============================================
backend           install                    where it writes
================  =========================  ============================================
``tensorboard``   ``pgjax[tensorboard]``     ``RUN/tensorboard/`` (tensorboardX event files)
``wandb``         ``pgjax[wandb]``           W&B, by its own environment variables
                                             (``WANDB_MODE=offline``, ``WANDB_PROJECT``,
                                             ...); its files in ``RUN/wandb/`` unless
                                             ``WANDB_DIR`` is set
``mlflow``        ``pgjax[mlflow]``          ``$MLFLOW_TRACKING_URI``, else a SQLite store in
                                             the run directory (``RUN/mlflow.db``: MLflow 3
                                             refuses its old ``mlruns/`` file store)
================  =========================  ============================================

:func:`check_backends` runs before a command writes anything: a missing extra, W&B without
credentials outside offline mode, or an MLflow server that does not answer is one line and
exit code 2. A tracker that fails later, while the run trains, is reported once and dropped:
training and metrics.csv go on.

A resumed run continues the same tracker run: ``RUN/trackers.json`` keeps each tracker's
run id (W&B, MLflow) and the last chunk it logged, and chunks up to that one are not
logged again (a chunk that ran after the resumed checkpoint runs again, with the same
numbers), so no step appears twice. A run trained again from its start (``--restart``, or a
run directory that never reached a checkpoint) starts new tracker runs, and its TensorBoard
event files are replaced.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import netrc
import os
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from pgjax.config import config_to_dict
from pgjax.host.callbacks import Callback, ChunkInfo, RunContext, RunEnd
from pgjax.host.errors import RunError
from pgjax.host.rundir import FIXED_COLUMNS, write_json

STATE_FILE = "trackers.json"  # in the run directory: each tracker's run id and last chunk
COMPARE_REQUEST = "compare-request.json"  # pgjax.host.compare's: a run inside a comparison
SWEEP_REQUEST = "sweep-request.json"  # pgjax.host.sweep's: a program of a sweep


def check_backends(backends) -> None:
    """Checks, before anything is written, that every backend can start.

    Raises:
      RunError: one line naming the backend and what to do (the extra to install, the
        credentials or server it needs).
    """
    for name in backends:
        BACKENDS[name].check()


def trackers_for(backends) -> list[Tracker]:
    """One new callback per backend name (``logging.backends``), in that order."""
    return [BACKENDS[name]() for name in backends]


class ConfigTrackers(Callback):
    """The trackers of the run's ``logging.backends``, built when the run starts; in
    :func:`pgjax.host.loop.default_callbacks`, so every run logs where its config says."""

    def __init__(self):
        self.trackers: list[Tracker] = []

    def on_start(self, ctx: RunContext) -> None:
        self.trackers = trackers_for(ctx.config.logging.backends)
        for tracker in self.trackers:
            tracker.on_start(ctx)

    def on_chunk(self, ctx: RunContext, info: ChunkInfo) -> None:
        for tracker in self.trackers:
            tracker.on_chunk(ctx, info)

    def on_end(self, ctx: RunContext, end: RunEnd) -> None:
        for tracker in self.trackers:
            tracker.on_end(ctx, end)

    def on_error(self, ctx: RunContext, error: BaseException) -> None:
        for tracker in self.trackers:
            tracker.on_error(ctx, error)


# ------------------------------------------------------------------ what is logged
Series = list[tuple[str, int, float]]  # (tag, step, value)


def chunk_series(info: ChunkInfo) -> Series:
    """A chunk's metrics.csv rows as series: each metric per seed and the mean over seeds."""
    rows = info.rows
    out: Series = []
    names = [k for k in rows[0] if k not in FIXED_COLUMNS]
    for name in names:
        values = np.array([float(r[name]) for r in rows])
        for seed, (row, value) in enumerate(zip(rows, values)):
            if math.isfinite(value):
                out.append((f"{name}/seed_{seed}", int(row["env_steps"]), float(value)))
        if np.isfinite(values).any():
            out.append((f"{name}/mean", info.env_steps, float(np.nanmean(values))))
    out.append(("wall_s", info.env_steps, float(rows[0]["wall_s"])))
    return out


def evaluation_series(end: RunEnd) -> Series:
    """The final evaluation (greedy and sampled return) per seed and its mean over seeds."""
    out: Series = []
    steps = end.summary["env_steps_by_seed"]
    for name, returns in zip(("greedy_return", "sampled_return"), end.evaluation):
        for seed, value in enumerate(np.asarray(returns, np.float64)):
            out.append((f"eval/{name}/seed_{seed}", int(steps[seed]), float(value)))
        out.append((f"eval/{name}/mean", int(end.summary["env_steps_per_seed"]),
                    float(np.mean(returns))))
    return out


def hyperparameters(config) -> dict[str, bool | int | float | str]:
    """The resolved config as flat ``section.key`` scalars (lists and null as JSON text)."""
    out = {}
    for section, body in config_to_dict(config).items():
        for key, value in body.items():
            if not isinstance(value, (bool, int, float, str)):
                value = json.dumps(value)
            out[f"{section}.{key}"] = value
    return out


def run_name(directory: Path) -> tuple[str, str | None]:
    """The tracker run's name (the run directory's; ``COMPARE/VARIANT`` in a comparison,
    ``SWEEP/program-<i>`` in a sweep) and its group (that directory's name, or None)."""
    parent = directory.resolve().parent
    if any((parent / name).is_file() for name in (COMPARE_REQUEST, SWEEP_REQUEST)):
        return f"{parent.name}/{directory.name}", parent.name
    return directory.resolve().name, None


def one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:297] + "..."


# ------------------------------------------------------------------ the trackers
class Tracker(Callback):
    """A tracker: the common bookkeeping; a backend says how to start, write and close.

    Subclasses set ``name`` and ``module`` (what the extra installs) and implement
    :meth:`start` (return what a resumed run needs to find the tracker run again),
    :meth:`hyperparameters`, :meth:`write` and :meth:`close`. They may be passed to
    :func:`pgjax.host.loop.train_run` directly (``callbacks=[*default_callbacks(),
    TensorBoard()]``); only process 0 of a multi-host run logs.
    """

    name = ""
    module = ""

    def __init__(self):
        self.active = False
        self.logged = 0  # the last chunk this tracker's run holds
        self.evaluated = False
        self.directory: Path | None = None

    # --- what a backend implements
    @classmethod
    def check(cls) -> None:
        """Raises RunError if the backend cannot start (default: its package is missing)."""
        cls.load()

    @classmethod
    def load(cls):
        try:
            return importlib.import_module(cls.module)
        except ImportError as error:
            raise RunError(f"--log {cls.name}: {cls.module} is not installed ({one_line(error)}); "
                           f"install it with: pip install 'pgjax[{cls.name}]'") from None

    def start(self, ctx: RunContext, saved: dict | None) -> dict:
        raise NotImplementedError

    def hyperparameters(self, ctx: RunContext, params: dict) -> None:
        raise NotImplementedError

    def write(self, series: Series, chunk: int) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        pass

    def close(self, status: str, exit_code: int) -> None:
        raise NotImplementedError

    # --- the callback
    def on_start(self, ctx: RunContext) -> None:
        if not ctx.primary:
            return
        self.directory = ctx.directory
        saved = _read_state(ctx.directory).get(self.name) if ctx.start_chunk > 0 else None
        if saved is not None and not isinstance(saved, dict):
            saved = None
        try:
            state = self.start(ctx, saved)
        except RunError:
            raise
        except Exception as error:  # noqa: BLE001  (the backend's own errors, as one line)
            raise RunError(f"--log {self.name}: could not start: {one_line(error)}") from None
        self.active = True
        resumed = saved is not None and state.get("resumed", True)
        state.pop("resumed", None)
        self.logged = min(int(saved.get("chunk", 0)), ctx.derived.num_chunks) if resumed else 0
        self.evaluated = bool(saved.get("evaluated")) if resumed else False
        self.state = state
        if not resumed:
            self._guard(ctx, self.hyperparameters, ctx, hyperparameters(ctx.config))
        self._save()

    def on_chunk(self, ctx: RunContext, info: ChunkInfo) -> None:
        if not self.active or info.chunk <= self.logged:
            return  # logged by an earlier session, with the same numbers
        if self._guard(ctx, self._write, chunk_series(info), info.chunk):
            self.logged = info.chunk
            self._save()

    def on_end(self, ctx: RunContext, end: RunEnd) -> None:
        if not self.active:
            return
        if end.evaluation is not None and not self.evaluated:
            if self._guard(ctx, self._write, evaluation_series(end), ctx.derived.num_chunks + 1):
                self.evaluated = True
                self._save()
        self._guard(ctx, self.close, end.status, end.exit_code)
        self.active = False

    def on_error(self, ctx: RunContext, error: BaseException) -> None:
        if self.active:
            self.active = False
            try:
                self.close("failed", 1)
            except Exception:  # noqa: BLE001  (the run's own error is the one to report)
                pass

    def _write(self, series: Series, chunk: int) -> None:
        self.write(series, chunk)
        self.flush()

    def _guard(self, ctx: RunContext, fn, *args) -> bool:
        """Runs a backend call; a failure is reported once and the tracker dropped."""
        try:
            fn(*args)
            return True
        except Exception as error:  # noqa: BLE001  (training goes on; metrics.csv has it all)
            self.active = False
            ctx.say(f"warning: --log {self.name}: {one_line(error)}; no longer logging to "
                    f"{self.name} in this session (metrics.csv has every chunk)")
            try:
                self.close("failed", 1)
            except Exception:  # noqa: BLE001
                pass
            return False

    def _save(self) -> None:
        data = _read_state(self.directory)
        data[self.name] = {**self.state, "chunk": self.logged, "evaluated": self.evaluated}
        write_json(self.directory / STATE_FILE, data)


def _read_state(directory: Path) -> dict:
    try:
        data = json.loads((directory / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class TensorBoard(Tracker):
    """TensorBoard event files in ``RUN/tensorboard/``, written by tensorboardX
    (``tensorboard --logdir RUN/tensorboard``; several runs: ``--logdir runs``)."""

    name, module = "tensorboard", "tensorboardX"
    SUBDIR = "tensorboard"

    def start(self, ctx, saved):
        tbx = self.load()
        logdir = ctx.directory / self.SUBDIR
        if saved is None and logdir.exists():  # a new run in this directory: its own events
            shutil.rmtree(logdir)
        self.writer = tbx.SummaryWriter(logdir=str(logdir), flush_secs=30)
        return {}

    def hyperparameters(self, ctx, params):
        from tensorboardX.summary import hparams  # noqa: PLC0415

        metrics = {"eval/greedy_return/mean": math.nan, "eval/sampled_return/mean": math.nan,
                   "episode_return/mean": math.nan}
        experiment, start, self._session_end = hparams(params, metrics)
        self.writer.file_writer.add_summary(experiment)
        self.writer.file_writer.add_summary(start)
        text = "\n".join(f"    {k}: {v}" for k, v in params.items())  # markdown code block
        self.writer.add_text("config", text, 0)

    def write(self, series, chunk):
        for tag, step, value in series:
            self.writer.add_scalar(tag, value, step)

    def flush(self):
        self.writer.flush()

    def close(self, status, exit_code):
        end = getattr(self, "_session_end", None)
        if end is not None and status == "complete":
            self.writer.file_writer.add_summary(end)
        self.writer.close()


class WandB(Tracker):
    """A Weights & Biases run, configured by W&B's environment variables (``WANDB_MODE``,
    ``WANDB_PROJECT`` (default ``pgjax``), ``WANDB_ENTITY``, ``WANDB_DIR`` (default the run
    directory), ...). Each series' x-axis is env steps (``env_steps``, and
    ``env_steps/seed_<i>`` for seed i's series); W&B's own step is the chunk."""

    name, module = "wandb", "wandb"
    OFFLINE = ("offline", "dryrun", "disabled")

    @classmethod
    def check(cls):
        cls.load()
        if os.environ.get("WANDB_MODE", "").lower() in cls.OFFLINE:
            return
        if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
            return
        host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
        try:
            path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
            if netrc.netrc(path).authenticators(host or ""):
                return
        except (OSError, netrc.NetrcParseError):
            pass
        raise RunError("--log wandb: no W&B credentials (WANDB_API_KEY, or run `wandb login`); "
                       "to log without an account set WANDB_MODE=offline")

    def start(self, ctx, saved):
        wandb = self.load()
        name, group = run_name(ctx.directory)
        run_id = saved.get("id") if saved else None
        kwargs: dict[str, Any] = {}
        if not os.environ.get("WANDB_PROJECT"):
            kwargs["project"] = "pgjax"
        if not os.environ.get("WANDB_DIR"):
            kwargs["dir"] = str(ctx.directory.resolve())
        self.run = wandb.init(
            id=run_id, resume="allow" if run_id else None, name=name, group=group,
            config=config_to_dict(ctx.config), reinit="create_new",
            settings=wandb.Settings(console="off", silent=True), **kwargs)
        self.defined: set[str] = set()
        self.run.define_metric("env_steps", hidden=True)
        offline = getattr(self.run.settings, "_offline", False)
        where = self.run.dir if offline else (self.run.url or self.run.dir)
        ctx.say(f"wandb: run {self.run.name} ({self.run.id}, "
                f"{'offline' if offline else 'online'}): {where}")
        return {"id": self.run.id, "resumed": run_id is not None}

    def hyperparameters(self, ctx, params):
        pass  # the config went to wandb.init (nested, as config.yaml)

    def write(self, series, chunk):
        data: dict[str, float] = {}
        for tag, step, value in series:
            axis = "env_steps"
            if "/seed_" in tag:
                axis = f"env_steps/seed_{tag.rsplit('/seed_', 1)[1]}"
            if tag not in self.defined:
                if axis not in self.defined:
                    self.run.define_metric(axis, hidden=True)
                    self.defined.add(axis)
                self.run.define_metric(tag, step_metric=axis)
                self.defined.add(tag)
            data[axis] = max(data.get(axis, 0), step)
            data[tag] = value
        self.run.log(data, step=chunk)

    def close(self, status, exit_code):
        self.run.finish(exit_code=exit_code)


class MLflow(Tracker):
    """An MLflow run in experiment ``$MLFLOW_EXPERIMENT_NAME`` (default ``pgjax``) of the
    store at ``$MLFLOW_TRACKING_URI``, else a SQLite store in the run directory
    (``mlflow ui --backend-store-uri sqlite:///RUN/mlflow.db``)."""

    name, module = "mlflow", "mlflow"
    STORE = "mlflow.db"

    @classmethod
    def check(cls):
        cls.load()
        uri = os.environ.get("MLFLOW_TRACKING_URI", "")
        if urlparse(uri).scheme not in ("http", "https"):
            return
        from mlflow.tracking import MlflowClient  # noqa: PLC0415

        old = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES",
                                              "MLFLOW_HTTP_REQUEST_TIMEOUT")}
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        try:
            MlflowClient(uri).search_experiments(max_results=1)
        except Exception as error:  # noqa: BLE001
            raise RunError(f"--log mlflow: the MLflow server at MLFLOW_TRACKING_URI={uri} "
                           f"does not answer: {one_line(error)}") from None
        finally:
            for key, value in old.items():
                if value is None:
                    os.environ.pop(key, None)

    def start(self, ctx, saved):
        self.load()
        from mlflow.tracking import MlflowClient  # noqa: PLC0415

        uri = os.environ.get("MLFLOW_TRACKING_URI")
        local = not uri
        if local:
            uri = "sqlite:///" + str((ctx.directory / self.STORE).resolve())
        quiet = [logging.getLogger(n) for n in ("mlflow", "alembic")]
        levels = [q.level for q in quiet]
        for q in quiet:  # the store's first use logs its table creation
            q.setLevel(logging.WARNING)
        try:
            self.client = MlflowClient(uri)
            experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "pgjax"
            found = self.client.get_experiment_by_name(experiment)
        finally:
            for q, level in zip(quiet, levels):
                q.setLevel(level)
        run_id = saved.get("run_id") if saved else None
        if run_id is not None:
            try:
                self.client.get_run(run_id)
            except Exception:  # noqa: BLE001  (moved store, other URI): a new run
                ctx.say(f"warning: --log mlflow: run {run_id} is not in {uri}; starting a new "
                        "MLflow run")
                run_id = None
        if run_id is None:
            if found is None:
                artifacts = (ctx.directory / "mlflow-artifacts").resolve().as_uri() if local \
                    else None
                experiment_id = self.client.create_experiment(experiment,
                                                              artifact_location=artifacts)
            else:
                experiment_id = found.experiment_id
            name, group = run_name(ctx.directory)
            tags = {"pgjax.run_directory": str(ctx.directory.resolve())}
            if group:
                tags["pgjax.compare"] = group
            run_id = self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
            resumed = False
        else:
            self.client.update_run(run_id, status="RUNNING")
            resumed = True
        self.run_id = run_id
        ctx.say(f"mlflow: run {run_id} in {uri}")
        return {"run_id": run_id, "resumed": resumed}

    def hyperparameters(self, ctx, params):
        from mlflow.entities import Param  # noqa: PLC0415

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[i:i + 100])

    def write(self, series, chunk):
        from mlflow.entities import Metric  # noqa: PLC0415

        now = int(time.time() * 1000)
        items = [Metric(tag, value, now, step) for tag, step, value in series]
        for i in range(0, len(items), 1000):  # at most 1000 metrics per batch
            self.client.log_batch(self.run_id, metrics=items[i:i + 1000])

    def close(self, status, exit_code):
        state = {"complete": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
        self.client.set_terminated(self.run_id, state)


BACKENDS: dict[str, type[Tracker]] = {t.name: t for t in (TensorBoard, WandB, MLflow)}
