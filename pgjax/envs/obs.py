"""Observation statistics: the one home of observation normalisation.

Normalisation is a pure function of explicit statistics, not a stateful wrapper:
:class:`ObsStats` lives in the train state (``TrainState.obs_stats``, for every algorithm),
:func:`update_obs_stats` merges a batch into it and :func:`normalize_obs` applies it.
Observations are ``[..., *obs_shape]`` with any number of leading batch axes
(``[N, ...]``, ``[T, N, ...]``).

A discrete observation space (a state index, ``EnvSpec.obs_num_values``) is never
normalised: the networks one-hot encode such observations, and standardising an index
would turn it into a float that is no longer one. :func:`uses_obs_normalization` is that
rule, which the rollouts and the trainer apply to ``normalize_obs=True``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.types import EnvSpec

Array = jax.Array


def uses_obs_normalization(spec: EnvSpec, normalize_obs: bool) -> bool:
    """Whether observations of ``spec`` are normalised when ``normalize_obs`` asks.

    Real-valued observations are, when asked. Discrete observations (state
    indices, ``spec.obs_num_values`` set) never are: the networks one-hot
    encode them, and ``(index - mean) / std`` would be a meaningless float, so
    ``env.normalize_obs: true`` (e.g. in a preset made for another env) is
    ignored for them.

    Examples:
      >>> from pgjax.types import DiscreteSpace
      >>> box_obs = EnvSpec("CartPole-v1", (4,), DiscreteSpace(2), 500)
      >>> index_obs = EnvSpec("FrozenLake-misc", (), DiscreteSpace(4), 100, obs_num_values=16)
      >>> uses_obs_normalization(box_obs, True), uses_obs_normalization(index_obs, True)
      (True, False)
    """
    return bool(normalize_obs) and spec.obs_num_values is None


class ObsStats(NamedTuple):
    """Running mean and variance of observations, per observation element.

    Attributes:
      mean: ``[*obs_shape]`` float32.
      var: ``[*obs_shape]`` float32, the population variance (``ddof=0``).
      count: ``[]`` float32 number of observations merged so far. A float
        never overflows (an int32 count would wrap after 2**31 steps); past
        2**24 it is no longer an exact integer, but the merge only uses the
        ratio ``n / (count + n)``, which stays accurate to float32 precision.
    """

    mean: Array
    var: Array
    count: Array


def init_obs_stats(obs_shape: tuple[int, ...]) -> ObsStats:
    """Empty statistics: ``mean=0``, ``var=1``, ``count=0``.

    With ``count=0`` the first :func:`update_obs_stats` replaces ``mean`` and
    ``var`` by the batch's own, and :func:`normalize_obs` is the identity
    (up to clipping) until then.

    Examples:
      >>> init_obs_stats((3,)).count
      Array(0., dtype=float32)
    """
    return ObsStats(
        mean=jnp.zeros(obs_shape, jnp.float32),
        var=jnp.ones(obs_shape, jnp.float32),
        count=jnp.zeros((), jnp.float32),
    )


def update_obs_stats(
    stats: ObsStats, batch_obs: Array, mask: Array | None = None
) -> ObsStats:
    r"""Merges a batch of observations into running statistics (Chan et al.).

    With ``(m_a, v_a, n_a)`` the running and ``(m_b, v_b, n_b)`` the batch
    moments, ``delta = m_b - m_a`` and ``n = n_a + n_b``::

        mean = m_a + delta * n_b / n
        var  = (v_a n_a + v_b n_b + delta^2 n_a n_b / n) / n

    which equals the mean and variance over the concatenation of everything
    merged so far. See *Updating formulae and a pairwise algorithm for
    computing sample variances*, Chan, Golub & LeVeque 1979. The batch moments
    are computed in two passes (mean, then squared deviations) in float32.

    Args:
      stats: running statistics, leaves ``[*obs_shape]`` and ``[]``.
      batch_obs: ``[..., *obs_shape]``; every leading axis is a batch axis.
      mask: optional ``[...]`` bool; only observations where it is true are
        merged. An all-false mask leaves ``stats`` unchanged.

    Returns:
      The merged :class:`ObsStats`, same shapes and dtypes as ``stats``.

    Examples:
      >>> s = update_obs_stats(init_obs_stats((2,)), jnp.array([[0., 1.], [2., 5.]]))
      >>> s.mean, s.var, s.count
      (Array([1., 3.], dtype=float32), Array([1., 4.], dtype=float32), Array(2., dtype=float32))
    """
    x = jnp.asarray(batch_obs, jnp.float32)
    batch_axes = tuple(range(x.ndim - stats.mean.ndim))
    # keepdims, then explicit broadcasts: no implicit rank promotion.
    if mask is None:
        w = None
        n_b = jnp.asarray(np.prod([x.shape[a] for a in batch_axes]), jnp.float32)
        m_b = jnp.mean(x, axis=batch_axes, keepdims=True)
        v_b = jnp.mean(jnp.square(x - m_b), axis=batch_axes, keepdims=True)
    else:
        w = jnp.asarray(mask, jnp.float32)
        w = jnp.broadcast_to(w.reshape(w.shape + (1,) * stats.mean.ndim), x.shape)
        n_b = jnp.sum(w[(...,) + (0,) * stats.mean.ndim])
        safe_n_b = jnp.maximum(n_b, 1.0)
        m_b = jnp.sum(w * x, axis=batch_axes, keepdims=True) / safe_n_b
        v_b = jnp.sum(w * jnp.square(x - m_b), axis=batch_axes, keepdims=True) / safe_n_b
    m_b, v_b = m_b.reshape(stats.mean.shape), v_b.reshape(stats.mean.shape)
    n_a = stats.count
    n = n_a + n_b
    safe_n = jnp.maximum(n, 1.0)  # n == 0 only for an empty mask on empty stats
    delta = m_b - stats.mean
    mean = stats.mean + delta * (n_b / safe_n)
    m2 = stats.var * n_a + v_b * n_b + jnp.square(delta) * (n_a * n_b / safe_n)
    empty = n_b == 0
    return ObsStats(
        mean=jnp.where(empty, stats.mean, mean),
        var=jnp.where(empty, stats.var, m2 / safe_n),
        count=n,
    )


def normalize_obs(stats: ObsStats, obs: Array, clip: float = 10.0) -> Array:
    """Standardises observations: ``clip((obs - mean) / sqrt(var + 1e-8), ±clip)``.

    Args:
      stats: statistics with leaves ``[*obs_shape]``.
      obs: ``[..., *obs_shape]``, any leading batch axes.
      clip: bound on the absolute normalised value.

    Returns:
      float32 array shaped like ``obs``.

    Examples:
      >>> s = ObsStats(jnp.array([1.0]), jnp.array([4.0]), jnp.array(10.0))
      >>> normalize_obs(s, jnp.array([[3.0], [101.0]]))
      Array([[ 1.],
             [10.]], dtype=float32)
    """
    obs = jnp.asarray(obs, jnp.float32)
    mean = jnp.broadcast_to(stats.mean, obs.shape)
    inv_std = jnp.broadcast_to(jax.lax.rsqrt(stats.var + 1e-8), obs.shape)
    return jnp.clip((obs - mean) * inv_std, -clip, clip)
