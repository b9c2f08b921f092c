"""The scan body shared by every rollout: one vectorised env step under the policy, the
episode statistics accumulated inside the scan, and the recurrent carry's reset.

:mod:`pgjax.rollout` builds the n-step and the episodic rollouts from these; the keys and
conventions are documented there.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from pgjax.envs.base import Env
from pgjax.envs.obs import normalize_obs as _normalize
from pgjax.networks import env_action
from pgjax.types import Transition

Array = jax.Array
ApplyFn = Callable[..., tuple]
# initial_carry(num_envs) -> a recurrent network's carry for num_envs fresh episodes.
InitialCarry = Callable[[int], Any]


class EpisodeStats(NamedTuple):
    """Totals over the episodes that *ended* inside one rollout (scalars).

    An episode that started in an earlier rollout counts in full (its return
    and length include the earlier steps). Mean return is
    ``return_sum / max(count, 1)``.

    Attributes:
      count: episodes ended (terminated or truncated), int32.
      return_sum: sum of their undiscounted returns, float32.
      length_sum: sum of their lengths in steps, int32 (exact below 2**31).
      return_min: smallest return, float32; ``+inf`` when ``count == 0``.
      return_max: largest return, float32; ``-inf`` when ``count == 0``.
        (``±inf`` are the identities of min and max, so stats of several
        rollouts combine with ``min``/``max``.)
    """

    count: Array
    return_sum: Array
    length_sum: Array
    return_min: Array
    return_max: Array


class StepOut(NamedTuple):
    """Per-step scan outputs, each ``[N, ...]``; stacked to ``[T, N, ...]``."""

    obs: Array
    action: Array
    reward: Array
    terminated: Array
    truncated: Array
    log_prob: Array
    value: Array
    final_value: Array  # V(final observation) where truncated, else 0
    carry: Any  # the network's carry before the step (None: feedforward)


def empty_episode_stats(shape: tuple[int, ...] = ()) -> EpisodeStats:
    return EpisodeStats(
        count=jnp.zeros(shape, jnp.int32),
        return_sum=jnp.zeros(shape, jnp.float32),
        length_sum=jnp.zeros(shape, jnp.int32),
        return_min=jnp.full(shape, jnp.inf, jnp.float32),
        return_max=jnp.full(shape, -jnp.inf, jnp.float32),
    )


def add_episodes(stats: EpisodeStats, done: Array, returns: Array, lengths: Array) -> EpisodeStats:
    """Adds, per env, the episodes where ``done``: all leaves ``[N]``, elementwise.

    Elementwise per-env accumulators fuse into one loop in the scan body; the
    reduction over envs (:func:`total`) runs once, after the scan.
    """
    return EpisodeStats(
        count=stats.count + done.astype(jnp.int32),
        return_sum=stats.return_sum + jnp.where(done, returns, 0.0),
        length_sum=stats.length_sum + jnp.where(done, lengths, 0),
        return_min=jnp.where(done, jnp.minimum(stats.return_min, returns), stats.return_min),
        return_max=jnp.where(done, jnp.maximum(stats.return_max, returns), stats.return_max),
    )


def total(stats: EpisodeStats) -> EpisodeStats:
    """Reduces per-env ``[N]`` accumulators to scalars."""
    return EpisodeStats(
        count=jnp.sum(stats.count, dtype=jnp.int32),
        return_sum=jnp.sum(stats.return_sum),
        length_sum=jnp.sum(stats.length_sum, dtype=jnp.int32),
        return_min=jnp.min(stats.return_min),
        return_max=jnp.max(stats.return_max),
    )


def strip_weak_types(tree: Any) -> Any:
    """Gives every leaf a strong dtype.

    Env resets may return some leaves weakly typed (e.g. Pendulum's ``last_u``,
    every env's ``time``) that ``env.step`` returns strongly typed. A state
    whose types change between calls would make ``jit`` compile ``rollout``
    twice, so states are normalised to strong types on the way in and out.
    """
    return jax.tree.map(lambda x: jnp.asarray(x, x.dtype), tree)


def policy_step(apply_fn: ApplyFn, initial_carry: InitialCarry | None) -> Callable:
    """``apply_fn`` as ``(params, obs, carry) -> (dist, value, carry)`` for both kinds of
    network: a feedforward ``apply_fn(params, obs) -> (dist, value)`` (``initial_carry``
    None) passes ``carry`` (None) through; a recurrent one is called as it is."""
    if initial_carry is not None:
        return apply_fn
    return lambda params, obs, carry: (*apply_fn(params, obs), carry)


def reset_carry(carry: Any, initial: Any, done: Array) -> Any:
    """``carry`` with the envs where ``done`` (``[N]``) back at ``initial``."""
    def where(c, c0):
        return jnp.where(done.reshape(done.shape + (1,) * (c.ndim - done.ndim)), c0, c)

    return jax.tree.map(where, carry, initial)


def make_step(env: Env, apply_fn: ApplyFn, num_envs: int,
               initial_carry: InitialCarry | None = None):
    """One vectorised env step under the policy: the shared scan body."""
    step_envs = jax.vmap(env.step)
    net = policy_step(apply_fn, initial_carry)
    fresh = None if initial_carry is None else initial_carry(num_envs)

    def step(params, obs_stats, env_state, obs, carry, key):
        act_key, env_key = jax.random.split(key)
        policy_obs = obs if obs_stats is None else _normalize(obs_stats, obs)
        dist, value, next_carry = net(params, policy_obs, carry)
        action = dist.sample(act_key)
        log_prob = dist.log_prob(action)
        next_obs, env_state, reward, terminated, truncated, final_obs = step_envs(
            jax.random.split(env_key, num_envs),
            env_state,
            env_action(env.spec, action),
        )

        # V(final observation) is only needed where an episode was truncated,
        # which for time limits is rare: one batch-level cond keeps the extra
        # critic forward off the common path.
        def final_value(final_obs):
            if obs_stats is not None:
                final_obs = _normalize(obs_stats, final_obs)
            return net(params, final_obs, next_carry)[1].astype(jnp.float32)

        value = value.astype(jnp.float32)
        v_final = jax.lax.cond(
            jnp.any(truncated),
            final_value,
            lambda _: jnp.zeros_like(value),
            final_obs,
        )
        out = StepOut(
            obs=policy_obs,
            action=action,
            reward=reward.astype(jnp.float32),
            terminated=terminated,
            truncated=truncated,
            log_prob=log_prob,
            value=value,
            final_value=v_final,
            carry=carry,
        )
        if fresh is not None:  # a new episode starts from the initial carry
            next_carry = reset_carry(next_carry, fresh, terminated | truncated)
        return env_state, next_obs, next_carry, out

    def last_value(params, obs_stats, obs, carry):
        policy_obs = obs if obs_stats is None else _normalize(obs_stats, obs)
        return net(params, policy_obs, carry)[1].astype(jnp.float32)

    return step, last_value


def transition(out: StepOut, last_value: Array) -> Transition:
    """Stacks scan outputs into a Transition, filling in ``next_value``."""
    following = jnp.concatenate([out.value[1:], last_value[None]], axis=0)
    next_value = jnp.where(
        out.truncated, out.final_value, jnp.where(out.terminated, 0.0, following)
    )
    return Transition(
        obs=out.obs,
        action=out.action,
        reward=out.reward,
        terminated=out.terminated,
        truncated=out.truncated,
        log_prob=out.log_prob,
        value=out.value,
        next_value=next_value,
        carry=out.carry,
    )


def episode_metrics(stats: EpisodeStats) -> dict[str, Array]:
    """An update's episode metrics: mean return and length of the episodes that ended in it
    (NaN when none did) and their count."""
    # NaN, not 0, when no episode ended in the update: a mean over no episodes is missing, and
    # a 0 would pull averages over updates down (episode_mean weights by episode_count).
    count = stats.count.astype(jnp.float32)
    ended = count > 0
    return {
        "episode_return": jnp.where(ended, stats.return_sum / jnp.maximum(count, 1.0), jnp.nan),
        "episode_length": jnp.where(
            ended, stats.length_sum.astype(jnp.float32) / jnp.maximum(count, 1.0), jnp.nan),
        "episode_count": count,
    }


def episode_mean(metrics: dict[str, Array], name: str = "episode_return", axis: int = -1) -> Array:
    """The mean of ``metrics[name]`` (``"episode_return"`` or ``"episode_length"``) over the
    episodes that ended, along ``axis`` (updates): each update weighted by its
    ``episode_count``, updates with none skipped; NaN where no episode ended at all.

    Examples:
      >>> m = {"episode_return": jnp.array([10.0, jnp.nan, 40.0]),
      ...      "episode_count": jnp.array([3.0, 0.0, 1.0])}
      >>> float(episode_mean(m))  # (3 * 10 + 1 * 40) / 4, not the mean of [10, 0, 40]
      17.5
    """
    count = jnp.asarray(metrics["episode_count"], jnp.float32)
    values = jnp.where(count > 0, jnp.asarray(metrics[name], jnp.float32), 0.0)
    total = jnp.sum(count, axis=axis)
    return jnp.where(total > 0, jnp.sum(values * count, axis=axis) / jnp.maximum(total, 1.0),
                     jnp.nan)
