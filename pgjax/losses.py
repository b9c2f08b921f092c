"""Policy-gradient surrogates, value loss and entropy bonus.

Every algorithm in pgjax minimises the same surrogate, whose gradient is
``-E[grad log pi(a|s) * A]``, with a different advantage estimate ``A`` (see
:mod:`pgjax.returns`): the Monte-Carlo return (REINFORCE), the return minus a
learned baseline, an n-step/GAE advantage (A2C), or a clipped
importance-weighted advantage (PPO).

Conventions: arrays have any shape, usually time-major ``[T, N]``; a ``mask``
(bool or 0/1, same shape) marks the valid entries, and every mean is taken over
those only, so padding after an episode's end changes neither the loss nor its
gradient. The arrays a loss combines must have equal shapes: nothing is
broadcast (a ``[T]`` advantage against ``[T, N]`` log-probabilities is an
error, not a silently different mean). Each loss returns a scalar, or
``(scalar, metrics)`` where stated, with flat snake_case metric names.

Gradients: by default advantages and targets are constants
(``stop_gradient``), so a loss differentiates only through ``log_probs``,
``values`` and ``entropy``. ``stop_target_gradients=False`` lets gradients
flow into advantages and targets as well, for meta-gradients: the outer
gradient of a loss with respect to ``gamma`` or ``lam`` through
:func:`pgjax.gae` (called with ``stop_target_gradients=False`` too). The
behaviour policy's ``old_log_probs`` and the behaviour critic's ``old_values``
stay constants either way: they are data recorded when acting, not estimates,
and PPO's ratio must have a fixed denominator (were ``old_log_probs``
computed from the same parameters, a gradient through it would cancel the
ratio's and leave none).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from pgjax.returns import masked_mean

Array = jax.Array

_sg = jax.lax.stop_gradient


def _maybe_sg(x: Array, stop: bool) -> Array:
    return _sg(x) if stop else x


def _same_shape(fn: str, **arrays: Array | None) -> None:
    """Equal shapes of the named arrays (None ones skipped); static, free under jit."""
    named = {k: jnp.asarray(v) for k, v in arrays.items() if v is not None}
    chex.assert_equal_shape(
        list(named.values()),
        custom_message=f"{fn}: {', '.join(named)} must have equal shapes (no broadcasting)")


def policy_gradient_loss(
    log_probs: Array,
    advantages: Array,
    mask: Array | None = None,
    *,
    stop_target_gradients: bool = True,
) -> Array:
    r"""The score-function (REINFORCE) surrogate.

    ::

        L = -mean_valid( log pi(a_t | s_t) * stop_gradient(A_t) )

    so that ``-grad L`` is the sample mean of ``grad log pi(a|s) * A``, an
    unbiased estimate of the policy gradient when ``A`` is the return, or the
    return minus any baseline that does not depend on the action.
    Differentiates through ``log_probs`` only, and through ``advantages`` too
    with ``stop_target_gradients=False``.

    See Williams, *Simple statistical gradient-following algorithms for
    connectionist reinforcement learning*, 1992
    (https://doi.org/10.1007/BF00992696); Sutton et al., *Policy Gradient
    Methods for Reinforcement Learning with Function Approximation*, 2000.

    Args:
      log_probs: ``[...]`` log pi(a_t | s_t) of the actions taken.
      advantages: ``[...]`` advantage estimates, the same shape.
      mask: optional ``[...]`` bool or 0/1 validity mask.
      stop_target_gradients: treat ``advantages`` as a constant.

    Returns:
      Scalar loss.

    Raises:
      AssertionError: ``log_probs`` and ``advantages`` differ in shape.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from pgjax import policy_gradient_loss
      >>> logits = jnp.zeros(2)
      >>> def loss(logits):  # action 0 taken with advantage 1
      ...     return policy_gradient_loss(jax.nn.log_softmax(logits)[0], 1.0)
      >>> jax.grad(loss)(logits).tolist()  # -(onehot(0) - softmax)
      [-0.5, 0.5]
    """
    log_probs = jnp.asarray(log_probs)
    advantages = jnp.asarray(advantages)
    _same_shape("policy_gradient_loss", log_probs=log_probs, advantages=advantages)
    return masked_mean(-log_probs * _maybe_sg(advantages, stop_target_gradients), mask)


def value_loss(
    values: Array,
    targets: Array,
    mask: Array | None = None,
    *,
    old_values: Array | None = None,
    clip_eps: float | Array | None = None,
    stop_target_gradients: bool = True,
) -> Array:
    r"""Squared-error regression of the critic on fixed targets.

    ::

        L = 0.5 * mean_valid( (V(s_t) - stop_gradient(target_t))^2 )

    With ``old_values`` and ``clip_eps`` given, PPO's clipped value loss:
    ``0.5 * mean(max((V - t)^2, (V_old + clip(V - V_old, -eps, eps) - t)^2))``.
    Differentiates through ``values`` only, and through ``targets`` too with
    ``stop_target_gradients=False``; ``old_values`` are always constants.

    Args:
      values: ``[...]`` the critic's predictions.
      targets: ``[...]`` regression targets (returns or GAE targets).
      mask: optional ``[...]`` bool or 0/1 validity mask.
      old_values: ``[...]`` predictions of the critic that collected the data
        (PPO clipping only).
      clip_eps: PPO value clipping range; used only with ``old_values``.
      stop_target_gradients: treat ``targets`` as a constant.

    Returns:
      Scalar loss.

    Examples:
      >>> import jax.numpy as jnp
      >>> from pgjax import value_loss
      >>> value_loss(jnp.array([1.0, 3.0]), jnp.array([0.0, 1.0])).item()  # 0.5*(1+4)/2
      1.25
    """
    values = jnp.asarray(values)
    targets = _maybe_sg(jnp.asarray(targets), stop_target_gradients)
    _same_shape("value_loss", values=values, targets=targets, old_values=old_values)
    squared = jnp.square(values - targets)
    if old_values is not None and clip_eps is not None:
        old_values = _sg(jnp.asarray(old_values))
        clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        squared = jnp.maximum(squared, jnp.square(clipped - targets))
    return 0.5 * masked_mean(squared, mask)


def entropy_bonus(entropy: Array, mask: Array | None = None) -> Array:
    """Mean policy entropy over the valid entries.

    Callers *subtract* ``entropy_coef * entropy_bonus(...)`` from their loss to
    encourage exploration. Differentiates through ``entropy``.

    Args:
      entropy: ``[...]`` entropy of pi(. | s_t).
      mask: optional ``[...]`` bool or 0/1 validity mask.

    Returns:
      Scalar mean entropy.

    Examples:
      >>> import jax.numpy as jnp
      >>> from pgjax import entropy_bonus
      >>> entropy_bonus(jnp.array([0.5, 1.5, 9.0]), jnp.array([1, 1, 0])).item()
      1.0
    """
    return masked_mean(jnp.asarray(entropy), mask)


def ppo_clip_loss(
    log_probs: Array,
    old_log_probs: Array,
    advantages: Array,
    clip_eps: float | Array,
    mask: Array | None = None,
    *,
    stop_target_gradients: bool = True,
) -> tuple[Array, dict[str, Array]]:
    r"""PPO's clipped surrogate objective, as a loss.

    With the ratio ``rho_t = exp(log pi(a_t|s_t) - log pi_old(a_t|s_t))``::

        L = -mean_valid( min(rho_t * A_t, clip(rho_t, 1 - eps, 1 + eps) * A_t) )

    At ``rho = 1`` its gradient equals that of :func:`policy_gradient_loss`.
    Differentiates through ``log_probs`` only, and through ``advantages`` too
    with ``stop_target_gradients=False``. ``old_log_probs`` are always
    constants: the behaviour policy's record, the ratio's fixed denominator.

    See Schulman et al., *Proximal Policy Optimization Algorithms*, 2017
    (https://arxiv.org/abs/1707.06347).

    Args:
      log_probs: ``[...]`` log-probabilities under the policy being optimised.
      old_log_probs: ``[...]`` log-probabilities under the policy that
        collected the data.
      advantages: ``[...]`` advantage estimates.
      clip_eps: scalar clipping range epsilon > 0.
      mask: optional ``[...]`` bool or 0/1 validity mask.
      stop_target_gradients: treat ``advantages`` as a constant.

    Returns:
      ``(loss, metrics)``; metrics (constants): ``clip_fraction`` (share of
      valid entries with ``|rho - 1| > eps``), ``approx_kl`` (the
      ``E[(rho - 1) - log rho]`` estimator of KL(pi_old || pi)) and
      ``ratio_mean``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from pgjax import ppo_clip_loss
      >>> lp = jnp.log(jnp.array([0.5, 0.9]))
      >>> old = jnp.log(jnp.array([0.5, 0.5]))  # ratios 1.0 and 1.8
      >>> loss, m = ppo_clip_loss(lp, old, jnp.array([1.0, 1.0]), 0.2)
      >>> round(loss.item(), 4), m["clip_fraction"].item()  # -(1 + 1.2) / 2
      (-1.1, 0.5)
    """
    log_probs = jnp.asarray(log_probs)
    old_log_probs = _sg(jnp.asarray(old_log_probs))
    advantages = _maybe_sg(jnp.asarray(advantages), stop_target_gradients)
    _same_shape("ppo_clip_loss", log_probs=log_probs, old_log_probs=old_log_probs,
                advantages=advantages)
    log_ratio = log_probs - old_log_probs
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -masked_mean(jnp.minimum(unclipped, clipped), mask)
    metrics = {
        "clip_fraction": masked_mean(
            (jnp.abs(ratio - 1.0) > clip_eps).astype(ratio.dtype), mask
        ),
        "approx_kl": masked_mean((ratio - 1.0) - log_ratio, mask),
        "ratio_mean": masked_mean(ratio, mask),
    }
    return loss, jax.tree.map(_sg, metrics)


def actor_critic_loss(
    log_probs: Array,
    values: Array | None,
    advantages: Array,
    targets: Array | None,
    entropy: Array,
    *,
    value_coef: float | Array = 0.5,
    entropy_coef: float | Array = 0.0,
    mask: Array | None = None,
    old_log_probs: Array | None = None,
    clip_eps: float | Array | None = None,
    old_values: Array | None = None,
    value_clip_eps: float | Array | None = None,
    stop_target_gradients: bool = True,
) -> tuple[Array, dict[str, Array]]:
    r"""The full loss of REINFORCE, REINFORCE with baseline, A2C and PPO.

    ::

        L = L_pi + value_coef * L_V - entropy_coef * mean_valid(H)

    ``L_pi`` is :func:`policy_gradient_loss`, or :func:`ppo_clip_loss` when
    ``old_log_probs`` and ``clip_eps`` are given. ``L_V`` is
    :func:`value_loss` (clipped when ``old_values`` and ``value_clip_eps``
    are given), or 0 when ``values`` is None (no critic). Differentiates
    through ``log_probs``, ``values`` and ``entropy``, and through
    ``advantages`` and ``targets`` too with ``stop_target_gradients=False``
    (meta-gradients; ``old_log_probs`` and ``old_values`` stay constants).
    Every array given must have the shape of ``log_probs``.

    Args:
      log_probs: ``[...]`` log pi(a_t|s_t) under the current parameters.
      values: ``[...]`` V(s_t) under the current parameters, or None.
      advantages: ``[...]`` advantage estimates (constants by default).
      targets: ``[...]`` value targets (constants by default), or None with no
        critic.
      entropy: ``[...]`` entropy of pi(.|s_t).
      value_coef: weight of the value loss.
      entropy_coef: weight of the entropy bonus.
      mask: optional ``[...]`` validity mask.
      old_log_probs: behaviour log-probabilities; with ``clip_eps``, selects PPO's clipped
        surrogate (one without the other is an error).
      clip_eps: PPO ratio clipping range.
      old_values: behaviour values for PPO's clipped value loss.
      value_clip_eps: value clipping range.
      stop_target_gradients: treat ``advantages`` and ``targets`` as
        constants; False for meta-gradients through them.

    Returns:
      ``(loss, metrics)`` with ``loss``, ``policy_loss``, ``value_loss``,
      ``entropy`` and, for PPO, ``clip_fraction``, ``approx_kl``,
      ``ratio_mean``.

    Raises:
      AssertionError: the arrays differ in shape.
      ValueError: ``old_log_probs`` without ``clip_eps``, or the reverse.

    Examples:
      >>> import jax.numpy as jnp
      >>> from pgjax import actor_critic_loss
      >>> loss, m = actor_critic_loss(
      ...     jnp.log(jnp.array([0.5, 0.5])), jnp.array([1.0, 0.0]),
      ...     jnp.array([1.0, -1.0]), jnp.array([2.0, 0.0]),
      ...     jnp.array([0.7, 0.7]), value_coef=0.5, entropy_coef=0.1)
      >>> round(m["value_loss"].item(), 4), round(loss.item(), 4)
      (0.25, 0.055)
    """
    metrics: dict[str, Array] = {}
    if (old_log_probs is None) != (clip_eps is None):
        given, missing = (("old_log_probs", "clip_eps") if clip_eps is None
                          else ("clip_eps", "old_log_probs"))
        raise ValueError(f"actor_critic_loss: {given} given without {missing}; PPO's clipped "
                         "surrogate needs both, the plain policy gradient neither")
    _same_shape("actor_critic_loss", log_probs=log_probs, values=values,
                advantages=advantages, targets=targets, entropy=entropy,
                old_log_probs=old_log_probs, old_values=old_values)
    stop = stop_target_gradients
    if old_log_probs is not None:
        policy_loss, metrics = ppo_clip_loss(
            log_probs, old_log_probs, advantages, clip_eps, mask, stop_target_gradients=stop
        )
    else:
        policy_loss = policy_gradient_loss(log_probs, advantages, mask,
                                           stop_target_gradients=stop)
    if values is None:
        v_loss = jnp.zeros((), policy_loss.dtype)
    else:
        v_loss = value_loss(
            values, targets, mask, old_values=old_values, clip_eps=value_clip_eps,
            stop_target_gradients=stop,
        )
    mean_entropy = entropy_bonus(entropy, mask)
    loss = policy_loss + value_coef * v_loss - entropy_coef * mean_entropy
    metrics = {
        "loss": loss,
        "policy_loss": policy_loss,
        "value_loss": v_loss,
        "entropy": mean_entropy,
        **metrics,
    }
    return loss, jax.tree.map(_sg, metrics)
