"""Experiment trackers (pgjax train --log ...): what each wrote, read back, equals metrics.csv.

Each backend's end-to-end test trains a tiny run (4 envs, 2 seeds, 4 chunks) that stops after
chunk 2, loses its chunk-2 checkpoint (so chunk 2, already logged, runs again) and resumes
to the end; the tracker must then hold every chunk once, equal to metrics.csv, and the final
evaluation equal to summary.json. A backend whose extra is not installed is skipped.
"""

import csv
import json
import math
import os
import shutil
import struct
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from pgjax.config import Config, ConfigError, config_from_dict
from pgjax.host import rundir, tracking
from pgjax.host.callbacks import ChunkInfo
from pgjax.host.config_io import RUNTIME_KEYS, with_logging

TINY = ["--set", "training.num_envs=4", "--set", "training.eval_episodes=4",
        "--set", "training.total_env_steps=3968", "--set", "training.num_chunks=4",
        "--seeds", "2"]


def _env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PGJAX_", "WANDB_", "MLFLOW_"))}
    return {**env, **extra}


def pgjax(cache, cwd, *args, env=None, prelude=""):
    code = f"{prelude}import sys; from pgjax.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "--cache-dir", str(cache), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=300,
                          env=env or _env())


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def expected_series(directory):
    """What every tracker must hold: {tag: {step: value}} from metrics.csv and summary.json."""
    table = rows(directory / "metrics.csv")
    out = defaultdict(dict)
    names = [k for k in table[0] if k not in rundir.FIXED_COLUMNS]
    for chunk in sorted({int(r["chunk"]) for r in table}):
        chunk_rows = [r for r in table if int(r["chunk"]) == chunk]
        least = min(int(r["env_steps"]) for r in chunk_rows)
        for name in names:
            values = [float(r[name]) for r in chunk_rows]
            for r, v in zip(chunk_rows, values):
                if math.isfinite(v):
                    out[f"{name}/seed_{r['seed']}"][int(r["env_steps"])] = v
            if any(math.isfinite(v) for v in values):
                out[f"{name}/mean"][least] = float(np.nanmean(values))
        out["wall_s"][least] = float(chunk_rows[0]["wall_s"])
    summary = json.loads((directory / "summary.json").read_text())
    for name, key in (("greedy_return", "eval_returns"), ("sampled_return", "eval_sampled_returns")):
        for seed, value in enumerate(summary[key]):
            out[f"eval/{name}/seed_{seed}"][summary["env_steps_by_seed"][seed]] = value
        out[f"eval/{name}/mean"][summary["env_steps_per_seed"]] = float(np.mean(summary[key]))
    return dict(out)


def assert_same_series(got, expected, rel=1e-6):
    """``got``: {tag: [(step, value), ...]} as the tracker stored them, in order."""
    assert set(got) == set(expected)
    for tag, points in got.items():
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), f"{tag}: a step logged twice: {steps}"
        assert dict(points).keys() == expected[tag].keys(), tag
        if tag == "wall_s":  # the clock: chunk 2's first run was logged, metrics.csv has its rerun
            continue
        for step, value in points:
            assert value == pytest.approx(expected[tag][step], rel=rel, abs=1e-6), (tag, step)


def train_interrupted_and_resumed(cache, work, name, backend, env):
    """Chunks 1-2, chunk 2's checkpoint lost, then --resume: chunk 2 runs (and is offered
    to the tracker) twice."""
    out = pgjax(cache, work, "train", *TINY, "--out", name, "--log", backend,
                env={**env, "PGJAX_STOP_AFTER_CHUNKS": "2"})
    assert out.returncode == 130, out.stdout[-3000:] + out.stderr[-3000:]
    directory = work / name
    shutil.rmtree(directory / "checkpoints" / "chunk_2")
    out = pgjax(cache, work, "train", "--resume", name, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "resuming after chunk 1/4" in out.stdout + out.stderr
    return directory


# ------------------------------------------------------------------ config and command line
def test_logging_backends_config():
    assert Config().logging.backends == ()
    config = config_from_dict({"logging": {"backends": ["wandb", "tensorboard"]}})
    assert config.logging.backends == ("wandb", "tensorboard")
    assert with_logging(config, ["mlflow", "wandb", "mlflow"]).logging.backends == (
        "wandb", "tensorboard", "mlflow")
    with pytest.raises(ConfigError, match=r"^logging\.backends: 'tensorbord': unknown backend; "
                                          r"did you mean tensorboard\?$"):
        config_from_dict({"logging": {"backends": ["tensorbord"]}})
    with pytest.raises(ConfigError, match="'wandb' is listed twice"):
        config_from_dict({"logging": {"backends": ["wandb", "wandb"]}})
    with pytest.raises(ConfigError, match="expected a list of strings"):
        config_from_dict({"logging": {"backends": "wandb"}})
    assert "logging.backends" in RUNTIME_KEYS  # a run may resume with other trackers


def test_backends_match_the_schema():
    from pgjax.schema import LOG_BACKENDS

    assert tuple(tracking.BACKENDS) == LOG_BACKENDS
    for name, cls in tracking.BACKENDS.items():
        assert cls.name == name and cls.module


def test_chunk_series_per_seed_and_mean_without_nan():
    rows_ = [dict(chunk=1, seed=0, update=3, env_steps=96, wall_s=1.5, episode_return=10.0,
                  loss=0.5),
             dict(chunk=1, seed=1, update=3, env_steps=100, wall_s=1.5, episode_return=math.nan,
                  loss=0.25)]
    info = ChunkInfo(1, 3, 3, 96, {}, rows_, 10.0, 1.5, 1.0, 0.0, None, None)
    series = {(tag, step): value for tag, step, value in tracking.chunk_series(info)}
    assert series == {("episode_return/seed_0", 96): 10.0, ("episode_return/mean", 96): 10.0,
                      ("loss/seed_0", 96): 0.5, ("loss/seed_1", 100): 0.25,
                      ("loss/mean", 96): 0.375, ("wall_s", 96): 1.5}


def test_tracker_files_do_not_count_as_a_started_run(tmp_path):
    (tmp_path / "config.yaml").write_text("")
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "trackers.json").write_text("{}")
    assert rundir.never_started(tmp_path)


def test_missing_extra_is_one_line_exit_2_and_nothing_written(cache, work):
    # As if tensorboardX were not installed: importing it raises ImportError.
    for backend, module in (("tensorboard", "tensorboardX"), ("wandb", "wandb"),
                            ("mlflow", "mlflow")):
        out = pgjax(cache, work, "train", *TINY, "--out", f"missing-{backend}", "--log", backend,
                    prelude=f"import sys; sys.modules[{module!r}] = None; ")
        assert out.returncode == 2, out.stderr
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1, out.stderr
        assert lines[0].startswith(f"pgjax train: error: --log {backend}: {module} is not "
                                   "installed")
        assert lines[0].endswith(f"pip install 'pgjax[{backend}]'")
        assert not (work / f"missing-{backend}").exists()
    # compare checks before it writes too
    out = pgjax(cache, work, "compare", "cartpole_a2c", *TINY, "--out", "missing-compare",
                "--log", "mlflow", prelude="import sys; sys.modules['mlflow'] = None; ")
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not (work / "missing-compare").exists()


def test_unknown_backend_is_one_line_exit_2(cache, work):
    out = pgjax(cache, work, "train", *TINY, "--out", "unknown", "--log", "tensorbord")
    assert out.returncode == 2
    assert out.stderr.strip() == ("pgjax train: error: logging.backends: 'tensorbord': unknown "
                                  "backend; did you mean tensorboard?")
    assert not (work / "unknown").exists()


def test_wandb_online_without_credentials_is_one_line_exit_2(cache, work, tmp_path):
    pytest.importorskip("wandb", reason="the wandb extra is not installed: "
                                        "pip install 'pgjax[wandb]'")
    env = _env(HOME=str(tmp_path), NETRC=str(tmp_path / "no-netrc"))
    out = pgjax(cache, work, "train", *TINY, "--out", "no-key", "--log", "wandb", env=env)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        "pgjax train: error: --log wandb: no W&B credentials (WANDB_API_KEY, or run "
        "`wandb login`); to log without an account set WANDB_MODE=offline"]
    assert not (work / "no-key").exists()


# ------------------------------------------------------------------ TensorBoard
def read_events(path):
    """The TFRecord file of tensorboardX's events, parsed with its own protobuf classes."""
    from tensorboardX.proto.event_pb2 import Event

    data, pos, events = path.read_bytes(), 0, []
    while pos < len(data):
        (length,) = struct.unpack("<Q", data[pos:pos + 8])
        events.append(Event.FromString(data[pos + 12:pos + 12 + length]))
        pos += 12 + length + 4  # length, its crc, the record, its crc
    return events


def tensorboard_series(directory):
    """tag -> [(step, value)] of every scalar in the run's TensorBoard event files."""
    got = defaultdict(list)
    for path in (directory / "tensorboard").glob("events.out.tfevents.*"):
        for event in read_events(path):
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    got[value.tag].append((event.step, value.simple_value))
    return got


def test_tensorboard_matches_metrics_csv_and_resumes_without_duplicates(cache, work):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed: "
                                               "pip install 'pgjax[tensorboard]'")
    directory = train_interrupted_and_resumed(cache, work, "tb", "tensorboard", _env())
    files = sorted((directory / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 2  # one per session, in the same directory
    got, plugins = defaultdict(list), set()
    for path in files:
        for event in read_events(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name:
                    plugins.add(value.metadata.plugin_data.plugin_name)
                if value.HasField("simple_value"):
                    got[value.tag].append((event.step, value.simple_value))
    assert_same_series(got, expected_series(directory), rel=1e-6)  # float32 in the file
    assert {"hparams", "text"} <= plugins  # the config as hyperparameters and as text
    state = json.loads((directory / "trackers.json").read_text())
    assert state["tensorboard"]["chunk"] == 4 and state["tensorboard"]["evaluated"]


# ------------------------------------------------------------------ Weights & Biases
def wandb_records(path):
    """The records of a .wandb file (a LevelDB-style log of 32 KiB blocks)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, pos, out, pending = 32768, 7, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
        elif kind == 0 and length == 0:  # zero padding to the end of the block
            pos += block - pos % block if pos % block else 0
    return [pb.Record.FromString(r) for r in out]


def test_wandb_offline_matches_metrics_csv_and_resumes_the_same_run(cache, work):
    pytest.importorskip("wandb", reason="the wandb extra is not installed: "
                                        "pip install 'pgjax[wandb]'")
    env = _env(WANDB_MODE="offline", WANDB_SILENT="true")
    directory = train_interrupted_and_resumed(cache, work, "wb", "wandb", env)
    run_id = json.loads((directory / "trackers.json").read_text())["wandb"]["id"]
    sessions = sorted((directory / "wandb").glob(f"offline-run-*-{run_id}"))
    assert len(sessions) == 2  # `wandb sync` appends both to run run_id
    got, steps, config = defaultdict(list), [], None
    for session in sessions:
        for record in wandb_records(session / f"run-{run_id}.wandb"):
            kind = record.WhichOneof("record_type")
            if kind == "run" and record.run.config.update:
                config = {i.key: json.loads(i.value_json) for i in record.run.config.update}
            if kind != "history":
                continue
            items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                     for i in record.history.item}
            steps.append(record.history.step.num)
            for tag, value in items.items():
                if tag.startswith("_") or tag.startswith("env_steps"):
                    continue
                axis = f"env_steps/seed_{tag.rsplit('/seed_', 1)[1]}" if "/seed_" in tag \
                    else "env_steps"
                got[tag].append((items[axis], value))
    assert steps == [1, 2, 3, 4, 5]  # W&B's step: the chunk (5: the final evaluation)
    assert_same_series(got, expected_series(directory))
    assert config["algorithm"]["name"] == "a2c"  # config.yaml's sections, as wandb.config
    assert config["training"]["num_envs"] == 4


# ------------------------------------------------------------------ MLflow
def test_mlflow_store_matches_metrics_csv_and_resumes_the_same_run(cache, work):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed: "
                                         "pip install 'pgjax[mlflow]'")
    from mlflow.tracking import MlflowClient

    directory = train_interrupted_and_resumed(cache, work, "ml", "mlflow", _env())
    run_id = json.loads((directory / "trackers.json").read_text())["mlflow"]["run_id"]
    client = MlflowClient("sqlite:///" + str((directory / "mlflow.db").resolve()))
    (run,) = client.search_runs([client.get_experiment_by_name("pgjax").experiment_id])
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert run.data.params["algorithm.gamma"] == "0.99"
    assert run.data.params["training.num_envs"] == "4"
    got = {key: [(m.step, m.value) for m in client.get_metric_history(run_id, key)]
           for key in run.data.metrics}
    assert_same_series(got, expected_series(directory))


def test_compare_logs_each_variant(cache, work):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed: "
                                               "pip install 'pgjax[tensorboard]'")
    out = pgjax(cache, work, "compare", "cartpole_a2c", "cartpole_a2c", *TINY, "--out", "cmp",
                "--log", "tensorboard")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert json.loads((work / "cmp" / "compare-request.json").read_text())["log"] == [
        "tensorboard"]
    for label in ("cartpole_a2c", "cartpole_a2c-2"):
        directory = work / "cmp" / label
        assert "tensorboard" in (directory / "config.yaml").read_text()
        got = tensorboard_series(directory)
        assert_same_series(got, expected_series(directory))


def test_sweep_logs_each_program(cache, work):
    pytest.importorskip("tensorboardX", reason="the tensorboard extra is not installed: "
                                               "pip install 'pgjax[tensorboard]'")
    out = pgjax(cache, work, "sweep", "cartpole_a2c", *TINY, "--grid",
                "optimizer.actor_lr=1e-3,3e-3", "--out", "swp", "--log", "tensorboard")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert json.loads((work / "swp" / "sweep-request.json").read_text())["log"] == [
        "tensorboard"]
    directory = work / "swp" / "program-1"  # 2 points x 2 seeds: 4 runs, logged as seeds
    got = tensorboard_series(directory)
    assert "episode_return/seed_3" in got
    assert_same_series(got, expected_series(directory))


def test_sweep_missing_extra_is_one_line_exit_2(cache, work):
    out = pgjax(cache, work, "sweep", "cartpole_a2c", *TINY, "--grid",
                "optimizer.actor_lr=1e-3,3e-3", "--out", "swp-missing", "--log", "mlflow",
                prelude="import sys; sys.modules['mlflow'] = None; ")
    assert out.returncode == 2, out.stdout[-3000:] + out.stderr[-3000:]
    assert "pgjax[mlflow]" in out.stderr and not (work / "swp-missing").exists()
