"""The host loop's callbacks: a logger is one class in a list, and it sees every chunk.

In-process, with a tiny config (2 seeds x 4 chunks of 31 updates): a recording callback
after the default ones checks what ``on_start``, ``on_chunk`` and ``on_end`` receive against
the files the default callbacks wrote; a diverged run reaches ``on_chunk`` with its problem
and no state; an exception in a callback reaches every ``on_error`` and propagates.
"""

import csv
import json

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede gymnax)
import numpy as np
import pytest

from pgjax.config import save_config
from pgjax.host import Callback, default_callbacks, train_run
from pgjax.host.checks import build_trainer
from pgjax.host.config_io import read_config, resolve_config_path
from pgjax.host.rundir import Checkpoints

TINY = ["training.num_envs=4", "training.eval_episodes=4", "training.total_env_steps=3968",
        "training.num_chunks=4"]


class Recorder(Callback):
    """A logger: keeps what it is handed, in order."""

    def __init__(self):
        self.calls = []

    def on_start(self, ctx):
        self.calls.append(("start", ctx.start_chunk, ctx.directory, ctx.seeds))

    def on_chunk(self, ctx, info):
        self.calls.append(("chunk", info))

    def on_end(self, ctx, end):
        self.calls.append(("end", end))

    def on_error(self, ctx, error):
        self.calls.append(("error", error))


def _run(directory, *overrides, callbacks):
    config = read_config(resolve_config_path(None), [*TINY, *overrides], seeds=2)
    directory.mkdir()
    save_config(config, directory / "config.yaml")
    return train_run(directory, build_trainer(config), label="test", callbacks=callbacks)


def test_a_logger_is_one_class_in_the_list(tmp_path, capsys):
    recorder = Recorder()
    result = _run(tmp_path / "run", callbacks=[*default_callbacks(), recorder])
    assert result.exit_code == 0 and result.status == "complete"
    kinds = [call[0] for call in recorder.calls]
    assert kinds == ["start", "chunk", "chunk", "chunk", "chunk", "end"]
    assert recorder.calls[0][1:] == (0, tmp_path / "run", 2)

    infos = [call[1] for call in recorder.calls[1:5]]
    assert [i.chunk for i in infos] == [1, 2, 3, 4]
    assert [i.update for i in infos] == [31, 62, 93, 124]
    assert [i.env_steps for i in infos] == [992, 1984, 2976, 3968]
    with open(tmp_path / "run" / "metrics.csv", newline="") as f:
        written = list(csv.DictReader(f))
    seen = [row for i in infos for row in i.rows]
    assert len(written) == len(seen) == 8  # one row per seed per chunk: what metrics.csv holds
    for row, got in zip(written, seen):
        assert set(row) == set(got)
        assert [float(row[k]) for k in row if k != "wall_s"] == \
            pytest.approx([float(got[k]) for k in row if k != "wall_s"], nan_ok=True)
    for info in infos:
        assert info.problem is None and info.state is not None
        assert info.metrics["loss"].shape == (2, 31) and info.rate > 0
        assert info.mean_return == pytest.approx(np.nanmean([r["episode_return"]
                                                             for r in info.rows]))
    # The state handed over is what was checkpointed.
    checkpoints = Checkpoints(tmp_path / "run" / "checkpoints")
    assert checkpoints.latest() == 4
    checkpoints.close()

    end = recorder.calls[-1][1]
    assert (end.status, end.exit_code, end.chunks_done, end.message) == ("complete", 0, 4, "")
    greedy, sampled = end.evaluation
    assert greedy.shape == sampled.shape == (2,) and end.final_state is not None
    # Callbacks after Summary see what it added; the run returns the same dict.
    assert end.summary is result.summary and "eval_return_mean" in end.summary
    assert json.loads((tmp_path / "run" / "summary.json").read_text()) == result.summary
    out = capsys.readouterr().out
    assert "test chunk 4/4 | 3,968/3,968 env steps" in out and "complete: CartPole-v1 a2c" in out


def test_a_diverged_chunk_reaches_callbacks_without_its_state(tmp_path):
    recorder = Recorder()
    result = _run(tmp_path / "nan", "optimizer.critic_lr=1e30",
                  callbacks=[*default_callbacks(), recorder])
    assert (result.status, result.exit_code) == ("diverged", 1)
    assert [call[0] for call in recorder.calls] == ["start", "chunk", "end"]
    info = recorder.calls[1][1]
    assert info.problem.startswith("non-finite") and info.state is None
    with open(tmp_path / "nan" / "metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2  # its rows are written: the evidence
    end = recorder.calls[2][1]
    assert end.message.startswith("training stopped: non-finite") and end.final_state is None
    assert end.summary["latest_checkpoint"] is None  # nothing non-finite was saved


def test_an_error_reaches_every_callback(tmp_path):
    class Fails(Callback):
        def on_chunk(self, ctx, info):
            raise RuntimeError("logger failed")

    recorder = Recorder()
    with pytest.raises(RuntimeError, match="logger failed"):
        _run(tmp_path / "run", callbacks=[recorder, Fails()])
    kinds = [call[0] for call in recorder.calls]
    assert kinds == ["start", "chunk", "error"]
    assert not (tmp_path / "run" / "metrics.csv").exists()  # no MetricsCSV in this list
