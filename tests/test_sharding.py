"""Many devices, same code (pgjax.sharding): the env batch split over a device mesh.

The multi-device checks run in subprocesses with 4 CPU devices forced
(``--xla_force_host_platform_device_count=4``; XLA reads it only at start-up):
``tests/sharding_check.py`` trains each algorithm with ``training.devices`` 4
and 1 on the same keys and global batch and prints what it found.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import pytest

import pgjax
from pgjax.config import Config, ConfigError, apply_overrides
from pgjax.sharding import make_sharding, resolve_devices

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent


def _forced_env(devices: int = 4) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                        f" --xla_force_host_platform_device_count={devices}").strip()
    env["PGJAX_NO_CACHE"] = "1"
    return env


@pytest.fixture(scope="module")
def four_device_results():
    out = subprocess.run(
        [sys.executable, str(TESTS / "sharding_check.py"), "a2c", "ppo", "reinforce_baseline",
         "split_seeds", "sliced"],
        capture_output=True, text=True, env=_forced_env(), timeout=900, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("algorithm", ["a2c", "ppo", "reinforce_baseline"])
def test_four_devices_match_one(four_device_results, algorithm):
    r = four_device_results[algorithm]
    # Same parameters within float32 reduction-order tolerance (sums split over devices).
    assert r["params_rel_diff"] < 2e-3, r
    assert r["loss_rel_diff"] < 1e-3, r
    assert r["updates"][0] == r["updates"][1] > 1, r
    assert r["return_4"] == pytest.approx(r["return_1"], rel=1e-4)
    assert r["param_sharding_replicated"]
    assert r["state_shardings_stable"]


@pytest.mark.parametrize("algorithm,slices", [("a2c", [8, 8]), ("ppo", [8, 2])])
def test_sliced_gradients_on_four_devices_match_the_whole_batch(four_device_results, algorithm,
                                                                slices):
    r = four_device_results[f"sliced_{algorithm}"]
    assert r["slices"] == slices, r
    assert r["one_vs_whole"] < 2e-3 and r["four_vs_whole"] < 2e-3, r


@pytest.mark.parametrize("algorithm", ["a2c", "ppo"])
def test_rollout_is_split_16_envs_per_device(four_device_results, algorithm):
    r = four_device_results[algorithm]
    assert r["rollout_obs_devices"] == 4
    assert r["rollout_obs_shard_shapes"] == [[16, 4]]  # [envs on one device, CartPole obs]
    assert r["vmap_obs_shard_shapes"] == [[2, 16, 4]]  # 2 seeds, each split over the 4


def test_each_device_computes_its_share_of_the_update(four_device_results):
    # Per device: the rollout's forward on 16 envs, the loss on its rows only (a2c: 8 steps x
    # 16 envs; ppo: 32 of each 128-row minibatch), never the whole batch (512, or 128 for ppo).
    a2c, ppo = four_device_results["a2c"]["dot_rows"], four_device_results["ppo"]["dot_rows"]
    assert 16 in a2c and 128 in a2c and 512 not in a2c, a2c  # (64: the [64, 64] weight grads)
    assert 16 in ppo and 32 in ppo and 128 not in ppo and 512 not in ppo, ppo


@pytest.mark.parametrize("algorithm", ["a2c", "ppo", "reinforce_baseline"])
def test_vmap_over_seeds_composes_with_devices(four_device_results, algorithm):
    r = four_device_results[algorithm]
    assert r["vmap_seed0_rel_diff"] < 1e-4  # seed 0 of the vmapped pair = seed 0 alone
    assert r["vmap_seeds_differ"]


def test_split_seeds_puts_whole_seeds_on_devices(four_device_results):
    r = four_device_results["split_seeds"]
    assert r["devices"] == 4
    assert r["seeds_per_device"] == [1]  # 4 seeds, one per device, params and rollout alike
    assert r["envs_per_device"] == [64]  # each seed's env batch whole on its device
    assert r["params_rel_diff"] < 1e-5, r  # no cross-device sums: same numbers as one device


def _cli(*args, cwd=ROOT, **extra_env):
    env = {**_forced_env(), **extra_env}
    return subprocess.run([sys.executable, "-m", "pgjax.cli", *args], capture_output=True,
                          text=True, env=env, timeout=600, cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["--devices", "8"], "training.devices=8: only 4 cpu device(s) available"),
    (["--devices", "3"], "training.num_envs=16: must be divisible by training.devices = 3"),
    (["--devices", "all", "--set", "training.num_envs=18"],
     "training.num_envs=18: must be divisible by the 4 devices"),
    (["--devices", "0"], "'0' is not a positive integer or 'all'"),
    (["--devices", "4", "--seeds", "2", "--set", "training.split=seeds"],
     "training.num_seeds=2: must be divisible by training.devices = 4"),
])
def test_bad_devices_exit_2_with_one_line(tmp_path, args, message):
    out = _cli("train", "configs/cartpole_a2c.yaml", *args, "--out", str(tmp_path / "run"))
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    assert not (tmp_path / "run").exists()  # refused before the run directory is made


# 81 updates of 512 env steps in 4 chunks (21, 20, 20, 20): the uneven chunk program, whose
# chunk length is an argument (replicated to every device of every process).
COMMON = ["configs/cartpole_a2c.yaml", "--set", "training.num_envs=64",
          "--set", "training.total_env_steps=41472", "--set", "training.num_chunks=4",
          "--seeds", "2"]


@pytest.fixture(scope="module")
def four_device_run(tmp_path_factory):
    """A whole run on 4 devices of one process: what the runs below must reproduce."""
    out = tmp_path_factory.mktemp("four") / "run"
    done = _cli("train", *COMMON, "--devices", "4", "--out", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def test_multi_host_without_a_coordinator_exits_2(tmp_path):
    out = _cli("train", "--set", "training.num_processes=2", "--out", str(tmp_path / "run"),
               JAX_COORDINATOR_ADDRESS="")
    assert out.returncode == 2, out.stderr
    assert "training.num_processes=2: jax.distributed.initialize failed" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_compare_refuses_multi_host(tmp_path):
    out = _cli("compare", "configs/cartpole_a2c.yaml", "--set", "training.num_processes=2",
               "--out", str(tmp_path / "cmp"))
    assert out.returncode == 2, out.stderr
    assert "pgjax compare runs on one host" in out.stderr


def test_checkpoint_from_4_devices_resumes_on_2(tmp_path, four_device_run):
    cut = _cli("train", *COMMON, "--devices", "4", "--out", str(tmp_path / "cut"),
               PGJAX_STOP_AFTER_CHUNKS="2")
    assert cut.returncode != 0 and "checkpoint saved" in cut.stderr + cut.stdout
    resumed = _cli("train", "--resume", str(tmp_path / "cut"), "--devices", "2")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    b = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert b["chunks_done"] == 4
    assert b["eval_returns"] == pytest.approx(four_device_run["eval_returns"], rel=1e-3)


def test_cli_split_seeds_matches_one_device(tmp_path, four_device_run):
    """--seeds 2 --devices 2 with training.split=seeds: one seed per device, same numbers."""
    done = _cli("train", *COMMON, "--devices", "2", "--set", "training.split=seeds",
                "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["eval_returns"] == pytest.approx(four_device_run["eval_returns"], rel=1e-3)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_of_two_devices_match_one_process_of_four(tmp_path, four_device_run):
    """Multi-host on one machine: 2 processes (jax.distributed, gloo), 2 CPU devices each."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "pgjax.cli", "train", *COMMON, "--devices", "all",
            "--set", "training.num_processes=2",
            "--set", f"training.coordinator_address=127.0.0.1:{_free_port()}", "--out", str(out)]
    procs = [subprocess.Popen(args + ["--process-id", str(i)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=_forced_env(2), cwd=ROOT)
             for i in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (stdout, stderr) in zip(procs, outputs):
        assert p.returncode == 0, stderr[-3000:]
    assert "final evaluation: greedy" in outputs[0][0]
    assert "final evaluation: greedy" not in outputs[1][0]  # process 1 prints nothing of its own
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval_returns"] == pytest.approx(four_device_run["eval_returns"], rel=1e-3)
    assert summary["eval_sampled_returns"] == pytest.approx(
        four_device_run["eval_sampled_returns"], rel=1e-3)
    assert summary["env_steps_per_seed"] == 41472


# ---------------------------------------------------------------- one device, in process
def test_one_device_is_a_mesh_of_one():
    trainer = pgjax.make_train(Config())
    assert trainer.sharding.num_devices == 1
    state = jax.jit(trainer.init)(jax.random.key(0))
    shardings = trainer.sharding.state(state)
    assert all(s.is_fully_replicated for s in jax.tree.leaves(shardings))  # one device holds all


def test_resolve_devices_checks_count_and_divisibility():
    n = len(jax.devices())
    assert len(resolve_devices("all", num_envs=n * 8)) == n
    with pytest.raises(ConfigError, match=f"only {n} cpu device"):
        resolve_devices(n + 1, num_envs=64 * (n + 1))
    with pytest.raises(ConfigError, match="must be an int >= 1 or 'all'"):
        resolve_devices("two", num_envs=8)
    assert make_sharding(1, num_envs=3).num_devices == 1


@pytest.mark.parametrize("value, message", [
    ("x", "expected an int >= 1 or 'all'"), ("0", "must be an int >= 1 or 'all'")])
def test_devices_config_values(value, message):
    with pytest.raises(ConfigError, match=message):
        apply_overrides(Config(), [f"training.devices={value}"])


@pytest.mark.parametrize("value, xla_flags, expected", [
    ("2", "", 2),  # PGJAX_CPU_DEVICES gives the CPU backend 2 host devices
    ("2", "--xla_force_host_platform_device_count=3", 3),  # a count in XLA_FLAGS wins
    ("two", "", 1),  # ignored, with a warning
])
def test_pgjax_cpu_devices(value, xla_flags, expected):
    env = {**os.environ, "PGJAX_CPU_DEVICES": value, "XLA_FLAGS": xla_flags}
    out = subprocess.run([sys.executable, "-c", "import pgjax, jax; print(jax.device_count())"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == expected
    assert ("PGJAX_CPU_DEVICES='two' ignored" in out.stderr) == (value == "two")
