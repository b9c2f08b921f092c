"""A trained policy as a plain function: ``make_policy(trainer, state) -> act(obs, key)``."""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

from pgjax.envs.obs import normalize_obs
from pgjax.networks import env_action

Array = jax.Array


def make_policy(trainer: Any, state: Any, seed_index: int = 0,
                greedy: bool = True) -> Callable[[Array, Array], Array]:
    """The policy of ``state`` as a jittable ``act(obs, key) -> action``.

    ``act`` applies the run's observation statistics (if it normalised observations), runs
    the actor, takes the distribution's mode (``greedy``) or a sample drawn with ``key``, and
    returns the action **as the env takes it** (a box action rescaled to the bounds and
    clipped). ``obs`` is one observation or a batch ``[..., *obs_shape]``.

    Args:
      trainer: from :func:`pgjax.make_train` or :func:`pgjax.load_run`.
      state: a :class:`~pgjax.train.TrainState`, or one vmapped over seeds (leaves
        ``[S, ...]``, as ``load_run`` and ``pgjax train`` hold them).
      seed_index: which seed of a vmapped state.
      greedy: the mode of the action distribution, else a sample.

    Raises:
      ValueError: for a seed index outside the state's seeds, or a recurrent network (its
        carry would have to travel with ``act``; not supported yet).
    """
    if trainer.networks.initial_carry is not None:
        raise ValueError("make_policy: recurrent networks are not supported yet (act would need "
                         "the carry)")
    seeds = jnp.shape(state.update)
    if seeds:  # vmapped over seeds
        if not 0 <= seed_index < seeds[0]:
            raise ValueError(f"make_policy: seed_index={seed_index}; the state has {seeds[0]} "
                             f"seed(s), so it must be in 0..{seeds[0] - 1}")
        state = jax.tree.map(lambda x: x[seed_index], state)
    elif seed_index != 0:
        raise ValueError(f"make_policy: seed_index={seed_index} for a state of one seed")
    params, stats, spec = state.params, state.obs_stats, trainer.env.spec

    def act(obs: Array, key: Array) -> Array:
        if stats is not None:
            obs = normalize_obs(stats, obs)
        dist = trainer.networks.actor(params, obs)
        action = dist.mode() if greedy else dist.sample(key)
        return env_action(spec, action)

    return act
