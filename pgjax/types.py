"""Named containers shared across pgjax's layers.

Conventions (see docs/design.md): arrays are time-major, ``[T, N, ...]`` for T steps
by N environments. ``reward[t]`` is the reward received for ``action[t]``.
``terminated[t]`` means the episode reached a true terminal state at step t
(no bootstrap); ``truncated[t]`` means it was cut by a time limit (bootstrap
from the value of the pre-reset observation). ``done = terminated | truncated``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax

Array = jax.Array


class DiscreteSpace(NamedTuple):
    """A discrete action space with actions ``0 .. n - 1``."""

    n: int


class BoxSpace(NamedTuple):
    """A continuous action space: a box of ``shape`` between ``low`` and ``high``.

    Policies act in normalised units, ``±1`` at the bounds
    (:func:`pgjax.networks.env_action`).

    ``low`` and ``high`` are Python floats or tuples of floats (one per
    dimension), so the spec stays hashable and static under ``jit``.
    """

    shape: tuple[int, ...]
    low: float | tuple[float, ...]
    high: float | tuple[float, ...]


class EnvSpec(NamedTuple):
    """What networks and configs need to know about an environment.

    Attributes:
      name: the gymnax registry name, e.g. ``"CartPole-v1"``.
      obs_shape: shape of one observation, e.g. ``(4,)`` or ``(10, 10, 4)``.
      action_space: a :class:`DiscreteSpace` or a :class:`BoxSpace`.
      max_steps_in_episode: the environment's time limit.
      obs_num_values: for a discrete observation space (gymnax ``Discrete(n)``,
        e.g. FrozenLake's state index), its number of values ``n``: each
        observation element is an integer in ``0 .. n - 1``, which networks
        one-hot encode and observation normalisation leaves alone. ``None``
        (the default) for real-valued (``Box``) observations.
    """

    name: str
    obs_shape: tuple[int, ...]
    action_space: DiscreteSpace | BoxSpace
    max_steps_in_episode: int
    obs_num_values: int | None = None

    @property
    def discrete(self) -> bool:
        """Whether the *action* space is discrete."""
        return isinstance(self.action_space, DiscreteSpace)

    @property
    def discrete_obs(self) -> bool:
        """Whether observations are state indices (``obs_num_values`` is set)."""
        return self.obs_num_values is not None


class Transition(NamedTuple):
    """One rollout, time-major ``[T, N, ...]``.

    Attributes:
      obs: observation the action was taken in, ``[T, N, *obs_shape]``.
      action: the sampled action, ``[T, N]`` (discrete) or
        ``[T, N, *action_shape]``; for a box, the Gaussian's sample ``u`` in
        normalised units, unscaled and unclipped
        (:func:`pgjax.networks.env_action` maps it to what the env got).
      reward: reward for ``action[t]``, ``[T, N]``.
      terminated: true terminal state reached at step t, ``[T, N]`` bool.
      truncated: episode cut by the time limit at step t (and not
        terminated), ``[T, N]`` bool.
      log_prob: log pi(action | obs) under the acting policy, ``[T, N]``.
      value: V(obs[t]) under the acting critic (zeros without a critic), ``[T, N]``.
      next_value: V of the observation that followed step t *in the same
        episode*: the pre-reset final observation when step t ended an
        episode, ``[T, N]``. Multiply by ``1 - terminated`` before use.
      carry: a recurrent network's state before step t, leaves ``[T, N, ...]``
        (reset to the network's initial carry at every episode start); None for
        feedforward networks.
    """

    obs: Array
    action: Array
    reward: Array
    terminated: Array
    truncated: Array
    log_prob: Array
    value: Array
    next_value: Array
    carry: Any = None

    @property
    def done(self) -> Array:
        return self.terminated | self.truncated
