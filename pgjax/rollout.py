"""Rollouts: a ``lax.scan`` over time of N vmapped environments (:class:`pgjax.envs.Env`).

Everything here is a pure function of explicit inputs (policy params, rollout
state, a PRNG key), so a rollout can be jitted, scanned inside a training
update, and vmapped over seeds.

Conventions (see :mod:`pgjax.types`):

* **Time-major.** A rollout of T steps by N environments returns a
  :class:`~pgjax.types.Transition` with leaves ``[T, N, ...]``.
* **Reward indexing.** ``reward[t]`` is the reward for ``action[t]``, taken in
  ``obs[t]``.
* **Episode ends.** ``terminated[t]``: a true terminal state was reached, no
  bootstrap. ``truncated[t]``: the time limit cut the episode and it did not
  terminate (the env adapter makes them exclusive). Envs auto-reset, so
  after a done step ``obs[t + 1]`` is the first observation of a new episode.
* **next_value.** ``next_value[t]`` is V of the observation that followed step
  t in the *same* episode: ``value[t + 1]`` inside an episode, V of the
  pre-reset ``EnvStep.final_obs`` on a truncated step, and ``0`` on a
  terminated step (callers mask it by ``1 - terminated`` anyway). It is never
  V of a reset observation.

PRNG keys (a reference implementation can reproduce a rollout from these):

* ``reset(key)``: environment ``i`` resets with ``jax.random.split(key, N)[i]``.
* ``rollout(params, state, key)``: step ``t`` uses
  ``step_key = jax.random.split(key, T)[t]`` and
  ``act_key, env_key = jax.random.split(step_key)``. The whole batch of
  actions is ``dist.sample(act_key)`` for ``dist = apply_fn(params, obs[t])``
  over all N observations at once, and environment ``i`` steps with
  ``jax.random.split(env_key, N)[i]`` (the gymnax adapter splits that again into its step
  and auto-reset keys).
* the episodic rollout uses ``reset_key, rollout_key = jax.random.split(key)``
  and then the two schemes above.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from pgjax.acting import (ApplyFn, EpisodeStats, InitialCarry, add_episodes,  # noqa: F401
                          empty_episode_stats, make_step, policy_step, reset_carry,
                          strip_weak_types, total, transition)
from pgjax.envs.base import Env
from pgjax.envs.obs import ObsStats, init_obs_stats
from pgjax.envs.obs import update_obs_stats, uses_obs_normalization
from pgjax.types import Transition

Array = jax.Array
Params = Any


class RolloutState(NamedTuple):
    """What a rollout carries from one call to the next.

    Attributes:
      env_state: the batched env state, leaves ``[N, ...]``.
      obs: the current raw (unnormalised) observation, ``[N, *obs_shape]``.
      episode_return: undiscounted return so far of each running episode,
        ``[N]`` float32.
      episode_length: steps so far of each running episode, ``[N]`` int32.
      carry: a recurrent network's state for each running episode (leaves
        ``[N, ...]``); None for feedforward networks.

    Observation statistics are not part of it: they live in the caller's state
    (``TrainState.obs_stats``) and go in and out of ``rollout`` explicitly.
    """

    env_state: Any
    obs: Array
    episode_return: Array
    episode_length: Array
    carry: Any = None


# The RolloutState fields with one entry per environment (leading axis N): what a
# multi-device run splits over its devices (pgjax.sharding).
PER_ENV_FIELDS = ("env_state", "obs", "episode_return", "episode_length", "carry")


class Rollout(NamedTuple):
    """The pure functions returned by :func:`make_rollout`.

    Attributes:
      reset: ``reset(key) -> RolloutState``.
      rollout: ``rollout(params, state, key, obs_stats=None) -> (state, Transition,
        EpisodeStats, obs_stats)``.
    """

    reset: Callable[[Array], RolloutState]
    rollout: Callable[..., tuple[RolloutState, Transition, EpisodeStats, ObsStats | None]]


def make_rollout(
    env: Env,
    apply_fn: ApplyFn,
    *,
    num_envs: int,
    num_steps: int,
    normalize_obs: bool = False,
    shard: Callable[[Any], Any] | None = None,
    initial_carry: InitialCarry | None = None,
) -> Rollout:
    """Builds ``reset`` and ``rollout`` for N auto-resetting environments.

    ``rollout`` is one ``lax.scan`` over ``num_steps`` steps. Each step applies
    the policy to the whole batch of observations at once, samples actions,
    sends ``env_action(spec, action)`` (for box spaces: rescaled from
    normalised units to the box, then clipped) to ``jax.vmap(env.step)``, and
    keeps the sampled action itself and its log-prob.
    Episodes that end are reset by the env; their returns and lengths go into
    :class:`EpisodeStats`, accumulated inside the scan (no host callbacks).

    With ``normalize_obs=True`` the policy sees ``normalize_obs(obs_stats, obs)``
    (``obs_stats=None`` starts from :func:`~pgjax.envs.init_obs_stats`). The
    statistics are frozen for the whole rollout, so every observation in one
    Transition was normalised with the same statistics (the ones passed in);
    the rollout's raw observations ``obs[0 .. T-1]`` are then merged into them
    once and the result returned. ``Transition.obs`` holds the normalised
    observations; the state's ``obs`` stays raw. Discrete observations (state
    indices, ``spec.obs_num_values``) are never normalised: ``normalize_obs``
    is ignored for them (:func:`pgjax.envs.uses_obs_normalization`).

    See the module docstring for how keys are split, and for ``next_value``.

    Args:
      env: from :func:`pgjax.envs.make_env`.
      apply_fn: ``apply_fn(params, obs[N, *obs_shape]) -> (dist, value[N])``
        where ``dist`` has ``sample(key)`` and ``log_prob(action)``, e.g.
        ``make_networks(env.spec).apply``.
      num_envs: N, the number of environments stepped in parallel.
      num_steps: T, the number of steps per rollout.
      normalize_obs: keep running observation statistics and normalise
        (ignored for discrete observations).
      shard: applied to the per-environment arrays (leaves ``[N, ...]``: env
        states, observations) after the reset and after every step; training
        passes a ``with_sharding_constraint`` that splits N over devices
        (:mod:`pgjax.sharding`). Default: nothing.
      initial_carry: for a recurrent network, ``initial_carry(N)`` gives the
        carry of N fresh episodes, and ``apply_fn(params, obs, carry) ->
        (dist, value, carry)``. The rollout carries it from step to step,
        resets it to the initial carry where an episode ends (the next step is
        a new episode's first), and stores the carry each step started from in
        ``Transition.carry``. None (default): a feedforward ``apply_fn``.

    Returns:
      A :class:`Rollout` ``(reset, rollout)`` of pure, jittable functions:
      ``reset(key) -> RolloutState`` and
      ``rollout(params, state, key, obs_stats=None) -> (state, Transition,
      EpisodeStats, obs_stats)`` with Transition leaves ``[T, N, ...]`` and the
      updated statistics (None without normalisation).

    Examples:
      >>> import jax
      >>> from pgjax.envs import make_env
      >>> from pgjax.networks import make_networks
      >>> env = make_env("CartPole-v1")
      >>> nets = make_networks(env.spec)
      >>> reset, rollout = make_rollout(env, nets.apply, num_envs=8, num_steps=16)
      >>> params = nets.init(jax.random.key(0))
      >>> state = reset(jax.random.key(1))
      >>> state, traj, stats, _ = jax.jit(rollout)(params, state, jax.random.key(2))
      >>> traj.obs.shape, traj.action.shape, traj.next_value.shape
      ((16, 8, 4), (16, 8), (16, 8))
    """
    spec = env.spec
    normalize_obs = uses_obs_normalization(spec, normalize_obs)
    step, last_value = make_step(env, apply_fn, num_envs, initial_carry)
    shard = shard or (lambda tree: tree)

    def reset(key: Array) -> RolloutState:
        keys = jax.random.split(key, num_envs)
        obs, env_state = jax.vmap(env.reset)(keys)
        state = RolloutState(
            env_state=strip_weak_types(env_state),
            obs=strip_weak_types(obs),
            episode_return=jnp.zeros((num_envs,), jnp.float32),
            episode_length=jnp.zeros((num_envs,), jnp.int32),
            carry=None if initial_carry is None else initial_carry(num_envs),
        )
        return state._replace(**shard({name: getattr(state, name) for name in PER_ENV_FIELDS}))

    def rollout(params: Params, state: RolloutState, key: Array,
                obs_stats: ObsStats | None = None):
        if normalize_obs and obs_stats is None:
            obs_stats = init_obs_stats(spec.obs_shape)
        stats = obs_stats if normalize_obs else None  # frozen for this rollout

        def body(carry, step_key):
            env_state, obs, net_carry, ep_return, ep_length, ep_stats, new_stats = carry
            if new_stats is not None:
                new_stats = update_obs_stats(new_stats, obs)
            env_state, next_obs, net_carry, out = step(params, stats, env_state, obs, net_carry,
                                                       step_key)
            ep_return = ep_return + out.reward
            ep_length = ep_length + 1
            done = out.terminated | out.truncated
            ep_stats = add_episodes(ep_stats, done, ep_return, ep_length)
            ep_return = jnp.where(done, 0.0, ep_return)
            ep_length = jnp.where(done, 0, ep_length)
            env_state, next_obs, ep_return, ep_length, net_carry = shard(
                (env_state, next_obs, ep_return, ep_length, net_carry))
            return (env_state, next_obs, net_carry, ep_return, ep_length, ep_stats, new_stats), out

        carry = (
            state.env_state,
            state.obs,
            state.carry,
            state.episode_return,
            state.episode_length,
            empty_episode_stats((num_envs,)),
            stats,
        )
        carry, out = jax.lax.scan(body, carry, jax.random.split(key, num_steps))
        env_state, obs, net_carry, ep_return, ep_length, ep_stats, new_stats = carry
        traj = transition(out, last_value(params, stats, obs, net_carry))
        env_state, obs = strip_weak_types((env_state, obs))
        new_state = RolloutState(env_state, obs, ep_return, ep_length, net_carry)
        return new_state, traj, total(ep_stats), new_stats

    return Rollout(reset=reset, rollout=rollout)


def make_episodic_rollout(
    env: Env,
    apply_fn: ApplyFn,
    *,
    num_envs: int,
    max_steps: int | None = None,
    normalize_obs: bool = False,
    shard: Callable[[Any], Any] | None = None,
    initial_carry: InitialCarry | None = None,
) -> Callable[..., tuple[Transition, Array, EpisodeStats, ObsStats | None]]:
    """Builds a rollout of exactly one episode per environment (for REINFORCE).

    Every environment starts from a fresh reset and runs for ``T = max_steps``
    steps. Once its episode ends, the environment keeps stepping (gymnax
    auto-resets it) but those steps are masked out: ``mask`` is false and
    ``reward``, ``terminated``, ``truncated``, ``log_prob``, ``value`` and
    ``next_value`` are zero there (``obs`` and ``action`` are unspecified).
    Once *every* episode has ended, the remaining steps skip the policy and
    the environments altogether (a ``lax.cond`` per step), so a batch of
    short episodes costs little more than its longest episode. The step that
    ends an episode carries its flag. An episode still
    running at the last step ``T - 1`` (when ``max_steps`` is below the env's
    time limit) is marked truncated there, with ``next_value = V(obs_T)``.
    So every episode ends within the rollout, and Monte-Carlo returns over
    ``mask``-ed steps are complete-episode returns.

    With ``normalize_obs=True`` the observations are normalised with the
    given ``obs_stats`` (frozen for the whole rollout) and the valid raw
    observations (where ``mask``) are merged into them once, returned as the
    fourth output. Discrete observations are never normalised (the fourth
    output is then ``None``), as in :func:`make_rollout`.

    Args:
      env: from :func:`pgjax.envs.make_env`.
      apply_fn: ``apply_fn(params, obs[N, *obs_shape]) -> (dist, value[N])``;
        a critic that returns zeros gives zero ``value``/``next_value``.
      num_envs: N, the number of episodes (one per environment).
      max_steps: T; defaults to ``env.spec.max_steps_in_episode``, so that no
        episode is cut early.
      normalize_obs: normalise observations with running statistics
        (ignored for discrete observations).
      shard: applied to the per-environment arrays (leaves ``[N, ...]``: env
        states, observations) after the reset and after every step; training
        passes a ``with_sharding_constraint`` that splits N over devices
        (:mod:`pgjax.sharding`). Default: nothing.
      initial_carry: a recurrent network's initial carry, as in
        :func:`make_rollout`: every episode starts from it.

    Returns:
      ``rollout(params, key, obs_stats=None) -> (traj, mask, episode_stats,
      obs_stats)``: a Transition ``[T, N, ...]``, the valid-step mask
      ``[T, N]`` bool, :class:`EpisodeStats` over the N episodes (``count ==
      N``), and the updated :class:`~pgjax.envs.ObsStats` (``None`` without
      normalisation; ``obs_stats=None`` with normalisation starts from
      :func:`~pgjax.envs.init_obs_stats`). Keys: see the module docstring.

    Examples:
      >>> import jax
      >>> from pgjax.envs import make_env
      >>> from pgjax.networks import make_networks
      >>> env = make_env("CartPole-v1", max_steps_in_episode=50)
      >>> nets = make_networks(env.spec, use_critic=False)
      >>> rollout = make_episodic_rollout(env, nets.apply, num_envs=4)
      >>> traj, mask, stats, _ = jax.jit(rollout)(nets.init(jax.random.key(0)), jax.random.key(1))
      >>> traj.reward.shape, int(stats.count)
      ((50, 4), 4)
      >>> bool((traj.reward.sum(0) == mask.sum(0)).all())  # CartPole: +1 per step
      True
    """
    spec = env.spec
    normalize_obs = uses_obs_normalization(spec, normalize_obs)
    num_steps = spec.max_steps_in_episode if max_steps is None else int(max_steps)
    step, last_value = make_step(env, apply_fn, num_envs, initial_carry)
    shard = shard or (lambda tree: tree)

    def rollout(params: Params, key: Array, obs_stats: ObsStats | None = None):
        if normalize_obs and obs_stats is None:
            obs_stats = init_obs_stats(spec.obs_shape)
        if not normalize_obs:
            obs_stats = None
        reset_key, rollout_key = jax.random.split(key)
        obs, env_state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def live_step(carry, step_key):
            env_state, obs, net_carry, alive, new_stats = carry
            if new_stats is not None:
                new_stats = update_obs_stats(new_stats, obs, mask=alive)
            env_state, next_obs, net_carry, out = step(params, obs_stats, env_state, obs,
                                                       net_carry, step_key)

            def zero(x):  # nothing after an episode's end counts
                return jnp.where(alive, x, jnp.zeros_like(x))

            out = out._replace(
                reward=zero(out.reward),
                terminated=zero(out.terminated),
                truncated=zero(out.truncated),
                log_prob=zero(out.log_prob),
                value=zero(out.value),
                final_value=zero(out.final_value),
            )
            mask = alive
            alive = alive & ~(out.terminated | out.truncated)
            env_state, next_obs, alive, net_carry = shard((env_state, next_obs, alive, net_carry))
            return (env_state, next_obs, net_carry, alive, new_stats), (out, mask)

        def idle_step(carry, step_key):
            # Once every episode has ended, skip the policy and the envs.
            return carry, jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), step_shapes)

        def body(carry, step_key):
            return jax.lax.cond(jnp.any(carry[3]), live_step, idle_step, carry, step_key)

        alive = jnp.ones((num_envs,), bool)
        net_carry = None if initial_carry is None else initial_carry(num_envs)
        env_state, obs, alive, net_carry = shard(
            (strip_weak_types(env_state), strip_weak_types(obs), alive, net_carry))
        carry = (env_state, obs, net_carry, alive, obs_stats)
        step_keys = jax.random.split(rollout_key, num_steps)
        step_shapes = jax.eval_shape(live_step, carry, step_keys[0])[1]
        carry, (out, mask) = jax.lax.scan(body, carry, step_keys)
        _, obs, net_carry, alive, new_stats = carry
        traj = transition(out, last_value(params, obs_stats, obs, net_carry))
        # Episodes still running at the horizon end there, as truncated; their
        # next_value is already V(obs_T), the observation that followed.
        traj = traj._replace(
            truncated=traj.truncated.at[-1].set(traj.truncated[-1] | alive),
            next_value=jnp.where(mask, traj.next_value, 0.0),
        )
        returns = jnp.sum(traj.reward, axis=0)
        lengths = jnp.sum(mask, axis=0, dtype=jnp.int32)
        ended = jnp.ones((num_envs,), bool)
        ep_stats = add_episodes(empty_episode_stats((num_envs,)), ended, returns, lengths)
        return traj, mask, total(ep_stats), new_stats

    return rollout
