"""Run directories under hostile conditions (issue 15): kills, concurrent writers, damaged
files, full disks, signals outside a chunk, and input refused before anything is written.

CI-sized: one tiny config (4 envs x 2 seeds, 8 chunks of 31 updates) whose programs compile
once into a module-wide cache; every other run starts in a few seconds. Subprocesses run
``python -m pgjax.cli``: to test another checkout, set PYTHONPATH to it. Each numbered cause
of the issue has a test here, named after it.
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede gymnax)
import jax
import numpy as np
import pytest

from pgjax import cli
from pgjax.config import load_config, save_config
from pgjax.host import checks, config_io, programs, rundir
from pgjax.host.checkpoints import MANIFEST

TINY = ["--set", "training.num_envs=4", "--set", "training.eval_episodes=4",
        "--set", "training.total_env_steps=7936", "--set", "training.num_chunks=8",
        "--seeds", "2"]


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGJAX_")}
    return {**env, **extra}


def command(cache, *args):
    return [sys.executable, "-m", "pgjax.cli", "--cache-dir", str(cache), *args]


def run(cache, cwd, *args, env=None, timeout=300):
    return subprocess.run(command(cache, *args), cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env or _env())


def show(out):
    return out.stdout[-2000:] + out.stderr[-2000:]


def rows(path):
    header, body = rundir.MetricsFile(path).read()
    wall = header.index("wall_s")
    return [r[:wall] + r[wall + 1:] for r in body]


def latest_state(directory):
    config = load_config(directory / "config.yaml")
    trainer = checks.build_trainer(config)
    found = rundir.Checkpoints(directory / "checkpoints").restore_good(
        programs.abstract_state(trainer, config.training.num_seeds))
    state, _, step = found
    return step, jax.tree.leaves(jax.tree.map(
        lambda x: jax.random.key_data(x) if rundir._is_key(x) else x, state))


def assert_same_run(directory, ref_dir):
    """Bit-identical: the latest checkpoint's every leaf, metrics.csv (but wall time) and the
    final evaluation."""
    (step, leaves), (ref_step, ref_leaves) = latest_state(directory), latest_state(ref_dir)
    assert step == ref_step
    for a, b in zip(leaves, ref_leaves):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert rows(directory / "metrics.csv") == rows(ref_dir / "metrics.csv")
    summary = json.loads((directory / "summary.json").read_text())
    ref = json.loads((ref_dir / "summary.json").read_text())
    assert summary["status"] == "complete" and summary["eval_returns"] == ref["eval_returns"]


@pytest.fixture(scope="module")
def reference(cache, work):
    """One uninterrupted run, the first to compile into the empty cache."""
    out = run(cache, work, "train", *TINY, "--out", "ref")
    assert out.returncode == 0, show(out)
    return work / "ref"


def fresh_copy(reference, work, name):
    target = work / name
    shutil.copytree(reference, target)
    return target


# ------------------------------------------------------------------ 1. two processes, one directory
def test_kill_9_at_random_moments_then_resume_is_bit_identical(reference, cache, work):
    rng = random.Random(15)
    directory = work / "killed"
    for _ in range(3):
        args = (["train", "--resume", "killed"] if (directory / "config.yaml").exists()
                else ["train", *TINY, "--out", "killed"])
        proc = subprocess.Popen(command(cache, *args), cwd=work, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=_env())
        for line in proc.stdout:  # compiled (from the cache): the chunks start now
            if line.startswith("compiled in"):
                break
        time.sleep(rng.uniform(0.0, 0.8))
        proc.kill()
        proc.communicate(timeout=60)
    args = (["train", "--resume", "killed"] if (directory / "config.yaml").exists()
            else ["train", *TINY, "--out", "killed"])
    out = run(cache, work, *args)
    if "already complete" not in out.stdout:
        assert out.returncode == 0, show(out)
        assert "Traceback" not in out.stderr
    assert not (directory / rundir.LOCK_FILE).exists()
    assert_same_run(directory, reference)


def test_two_writers_of_one_directory(reference, cache, work):
    procs = [subprocess.Popen(command(cache, "train", *TINY, "--set", f"training.seed={seed}",
                                      "--out", "shared"), cwd=work, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_env())
             for seed in (1, 2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    loser = outs[[p.returncode for p in procs].index(2)][1]
    assert loser.count("\n") == 1 and ("another pgjax (pid" in loser or "not empty" in loser)
    directory = work / "shared"
    config = load_config(directory / "config.yaml")
    progress = rundir.Checkpoints(directory / "checkpoints").latest_good()[1]
    assert progress["config"]["training"]["seed"] == config.training.seed  # one writer's files


def test_a_second_writer_is_refused_and_a_dead_ones_lock_taken_over(tmp_path, capsys):
    held = rundir.RunLock(tmp_path).acquire()
    with pytest.raises(rundir.RunError, match=r"another pgjax \(pid \d+ on "):
        rundir.RunLock(tmp_path).acquire()  # flock: per open file, so refused here too
    held.release()
    assert not (tmp_path / rundir.LOCK_FILE).exists()
    # A lock file left by a process that died (kill -9): nobody holds the flock.
    (tmp_path / rundir.LOCK_FILE).write_text(json.dumps({"pid": 999999, "host": "gone"}))
    warnings = []
    rundir.RunLock(tmp_path, warnings.append).acquire().release()
    assert len(warnings) == 1 and "took over the lock left by pgjax pid 999999" in warnings[0]


def test_eval_while_the_run_trains_reads_a_complete_checkpoint(reference, cache, work):
    # 64 chunks of 31 updates: long enough to evaluate the run while it writes checkpoints.
    long = [*TINY[:4], "--set", "training.total_env_steps=63488", "--set",
            "training.num_chunks=64", "--seeds", "2"]
    proc = subprocess.Popen(command(cache, "train", *long, "--out", "busy"), cwd=work,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env())
    try:
        for line in proc.stdout:
            if " chunk 2/64 " in line or line.startswith("complete"):
                break
        out = run(cache, work, "eval", "busy", "--episodes", "2")
        assert out.returncode == 0, show(out)
        assert "greedy return" in out.stdout and "Traceback" not in out.stderr
    finally:
        proc.communicate(timeout=300)
    assert proc.returncode == 0


# ------------------------------------------------------------------ 2. damaged data
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(reference, work, capsys):
    directory = fresh_copy(reference, work, "damaged")
    checkpoints = rundir.Checkpoints(directory / "checkpoints", warn=print)
    latest = checkpoints.latest()
    files = json.loads((directory / "checkpoints" / f"chunk_{latest}" / MANIFEST)
                       .read_text())["files"]
    biggest = max(files, key=lambda name: files[name][0])
    target = directory / "checkpoints" / f"chunk_{latest}" / biggest
    data = bytearray(target.read_bytes())
    data[len(data) // 2:len(data) // 2 + 16] = bytes(16)  # 16 zeroed bytes, size unchanged
    target.write_bytes(bytes(data))
    config = load_config(directory / "config.yaml")
    abstract = programs.abstract_state(checks.build_trainer(config), 2)
    _, progress, step = checkpoints.restore_good(abstract)
    assert step == latest - 1 and progress["chunk"] == latest - 1
    assert f"checkpoint chunk_{latest}: {biggest} fails its checksum" in capsys.readouterr().out
    # Truncated, and garbage metadata: the same fallback.
    target.write_bytes(bytes(data[:100]))
    (directory / "checkpoints" / f"chunk_{latest - 1}" / MANIFEST).write_text("{garbage")
    found = checkpoints.restore_good(abstract)
    assert found is None or found[2] < latest - 1


def test_resume_past_a_damaged_checkpoint_and_a_cut_metrics_row_is_bit_identical(
        reference, cache, work):
    directory = fresh_copy(reference, work, "repaired")
    (directory / "summary.json").unlink()  # as if killed during the final evaluation
    chunk = directory / "checkpoints" / "chunk_8"
    victim = next(p for p in sorted(chunk.rglob("*")) if p.is_file() and p.name != MANIFEST)
    victim.write_bytes(b"garbage")
    with open(directory / "metrics.csv", "a") as f:
        f.write("9,0,279,89")  # a partial row: a kill or a full disk mid-write
    out = run(cache, work, "train", "--resume", "repaired")
    assert out.returncode == 0, show(out)
    assert "checkpoint chunk_8:" in out.stdout and "using an older one" in out.stdout
    assert "resuming after chunk 7/8" in out.stdout
    assert_same_run(directory, reference)


def test_metrics_rows_are_validated_on_resume(tmp_path):
    file = rundir.MetricsFile(tmp_path / "metrics.csv")
    for chunk in (1, 2, 3):
        file.append([{"chunk": chunk, "seed": s, "update": chunk, "env_steps": 8 * chunk,
                      "wall_s": 0.5, "loss": 0.1} for s in (0, 1)])
    with open(file.path, "a") as f:
        f.write("2,5,2,16,0.5,0.1\n2,0,x,16,0.5,0.1\n3,1,3,24,0.5,0.1\n4,0,4,3")
    assert file.truncate(3, seeds=2) == 4  # seed 5, 'x', a repeated row, a cut one
    assert [r[:2] for r in file.read()[1]] == [[str(c), str(s)] for c in (1, 2, 3)
                                                for s in (0, 1)]


def test_leftovers_of_interrupted_saves_are_cleaned(reference, work):
    directory = fresh_copy(reference, work, "leftovers")
    store = directory / "checkpoints"
    shutil.copytree(store / "chunk_8", store / ".partial-chunk_9")
    shutil.copytree(store / "chunk_8", store / ".deleting-chunk_3")
    (store / "chunk_5").mkdir()  # half deleted by an older pgjax: no metadata left
    (store / "chunk_5" / "state").mkdir()
    checkpoints = rundir.Checkpoints(store)
    assert checkpoints.steps() == [7, 8]  # readers see only complete ones
    assert sorted(checkpoints.clean()) == [".deleting-chunk_3", ".partial-chunk_9", "chunk_5"]
    assert sorted(p.name for p in store.iterdir()) == ["chunk_7", "chunk_8"]


# ------------------------------------------------------------------ 3. filesystem errors
def test_a_full_disk_is_exit_3_naming_the_path_and_keeps_the_checkpoints(reference, cache,
                                                                         work, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    mount = tmp_path / "small"
    mount.mkdir()
    # Room for config.yaml and two checkpoints (~0.3 MiB each), not for the three kept.
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=700k", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    try:
        out = run(cache, work, "train", *TINY, "--out", str(mount / "run"))
        assert out.returncode == 3, show(out)
        assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr
        assert "No space left on device" in out.stderr and str(mount) in out.stderr
        checkpoints = rundir.Checkpoints(mount / "run" / "checkpoints")
        good = checkpoints.latest_good()
        assert good is not None and good[0] >= 1  # what was trained before is kept
        assert not list((mount / "run" / "checkpoints").glob(".partial-*"))
        assert not list((mount / "run").glob("*.tmp*"))
        assert f"pgjax train --resume {mount / 'run'}" in out.stdout
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def test_an_out_under_a_file_is_exit_3_before_anything_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "plain").write_text("x")
    assert cli.main(["--no-cache", "train", "--out", "plain/run"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not create plain/run" in err and "not a directory" in err


# ------------------------------------------------------------------ 4, 5, 8. checks first, named
@pytest.fixture
def cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    config = config_io.read_config(config_io.resolve_config_path(None), [], None)
    save_config(config, tmp_path / "run" / "config.yaml")
    (tmp_path / "deep.yaml").write_text("training: " + "[" * 200 + "]" * 200 + "\n")
    (tmp_path / "file").write_text("x")
    return tmp_path


BAD = [  # (argv, exit code, part of the one-line message)
    (["train", "--set", "env.params.max_steps_in_episode=0", "--out", "o"], 2,
     "env.params.max_steps_in_episode=0: must be >= 1"),
    (["train", "--set", "env.params.max_steps_in_episode=-5", "--out", "o"], 2,
     "env.params.max_steps_in_episode=-5: must be >= 1"),
    (["train", "--set", "env.params.gravity=abc", "--out", "o"], 2,
     "env.params.gravity='abc': must be a number"),
    (["train", "--set", "training.seed=1e20", "--out", "o"], 2, "training.seed="),
    (["train", "--set", "env.name=MNISTBandit-bsuite", "--out", "o"], 2, "not supported"),
    (["train", "deep.yaml"], 2, "nested more than"),
    (["train", "--set", "training.join_timeout_s=0"], 2, "training.join_timeout_s=0"),
    (["train", "--out", "file"], 2, "--out file: is a file, not a directory"),
    (["compare", "cartpole_a2c", "--set", "env.params.max_steps_in_episode=0", "--out", "c"],
     2, "env.params.max_steps_in_episode=0"),
    (["compare", "--out", "file", "cartpole_a2c"], 2, "--out file: is a file"),
    (["compare", "--resume", "run"], 2, "not a pgjax compare directory"),
    (["render", "run", "--out", "x.bmp"], 2, "must be .gif"),
    (["render", "run", "--out", "file/x.gif"], 3, "could not create file/x.gif"),
    (["eval", "run", "--episodes", "100000000"], 2, "--episodes 100000000: evaluating"),
    (["train", "--resume", "run", "--restart", "--out", "x"], 2, "drop --out"),
    (["train", "--restart"], 2, "--restart starts a run again in place"),
]


@pytest.mark.parametrize("argv, code, message", BAD, ids=[" ".join(a) for a, _, _ in BAD])
def test_bad_input_is_refused_before_anything_is_written(cwd, capsys, argv, code, message):
    before = sorted(str(p) for p in cwd.rglob("*"))
    assert cli.main(["--no-cache", *argv]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err
    assert sorted(str(p) for p in cwd.rglob("*")) == before


def test_eval_names_what_was_edited_in_config_yaml(reference, work, capsys):
    directory = fresh_copy(reference, work, "edited")
    text = (directory / "config.yaml").read_text()
    (directory / "config.yaml").write_text(text.replace("num_envs: 4", "num_envs: 8"))
    assert cli.main(["--no-cache", "eval", str(directory)]) == 2
    err = capsys.readouterr().err
    assert "training.num_envs (4 -> 8)" in err and err.count("\n") == 1


# ------------------------------------------------------------------ 6. resume semantics
def test_resume_without_checkpoints_refuses_and_a_finished_run_is_left_alone(
        reference, cache, work, capsys):
    directory = fresh_copy(reference, work, "finished")
    before = {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()}
    assert cli.main(["--no-cache", "train", "--resume", str(directory)]) == 0
    assert "already complete" in capsys.readouterr().out
    assert {p: p.read_bytes() for p in directory.rglob("*") if p.is_file()} == before
    (directory / "summary.json").unlink()
    shutil.rmtree(directory / "checkpoints")
    assert cli.main(["--no-cache", "train", "--resume", str(directory)]) == 2
    err = capsys.readouterr().err
    assert "has no checkpoint" in err and "--restart" in err and err.count("\n") == 1
    assert len(rows(directory / "metrics.csv")) == 16  # nothing rewritten


# ------------------------------------------------------------------ 7. signals outside a chunk
def test_sigterm_during_compilation_is_143_and_the_directory_is_reusable(cache, work):
    proc = subprocess.Popen(command(cache, "--no-cache", "train", *TINY, "--out", "early"),
                            cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=_env())
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("compiling"):
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            break
    rest, err = proc.communicate(timeout=120)
    out = "".join(seen) + rest
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err
    assert "SIGTERM during" in out and "pgjax train --resume early" in out
    assert not (work / "early" / rundir.LOCK_FILE).exists()
    path = rundir.choose_run_dir(work / "x.yaml", str(work / "early"), False)  # no --force
    assert path == work / "early"


def test_an_interrupted_compare_resumes(reference, cache, work):
    ref = (work / "ref" / "config.yaml").read_text()
    (work / "one.yaml").write_text(ref)
    (work / "two.yaml").write_text(ref.replace("gamma: 0.99", "gamma: 0.9"))
    out = run(cache, work, "compare", "one.yaml", "two.yaml", "--out", "cmp",
              env=_env(PGJAX_STOP_AFTER_CHUNKS="3"))
    assert out.returncode == 130, show(out)
    assert "pgjax compare --resume cmp" in out.stdout
    out = run(cache, work, "compare", "--resume", "cmp")
    assert out.returncode == 0, show(out)
    assert "resuming after chunk 3/8" in out.stdout
    assert (work / "cmp" / "compare.png").exists()
    assert rows(work / "cmp" / "one" / "metrics.csv") == rows(reference / "metrics.csv")


def test_memory_names_the_setting_at_fault(cwd, capsys, monkeypatch):
    from pgjax import memory  # noqa: PLC0415

    estimate = memory.estimate_memory
    limit = estimate(config_io.read_config(config_io.resolve_config_path(None), [], None)
                     ).total_bytes * 2
    monkeypatch.setattr(memory, "available_memory", lambda: limit)
    monkeypatch.setattr(memory, "estimate_memory", estimate)
    assert cli.main(["--no-cache", "train", "--set", "training.eval_episodes=100000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: training.eval_episodes=100000:" in err, err
    assert "evaluation" in err and "num_envs" not in err


def test_a_peer_that_never_joins_is_one_line_and_exit_2(cache, tmp_path):
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = run(cache, tmp_path, "train", "--set", "training.num_processes=2", "--set",
              f"training.coordinator_address=127.0.0.1:{port}", "--set",
              "training.join_timeout_s=3", "--process-id", "0", "--out", "multi", timeout=120)
    assert out.returncode == 2, show(out)
    assert "training.join_timeout_s=3: not all 2 processes joined in time" in out.stderr
    assert "Traceback" not in out.stderr and not (tmp_path / "multi").exists()


def test_sigterm_during_the_final_evaluation_keeps_every_chunk(reference, cache, work):
    # A real SIGTERM, sent by the run to itself as its final evaluation starts (a test hook:
    # one sent from here on seeing the last chunk's line lands anywhere from the chunk to the
    # closing files, depending on the machine's load).
    args = [*TINY, "--out", "late"]
    proc = subprocess.run(command(cache, "train", *args), cwd=work, capture_output=True,
                          text=True, env=_env(PGJAX_SIGTERM_IN_EVALUATION="1"), timeout=300)
    out, err = proc.stdout, proc.stderr
    assert " chunk 8/8 " in out, out + err
    assert proc.returncode == 143, out + err
    assert "Traceback" not in err
    assert "SIGTERM during the final evaluation" in out and "chunk_8 is kept" in out
    assert not (work / "late" / "summary.json").exists()
    out = run(cache, work, "train", "--resume", "late")
    assert out.returncode == 0, show(out)
    summary = json.loads((work / "late" / "summary.json").read_text())
    assert summary["status"] == "complete" and len(summary["eval_returns"]) == 2
