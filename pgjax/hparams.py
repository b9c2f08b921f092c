"""The float hyperparameters a run carries in its state, as traced arrays (vmappable)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class HParams(NamedTuple):
    """Float hyperparameters, carried in the state as float32 scalars (traced).

    Any of them can be vmapped: ``jax.vmap(train)(keys, hparams)`` with
    leaves of shape ``[S]``. Build one with :func:`default_hparams` and
    ``._replace``.
    """

    gamma: Array
    gae_lambda: Array
    actor_lr: Array
    critic_lr: Array
    entropy_coef: Array
    value_coef: Array
    clip_eps: Array
    max_grad_norm: Array  # ignored when config.optimizer.max_grad_norm is None


def default_hparams(config: Any) -> HParams:
    """The config's float hyperparameters as float32 arrays."""
    a, o = config.algorithm, config.optimizer
    values = HParams(
        gamma=a.gamma,
        gae_lambda=a.gae_lambda,
        actor_lr=o.actor_lr,
        critic_lr=o.critic_lr,
        entropy_coef=a.entropy_coef,
        value_coef=a.value_coef,
        clip_eps=a.clip_eps,
        max_grad_norm=o.max_grad_norm if o.max_grad_norm is not None else jnp.inf,
    )
    return HParams(*(jnp.asarray(v, jnp.float32) for v in values))


def as_hparams(hparams: Any) -> HParams:
    """``hparams`` as float32 :class:`HParams`, refusing what is not one (a dict, a tuple of
    the wrong length) and concrete values outside their ranges (traced ones cannot be
    checked: a vmapped sweep's values are the caller's to choose)."""
    if not isinstance(hparams, HParams):
        raise TypeError(f"hparams: expected a pgjax.HParams, got {type(hparams).__name__}; "
                        "build one with trainer.hparams._replace(gamma=..., ...)")
    hparams = HParams(*(jnp.asarray(h, jnp.float32) for h in hparams))
    ranges = {"gamma": (0.0, 1.0), "gae_lambda": (0.0, 1.0), "clip_eps": (0.0, None),
              "actor_lr": (0.0, None), "critic_lr": (0.0, None), "entropy_coef": (0.0, None),
              "value_coef": (0.0, None), "max_grad_norm": (0.0, None)}
    for name, (low, high) in ranges.items():
        value = getattr(hparams, name)
        if isinstance(value, jax.core.Tracer):
            continue
        values = jax.device_get(value)
        if (values < low).any() or (high is not None and (values > high).any()):
            allowed = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
            raise ValueError(f"hparams.{name}={values.tolist()}: must be {allowed}")
    return hparams
