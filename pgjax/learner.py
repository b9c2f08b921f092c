"""The generic gradient step: an algorithm's loss, its gradient (summed over slices where
that is faster), and one Adam step per parameter group.

:func:`make_gradient_step` is what :func:`pgjax.train.make_train` hands every algorithm
(``Learner.gradient_step``); algorithms say only how their loss is built
(:meth:`pgjax.algos.Algorithm.loss`) and how the batch may be sliced
(:meth:`pgjax.algos.Algorithm.slicing`).
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax

from pgjax import algos
from pgjax.returns import normalize

Array = jax.Array

# Samples per device in one gradient slice with training.grad_slice_samples = "auto" on CPU:
# the fastest for the 2x64 a2c on this project's CPU at N = 256, 2048 and 4096 (T = 128).
AUTO_SLICE_SAMPLES = 8192


def optimizer(config: Any, lr: Array, max_grad_norm: Array) -> optax.GradientTransformation:
    """Adam (``optimizer.adam_eps``) after global-norm clipping (unless ``max_grad_norm`` is
    None in the config), on the flattened parameters of one group."""
    # optax.flatten: the optimiser sees one vector, not a leaf per layer. Same update, but one
    # fused clip-and-Adam instead of a dozen small ones; the chunk compiles ~0.35 s faster on
    # CPU (the 2x64 a2c program, 1.45 -> 1.10 s; benchmarks/RESULTS.md, time to solve).
    adam = optax.adam(lr, eps=config.optimizer.adam_eps)
    if config.optimizer.max_grad_norm is not None:
        adam = optax.chain(optax.clip_by_global_norm(max_grad_norm), adam)
    return optax.flatten(adam)


def lr_of(group: str, hp: Any) -> Array:
    """The step size of a parameter group: ``critic_lr`` for ``"critic"``, else ``actor_lr``
    (the actor, and a shared trunk)."""
    return hp.critic_lr if group == "critic" else hp.actor_lr


def grad_slices(rows: int, samples_per_row: int, max_samples: int) -> int:
    """The fewest equal slices of ``rows`` (a divisor) holding at most ``max_samples``
    samples each, ``samples_per_row`` per row; 1 when ``max_samples`` is 0 or all fit.

    >>> grad_slices(128, 2048, 8192), grad_slices(128, 16, 8192), grad_slices(6, 10, 25)
    (32, 1, 3)
    """
    if max_samples <= 0 or rows * samples_per_row <= max_samples:
        return 1
    return next(c for c in range(2, rows + 1)
                if rows % c == 0 and rows // c * samples_per_row <= max_samples or c == rows)


def loss_slices(config: Any, *, num_devices: int = 1, platform: str = "cpu") -> int:
    """How many slices each gradient is summed over (1: the whole batch at once), for
    ``training.grad_slice_samples`` on ``num_devices`` devices of ``platform``: an algorithm
    whose :meth:`~pgjax.algos.Algorithm.slicing` is ``"time"`` (a2c) slices its batch by
    time step, ``"rows"`` (PPO) each minibatch by row; None (REINFORCE's masked batches)
    never slices."""
    a, t = config.algorithm, config.training
    algorithm = algos.get(a.name)
    mode = algorithm.slicing(config)
    if mode is None:
        return 1
    max_samples = t.grad_slice_samples
    if max_samples == "auto":
        max_samples = AUTO_SLICE_SAMPLES if platform == "cpu" else 0
    envs = max(t.num_envs // num_devices if t.split == "envs" else t.num_envs, 1)
    if mode == "time":
        return grad_slices(a.n_steps, envs, max_samples)
    return grad_slices(max(a.n_steps * envs // algorithm.minibatches(config), 1), 1, max_samples)


def make_gradient_step(config: Any, algorithm: Any, apply: Callable, slices: int,
                       replicated: Callable[[Any], Any],
                       replay: Callable | None = None) -> Callable:
    """``gradient_step(params, opt_state, batch, hp, lr_scale, strided=False) -> (params,
    opt_state, metrics)`` for ``algorithm``'s loss.

    ``apply(params, obs, carry) -> (dist, value, carry)`` is the networks' forward pass.
    Advantages are normalised over the whole (mini)batch first when
    ``algorithm.normalize_advantages`` is on. With ``slices > 1`` the gradient is the mean of
    the gradients of ``slices`` equal slices (``strided``: slice j holds rows j, j + slices,
    ..., so each device keeps its share of every slice). ``replicated`` lays the new
    parameters out on every device. ``replay(params, obs, carry, starts) -> (dist, value)``
    (recurrent networks) runs each ``[T]`` sequence of the batch from its first carry instead.
    """
    a = config.algorithm

    def loss_fn(params, batch, hp, normalized: bool = False):
        if replay is not None:
            dist, value = replay(params, batch.obs, batch.carry, batch.starts)
        else:
            dist, value, _ = apply(params, batch.obs, batch.carry)
        if a.normalize_advantages and not normalized:
            batch = batch._replace(advantage=normalize(batch.advantage, batch.mask))
        return algorithm.loss(dist, value, batch, hp, config)

    def sliced_grads(params, batch, hp, strided: bool):
        # The mean loss over an unmasked batch is the mean of the losses of `slices` equal
        # slices of it, so its gradient is the mean of theirs. One slice's activations at a
        # time stay in cache, where the whole batch's [samples, width] ones do not.
        if a.normalize_advantages:  # over the whole batch, as the unsliced loss does
            batch = batch._replace(advantage=normalize(batch.advantage, batch.mask))
        if strided:
            pieces = jax.tree.map(
                lambda x: jnp.moveaxis(x.reshape((-1, slices, *x.shape[1:])), 1, 0), batch)
        else:
            pieces = jax.tree.map(lambda x: x.reshape((slices, -1, *x.shape[1:])), batch)

        def grads_of(piece):
            (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, piece, hp, normalized=True)
            return grads, metrics

        def body(total, piece):
            return jax.tree.map(jnp.add, total, grads_of(piece)), None

        first = jax.tree.map(lambda x: x[0], pieces)
        zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(grads_of, first))
        total, _ = jax.lax.scan(body, zeros, pieces)
        return jax.tree.map(lambda x: x / slices, total)

    def gradient_step(params, opt_state, batch, hp, lr_scale, strided: bool = False):
        if slices == 1:
            (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, hp)
        else:
            grads, metrics = sliced_grads(params, batch, hp, strided)
        new_params, new_opt_state = {}, {}
        for group in params:
            tx = optimizer(config, lr_of(group, hp) * lr_scale, hp.max_grad_norm)
            updates, new_opt_state[group] = tx.update(grads[group], opt_state[group], params[group])
            new_params[group] = optax.apply_updates(params[group], updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return replicated(new_params), new_opt_state, metrics

    return gradient_step
