"""Probe environments with known answers (after rejax's tests/environments.py).

Each isolates one thing a trainer must get right; a failure points at it:

* ``ConstantReward``: one step, reward 1. The value of the only obs is 1.
* ``ObsReward``: one step, obs is +-1 at random, reward = obs. V(obs) = obs.
* ``ActionReward``: one step, obs is +-1; reward 1 when the action's sign
  matches the obs (action 1 for +1, action 0 for -1). Greedy policy = match.
* ``TwoStep``: two steps, reward 1 only on the second. V(s0) = gamma, V(s1) = 1.
* ``ContinuousActionReward``: one step, reward = -(a - 0.5)^2 with a in
  [-1, 1]. The Gaussian policy's mean must move to 0.5. Other boxes and
  targets: ``ContinuousActionReward(low, high, target)``.
* ``ActionIsReward(low, high)``: one step, reward = the env action a in
  [low, high]; what the env received, read back from the return.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class ProbeState:
    time: int
    obs: jax.Array


@struct.dataclass
class ProbeParams:
    max_steps_in_episode: int = 10


class _Probe(environment.Environment):
    obs_dim = 1
    episode_length = 1

    @property
    def default_params(self) -> ProbeParams:
        return ProbeParams()

    def first_obs(self, key):
        return jnp.zeros((self.obs_dim,), jnp.float32)

    def reward(self, state, action):
        raise NotImplementedError

    def next_obs(self, state):
        return state.obs

    def reset_env(self, key, params):
        state = ProbeState(time=0, obs=self.first_obs(key))
        return state.obs, state

    def step_env(self, key, state, action, params):
        reward = jnp.asarray(self.reward(state, action), jnp.float32)
        state = ProbeState(time=state.time + 1, obs=self.next_obs(state))
        terminated = state.time >= self.episode_length
        return state.obs, state, reward, terminated, {}

    def action_space(self, params):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(-1.0, 1.0, (self.obs_dim,), jnp.float32)


class ConstantReward(_Probe):
    def reward(self, state, action):
        return 1.0


def _random_sign(key):
    return jnp.where(jax.random.bernoulli(key), 1.0, -1.0)[None]


class ObsReward(_Probe):
    def first_obs(self, key):
        return _random_sign(key)

    def reward(self, state, action):
        return state.obs[0]


class ActionReward(_Probe):
    def first_obs(self, key):
        return _random_sign(key)

    def reward(self, state, action):
        return (action == (state.obs[0] > 0)).astype(jnp.float32)


class TwoStep(_Probe):
    obs_dim = 2
    episode_length = 2

    def first_obs(self, key):
        return jnp.array([1.0, 0.0])

    def next_obs(self, state):
        return jnp.array([0.0, 1.0])

    def reward(self, state, action):
        return state.obs[1]  # 0 on the first step, 1 on the second


class ContinuousActionReward(_Probe):
    def __init__(self, low: float = -1.0, high: float = 1.0, target: float = 0.5):
        super().__init__()
        self.low, self.high, self.target = low, high, target

    def reward(self, state, action):
        return -jnp.square(action[0] - self.target)

    def action_space(self, params):
        return spaces.Box(self.low, self.high, (1,), jnp.float32)


class ActionIsReward(ContinuousActionReward):
    def reward(self, state, action):
        return action[0]
