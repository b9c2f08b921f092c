"""Actions in normalised units and in the env's: the map every rollout applies before ``env.step``.

A Gaussian policy acts in normalised units ``u`` (``±1`` at a box's bounds); the env receives
``clip(center + half_range * u, low, high)`` (:func:`env_action`). Discrete actions pass
through. See :mod:`pgjax.networks` for why.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.types import BoxSpace, DiscreteSpace, EnvSpec

Array = jax.Array


def action_scale(space: BoxSpace) -> tuple[np.ndarray, np.ndarray]:
    """``(center, half_range)`` of a box, per dimension: ``u`` maps to ``center + half_range * u``.

    ``center = (low + high) / 2`` and ``half_range = (high - low) / 2``, float32
    ``[*space.shape]``; a dimension with an infinite bound gets ``(0, 1)``, so
    its actions are not rescaled.

    Examples:
      >>> from pgjax.types import BoxSpace
      >>> center, half_range = action_scale(BoxSpace((2,), (0.0, -0.1), (1.0, 0.1)))
      >>> print(center, half_range)
      [0.5 0. ] [0.5 0.1]
    """
    low = np.broadcast_to(np.asarray(space.low, np.float64), space.shape)
    high = np.broadcast_to(np.asarray(space.high, np.float64), space.shape)
    bounded = np.isfinite(low) & np.isfinite(high)
    low, high = np.where(bounded, low, -1.0), np.where(bounded, high, 1.0)
    center, half_range = (low + high) / 2, (high - low) / 2
    return center.astype(np.float32), half_range.astype(np.float32)


def env_action(spec: EnvSpec, action: Array) -> Array:
    """The action to send to the environment for a policy sample.

    Discrete actions pass through unchanged. Continuous actions are samples
    ``u`` of the Gaussian in normalised units: the environment receives
    ``clip(center + half_range * u, low, high)`` (:func:`action_scale`), so
    ``u = -1`` and ``u = 1`` are the box's bounds and ``u = 0`` its centre. The
    log-probability (and the ``Transition.action`` stored for the update) is
    of ``u`` itself, unscaled and unclipped; only the environment receives
    the env-unit action.

    Args:
      spec: the environment's spec.
      action: a policy sample, ``[...]`` (discrete) or ``[..., D]`` (box, in
        normalised units).

    Returns:
      The environment action, same shape and dtype as ``action``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from pgjax.types import BoxSpace, EnvSpec
      >>> spec = EnvSpec("Pendulum-v1", (3,), BoxSpace((1,), -2.0, 2.0), 200)
      >>> print(env_action(spec, jnp.array([[-1.5], [0.25], [1.0]]))[:, 0])
      [-2.   0.5  2. ]
    """
    space = spec.action_space
    if isinstance(space, DiscreteSpace):
        return action
    center, half_range = action_scale(space)

    def full(x):  # explicit: bounds [D] against [..., D] would be a rank promotion
        return jnp.broadcast_to(jnp.asarray(x, action.dtype), action.shape)

    return jnp.clip(full(center) + full(half_range) * action, full(space.low), full(space.high))
