"""Run in a subprocess with XLA_FLAGS=--xla_force_host_platform_device_count=4 (tests/test_sharding.py).

Trains each algorithm with training.devices=4 and =1 on the same keys and global batch,
and prints one JSON line per check.
"""

import json
import re
import sys

import pgjax  # first: XLA flags

import jax
import numpy as np

from pgjax.config import Config, apply_overrides

assert len(jax.devices()) == 4, jax.devices()


def config(algorithm: str, devices, *extra: str) -> Config:
    base = ["env.name=CartPole-v1", f"algorithm.name={algorithm}", "training.num_envs=64",
            "training.eval_episodes=8", f"training.devices={devices}"]
    if algorithm in ("a2c", "ppo"):
        base += ["algorithm.n_steps=8", "training.total_env_steps=5120"]  # 10 updates
    else:
        # Updates until 4,000 env steps are taken (each takes 64 episodes' steps: 3-5 updates)
        base += ["env.params.max_steps_in_episode=50", "training.total_env_steps=4000"]
    if algorithm == "ppo":
        base += ["algorithm.minibatches=4", "algorithm.epochs=2"]
    return apply_overrides(Config(), base + list(extra))


def max_rel_diff(a, b) -> float:
    a, b = jax.device_get((a, b))
    diffs = jax.tree.map(lambda x, y: float(np.max(np.abs(x - y)) / (np.max(np.abs(y)) + 1e-6)),
                         a, b)
    return max(jax.tree.leaves(diffs))


results = {}
if "split_seeds" in sys.argv[1:]:
    # training.split = "seeds": 4 seeds, one per device, against the same 4 seeds on one device.
    key = jax.random.key(0)
    keys = jax.random.split(key, 4)
    one = pgjax.make_train(config("a2c", 1))
    four = pgjax.make_train(config("a2c", 4, "training.split=seeds", "training.num_seeds=4"))
    s1, _ = jax.block_until_ready(jax.jit(jax.vmap(one.train))(keys))
    s4, _ = jax.block_until_ready(
        jax.jit(jax.vmap(four.train))(four.sharding.put_seeds(keys)))
    leaves = jax.tree.leaves(s4.params) + [s4.rollout.obs]
    results["split_seeds"] = {
        "params_rel_diff": max_rel_diff(s4.params, s1.params),
        "seeds_per_device": sorted({shard.data.shape[0] for x in leaves
                                    for shard in x.addressable_shards}),
        "devices": len(s4.rollout.obs.sharding.device_set),
        "envs_per_device": sorted({shard.data.shape[1] for shard in s4.rollout.obs.addressable_shards}),
    }
if "sliced" in sys.argv[1:]:
    # Gradients summed over slices of <= 16 samples a device (a2c: one time step each, 64 or
    # 16 envs; ppo: 8 strided slices of each 128-row minibatch on 1 device, 2 of its 32 rows a
    # device on 4), against one device's whole-batch gradients.
    from pgjax.learner import loss_slices

    key = jax.random.key(0)
    for algorithm in ("a2c", "ppo"):
        whole = pgjax.make_train(config(algorithm, 1, "training.grad_slice_samples=0"))
        one = pgjax.make_train(config(algorithm, 1, "training.grad_slice_samples=16"))
        four = pgjax.make_train(config(algorithm, 4, "training.grad_slice_samples=16"))
        sw, _ = jax.block_until_ready(jax.jit(whole.train)(key))
        s1, _ = jax.block_until_ready(jax.jit(one.train)(key))
        s4, _ = jax.block_until_ready(jax.jit(four.train)(key))
        results[f"sliced_{algorithm}"] = {
            "slices": [loss_slices(one.config, num_devices=1),
                       loss_slices(four.config, num_devices=4)],
            "one_vs_whole": max_rel_diff(s1.params, sw.params),
            "four_vs_whole": max_rel_diff(s4.params, sw.params),
        }
for algorithm in [a for a in sys.argv[1:] if a not in ("split_seeds", "sliced")]:
    key = jax.random.key(0)
    one = pgjax.make_train(config(algorithm, 1))
    four = pgjax.make_train(config(algorithm, 4))
    s1, m1 = jax.block_until_ready(jax.jit(one.train)(key))
    s4, m4 = jax.block_until_ready(jax.jit(four.train)(key))
    entry = {
        "params_rel_diff": max_rel_diff(s4.params, s1.params),
        # The updates run (an episodic algorithm's later rows are NaN padding).
        "loss_rel_diff": max_rel_diff(m4["loss"][:int(s1.update)], m1["loss"][:int(s1.update)]),
        "updates": [int(s1.update), int(s4.update)],
        "return_1": float(pgjax.episode_mean(m1)),
        "return_4": float(pgjax.episode_mean(m4)),
        "param_sharding_replicated": all(
            x.sharding.is_fully_replicated for x in jax.tree.leaves(s4.params)),
    }
    # One update, compiled once: its HLO, its rollout and the state it leaves.
    s0 = jax.block_until_ready(jax.jit(four.init)(key))
    update = jax.jit(four.update).lower(s0).compile()
    s1 = jax.block_until_ready(update(s0)[0])
    if algorithm in ("a2c", "ppo"):
        # The rollout arrays of one device hold 64 / 4 = 16 envs.
        rollout = s1.rollout
        entry["rollout_obs_shard_shapes"] = sorted(
            {tuple(shard.data.shape) for shard in rollout.obs.addressable_shards})
        entry["rollout_obs_devices"] = len(rollout.obs.sharding.device_set)
        # Rows of the hidden-layer matmuls each device runs in one update (rollout: 16 envs;
        # a2c: 8 steps x 16 envs; ppo minibatch: 512 / 4 minibatches / 4 devices = 32).
        hlo = update.as_text()
        entry["dot_rows"] = sorted({int(m) for m in re.findall(r"f32\[(\d+),64\]\{[^}]*\} dot\(", hlo)})
    # init and update lay the state out alike (so update compiles once), as Sharding.state says.
    expected = four.sharding.state(s0)
    entry["state_shardings_stable"] = all(
        a.sharding.is_equivalent_to(b.sharding, a.ndim) and a.sharding.is_equivalent_to(e, a.ndim)
        for a, b, e in zip(jax.tree.leaves(s0), jax.tree.leaves(s1), jax.tree.leaves(expected)))
    # vmap over 2 seeds composes with the 4 devices.
    keys = jax.random.split(key, 2)
    sv, mv = jax.block_until_ready(jax.jit(jax.vmap(four.train))(keys))
    s_a, _ = jax.block_until_ready(jax.jit(four.train)(keys[0]))
    entry["vmap_seed0_rel_diff"] = max_rel_diff(jax.tree.map(lambda x: x[0], sv.params), s_a.params)
    entry["vmap_seeds_differ"] = max_rel_diff(jax.tree.map(lambda x: x[0], sv.params),
                                              jax.tree.map(lambda x: x[1], sv.params)) > 1e-3
    if algorithm in ("a2c", "ppo"):
        entry["vmap_obs_shard_shapes"] = sorted(
            {tuple(shard.data.shape) for shard in sv.rollout.obs.addressable_shards})
    results[algorithm] = entry
print(json.dumps(results))
