"""The run directory's pieces, in-process: metrics rows, the non-finite check, the CSV,
run-directory creation, orbax checkpoints (latest and best, typed keys), curves."""

import csv
import math

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede gymnax)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax import cli, plot
from pgjax.config import save_config
from pgjax.host import checks, config_io, rundir

PNG = b"\x89PNG\r\n\x1a\n"


def test_chunk_rows_average_episodes_over_the_episodes_that_ended():
    # Seed 0: 2 updates, returns 10 (1 episode) and 40 (3 episodes): 130 / 4 = 32.5.
    # Seed 1: no episode ended: nan, count 0. Other metrics are plain means.
    metrics = {
        "episode_return": np.array([[10.0, 40.0], [0.0, 0.0]], np.float32),
        "episode_length": np.array([[10.0, 40.0], [0.0, 0.0]], np.float32),
        "episode_count": np.array([[1.0, 3.0], [0.0, 0.0]], np.float32),
        "loss": np.array([[1.0, 2.0], [3.0, 5.0]], np.float32),
    }
    rows = rundir.chunk_rows(metrics, chunk=3, update=6, env_steps=192, wall_s=1.23456)
    assert [list(r)[:5] for r in rows] == [list(rundir.FIXED_COLUMNS)] * 2
    assert rows[0]["episode_return"] == 32.5 and rows[0]["episode_count"] == 4
    assert math.isnan(rows[1]["episode_return"]) and rows[1]["episode_count"] == 0
    assert [r["loss"] for r in rows] == [1.5, 4.0]
    assert rows[0]["chunk"] == 3 and rows[1]["seed"] == 1 and rows[0]["wall_s"] == 1.235


def test_first_non_finite_names_the_earliest_update_and_metric():
    ok = {"loss": np.zeros((2, 4)), "grad_norm": np.zeros((2, 4))}
    assert checks.first_non_finite(ok, np.array([True, True]), 8) is None
    bad = {"loss": np.zeros((2, 4)), "grad_norm": np.zeros((2, 4))}
    bad["loss"][1, 3] = np.nan
    bad["grad_norm"][1, 2] = np.inf
    assert checks.first_non_finite(bad, np.array([True, True]), 8) == \
        "non-finite grad_norm in update 11 (seed 1)"
    assert checks.first_non_finite(ok, np.array([True, False]), 8) == \
        "non-finite parameters after update 12 (seed 1)"


def test_metrics_file_appends_then_truncates_to_a_checkpoint(tmp_path):
    file = rundir.MetricsFile(tmp_path / "metrics.csv")
    for chunk in (1, 2, 3):
        file.append([{"chunk": chunk, "seed": s, "loss": 0.1 * chunk} for s in (0, 1)])
    file.truncate(2)
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["chunk"], r["seed"]) for r in rows] == [("1", "0"), ("1", "1"), ("2", "0"),
                                                        ("2", "1")]
    assert rows[-1]["loss"] == repr(0.2)  # full precision: resumed runs compare exactly


def test_run_directories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config_path = tmp_path / "cartpole_a2c.yaml"
    first = rundir.choose_run_dir(config_path, None, False)
    assert first.parent.name == "runs" and first.name.startswith("cartpole_a2c-")
    first.mkdir(parents=True)
    assert rundir.choose_run_dir(config_path, None, False) != first  # never reuses one
    existing = tmp_path / "existing"
    existing.mkdir()
    assert rundir.choose_run_dir(config_path, "existing", False).resolve() == existing  # empty
    for name in ("config.yaml", "notes.txt"):
        (existing / name).write_text("x")
    (existing / "checkpoints" / "chunk_1").mkdir(parents=True)
    with pytest.raises(rundir.RunError, match="pass --force"):
        rundir.choose_run_dir(config_path, "existing", False)
    lock = rundir.create_run_dir(rundir.choose_run_dir(config_path, "existing", True), force=True)
    assert sorted(p.name for p in existing.iterdir()) == [rundir.LOCK_FILE, "notes.txt"]
    lock.release()
    assert sorted(p.name for p in existing.iterdir()) == ["notes.txt"]  # run files only


def test_checkpoints_keep_the_latest_the_previous_and_the_best(tmp_path):
    def state(x):
        return {"w": jnp.full((2, 3), x), "key": jax.random.split(jax.random.key(7), 2),
                "none": None}

    abstract = jax.eval_shape(lambda: state(0.0))
    checkpoints = rundir.Checkpoints(tmp_path / "checkpoints")
    for chunk, mean_return in ((1, 5.0), (2, 9.0), (3, math.nan), (4, 2.0)):
        checkpoints.save(chunk, state(float(chunk)), {"chunk": chunk}, mean_return)
    assert (checkpoints.latest(), checkpoints.best()) == (4, 2)
    checkpoints.close()
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "chunk_2", "chunk_3", "chunk_4"]
    reopened = rundir.Checkpoints(tmp_path / "checkpoints")
    restored, progress = reopened.restore(4, abstract)
    assert progress == {"chunk": 4} and reopened.progress(2) == {"chunk": 2}
    np.testing.assert_array_equal(restored["w"], np.full((2, 3), 4.0))
    assert restored["key"].dtype == abstract["key"].dtype and restored["none"] is None
    np.testing.assert_array_equal(jax.random.key_data(restored["key"]),
                                  jax.random.key_data(state(0.0)["key"]))


def test_resume_refuses_a_config_yaml_edited_after_the_checkpoint(tmp_path, capsys):
    config = config_io.read_config(config_io.resolve_config_path(None), [], None)
    save_config(config, tmp_path / "config.yaml")
    checkpoints = rundir.Checkpoints(tmp_path / "checkpoints")
    checkpoints.save(1, {"w": jnp.zeros(2)}, {"chunk": 1, "elapsed_s": 0.0,
                                             "config": pgjax.config.config_to_dict(config)}, 1.0)
    checkpoints.close()
    text = (tmp_path / "config.yaml").read_text()
    (tmp_path / "config.yaml").write_text(text.replace("gamma: 0.99", "gamma: 0.9"))
    assert cli.main(["--no-cache", "train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "differs from the config of checkpoint chunk_1 in algorithm.gamma (0.99 -> 0.9)" in err


def test_curves(tmp_path):
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["chunk", "seed", "env_steps", "episode_return"])
        writer.writerows([[1, 0, 100, 10.0], [1, 1, 100, "nan"], [2, 0, 200, 30.0],
                          [2, 1, 200, 50.0]])
    curve = plot.read_curve(tmp_path / "metrics.csv", "a2c")
    np.testing.assert_array_equal(curve.env_steps, [100, 200])
    np.testing.assert_array_equal(curve.returns, [[10.0, 30.0], [np.nan, 50.0]])
    plot.plot_curves([curve, curve._replace(label="b")], tmp_path / "curve.png", threshold=475)
    assert (tmp_path / "curve.png").read_bytes()[:8] == PNG
    assert plot.solve_threshold("CartPole-v1") == 475
    assert plot.solve_threshold("CartPole-v1", (("max_steps_in_episode", 200),)) is None
    assert plot.solve_threshold("Pendulum-v1") is None
