"""Returns and advantage estimators: pure array maths, nothing about training.

Conventions, shared by every function here:

* **Time-major.** Arrays are ``[T, ...]``: T steps, then any batch shape
  (``[T]``, ``[T, N]``, ``[T, N, K]`` all work). Recursions scan backwards over
  axis 0 with a carry of shape ``x.shape[1:]``; a function of one trajectory
  is never written twice, it is vmapped.
* **Reward indexing.** ``rewards[t]`` is the reward received for the action
  taken at step ``t`` (the brax/purejaxrl convention, not rlax's shifted one).
* **Episode flags.** ``dones[t]`` means the episode ended at step ``t``
  (terminated *or* truncated), so nothing after ``t`` flows back into ``t``.
  ``terminated[t]`` means a true terminal state was reached: no bootstrap.
  A truncated step (time limit) still bootstraps from ``next_values[t]``, the
  value of the pre-reset final observation. ``terminated`` implies done: a
  recursion stops at ``dones | terminated``, so a terminal step left out of
  ``dones`` still ends its episode. Flags are bool (or integer 0/1) arrays,
  never floats: a float flag is a ``ValueError``, because the common mistake
  it catches is passing rlax-style discounts (``gamma * (1 - done)``) or a
  probability where a flag belongs. Integer flags are checked to be 0/1 when
  their values are known (not under ``jit``/``vmap``/``grad``).
* **Discounts.** ``gamma`` and ``lam`` must lie in ``[0, 1]``; a concrete value
  outside (or NaN) is a ``ValueError``. A traced value (``jit``, ``vmap``,
  ``grad``) cannot be checked and is the caller's responsibility.
* **Dtypes.** Results come back in the promoted floating dtype of the array
  inputs (rewards, values, bootstrap; integer rewards give JAX's default
  float), but recursions are computed in at least float32: bf16 rewards with
  float32 values give float32, bf16 everything gives bf16 rounded once at the
  end (a bf16 accumulator would stall: 1 + 0.99 * 64 rounds back to 64).
* **Gradients.** Estimates are targets: by default they come back under
  ``jax.lax.stop_gradient`` so a loss built on them differentiates only
  through the policy and the critic. Pass ``stop_target_gradients=False`` to
  differentiate through them (e.g. meta-gradients on ``gamma``).

``gamma`` and ``lam`` may be Python floats or traced scalars, so estimators can
be vmapped over hyperparameters.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def _float_dtype(x: Array) -> jnp.dtype:
    return x.dtype if jnp.issubdtype(x.dtype, jnp.floating) else jnp.result_type(float)


def _dtypes(*arrays: Array) -> tuple[jnp.dtype, jnp.dtype]:
    """(output dtype, accumulation dtype): the inputs' promoted float dtype, and that
    widened to at least float32 so that long sums do not stall in bf16/f16."""
    out = jnp.result_type(*arrays)
    if not jnp.issubdtype(out, jnp.floating):
        out = jnp.promote_types(out, jnp.result_type(float))
    return out, jnp.promote_types(out, jnp.float32)


def _concrete(x) -> np.ndarray | None:
    """``x`` as a NumPy array when its values are known, None when it is traced."""
    try:
        return np.asarray(x)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return None


def _check_flag(fn: str, name: str, x: Array) -> Array:
    """A bool or integer 0/1 episode flag, as bool; a float flag is an error."""
    dtype = jnp.result_type(x)
    if dtype == jnp.bool_:
        return jnp.asarray(x)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(
            f"{fn}: {name} has dtype {dtype}; pass bools (or integer 0/1), one flag per step. "
            f"A float {name} is usually an rlax-style discount (gamma * (1 - done)) or a "
            "probability; pgjax takes the flags and gamma separately")
    values = _concrete(x)
    if values is not None and not np.isin(values, (0, 1)).all():
        bad = np.unique(values[~np.isin(values, (0, 1))])[:5].tolist()
        raise ValueError(f"{fn}: {name} must be 0 or 1 (or bool); got values {bad}")
    return jnp.asarray(x).astype(bool)


def _scalar(x: float | Array, dtype: jnp.dtype) -> float | Array:
    """A discount in the accumulation dtype. Python numbers stay as they are (weakly
    typed, they take the arrays' dtype), so ``gamma * lam`` of two floats rounds once."""
    return x if isinstance(x, (int, float)) else jnp.asarray(x).astype(dtype)


def _check_unit(fn: str, name: str, x: float | Array) -> None:
    """Rejects a concrete ``x`` outside [0, 1] (or NaN); a traced one cannot be checked."""
    values = _concrete(x)
    if values is None or not np.issubdtype(values.dtype, np.number):
        return
    values = values.astype(np.float64)
    if not ((values >= 0.0) & (values <= 1.0)).all():
        shown = values.item() if values.size == 1 else values.tolist()
        raise ValueError(f"{fn}: {name} must be in [0, 1]; got {shown}")


def _maybe_stop(x: Array, stop: bool) -> Array:
    return jax.lax.stop_gradient(x) if stop else x


def discounted_returns(
    rewards: Array,
    dones: Array,
    gamma: float | Array,
    bootstrap: Array | None = None,
    *,
    stop_target_gradients: bool = True,
) -> Array:
    r"""Discounted reward-to-go that restarts at episode boundaries.

    The recursion, scanned backwards from ``t = T - 1``::

        G_t = r_t + gamma * (1 - done_t) * G_{t+1},    G_T = bootstrap

    With ``bootstrap=None`` (zeros) and complete episodes this is the
    Monte-Carlo return of REINFORCE ("reward-to-go"). Pass
    ``bootstrap = V(s_T)`` to bootstrap a trajectory cut by the end of a
    rollout; an episode cut by a time limit *inside* the rollout needs
    :func:`gae` (with ``lam=1``), which bootstraps at every truncated step.

    See Williams, *Simple statistical gradient-following algorithms for
    connectionist reinforcement learning*, 1992
    (https://doi.org/10.1007/BF00992696), and Sutton & Barto,
    *Reinforcement Learning: An Introduction*, 2nd ed., section 13.3.

    Args:
      rewards: ``[T, ...]`` reward for the action at step t.
      dones: ``[T, ...]`` bool or integer 0/1, never float; the episode ended
        at step t.
      gamma: scalar discount in [0, 1] (checked when concrete).
      bootstrap: ``rewards.shape[1:]`` value of the state after the last step;
        zeros if None.
      stop_target_gradients: return the result under ``stop_gradient``.

    Returns:
      ``[T, ...]`` discounted returns ``G_t``, in the promoted float dtype of
      ``rewards`` and ``bootstrap`` (summed in at least float32).

    Raises:
      ValueError: float ``dones``, integer ``dones`` other than 0/1, or a
        concrete ``gamma`` outside [0, 1].

    Examples:
      >>> import jax.numpy as jnp
      >>> from pgjax import discounted_returns
      >>> r = jnp.array([1.0, 1.0, 1.0, 1.0])
      >>> d = jnp.array([False, True, False, False])  # episode ends at t=1
      >>> discounted_returns(r, d, 0.5).tolist()
      [1.5, 1.0, 1.5, 1.0]
      >>> discounted_returns(r, d, 0.5, bootstrap=jnp.array(2.0)).tolist()
      [1.5, 1.0, 2.0, 2.0]
    """
    rewards = jnp.asarray(rewards)
    dones = jnp.asarray(dones)
    chex.assert_equal_shape([rewards, dones])
    chex.assert_rank(rewards, {*range(1, 8)})
    if bootstrap is not None:
        bootstrap = jnp.asarray(bootstrap)
        chex.assert_shape(bootstrap, rewards.shape[1:])
    dones = _check_flag("discounted_returns", "dones", dones)
    _check_unit("discounted_returns", "gamma", gamma)
    out_dtype, dtype = _dtypes(rewards, *([] if bootstrap is None else [bootstrap]))
    rewards = rewards.astype(dtype)
    if bootstrap is None:
        bootstrap = jnp.zeros(rewards.shape[1:], dtype)
    bootstrap = bootstrap.astype(dtype)
    gamma = _scalar(gamma, dtype)
    discounts = gamma * (1.0 - dones.astype(dtype))

    def step(g_next, x):
        r, discount = x
        g = r + discount * g_next
        return g, g

    _, returns = jax.lax.scan(step, bootstrap, (rewards, discounts), reverse=True)
    return _maybe_stop(returns.astype(out_dtype), stop_target_gradients)


def gae(
    rewards: Array,
    values: Array,
    next_values: Array,
    terminated: Array,
    dones: Array,
    gamma: float | Array,
    lam: float | Array,
    *,
    stop_target_gradients: bool = True,
) -> tuple[Array, Array]:
    r"""Generalised advantage estimation, GAE(lambda), with time limits.

    The recursion, scanned backwards from ``t = T - 1``::

        delta_t = r_t + gamma * (1 - terminated_t) * V'_t - V_t
        A_t     = delta_t + gamma * lam * (1 - done_t) * A_{t+1},   A_T = 0
        target_t = A_t + V_t

    where ``V_t = values[t]`` and ``V'_t = next_values[t]`` is the value of the
    observation that followed step t *in the same episode* (the pre-reset
    final observation when step t was truncated by a time limit; anything
    finite when step t terminated). ``terminated`` stops bootstrapping;
    ``done_t = dones_t | terminated_t`` stops the recursion (a terminal step
    ends its episode even when ``dones`` leaves it out).

    ``lam = 0`` gives the one-step TD error; ``lam = 1`` gives the
    Monte-Carlo advantage bootstrapped at the rollout's end and at time limits
    (the n-step return of A2C when ``next_values[T-1] = V(s_T)``).

    See Schulman et al., *High-Dimensional Continuous Control Using
    Generalized Advantage Estimation*, 2016 (https://arxiv.org/abs/1506.02438).

    Args:
      rewards: ``[T, ...]`` reward for the action at step t.
      values: ``[T, ...]`` V(s_t).
      next_values: ``[T, ...]`` V of the observation after step t in the same
        episode.
      terminated: ``[T, ...]`` bool or integer 0/1, never float; a true
        terminal state at step t.
      dones: ``[T, ...]`` bool or integer 0/1, never float; terminated or
        truncated at step t.
      gamma: scalar discount in [0, 1] (checked when concrete).
      lam: scalar GAE lambda in [0, 1] (checked when concrete).
      stop_target_gradients: return both results under ``stop_gradient``.

    Returns:
      ``(advantages, targets)``, each ``[T, ...]``; ``targets = advantages +
      values`` are the critic's regression targets (lambda-returns). Both in
      the promoted float dtype of ``rewards``, ``values`` and ``next_values``
      (computed in at least float32).

    Raises:
      ValueError: a float flag, an integer flag other than 0/1, or a concrete
        ``gamma`` or ``lam`` outside [0, 1].

    Examples:
      >>> import jax.numpy as jnp
      >>> from pgjax import gae
      >>> r = jnp.array([1.0, 1.0])
      >>> v = jnp.array([0.5, 0.5])
      >>> nv = jnp.array([0.5, 2.0])  # V(s_1), then V(s_2) to bootstrap from
      >>> no = jnp.zeros(2, bool)
      >>> adv, tgt = gae(r, v, nv, no, no, gamma=0.5, lam=1.0)
      >>> tgt.tolist()  # 1 + 0.5 * (1 + 0.5 * 2), then 1 + 0.5 * 2
      [2.0, 2.0]
    """
    rewards, values, next_values = map(jnp.asarray, (rewards, values, next_values))
    terminated = jnp.asarray(terminated)
    dones = jnp.asarray(dones)
    chex.assert_equal_shape([rewards, values, next_values, terminated, dones])
    chex.assert_rank(rewards, {*range(1, 8)})
    terminated = _check_flag("gae", "terminated", terminated)
    # terminated implies done: a terminal step missing from dones still ends its episode.
    dones = _check_flag("gae", "dones", dones) | terminated
    _check_unit("gae", "gamma", gamma)
    _check_unit("gae", "lam", lam)
    out_dtype, dtype = _dtypes(rewards, values, next_values)
    rewards, values, next_values = (x.astype(dtype) for x in (rewards, values, next_values))
    gamma, lam = _scalar(gamma, dtype), _scalar(lam, dtype)

    deltas = (
        rewards + gamma * (1.0 - terminated.astype(dtype)) * next_values - values
    )
    decays = gamma * lam * (1.0 - dones.astype(dtype))

    def step(a_next, x):
        delta, decay = x
        a = delta + decay * a_next
        return a, a

    init = jnp.zeros(rewards.shape[1:], dtype)
    _, advantages = jax.lax.scan(step, init, (deltas, decays), reverse=True)
    targets = advantages + values
    return (
        _maybe_stop(advantages.astype(out_dtype), stop_target_gradients),
        _maybe_stop(targets.astype(out_dtype), stop_target_gradients),
    )


def masked_mean(x: Array, mask: Array | None = None, *, axis=None) -> Array:
    """Mean of ``x`` over the entries where ``mask`` is true.

    Masked entries contribute neither value nor gradient, even when they hold
    NaN or inf (they are replaced before the sum, so the NaN never enters the
    backward pass either). An all-false mask gives 0.

    Args:
      x: array of any shape.
      mask: bool or 0/1 array of ``x``'s shape, or None for a plain mean.
      axis: axes to reduce; None reduces all.

    Returns:
      The masked mean, reduced over ``axis``.

    Examples:
      >>> import jax.numpy as jnp
      >>> from pgjax import masked_mean
      >>> masked_mean(jnp.array([1.0, 2.0, 100.0]), jnp.array([1, 1, 0])).item()
      1.5
    """
    x = jnp.asarray(x)
    if mask is None:
        return jnp.mean(x, axis=axis)
    mask = jnp.asarray(mask).astype(bool)
    chex.assert_equal_shape([x, mask])
    total = jnp.sum(jnp.where(mask, x, 0), axis=axis)
    count = jnp.sum(mask, axis=axis, dtype=total.dtype)
    return total / jnp.maximum(count, 1)


def normalize(
    x: Array, mask: Array | None = None, eps: float = 1e-8, *, axis=None
) -> Array:
    """Zero mean, unit standard deviation over the valid entries only.

    ``(x - mean) / (std + eps)`` with the mean and the (population) standard
    deviation taken over the entries where ``mask`` is true, so padding after
    an episode's end does not shift the statistics. Masked entries come back
    as 0. This is REINFORCE's per-batch return normalisation (and PPO's
    advantage normalisation), correct when some entries are padding.

    Args:
      x: array of any shape, e.g. returns ``[T, N]``.
      mask: bool or 0/1 array of ``x``'s shape; None means all valid.
      eps: added to the standard deviation.
      axis: axes to take the statistics over; None means all.

    Returns:
      Normalised ``x``, same shape and dtype.

    Examples:
      >>> import jax.numpy as jnp
      >>> from pgjax import normalize
      >>> normalize(jnp.array([1.0, 3.0, 7.0]), jnp.array([1, 1, 0])).tolist()
      [-1.0, 1.0, 0.0]
    """
    x = jnp.asarray(x)
    x = x.astype(_float_dtype(x))
    if mask is not None:
        mask = jnp.asarray(mask).astype(bool)
        # Replace padding first: a NaN there would otherwise reach the
        # gradient of the statistics through 0 * NaN.
        x = jnp.where(mask, x, 0)
    keep = axis is not None
    mean = masked_mean(x, mask, axis=axis)
    mean = jnp.expand_dims(mean, axis) if keep else mean
    centred = x - mean
    var = masked_mean(jnp.square(centred), mask, axis=axis)
    std = jnp.sqrt(jnp.expand_dims(var, axis) if keep else var)
    out = centred / (std + eps)
    if mask is None:
        return out
    return jnp.where(mask, out, 0).astype(x.dtype)
