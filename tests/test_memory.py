"""estimate_memory: fast, monotone, parts that add up, a sane range; available_memory."""

import time

import pytest

from pgjax.config import Config, apply_overrides
from pgjax.envs import make_env
from pgjax.memory import MemoryEstimate, available_memory, estimate_memory, network_shape

MiB, GiB = 2**20, 2**30


@pytest.fixture(scope="module")
def cartpole():
    return make_env("CartPole-v1")


def _config(*overrides):
    return apply_overrides(Config(), ["training.total_env_steps=100000000", *overrides])


def _estimate(env, *overrides, seeds=1, backend="cpu"):
    return estimate_memory(_config(*overrides), seeds=seeds, env=env, backend=backend)


@pytest.mark.parametrize("algorithm", ["a2c", "ppo", "reinforce", "reinforce_baseline"])
def test_parts_sum_to_total_and_grow_with_n(cartpole, algorithm):
    totals = []
    for n in (64, 256, 1024, 4096, 16384):
        est = _estimate(cartpole, f"algorithm.name={algorithm}", f"training.num_envs={n}",
                        "algorithm.n_steps=128")
        assert isinstance(est, MemoryEstimate)
        assert sum(est.parts.values()) == est.total_bytes
        assert all(isinstance(v, int) and v >= 0 for v in est.parts.values())
        totals.append(est.total_bytes)
    assert totals == sorted(totals) and len(set(totals)) == len(totals)


def test_grows_with_seeds_and_steps(cartpole):
    by_seeds = [_estimate(cartpole, "training.num_envs=1024", seeds=s).total_bytes for s in (1, 2, 8)]
    assert by_seeds == sorted(by_seeds) and len(set(by_seeds)) == 3
    by_t = [_estimate(cartpole, "training.num_envs=1024", f"algorithm.n_steps={t}").total_bytes
            for t in (8, 32, 128)]
    assert by_t == sorted(by_t) and len(set(by_t)) == 3
    # What scales with seeds: everything but the fixed runtime and compilation.
    one = _estimate(cartpole, "training.num_envs=1024")
    four = _estimate(cartpole, "training.num_envs=1024", seeds=4)
    fixed = one.parts["runtime"] + one.parts["compilation"]
    assert four.total_bytes - fixed == 4 * (one.total_bytes - fixed)


def test_sane_absolute_range(cartpole):
    # Measured peak RSS on the CPU (benchmarks/memory.py): ~0.6 GiB at N=64, ~0.75 GiB at
    # N=16384 for a2c with T=128 and 2x64 networks (its gradient summed over time slices of
    # 8192 samples), ~4.8 GiB at N=16384 over the whole batch at once. The estimate is
    # checked there to 25%; here only that it stays in a plausible band.
    small = _estimate(cartpole, "training.num_envs=64", "algorithm.n_steps=128").total_bytes
    large = _estimate(cartpole, "training.num_envs=16384", "algorithm.n_steps=128").total_bytes
    whole = _estimate(cartpole, "training.num_envs=16384", "algorithm.n_steps=128",
                      "training.grad_slice_samples=0").total_bytes
    assert 300 * MiB < small < 1 * GiB
    assert 500 * MiB < large < 1.5 * GiB
    assert 3 * GiB < whole < 7 * GiB
    # PPO's minibatches shrink the loss's activations; so do gradient slices, to 8192 samples.
    ppo = ["algorithm.name=ppo", "training.num_envs=4096", "algorithm.n_steps=128"]
    ppo1 = _estimate(cartpole, *ppo, "algorithm.minibatches=1", "training.grad_slice_samples=0")
    ppo8 = _estimate(cartpole, *ppo, "algorithm.minibatches=8", "training.grad_slice_samples=0")
    assert ppo8.parts["activations"] * 8 == pytest.approx(ppo1.parts["activations"], rel=1e-3)
    sliced = _estimate(cartpole, *ppo, "algorithm.minibatches=1")
    assert sliced.parts["activations"] * 64 == pytest.approx(ppo1.parts["activations"], rel=1e-3)


def test_accelerator_counts_device_buffers_only(cartpole):
    cpu = _estimate(cartpole, "training.num_envs=1024")
    gpu = _estimate(cartpole, "training.num_envs=1024", backend="gpu")
    assert gpu.parts["compilation"] == 0
    assert gpu.parts["activations"] == cpu.parts["activations"]


def test_is_fast_and_describes_itself(cartpole):
    start = time.perf_counter()
    est = _estimate(cartpole, "training.num_envs=4096", "algorithm.n_steps=128",
                    "training.grad_slice_samples=0")
    assert time.perf_counter() - start < 1.0  # runs before compiling: no compilation
    line = est.describe()
    assert line.startswith("~") and "GiB" in line and "activations" in line and "\n" not in line


def test_network_shape_counts_params():
    # CartPole 2x64 actor (4->64->64->2) and critic (4->64->64->1), with biases.
    shape = network_shape(Config(), (4,), 2)
    actor = 4 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2
    critic = 4 * 64 + 64 + 64 * 64 + 64 + 64 + 1
    assert shape.num_params == actor + critic
    shared = network_shape(_config("network.shared_trunk=true"), (4,), 2)
    assert shared.num_params == actor + 64 + 1
    gaussian = network_shape(Config(), (3,), 1, discrete=False)
    assert gaussian.num_params == 2 * (3 * 64 + 64 + 64 * 64 + 64 + 64 + 1) + 1  # + log_std


def test_available_memory_positive():
    avail = available_memory()
    assert isinstance(avail, int) and avail > 0


def test_discrete_obs_count_their_one_hot_inputs():
    frozen = make_env("FrozenLake-misc")
    shape = network_shape(_config(), frozen.spec.obs_shape, 4, obs_num_values=16)
    assert shape.input_size == 16 and shape.dense["actor"][0] == (16, 64)
    plain = _estimate(frozen, "training.num_envs=64")
    # normalize_obs does not apply to a state index: the estimate does not change.
    assert _estimate(frozen, "training.num_envs=64", "env.normalize_obs=true") == plain
