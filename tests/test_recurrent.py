"""Recurrent (GRU) policies: a memory task the MLP cannot solve, and PPO minibatches that
keep each env's sequence whole (issue 17, item 2)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax.algos as algos
from pgjax.config import apply_overrides, load_config
from pgjax.envs import EnvStep
from pgjax.train import make_train
from pgjax.types import DiscreteSpace, EnvSpec

K = 4  # steps per episode


class Cue:
    """A cue (+1 or -1) shown at the first step only; at the K-th step the action must match
    it (action 1 for +1): reward 1, else 0; the episode then terminates. Observation:
    ``[cue at t = 0 else 0, 1 at the answering step]``. Without memory: reward 0.5."""

    spec = EnvSpec("Cue", (2,), DiscreteSpace(2), K)

    def _obs(self, cue, t):
        t = jnp.asarray(t)
        return jnp.stack([jnp.where(t == 0, cue, 0.0), (t == K - 1).astype(jnp.float32)])

    def reset(self, key):
        cue = jnp.where(jax.random.bernoulli(key), 1.0, -1.0)
        return self._obs(cue, 0), {"cue": cue, "t": jnp.zeros((), jnp.int32)}

    def step(self, key, state, action):
        answer = state["t"] == K - 1
        reward = jnp.where(answer & ((action == 1) == (state["cue"] > 0)), 1.0, 0.0)
        t = state["t"] + 1
        final_obs = self._obs(state["cue"], t)
        obs, fresh = self.reset(key)
        new = jax.tree.map(lambda a, b: jnp.where(answer, a, b), fresh,
                           {"cue": state["cue"], "t": t})
        obs = jnp.where(answer, obs, final_obs)
        return EnvStep(obs, new, reward, answer, jnp.zeros((), bool), final_obs)


def _trained_return(gru_size: int, algorithm: str) -> float:
    config = apply_overrides(load_config("cartpole_a2c"), [
        f"algorithm.name={algorithm}", f"network.gru_size={gru_size}",
        "network.hidden_sizes=[32]", "training.num_envs=32", "training.total_env_steps=40960",
        "optimizer.actor_lr=3e-3", "optimizer.critic_lr=3e-3", "algorithm.minibatches=2",
        "training.eval_episodes=64"])
    trainer = make_train(config, env=Cue())
    state, _ = jax.jit(trainer.train)(jax.random.key(0))
    return float(jax.jit(trainer.evaluate)(state, jax.random.key(1)).mean())


@pytest.mark.parametrize("algorithm", ["a2c", "ppo"])
def test_a_gru_policy_remembers_the_cue_and_an_mlp_cannot(algorithm):
    assert _trained_return(16, algorithm) > 0.95
    assert _trained_return(0, algorithm) < 0.75


def test_recurrent_ppo_minibatches_are_whole_env_sequences():
    config = apply_overrides(load_config("cartpole_ppo"), [
        "network.gru_size=4", "network.hidden_sizes=[4]", "training.num_envs=8",
        "algorithm.n_steps=6", "algorithm.minibatches=4", "algorithm.epochs=2"])
    trainer = make_train(config, env=Cue())
    state = jax.jit(trainer.init)(jax.random.key(0))
    state, _ = jax.jit(trainer.update)(state)  # a carry that is not all zeros
    seen = []

    def gradient_step(params, opt_state, batch, hp, lr_scale, strided=False):
        seen.append(batch)
        return params, opt_state, {"loss": jnp.zeros(())}

    from pgjax.rollout import make_rollout
    rollout = make_rollout(trainer.env, trainer.networks.apply, num_envs=8, num_steps=6,
                           initial_carry=trainer.networks.initial_carry)
    _, traj, _, _ = rollout.rollout(state.params, state.rollout, jax.random.key(1))
    batch = trainer.algorithm.batch(traj, None, state.hparams, config)
    learner = algos.Learner(config, trainer.derived, trainer.networks, gradient_step,
                            lambda tree, axis=1: tree, None, True)
    with jax.disable_jit():  # scans run as Python loops: every minibatch is seen concretely
        trainer.algorithm.update(learner, state.params, state.opt_state, batch, state.hparams,
                                 1.0, jax.random.key(2), traj, None)
    assert len(seen) == 2 * 4  # epochs x minibatches
    full = np.asarray(batch.obs)  # [T, N, 2]
    columns = {full[:, n].tobytes() for n in range(full.shape[1])}
    for epoch in range(2):
        got = set()
        for mb in seen[4 * epoch: 4 * epoch + 4]:
            obs = np.asarray(mb.obs)
            assert obs.shape == (6, 2, 2)  # [T, n]: whole sequences of 8 / 4 envs
            for j in range(2):  # each column a whole env sequence, in time order
                assert obs[:, j].tobytes() in columns
                got.add(obs[:, j].tobytes())
            np.testing.assert_array_equal(np.asarray(mb.carry["actor"])[0].shape, (2, 4))
        assert got == columns  # each epoch covers every env once
