"""Evaluation: whole episodes of the greedy and of the sampled policy, without a critic."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from pgjax.rollout import make_episodic_rollout

Array = jax.Array


class EvalReturns(NamedTuple):
    """The returns of one evaluation of both policies (leaves ``[E]``, or ``[S, E]`` vmapped).

    Attributes:
      greedy: of the greedy policy (each step takes the distribution's mode).
      sampled: of the stochastic policy that trained (each step samples its action).
    """

    greedy: Array
    sampled: Array


class Greedy(NamedTuple):
    """A distribution whose ``sample`` is its mode: the greedy policy."""

    dist: Any

    def sample(self, key):
        del key
        return self.dist.mode()

    def log_prob(self, action):
        return self.dist.log_prob(action)


class GreedyWhere(NamedTuple):
    """A batch of distributions that take their mode where ``greedy`` (``[N]`` bool) and
    sample elsewhere: greedy and sampled episodes in one rollout."""

    dist: Any
    greedy: Array

    def sample(self, key):
        mode, sampled = self.dist.mode(), self.dist.sample(key)
        greedy = self.greedy.reshape(self.greedy.shape + (1,) * (mode.ndim - self.greedy.ndim))
        return jnp.where(greedy, mode, sampled)

    def log_prob(self, action):
        return self.dist.log_prob(action)


def make_evaluate(env: Any, networks: Any, *, episodes: int, normalize_obs: bool,
                  shard: Callable[[Any], Any], num_devices: int):
    """``evaluate(params, obs_stats, key, greedy=True) -> returns[E]`` and
    ``evaluate_both(params, obs_stats, key) -> EvalReturns``: the undiscounted returns of
    ``episodes`` fresh episodes (``evaluate_both``: ``E`` greedy and ``E`` sampled ones as
    one rollout of ``2E`` envs: one compiled rollout, and both halves end within one
    episode cap)."""
    eval_envs = max(episodes, 1)
    recurrent = networks.initial_carry is not None

    def policy_only(mode: str):
        # Evaluation needs no critic: a zero value keeps the rollout's interface. "both": the
        # first eval_envs envs act greedily, the next eval_envs sample.
        def apply(params, obs, *carry):  # carry: (carry,) for a recurrent network, else ()
            if recurrent:
                dist, new_carry = networks.actor(params, obs, *carry)
            else:
                dist, new_carry = networks.actor(params, obs), None
            value = jnp.zeros(obs.shape[: obs.ndim - len(env.spec.obs_shape)])
            if mode == "both":
                dist = GreedyWhere(dist, jnp.arange(2 * eval_envs) < eval_envs)
            elif mode == "greedy":
                dist = Greedy(dist)
            return (dist, value, new_carry) if recurrent else (dist, value)

        return apply

    def rollout(mode: str):
        envs = 2 * eval_envs if mode == "both" else eval_envs
        return make_episodic_rollout(
            env, policy_only(mode), num_envs=envs, normalize_obs=normalize_obs,
            shard=shard if envs % num_devices == 0 else None,
            initial_carry=networks.initial_carry if recurrent else None,
        )

    rollouts = {mode: rollout(mode) for mode in ("greedy", "sampled", "both")}

    def evaluate(params, obs_stats, key: Array, greedy: bool | Array = True) -> Array:
        def returns(greedy: bool) -> Array:
            traj, _, _, _ = rollouts["greedy" if greedy else "sampled"](params, key, obs_stats)
            return jnp.sum(traj.reward, axis=0)

        if isinstance(greedy, bool):
            return returns(greedy)
        # A traced flag (e.g. evaluate passed to jit as an argument): pick at run time.
        return jax.lax.cond(greedy, lambda: returns(True), lambda: returns(False))

    def evaluate_both(params, obs_stats, key: Array) -> EvalReturns:
        # With JAX's default partitionable threefry, split(key, 2E)[:E] == split(key, E): the
        # greedy half plays the episodes of evaluate(..., greedy=True).
        traj, _, _, _ = rollouts["both"](params, key, obs_stats)
        returns = jnp.sum(traj.reward, axis=0)
        return EvalReturns(greedy=returns[:eval_envs], sampled=returns[eval_envs:])

    return evaluate, evaluate_both
