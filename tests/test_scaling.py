"""The batch rule (pgjax.scaling): what changes with num_envs, what never does, explicit wins."""

import dataclasses
import math
import pathlib

import jax
import numpy as np
import pytest

from pgjax.config import Config, apply_overrides, derive, load_config
from pgjax.envs import normalize_obs
from pgjax.rollout import make_rollout
from pgjax.scaling import MAX_LR_FACTOR, MIN_STEPS, apply_overrides_scaled, scale_to_num_envs
from pgjax.train import make_train

PRESETS = sorted((pathlib.Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def _ppo(**algorithm):
    return apply_overrides(Config(), ["algorithm.name=ppo", "algorithm.n_steps=32",
                                      "algorithm.minibatches=4", "optimizer.actor_lr=1e-3",
                                      "optimizer.critic_lr=1e-3",
                                      *(f"algorithm.{k}={v}" for k, v in algorithm.items())])


def test_ppo_rule_by_hand():
    # N0 = 16, T0 = 32, B0 = 512, mb0 = 128. N = 4096: T = max(8, 32 * 16/4096) = 8,
    # B = 32768, mb = 128 * sqrt(32768/512) = 1024, 32 minibatches, critic lr x sqrt(8).
    scaled = scale_to_num_envs(_ppo(), 4096)
    a, o = scaled.config.algorithm, scaled.config.optimizer
    assert (a.n_steps, a.minibatches, a.recompute_advantages) == (8, 32, True)
    assert o.actor_lr == 1e-3 and o.critic_lr == pytest.approx(1e-3 * math.sqrt(8), rel=1e-3)
    assert scaled.config.training.num_envs == 4096
    assert scaled.config.env.normalize_obs
    assert [line.split()[0] for line in scaled.changes] == [
        "training.num_envs", "env.normalize_obs", "algorithm.n_steps", "algorithm.minibatches", "optimizer.critic_lr",
        "algorithm.recompute_advantages"]
    # N = 64: T = 8 already (32 * 16/64), B = 512 = B0: same minibatch size, same lr.
    small = scale_to_num_envs(_ppo(), 64).config
    assert (small.algorithm.n_steps, small.algorithm.minibatches) == (8, 4)
    assert small.optimizer.critic_lr == 1e-3 and small.algorithm.recompute_advantages


def test_a2c_rule_by_hand():
    # a2c preset: T0 = 8 = MIN_STEPS stays; B / B0 = 64, so the critic's lr x 8 and the
    # actor's x min(8, MAX_LR_FACTOR), annealed; observation normalisation stays the preset's.
    base = apply_overrides(Config(), ["optimizer.actor_lr=3e-4", "optimizer.critic_lr=1e-3"])
    c = scale_to_num_envs(base, 1024).config
    assert not c.env.normalize_obs
    assert c.algorithm.n_steps == 8
    assert c.optimizer.actor_lr == pytest.approx(3e-4 * MAX_LR_FACTOR)
    assert c.optimizer.critic_lr == pytest.approx(8e-3)
    assert c.optimizer.anneal_lr and c.algorithm.normalize_advantages


def test_a_recurrent_network_keeps_its_sequences():
    # GRU: T stays 32 (gradients reach back one rollout), nothing is recomputed (not
    # supported with a carry), and minibatches are whole sequences of whole envs. N = 96:
    # B = 3072, mb = 128 * sqrt(3072/512) = 313.5 -> 256 samples (the nearest divisor of B)
    # = 8 envs (a divisor of 96), so 12 minibatches of 8 x 32.
    scaled = scale_to_num_envs(_ppo(), 96, explicit={"network.gru_size": 16})
    a = scaled.config.algorithm
    assert (a.n_steps, a.minibatches, a.recompute_advantages) == (32, 12, False)
    assert "as whole sequences of 8 envs" in "\n".join(scaled.changes)
    # An explicit shorter rollout is kept and still recomputes nothing; the config trains.
    config = apply_overrides_scaled(_ppo(), ["network.gru_size=8", "training.num_envs=40",
                                             "algorithm.n_steps=16"]).config
    assert config.algorithm.n_steps == 16 and not config.algorithm.recompute_advantages
    assert config.training.num_envs % config.algorithm.minibatches == 0
    make_train(config)  # the recurrent checks of make_train pass
    a2c = scale_to_num_envs(apply_overrides(Config(), ["algorithm.n_steps=32"]), 1024,
                            explicit={"network.gru_size": 16}).config
    assert a2c.algorithm.n_steps == 32


@pytest.mark.parametrize("n", [1, 8, 16])
def test_nothing_changes_at_or_below_the_tuned_num_envs(n):
    config = _ppo()
    scaled = scale_to_num_envs(config, n)
    assert scaled.config == dataclasses.replace(config, training=dataclasses.replace(
        config.training, num_envs=n))
    assert scaled.changes == (() if n == 16 else (f"training.num_envs 16 -> {n}",))


def test_reinforce_and_opt_out_only_change_num_envs():
    for config in (apply_overrides(Config(), ["algorithm.name=reinforce"]),
                   apply_overrides(_ppo(), ["training.scale_with_num_envs=false"])):
        scaled = scale_to_num_envs(config, 4096)
        assert scaled.changes == ("training.num_envs 16 -> 4096",)
        assert scaled.config.algorithm == config.algorithm
        assert scaled.config.optimizer == config.optimizer


def test_explicit_settings_win_and_the_rest_follows_them():
    s = apply_overrides_scaled(_ppo(), ["training.num_envs=4096", "algorithm.n_steps=16"])
    a = s.config.algorithm
    # T kept at 16: B = 65536, mb = 128 * sqrt(128) = 1448 -> the nearest divisor, 2048.
    assert a.n_steps == 16 and a.minibatches == 32
    assert a.recompute_advantages  # 16 < 32: still a shorter rollout
    assert not any(line.startswith("algorithm.n_steps") for line in s.changes)
    s = apply_overrides_scaled(_ppo(), ["training.num_envs=4096", "algorithm.minibatches=8",
                                        "optimizer.critic_lr=5e-4",
                                        "algorithm.recompute_advantages=false"])
    a, o = s.config.algorithm, s.config.optimizer
    assert (a.n_steps, a.minibatches, a.recompute_advantages, o.critic_lr) == (8, 8, False, 5e-4)
    # --set training.scale_with_num_envs=false: the literal config.
    s = apply_overrides_scaled(_ppo(), ["training.num_envs=4096",
                                        "training.scale_with_num_envs=false"])
    assert s.config == apply_overrides(_ppo(), ["training.num_envs=4096",
                                                "training.scale_with_num_envs=false"])


def test_without_a_num_envs_change_it_is_apply_overrides():
    overrides = ["algorithm.gamma=0.9", "training.num_envs=16"]
    s = apply_overrides_scaled(_ppo(), overrides)
    assert s.config == apply_overrides(_ppo(), overrides) and s.changes == ()


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
@pytest.mark.parametrize("n", [256, 1024, 4096, 16384])
def test_every_preset_scales_to_a_valid_config_within_the_rule(path, n):
    preset = load_config(path)
    if preset.algorithm.name.startswith("reinforce"):  # whole episodes: nothing to derive
        scaled = scale_to_num_envs(preset, n)
        assert scaled.config.algorithm == preset.algorithm and len(scaled.changes) == 1
        return
    scaled = apply_overrides_scaled(preset, [f"training.num_envs={n}"]).config
    derive(scaled)  # validates, e.g. minibatches divide the batch
    a0, a = preset.algorithm, scaled.algorithm
    assert min(a0.n_steps, MIN_STEPS) <= a.n_steps <= a0.n_steps
    if a0.name == "ppo":
        mb0 = preset.training.num_envs * a0.n_steps // a0.minibatches
        mb = n * a.n_steps // a.minibatches
        assert mb >= mb0
        assert scaled.optimizer.critic_lr >= preset.optimizer.critic_lr
        assert scaled.optimizer.actor_lr == preset.optimizer.actor_lr


def test_preset_files_are_untouched():
    before = {p: p.read_text() for p in PRESETS}
    for p in PRESETS:
        apply_overrides_scaled(load_config(p), ["training.num_envs=4096"])
    assert before == {p: p.read_text() for p in PRESETS}


# ------------------------------------------------------- recompute_advantages (train.py)
def _ppo_trainer(*overrides):
    config = apply_overrides(Config(), [
        "algorithm.name=ppo", "training.num_envs=8", "algorithm.n_steps=16",
        "algorithm.minibatches=1", "network.hidden_sizes=[16]", "env.normalize_obs=true",
        "training.grad_slice_samples=0", *overrides])
    return make_train(config)


def test_recompute_with_one_epoch_is_the_plain_update():
    """Before the first epoch the critic is the acting one: nothing to recompute."""
    plain = _ppo_trainer("algorithm.epochs=1")
    recompute = _ppo_trainer("algorithm.epochs=1", "algorithm.recompute_advantages=true")
    state = jax.jit(plain.init)(jax.random.key(0))
    for _ in range(3):
        want, _ = jax.jit(plain.update)(state)
        got, _ = jax.jit(recompute.update)(state)
        for x, y in zip(jax.tree.leaves(got.params), jax.tree.leaves(want.params)):
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        state = want


def test_recompute_second_epoch_uses_the_updated_critic():
    """Two epochs with recompute = one epoch, then one epoch on the same rollout whose values
    (and bootstrap from the observation after it) come from the critic after the first."""
    two = _ppo_trainer("algorithm.epochs=2", "algorithm.recompute_advantages=true")
    one = _ppo_trainer("algorithm.epochs=1")
    state = jax.jit(two.init)(jax.random.key(1))
    state, _ = jax.jit(two.update)(state)  # obs statistics that are not the identity
    rollout = make_rollout(two.env, two.networks.apply, num_envs=8, num_steps=16,
                           normalize_obs=True).rollout
    new_rollout, traj, _, _ = jax.jit(rollout)(state.params, state.rollout, jax.random.key(2),
                                               state.obs_stats)
    last_obs = normalize_obs(state.obs_stats, new_rollout.obs)
    # One minibatch per epoch: the shuffle only reorders a mean, so keys need not match.
    k1, k2, k3 = jax.random.split(jax.random.key(3), 3)

    # Reference: epoch 1, then values of the updated critic, then epoch 2.
    params1, opt1, _ = jax.jit(one.learn)(state, traj, None, k1)
    value = one.networks.critic(params1, traj.obs)
    last = one.networks.critic(params1, last_obs)
    following = np.concatenate([value[1:], last[None]], axis=0)
    next_value = np.where(traj.truncated, traj.next_value,
                          np.where(traj.terminated, 0.0, following))
    traj2 = traj._replace(value=value, next_value=next_value)
    want, _, _ = jax.jit(one.learn)(state._replace(params=params1, opt_state=opt1), traj2,
                                    None, k2)
    got, _, _ = jax.jit(two.learn)(state, traj, None, k3, last_obs)
    for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
        np.testing.assert_allclose(x, y, rtol=2e-4, atol=2e-6)


def test_pgjax_train_prints_what_the_rule_derived_and_saves_it(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "pgjax.cli", "--no-cache", "train", "configs/cartpole_ppo.yaml",
         "--set", "training.num_envs=64", "--set", "training.total_env_steps=1024",
         "--set", "training.num_chunks=1", "--set", "training.eval_episodes=2",
         "--set", "algorithm.epochs=1", "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
        cwd=pathlib.Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert "training.num_envs 16 -> 64: the batch settings follow" in out.stdout
    assert "  algorithm.n_steps 32 -> 8 (32 * 16/64, at least 8)" in out.stdout
    assert "algorithm.epochs" not in out.stdout  # set explicitly: not the rule's
    saved = load_config(tmp_path / "run" / "config.yaml")
    assert (saved.training.num_envs, saved.algorithm.n_steps, saved.algorithm.epochs) == (64, 8, 1)
    assert saved.algorithm.recompute_advantages


def test_an_explicit_algorithm_name_picks_the_rule():
    a2c = apply_overrides(Config(), [])  # a2c, 16 envs x 8 steps
    s = apply_overrides_scaled(a2c, ["training.num_envs=1024", "algorithm.name=ppo"])
    assert s.config.algorithm.name == "ppo" and s.config.algorithm.recompute_advantages is False
    # ppo's rule: minibatch 128 / 4 = 32 samples -> 32 * sqrt(64) = 256, so 32 of them.
    assert s.config.algorithm.minibatches == 32 and s.config.env.normalize_obs
    s = apply_overrides_scaled(a2c, ["training.num_envs=1024", "algorithm.name=reinforce"])
    assert s.changes == ("training.num_envs 16 -> 1024",)
