"""Action distributions for policy-gradient methods.

Conventions:
  * A distribution is a ``typing.NamedTuple`` of arrays with methods, so it is a
    pytree: it can be passed into and returned from ``jit``, ``vmap`` and
    ``lax.scan``, and ``jax.tree.map`` reaches its parameters.
  * The last axis of every parameter is the event axis (actions for
    :class:`Categorical`, action dimensions for :class:`DiagGaussian`); all
    leading axes ``[...]`` are batch axes, e.g. ``[T, N]`` in a time-major
    rollout. ``log_prob`` and ``entropy`` reduce the event axis and return
    ``[...]``.
  * Methods are pure; ``sample`` takes an explicit PRNG ``key``.
  * Parameters must be finite. Logits of any magnitude are fine (all maths
    goes through ``log_softmax``), but ``-inf`` logits for masked actions are
    not supported: ``0 * -inf`` makes ``entropy`` NaN.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp

Array = jax.Array

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class Categorical(NamedTuple):
    """Categorical distribution over actions ``0 .. A - 1``, given by logits.

    ``π(a) = softmax(logits)_a``, computed as ``exp(log_softmax(logits))`` so
    that logits of any finite magnitude (e.g. ``1e4``) give finite results.

    Attributes:
      logits: unnormalised log-probabilities, ``[..., A]``.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> dist = Categorical(logits=jnp.zeros((5, 3)))
      >>> dist.sample(jax.random.key(0)).shape
      (5,)
      >>> print(dist.log_prob(jnp.array([0, 1, 2, 0, 1])).round(4))  # log(1/3)
      [-1.0986 -1.0986 -1.0986 -1.0986 -1.0986]
      >>> print(dist.entropy().round(4))  # log(3)
      [1.0986 1.0986 1.0986 1.0986 1.0986]
    """

    logits: Array

    def probs(self) -> Array:
        """Probabilities ``softmax(logits)``, ``[..., A]``.

        Examples:
          >>> import jax.numpy as jnp
          >>> print(Categorical(jnp.log(jnp.array([0.25, 0.75]))).probs().round(4))
          [0.25 0.75]
        """
        return jax.nn.softmax(self.logits, axis=-1)

    def sample(self, key: Array) -> Array:
        """Draws one action per batch element (Gumbel-max).

        Args:
          key: a PRNG key.

        Returns:
          Actions, int32 ``[...]``.

        Examples:
          >>> import jax, jax.numpy as jnp
          >>> dist = Categorical(jnp.array([[0.0, 50.0], [50.0, 0.0]]))
          >>> print(dist.sample(jax.random.key(1)))
          [1 0]
        """
        return jax.random.categorical(key, self.logits, axis=-1).astype(jnp.int32)

    def log_prob(self, action: Array) -> Array:
        """Log-probability ``log π(a) = log_softmax(logits)_a``.

        Its gradient with respect to the logits is ``onehot(a) - softmax(logits)``.

        Args:
          action: integer actions, ``[...]`` (the batch shape of ``logits``).

        Returns:
          ``log π(action)``, ``[...]``.

        Examples:
          >>> import jax.numpy as jnp
          >>> dist = Categorical(jnp.array([1e4, 0.0]))
          >>> print(dist.log_prob(jnp.array(1)))
          -10000.0
        """
        chex.assert_shape(action, self.logits.shape[:-1])
        chex.assert_type(action, int)
        log_probs = jax.nn.log_softmax(self.logits, axis=-1)
        # A one-hot contraction (as rlax's batched_index) fuses into one
        # elementwise-and-reduce kernel, forward and backward; a gather's
        # gradient would be a scatter.
        one_hot = jax.nn.one_hot(action, log_probs.shape[-1], dtype=log_probs.dtype)
        return jnp.sum(one_hot * log_probs, axis=-1)

    def entropy(self) -> Array:
        """Entropy ``H = -Σ_a π(a) log π(a)``, ``[...]``.

        Examples:
          >>> import jax.numpy as jnp
          >>> print(Categorical(jnp.array([[0.0, 0.0], [1e4, 0.0]])).entropy().round(4))
          [0.6931 0.    ]
        """
        log_probs = jax.nn.log_softmax(self.logits, axis=-1)
        return jnp.sum(jnp.exp(log_probs) * -log_probs, axis=-1)

    def mode(self) -> Array:
        """Most probable action ``argmax_a logits_a``, int32 ``[...]``.

        Examples:
          >>> import jax.numpy as jnp
          >>> print(Categorical(jnp.array([[0.0, 2.0, 1.0]])).mode())
          [1]
        """
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)


class DiagGaussian(NamedTuple):
    """Gaussian with diagonal covariance over ``D`` action dimensions.

    ``π(a) = Π_d N(a_d; μ_d, σ_d²)`` with ``σ = exp(log_std)``. ``log_std`` may
    have the full shape of ``mean`` or any shape that broadcasts to it; a
    state-independent ``[D]`` vector is the common case.

    Attributes:
      mean: ``μ``, ``[..., D]``.
      log_std: ``log σ``, broadcastable to ``mean`` (e.g. ``[D]``).

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> dist = DiagGaussian(mean=jnp.zeros((4, 2)), log_std=jnp.zeros(2))
      >>> dist.sample(jax.random.key(0)).shape
      (4, 2)
      >>> bool(jnp.allclose(dist.log_prob(jnp.zeros((4, 2))), -jnp.log(2 * jnp.pi)))
      True
      >>> bool(jnp.allclose(dist.entropy(), jnp.log(2 * jnp.pi * jnp.e)))
      True
    """

    mean: Array
    log_std: Array

    def _log_std(self) -> Array:
        # Explicit broadcast: [D] against [..., D] is a rank promotion, which
        # the tests (rightly) turn into an error.
        return jnp.broadcast_to(self.log_std, self.mean.shape)

    def sample(self, key: Array) -> Array:
        """Draws ``a = μ + σ ε`` with ``ε ~ N(0, I)``.

        Args:
          key: a PRNG key.

        Returns:
          Actions, ``[..., D]`` (unbounded; :func:`pgjax.networks.env_action`
          rescales them from normalised units to the env's box and clips them).

        Examples:
          >>> import jax, jax.numpy as jnp
          >>> dist = DiagGaussian(jnp.array([5.0]), jnp.array([-20.0]))
          >>> print(dist.sample(jax.random.key(0)).round(4))
          [5.]
        """
        noise = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(self._log_std()) * noise

    def log_prob(self, action: Array) -> Array:
        """Log-density ``Σ_d [-½ ((a_d - μ_d) / σ_d)² - log σ_d - ½ log 2π]``.

        Args:
          action: ``[..., D]``, the shape of ``mean``.

        Returns:
          ``log π(action)`` summed over the last axis, ``[...]``.

        Examples:
          >>> import jax.numpy as jnp
          >>> dist = DiagGaussian(jnp.zeros(2), jnp.log(jnp.array([1.0, 2.0])))
          >>> x = dist.log_prob(jnp.array([1.0, 2.0]))  # -1 - log 2 - log 2π
          >>> print(f"{x:.4f}")
          -3.5310
        """
        chex.assert_equal_shape([action, self.mean])
        log_std = self._log_std()
        z = (action - self.mean) * jnp.exp(-log_std)
        return jnp.sum(-0.5 * jnp.square(z) - log_std - _HALF_LOG_2PI, axis=-1)

    def entropy(self) -> Array:
        """Entropy ``Σ_d (log σ_d + ½ log 2πe)``, ``[...]``.

        Examples:
          >>> import jax.numpy as jnp
          >>> dist = DiagGaussian(jnp.zeros((1, 3)), jnp.zeros(3))
          >>> bool(jnp.allclose(dist.entropy(), 1.5 * jnp.log(2 * jnp.pi * jnp.e)))
          True
        """
        return jnp.sum(self._log_std() + _HALF_LOG_2PI + 0.5, axis=-1)

    def mode(self) -> Array:
        """The mean ``μ``, ``[..., D]``.

        Examples:
          >>> import jax.numpy as jnp
          >>> print(DiagGaussian(jnp.array([1.0, -1.0]), jnp.zeros(2)).mode())
          [ 1. -1.]
        """
        return self.mean
