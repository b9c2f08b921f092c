"""`pgjax train`, `eval`, `compare` and `render` end to end, in subprocesses, with a tiny config.

Every run here shares one compilation-cache directory and one set of compiled programs: the
tiny config's chunk program depends on updates_per_chunk (31), not on num_chunks, and the
float hyperparameters (learning rates, gamma) are arguments, not constants. So only the first
run compiles (the cache test checks that), and the rest start in a few seconds; the uneven
runs (125 updates in chunks of 32 and 31) share a second chunk program.

Subprocesses run `python -m pgjax.cli` in a temporary directory, so they import the installed
pgjax: to test another checkout (a git worktree beside an editable install), set PYTHONPATH
to it.
"""

import csv
import json
import os
import re
import signal
import subprocess
import sys

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede gymnax)
import jax
import numpy as np
import pytest

from pgjax.config import load_config, save_config
from pgjax.host import checks, config_io, programs, rundir

PNG = b"\x89PNG\r\n\x1a\n"
TINY = ["--set", "training.num_envs=4", "--set", "training.eval_episodes=4",
        "--set", "training.total_env_steps=3968", "--set", "training.num_chunks=4", "--seeds", "2"]
# 31 updates of 4 envs x 8 steps per chunk, as in TINY, but 8 chunks.
EIGHT_CHUNKS = [*TINY[:4], "--set", "training.total_env_steps=7936",
                "--set", "training.num_chunks=8", "--seeds", "2"]
# 4,005 env steps = 125 updates of 32 (5 steps left over), in chunks of 32, 31, 31 and 31.
UNEVEN = [*TINY[:4], "--set", "training.total_env_steps=4005",
          "--set", "training.num_chunks=4", "--seeds", "2"]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGJAX_")}
    return {**env, **extra}


def pgjax_run(cache, cwd, *args, env=None, timeout=300):
    return subprocess.run([sys.executable, "-m", "pgjax.cli", "--cache-dir", str(cache), *args],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=env or _env())


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def without_wall(table):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in table]


def assert_same_final_state(directory, ref_dir):
    """The latest checkpoints of two runs hold bit-identical states (keys as key data)."""
    (step, state, _), (ref_step, ref_state, _) = restore_latest(directory), restore_latest(ref_dir)
    assert step == ref_step
    leaves = jax.tree.leaves(jax.tree.map(
        lambda x: jax.random.key_data(x) if rundir._is_key(x) else x, (state, ref_state)))
    half = len(leaves) // 2
    for a, b in zip(leaves[:half], leaves[half:]):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def assert_same_run(directory, ref_dir):
    """A resumed run equals the uninterrupted one: metrics.csv rows (but wall time), final
    state bit for bit, final evaluation; returns both summaries."""
    assert without_wall(rows(directory / "metrics.csv")) == without_wall(
        rows(ref_dir / "metrics.csv"))
    assert_same_final_state(directory, ref_dir)
    summary = json.loads((directory / "summary.json").read_text())
    ref_summary = json.loads((ref_dir / "summary.json").read_text())
    assert summary["eval_returns"] == ref_summary["eval_returns"]
    return summary, ref_summary


def restore_latest(directory):
    config = load_config(directory / "config.yaml")
    trainer = checks.build_trainer(config)
    checkpoints = rundir.Checkpoints(directory / "checkpoints")
    step = checkpoints.latest()
    state, progress = checkpoints.restore(step, programs.abstract_state(trainer, 2))
    checkpoints.close()
    return step, state, progress


@pytest.fixture(scope="module")
def reference(cache, work):
    """One uninterrupted tiny run, the first to compile into the empty cache."""
    out = pgjax_run(cache, work, "train", *TINY, "--out", "ref")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return work / "ref", out


def test_train_writes_the_run_directory(reference):
    directory, out = reference
    assert sorted(p.name for p in directory.iterdir()) == sorted(rundir.RUN_FILES)
    assert (directory / "curve.png").read_bytes()[:8] == PNG
    table = rows(directory / "metrics.csv")
    assert [(int(r["chunk"]), int(r["seed"])) for r in table] == [
        (c, s) for c in (1, 2, 3, 4) for s in (0, 1)]
    assert [int(r["env_steps"]) for r in table[::2]] == [992, 1984, 2976, 3968]
    assert [int(r["update"]) for r in table[::2]] == [31, 62, 93, 124]
    for name in ("episode_return", "episode_length", "episode_count", "loss", "wall_s"):
        assert all(np.isfinite(float(r[name])) for r in table), name
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["chunks_done"] == 4
    assert summary["seeds"] == 2 and len(summary["eval_returns"]) == 2
    assert summary["latest_checkpoint"] == 4
    config = load_config(directory / "config.yaml")
    assert config.training.num_envs == 4 and config.training.num_seeds == 2
    assert len(summary["eval_sampled_returns"]) == 2
    assert summary["eval_sampled_return_mean"] == pytest.approx(
        np.mean(summary["eval_sampled_returns"]))
    assert "chunk 4/4" in out.stdout
    assert (f"final evaluation: greedy {summary['eval_return_mean']:.1f} ± "
            f"{summary['eval_return_std']:.1f}, sampled {summary['eval_sampled_return_mean']:.1f}"
            f" ± {summary['eval_sampled_return_std']:.1f} over 2 seed(s) (4 episodes each)"
            ) in out.stdout


def test_eval_reproduces_the_final_evaluation(reference, cache, work):
    directory, _ = reference
    summary = json.loads((directory / "summary.json").read_text())
    greedy = (f"greedy return {summary['eval_return_mean']:.1f} ± {summary['eval_return_std']:.1f}"
              " over 2 seed(s), 4 episodes each")
    sampled = (f"sampled return {summary['eval_sampled_return_mean']:.1f} ± "
               f"{summary['eval_sampled_return_std']:.1f} over 2 seed(s), 4 episodes each")
    out = pgjax_run(cache, work, "eval", "ref")
    assert out.returncode == 0, out.stderr[-3000:]
    assert "chunk 4/4 (3,968 env steps per seed)" in out.stdout
    assert greedy in out.stdout and sampled in out.stdout
    per_seed = " ".join(f"{r:.1f}" for r in summary["eval_sampled_returns"])
    assert f"sampled per seed: {per_seed}" in out.stdout
    for flag, shown, hidden in (("--greedy", greedy, "sampled"), ("--sample", sampled, "greedy")):
        out = pgjax_run(cache, work, "eval", "ref", flag)
        assert out.returncode == 0, out.stderr[-3000:]
        assert shown in out.stdout and f"{hidden} return" not in out.stdout


def test_interrupt_and_resume_is_bit_identical(reference, cache, work):
    ref_dir, ref_out = reference
    compiled = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    out = pgjax_run(cache, work, "train", *TINY, "--out", "cut",
                    env=_env(PGJAX_STOP_AFTER_CHUNKS="2"))
    assert out.returncode == 130, out.stdout[-3000:] + out.stderr[-3000:]
    assert "pgjax train --resume cut" in out.stdout
    directory = work / "cut"
    assert sorted(p.name for p in (directory / "checkpoints").iterdir()) == ["chunk_1", "chunk_2"]
    assert len(rows(directory / "metrics.csv")) == 4
    assert json.loads((directory / "summary.json").read_text())["status"] == "interrupted"

    # The compilation cache: this run found every program compiled by the reference run, so
    # it wrote none: a miss writes (or rewrites) an entry. Deterministic, where timing the
    # compile against the cold run's depends on the machine's load.
    assert any(name.startswith("jit_chunk") for name in compiled)
    assert {p.name: p.stat().st_mtime_ns for p in cache.iterdir()} == compiled

    # A row reported after the last checkpoint (a crash between the two) is dropped on resume.
    with open(directory / "metrics.csv", "a") as f:
        f.write("3,0,93,2976,9.9,1.0,1.0,1,1.0,1.0,1.0,1.0,1.0\n")
    out = pgjax_run(cache, work, "train", "--resume", "cut")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "resuming after chunk 2/4" in out.stdout
    assert restore_latest(directory)[2]["chunk"] == 4
    assert_same_run(directory, ref_dir)


@pytest.fixture(scope="module")
def uneven(cache, work):
    """An uninterrupted run whose 4 chunks do not divide its 125 updates."""
    out = pgjax_run(cache, work, "train", *UNEVEN, "--out", "uneven")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return work / "uneven", out


def test_uneven_chunks_run_every_update(uneven):
    directory, out = uneven
    assert ("training.total_env_steps 4,005 is not a multiple of 32 env steps per update: "
            "running 125 updates = 4,000 env steps") in out.stdout
    assert "2 seed(s) x 4 chunks of 31-32 updates (32 env steps each)" in out.stdout
    table = rows(directory / "metrics.csv")
    assert [int(r["update"]) for r in table[::2]] == [32, 63, 94, 125]
    assert [int(r["env_steps"]) for r in table[::2]] == [1024, 2016, 3008, 4000]
    # The short chunks' skipped step is not in their means: no zero losses or entropies.
    assert all(float(r["entropy"]) > 0.1 for r in table)
    assert "4,000/4,000 env steps" in out.stdout
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["env_steps_per_seed"] == summary["total_env_steps_per_seed"] == 4000
    step, state, progress = restore_latest(directory)
    assert step == 4 and progress["updates"] == 125
    assert np.asarray(state.update).tolist() == [125, 125]


def test_uneven_interrupt_and_resume_is_bit_identical(uneven, cache, work):
    ref_dir, _ = uneven
    out = pgjax_run(cache, work, "train", *UNEVEN, "--out", "uneven-cut",
                    env=_env(PGJAX_STOP_AFTER_CHUNKS="1"))
    assert out.returncode == 130, out.stdout[-3000:] + out.stderr[-3000:]
    directory = work / "uneven-cut"
    assert json.loads((directory / "summary.json").read_text())["env_steps_per_seed"] == 1024
    out = pgjax_run(cache, work, "train", "--resume", "uneven-cut")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "resuming after chunk 1/4 (1,024 env steps)" in out.stdout
    assert_same_run(directory, ref_dir)


# REINFORCE: one episode per env per update, padded to 50 steps (200 per update at most).
EPISODIC = [*TINY[:4], "--set", "algorithm.name=reinforce",
            "--set", "env.params.max_steps_in_episode=50", "--set", "training.total_env_steps=1200",
            "--set", "training.num_chunks=4", "--seeds", "2"]


@pytest.fixture(scope="module")
def episodic(cache, work):
    out = pgjax_run(cache, work, "train", *EPISODIC, "--out", "episodic")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return work / "episodic", out


def test_episodic_run_counts_the_env_steps_taken(episodic):
    """Issue 14, finding 8: the budget, progress, metrics.csv and summary.json count the env
    steps REINFORCE's episodes take, not its padded rollouts; the run ends at the update that
    spends the budget."""
    directory, out = episodic
    table = rows(directory / "metrics.csv")
    summary = json.loads((directory / "summary.json").read_text())
    for seed in (0, 1):
        mine = [r for r in table if r["seed"] == str(seed)]
        assert [int(r["chunk"]) for r in mine] == [1, 2, 3, 4]
        steps = [int(r["env_steps"]) for r in mine]
        # Each chunk ends at the first update past its target (300 per chunk), < 200 after it.
        for c, s in enumerate(steps, start=1):
            assert 300 * c <= s < 300 * c + 200, steps
        # The count is the episodes' steps: every episode's length, summed over the chunks.
        lengths = sum(float(r["episode_length"]) * int(r["episode_count"]) for r in mine)
        assert lengths == pytest.approx(steps[-1])
        assert summary["env_steps_by_seed"][seed] == steps[-1]
        # Four episodes per update: the update column counts them.
        assert sum(int(r["episode_count"]) for r in mine) == 4 * int(mine[-1]["update"])
    assert summary["total_env_steps_per_seed"] == 1200
    assert summary["env_steps_per_seed"] == min(summary["env_steps_by_seed"])
    assert f"{summary['env_steps_per_seed']:,}/1,200 env steps" in out.stdout
    # env steps/s over the steps taken, not the padded 200 per update
    assert summary["steps_per_s"] * summary["wall_s"] <= 2 * (1200 + 200) * 1.01


def test_episodic_interrupt_and_resume_is_bit_identical(episodic, cache, work):
    ref_dir, _ = episodic
    out = pgjax_run(cache, work, "train", *EPISODIC, "--out", "episodic-cut",
                    env=_env(PGJAX_STOP_AFTER_CHUNKS="2"))
    assert out.returncode == 130, out.stdout[-3000:] + out.stderr[-3000:]
    directory = work / "episodic-cut"
    out = pgjax_run(cache, work, "train", "--resume", "episodic-cut")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    resumed = re.search(r"resuming after chunk 2/4 \(([\d,]+)", out.stdout)
    assert resumed and 600 <= int(resumed[1].replace(",", "")) < 800, out.stdout[-2000:]
    summary, ref_summary = assert_same_run(directory, ref_dir)
    assert summary["env_steps_by_seed"] == ref_summary["env_steps_by_seed"]


# A recurrent policy (a GRU of 8 between the MLP and the heads): its carry is in the rollout
# state, so a resumed run must continue every env's carry exactly.
RECURRENT = [*TINY[:-2], "--set", "network.gru_size=8", "--seeds", "2"]


def test_recurrent_interrupt_and_resume_is_bit_identical(cache, work):
    out = pgjax_run(cache, work, "train", *RECURRENT, "--out", "gru")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    out = pgjax_run(cache, work, "train", *RECURRENT, "--out", "gru-cut",
                    env=_env(PGJAX_STOP_AFTER_CHUNKS="2"))
    assert out.returncode == 130, out.stdout[-3000:] + out.stderr[-3000:]
    out = pgjax_run(cache, work, "train", "--resume", "gru-cut")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "resuming after chunk 2/4" in out.stdout
    ref_dir, directory = work / "gru", work / "gru-cut"
    assert_same_run(directory, ref_dir)
    _, state, _ = restore_latest(directory)
    carry = jax.tree.leaves(state.rollout.carry)
    assert carry and all(np.shape(c) == (2, 4, 8) for c in carry)  # [seeds, envs, gru_size]


def test_sigint_finishes_the_chunk_and_leaves_a_checkpoint(reference, cache, work):
    command = [sys.executable, "-m", "pgjax.cli", "--cache-dir", str(cache), "train",
               *EIGHT_CHUNKS, "--out", "sigint"]
    proc = subprocess.Popen(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if " chunk 1/8 " in line:
            proc.send_signal(signal.SIGINT)
            break
    rest, err = proc.communicate(timeout=300)
    stdout = "".join(seen) + rest
    assert proc.returncode == 130, stdout[-3000:] + err[-3000:]
    assert "Traceback" not in err
    assert "pgjax train --resume sigint" in stdout
    directory = work / "sigint"
    step, state, progress = restore_latest(directory)
    assert 1 <= step < 8 and progress["chunk"] == step
    assert int(np.asarray(state.update)[0]) == 31 * step
    assert {int(r["chunk"]) for r in rows(directory / "metrics.csv")} == set(range(1, step + 1))
    out = pgjax_run(cache, work, "train", "--resume", "sigint")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert len(rows(directory / "metrics.csv")) == 16


def test_compare_draws_every_variant(reference, cache, work):
    ref = (work / "ref" / "config.yaml").read_text()
    (work / "gamma99.yaml").write_text(ref)
    (work / "gamma90.yaml").write_text(ref.replace("gamma: 0.99", "gamma: 0.9"))
    out = pgjax_run(cache, work, "compare", "gamma99.yaml", "gamma90.yaml", "--out", "cmp")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    directory = work / "cmp"
    assert (directory / "compare.png").read_bytes()[:8] == PNG
    table = rows(directory / "compare.csv")
    assert [r["variant"] for r in table] == ["gamma99", "gamma90"]
    assert [r["seeds"] for r in table] == ["2", "2"]
    assert len(json.loads((directory / "compare.json").read_text())) == 2
    assert all(r["eval_sampled_return_mean"] for r in table)
    assert "sampled eval return" in out.stdout and "greedy IQM [95% CI]" in out.stdout
    for r, summary in zip(table, (json.loads((directory / n / "summary.json").read_text())
                                  for n in ("gamma99", "gamma90"))):
        # 2 seeds: the IQM is their mean; the interval spans the two
        assert float(r["eval_return_iqm"]) == pytest.approx(summary["eval_return_mean"])
        assert float(r["eval_return_iqm_low"]) == min(summary["eval_returns"])
        assert float(r["eval_return_iqm_high"]) == max(summary["eval_returns"])
    for name in ("gamma99", "gamma90"):
        assert (directory / name / "metrics.csv").exists()
        assert name in out.stdout
    # gamma99 is the reference config: the same curve.
    assert without_wall(rows(directory / "gamma99" / "metrics.csv")) == without_wall(
        rows(work / "ref" / "metrics.csv"))


def test_non_finite_update_stops_training(reference, cache, work):
    out = pgjax_run(cache, work, "train", *TINY, "--set", "optimizer.actor_lr=1e30",
                    "--set", "optimizer.critic_lr=1e30", "--out", "nan")
    assert out.returncode == 1, out.stdout[-3000:] + out.stderr[-3000:]
    assert "training stopped: non-finite" in out.stdout and "in update " in out.stdout
    summary = json.loads((work / "nan" / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["latest_checkpoint"] is None


def test_bad_input_is_one_line_and_exit_2(cache, tmp_path):
    out = pgjax_run(cache, tmp_path, "train", "--set", "algorithm.gamma=1.5", "--out", "x")
    assert out.returncode == 2
    assert out.stderr == "pgjax train: error: algorithm.gamma=1.5: must be in (0, 1]\n"
    assert list(tmp_path.iterdir()) == []


def _zeros(abstract):
    if rundir._is_key(abstract):
        return jax.random.wrap_key_data(np.zeros(jax.eval_shape(jax.random.key_data, abstract).shape,
                                                 np.uint32))
    return np.zeros(abstract.shape, abstract.dtype)


@pytest.mark.parametrize("env", ["Catch-bsuite", "CartPole-v1"])  # gymnax's visualiser, pgjax's
def test_render_writes_a_gif(cache, tmp_path, env):
    # A checkpoint of an all-zero state (a uniform policy, acting greedily), written
    # in-process: nothing to train or compile before rendering. CartPole needs no pygame.
    from PIL import Image  # noqa: PLC0415

    config = config_io.read_config(config_io.resolve_config_path(None), [
        f"env.name={env}", "training.num_envs=2", "training.eval_episodes=1"], 1)
    trainer = checks.build_trainer(config)
    directory = tmp_path / "run"
    directory.mkdir()
    save_config(config, directory / "config.yaml")
    state = jax.tree.map(_zeros, programs.abstract_state(trainer, 1))
    checkpoints = rundir.Checkpoints(directory / "checkpoints")
    checkpoints.save(1, state, {"chunk": 1, "elapsed_s": 0.0}, 0.0)
    checkpoints.close()
    out = pgjax_run(cache, tmp_path, "render", "run", "--out", "episode.gif")
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "episode.gif: seed 0" in out.stdout
    with Image.open(tmp_path / "episode.gif") as gif:  # one frame per step (titles differ)
        assert gif.format == "GIF"
        assert gif.n_frames == int(re.search(r"(\d+) steps", out.stdout).group(1)), out.stdout
