"""Issue 14's trainer contracts: the inputs a caller of make_train / learn / init gets wrong
give one clear error, not a silent wrong answer."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax
from pgjax.config import apply_overrides, config_to_dict, load_config
from pgjax.rollout import make_rollout

PPO = apply_overrides(load_config("configs/cartpole_ppo.yaml"),
                      ["training.total_env_steps=4096", "network.hidden_sizes=[8]"])


@pytest.fixture(scope="module")
def ppo():
    trainer = pgjax.make_train(PPO)
    return trainer, jax.jit(trainer.init)(jax.random.key(0))


@pytest.mark.parametrize("factor", [0.5, 2])
def test_learn_refuses_a_rollout_of_another_length(ppo, factor):
    # Before: twice T silently ignored the second half, half T clamped the shuffle indices.
    trainer, state = ppo
    n, steps = PPO.training.num_envs, int(PPO.algorithm.n_steps * factor)
    rollout = make_rollout(trainer.env, trainer.networks.apply, num_envs=n, num_steps=steps)
    _, traj, _, _ = jax.jit(rollout.rollout)(state.params, state.rollout, jax.random.key(1),
                                             state.obs_stats)
    with pytest.raises(ValueError, match=rf"traj.obs has shape \({steps}, {n}, 4\); .* expected "
                                         rf"\({PPO.algorithm.n_steps}, {n}, 4\)"):
        trainer.learn(state, traj, None, jax.random.key(2))


def test_learn_documents_that_the_caller_advances_update(ppo):
    assert "does not advance ``state.update``" in ppo[0].learn.__doc__


def test_init_refuses_a_dict_and_out_of_range_hparams(ppo):
    trainer, _ = ppo
    with pytest.raises(TypeError, match="expected a pgjax.HParams, got dict"):
        trainer.init(jax.random.key(0), {"gamma": 0.9})
    with pytest.raises(ValueError, match=r"hparams.gamma=2.0: must be in \[0, 1\]"):
        trainer.init(jax.random.key(0), trainer.hparams._replace(gamma=jnp.float32(2.0)))
    # Traced (vmapped) hyperparameters cannot be checked and still work.
    swept = jax.tree.map(lambda x: jnp.stack([x, x]), trainer.hparams)
    jax.vmap(trainer.init, in_axes=(None, 0))(jax.random.key(0), swept)


def test_make_train_says_what_to_pass():
    with pytest.raises(TypeError, match="wrap it with pgjax.wrap_env"):
        pgjax.make_train(PPO, env=gymnax.make("CartPole-v1")[0])
    with pytest.raises(TypeError, match="config_from_dict"):
        pgjax.make_train(config_to_dict(PPO))


def test_a_custom_env_names_itself_in_the_trainer_config():
    env = pgjax.wrap_env(gymnax.make("Acrobot-v1")[0], name="MyAcrobot")
    config = apply_overrides(PPO, ["env.params.max_steps_in_episode=50"])
    trainer = pgjax.make_train(config, env=env)
    assert trainer.config.env.name == "MyAcrobot" and trainer.config.env.params == ()
    assert pgjax.make_train(PPO).config is PPO  # built from the config: unchanged


def test_an_update_without_a_finished_episode_has_no_mean_return():
    # Before: 0.0, which pulled per-update averages down (README sweep: 116.6 for 246.8).
    config = apply_overrides(load_config("configs/cartpole_a2c.yaml"),
                             ["training.total_env_steps=12800", "training.num_envs=4"])
    trainer = pgjax.make_train(config)
    _, metrics = jax.jit(trainer.train)(jax.random.key(0))
    count = np.asarray(metrics["episode_count"])
    returns = np.asarray(metrics["episode_return"])
    assert (count == 0).any() and (count > 0).any()
    assert np.isnan(returns[count == 0]).all() and np.isfinite(returns[count > 0]).all()
    want = (returns[count > 0] * count[count > 0]).sum() / count.sum()
    np.testing.assert_allclose(float(pgjax.episode_mean(metrics)), want, rtol=1e-6)


def test_load_run_and_make_policy(tmp_path, monkeypatch):
    from pgjax import cli
    from pgjax.envs import normalize_obs
    from pgjax.networks import env_action

    monkeypatch.chdir(tmp_path)
    assert cli.main(["--no-cache", "train", "cartpole_ppo", "--seeds", "2", "--out", "run",
                     "--set", "training.total_env_steps=4096"]) == 0
    trainer, state = pgjax.load_run("run")
    assert state.update.shape == (2,) and trainer.config.training.num_seeds == 2
    obs = jax.random.normal(jax.random.key(0), (5, 4))
    act = jax.jit(pgjax.make_policy(trainer, state, seed_index=1))
    one = jax.tree.map(lambda x: x[1], state)
    dist = trainer.networks.actor(one.params, normalize_obs(one.obs_stats, obs))
    np.testing.assert_array_equal(act(obs, jax.random.key(1)),
                                  env_action(trainer.env.spec, dist.mode()))
    assert act(obs[0], jax.random.key(1)).shape == ()
    with pytest.raises(ValueError, match="seed_index=2; the state has 2 seed"):
        pgjax.make_policy(trainer, state, seed_index=2)
    with pytest.raises(ValueError, match="must be 'latest' or 'best'"):
        pgjax.load_run("run", checkpoint="first")
    pgjax.load_run("run", checkpoint="best")
