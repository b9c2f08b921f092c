"""`pgjax sweep` end to end (in-process, a tiny CartPole a2c config) and pgjax.stats.

One 2 x 2 grid (actor_lr x critic_lr) x 2 seeds trains first, as one program of 8 runs, into
a module-wide compilation cache; the resumed sweep compiles the same programs and hits it.
"""

import csv
import json

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede gymnax)
import jax
import numpy as np
import pytest
import scipy.stats

from pgjax import cli, stats
from pgjax.config import apply_overrides, load_config
from pgjax.host import compare, programs, rundir
from pgjax.host.checks import build_trainer
from pgjax.host.config_io import read_config, resolve_config_path
from pgjax.train import make_train

PNG = b"\x89PNG\r\n\x1a\n"
# 4 envs x 8 steps per update, 16 updates in 2 chunks of 8: 512 env steps per run.
TINY = ["--set", "training.num_envs=4", "--set", "training.eval_episodes=4",
        "--set", "training.total_env_steps=512", "--set", "training.num_chunks=2"]
GRID = ["--grid", "optimizer.actor_lr=1e-3,3e-3", "--grid", "optimizer.critic_lr=1e-3,3e-3",
        "--seeds", "2"]


def pgjax_main(cache, *args):
    return cli.main(["--cache-dir", str(cache), *args])


@pytest.fixture(scope="module")
def swept(cache, work):
    """The 2 x 2 x 2-seed sweep, uninterrupted."""
    code = pgjax_main(cache, "sweep", "cartpole_a2c", *TINY, *GRID, "--out", str(work / "sw"))
    assert code == 0
    return work / "sw"


def read_json(path):
    return json.loads(path.read_text())


def test_sweep_writes_its_files(swept, capsys):
    assert {"sweep.csv", "sweep.json", "sweep.png", "best.yaml", "program-1"} <= {
        p.name for p in swept.iterdir()}
    assert (swept / "sweep.png").read_bytes()[:8] == PNG
    result = read_json(swept / "sweep.json")
    assert len(result["programs"]) == 1 and result["programs"][0]["runs"] == 8
    points = result["points"]
    assert [p["rank"] for p in points] == [1, 2, 3, 4]
    assert sorted(p["label"] for p in points) == [
        "actor_lr=1e-3 critic_lr=1e-3", "actor_lr=1e-3 critic_lr=3e-3",
        "actor_lr=3e-3 critic_lr=1e-3", "actor_lr=3e-3 critic_lr=3e-3"]
    for p in points:
        for name in ("greedy_return", "sampled_return", "auc"):
            values = np.asarray(p[name])
            assert values.shape == (2,) and np.isfinite(values).all()
            assert p[f"{name}_mean"] == pytest.approx(values.mean())
            assert p[f"{name}_std"] == pytest.approx(values.std())
            assert p[f"{name}_iqm_low"] <= p[f"{name}_iqm"] <= p[f"{name}_iqm_high"]
    greedy = [p["greedy_return_mean"] for p in points]
    assert greedy == sorted(greedy, reverse=True)
    with open(swept / "sweep.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert [int(r["point"]) for r in table] == [p["point"] for p in points]
    assert table[0]["optimizer.actor_lr"] == points[0]["values"]["optimizer.actor_lr"]


def test_vmapped_sweep_equals_separate_runs(swept):
    """Each point's runs in the one program end where make_train with that point's config,
    trained by itself for its 2 seeds with the same keys, ends."""
    result = read_json(swept / "sweep.json")
    request = read_json(swept / "sweep-request.json")
    path = resolve_config_path("cartpole_a2c")
    config = load_config(swept / "program-1" / "config.yaml")
    trainer = build_trainer(config)
    checkpoints = rundir.Checkpoints(swept / "program-1" / "checkpoints")
    state, _ = checkpoints.restore(checkpoints.latest(), programs.abstract_state(trainer, 8))
    checkpoints.close()
    base = make_train(config)

    @jax.jit
    def separate(keys, hparams):  # the documented route: jax.vmap(trainer.train)(keys, hparams)
        train_keys = jax.vmap(lambda k: jax.random.split(k)[0])(keys)
        eval_keys = jax.vmap(lambda k: jax.random.split(k)[1])(keys)
        states, _ = jax.vmap(base.train)(train_keys, hparams)
        return states, jax.vmap(base.evaluate_both)(states, eval_keys)

    for j, point in enumerate(request["points"]):
        point_config = read_config(path, [*request["set"], *(f"{k}={v}" for k, v in
                                                             point.items())], 2)
        own = make_train(point_config)  # its hparams are the point's; its shapes the program's
        hparams = jax.tree.map(lambda x: np.repeat(np.asarray(x)[None], 2), own.hparams)
        states, returns = separate(programs.seed_keys(point_config, 2), hparams)
        runs = slice(2 * j, 2 * j + 2)
        for ours, theirs in zip(jax.tree.leaves(jax.tree.map(lambda x: x[runs], state.params)),
                                jax.tree.leaves(states.params)):
            np.testing.assert_allclose(np.asarray(ours), np.asarray(theirs), rtol=1e-4,
                                       atol=1e-5)
        row = next(p for p in result["points"] if p["point"] == j)
        np.testing.assert_allclose(row["greedy_return"], np.asarray(returns.greedy).mean(1))
        np.testing.assert_allclose(row["sampled_return"], np.asarray(returns.sampled).mean(1))


def test_interrupted_sweep_resumes_to_the_same_result(swept, cache, work, monkeypatch, capsys):
    monkeypatch.setenv("PGJAX_STOP_AFTER_CHUNKS", "1")
    out = work / "cut"
    assert pgjax_main(cache, "sweep", "cartpole_a2c", *TINY, *GRID, "--out", str(out)) == 130
    assert f"pgjax sweep --resume {out}" in capsys.readouterr().out
    assert not (out / "sweep.json").exists()
    monkeypatch.delenv("PGJAX_STOP_AFTER_CHUNKS")
    assert pgjax_main(cache, "sweep", "--resume", str(out)) == 0
    assert "resuming after chunk 1/2" in capsys.readouterr().out
    ours, reference = read_json(out / "sweep.json"), read_json(swept / "sweep.json")
    fields = ("point", "rank", "greedy_return", "sampled_return", "auc")
    assert [{k: p[k] for k in fields} for p in ours["points"]] == [
        {k: p[k] for k in fields} for p in reference["points"]]


def test_shape_key_gives_two_programs(cache, work, capsys):
    out = work / "shapes"
    assert pgjax_main(cache, "sweep", "cartpole_a2c", *TINY, "--grid",
                      "training.num_envs=4,8", "--grid", "algorithm.gamma=0.9,0.99",
                      "--seeds", "1", "--out", str(out)) == 0
    result = read_json(out / "sweep.json")
    assert [(p["name"], p["shape_overrides"], p["runs"]) for p in result["programs"]] == [
        ("program-1", [], 2), ("program-2", ["training.num_envs=8"], 2)]
    assert len(result["points"]) == 4
    printed = capsys.readouterr().out
    assert "2 program(s)" in printed
    # The vmapped axis of a sweep's program is its runs (points x seeds), and says so.
    assert "2 run(s) x" in printed and "seed(s)" not in printed.replace("x 1 seed(s)", "")


def test_best_yaml_loads_and_trains(swept, cache, work):
    """best.yaml is the best point's config with the sweep's seeds, and pgjax train runs it."""
    result = read_json(swept / "sweep.json")
    best = load_config(swept / "best.yaml")
    values = result["points"][0]["values"]
    expected = apply_overrides(load_config(swept / "program-1" / "config.yaml"),
                               ["training.num_seeds=2",
                                *(f"{k}={v}" for k, v in values.items())])
    assert best == expected
    assert pgjax_main(cache, "train", str(swept / "best.yaml"), "--out",
                      str(work / "best-run")) == 0
    assert read_json(work / "best-run" / "summary.json")["status"] == "complete"


@pytest.mark.parametrize("argv, message", [
    (["--grid", "algorithm.gama=0.9,0.99"], "algorithm.gama: unknown key"),
    (["--grid", "algorithm.gamma=0.9,1.5"], "algorithm.gamma=1.5"),
    (["--grid", "algorithm.gamma"], "--grid 'algorithm.gamma': expected KEY=V1,V2"),
    (["--random", "4", "--range", "training.num_envs=4:8"],
     "--range training.num_envs: not a float hyperparameter"),
    (["--random", "4", "--range", "optimizer.actor_lr=0:1e-3:log"], "a log range needs LO > 0"),
    (["--random", "4"], "--random N and --range KEY=LO:HI go together"),
    ([], "give the points to sweep"),
    (["--resume", "nowhere"], "not a pgjax sweep directory"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, work, monkeypatch, capsys):
    monkeypatch.chdir(work)
    assert cli.main(["--no-cache", "sweep", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err


# ------------------------------------------------------------------ pgjax.stats
def _iqm_reference(x):
    """Sorted, floor(n/4) cut from each end, the rest averaged, in a plain loop."""
    x = sorted(float(v) for v in x)
    cut = len(x) // 4
    kept = x[cut:len(x) - cut]
    return sum(kept) / len(kept)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 10, 33])
def test_iqm_matches_references(n):
    x = np.random.default_rng(n).normal(size=n) * 100
    assert stats.iqm(x) == pytest.approx(_iqm_reference(x), rel=1e-12)
    assert stats.iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25), rel=1e-12)


def test_iqm_by_hand():
    # 8 scores: 2 cut from each end of [0, 1, 2, 3, 4, 5, 6, 1000], mean of 2..5 = 3.5
    assert stats.iqm([1000, 5, 0, 3, 1, 6, 2, 4]) == 3.5
    assert stats.iqm(np.arange(12.0).reshape(3, 4), axis=1).tolist() == [1.5, 5.5, 9.5]


def test_bootstrap_ci_matches_a_numpy_loop():
    x = np.random.default_rng(1).exponential(size=10)
    estimate = stats.iqm_ci(x, resamples=500, seed=3)
    rng = np.random.default_rng(3)
    draws = rng.integers(0, x.size, size=(500, x.size))
    iqms = [_iqm_reference(x[row]) for row in draws]
    assert estimate.value == pytest.approx(_iqm_reference(x))
    assert estimate.low == pytest.approx(np.percentile(iqms, 2.5))
    assert estimate.high == pytest.approx(np.percentile(iqms, 97.5))
    assert estimate.low <= estimate.value <= estimate.high


def test_bootstrap_ci_covers_the_population_iqm():
    # The IQM of N(0, 1) is 0 by symmetry; a 95% interval from 200 draws covers it most times.
    covered = [stats.iqm_ci(np.random.default_rng(s).normal(size=200), resamples=300).low < 0
               < stats.iqm_ci(np.random.default_rng(s).normal(size=200), resamples=300).high
               for s in range(40)]
    assert sum(covered) >= 34


def test_summarize_skips_non_finite_and_empty():
    assert stats.summarize([np.nan, 2.0, 4.0])["mean"] == 3.0
    assert stats.summarize([]) == dict.fromkeys(("mean", "std", "iqm", "iqm_low", "iqm_high"))


def test_compare_table_shows_iqm():
    row = {"variant": "a", "algorithm": "a2c", "seeds": 4, "env_steps_per_seed": 100,
           "final_train_return_mean": 1.0, "final_train_return_std": 0.5,
           "eval_return_mean": 2.0, "eval_return_std": 1.0,
           **compare.iqm_columns("eval_return", [1.0, 2.0, 3.0, 100.0]),
           **compare.iqm_columns("eval_sampled_return", None),
           "wall_s": 1.0, "steps_per_s": 10.0}
    text = compare.table([row])
    assert "greedy IQM [95% CI]" in text and "2.5 [" in text
