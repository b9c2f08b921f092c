"""Model FLOPs per env step, and the machine's achievable FLOP/s (a float32 matmul), for the
FLOP utilisation ``pgjax bench`` prints beside its steps/s."""

from __future__ import annotations

import statistics
import time
from typing import Callable, NamedTuple

from pgjax.bench.algorithms import epochs_per_update
from pgjax.config import Config
from pgjax.memory import NetworkShape


class ModelFlops(NamedTuple):
    """Model FLOPs per env step (a multiply-add counts 2).

    Attributes:
      forward: one forward pass of every network the loss uses (actor and critic), per sample.
      rollout: acting, per env step: the actor and critic forward.
      train: the loss's forward and backward per env step: ``epochs x (forward + backward)``,
        the backward being the weight gradients of every layer plus the input gradients of
        every layer but the first (about 2x forward).
      total: ``rollout + train``.
    """

    forward: int
    rollout: int
    train: int
    total: int


def layer_macs(shape: NetworkShape) -> tuple[int, int]:
    """(forward MACs, input-gradient MACs) per sample, over all networks.

    Every layer's input needs a gradient except the first layer's (the observation); the heads
    both read the trunk's output, so they count as ordinary layers.
    """
    forward = grad_input = 0
    for name in shape.dense:
        layers = [9 * c_in * c_out * positions for c_in, c_out, positions in shape.convs[name]]
        layers += [i * o for i, o in shape.dense[name]]
        forward += sum(layers)
        grad_input += sum(layers) - layers[0]
    return forward, grad_input


def model_flops(config: Config, shape: NetworkShape) -> ModelFlops:
    """Counts the model FLOPs of one env step of training ``config`` with networks ``shape``.

    Examples:
      >>> from pgjax.config import Config
      >>> from pgjax.memory import network_shape
      >>> f = model_flops(Config(), network_shape(Config(), (4,), 2))  # CartPole 2x64 a2c
      >>> f.forward  # 2 * (4*64 + 64*64 + 64*2 + 4*64 + 64*64 + 64*1)
      17792
      >>> f.rollout, f.train, f.total
      (17792, 52352, 70144)
    """
    forward_macs, grad_input_macs = layer_macs(shape)
    epochs = epochs_per_update(config)
    forward = 2 * forward_macs
    backward = 2 * (forward_macs + grad_input_macs)
    train = epochs * (forward + backward)
    return ModelFlops(forward, forward, train, forward + train)


def make_matmul(size: int) -> tuple[Callable[[], None], float]:
    """A compiled, warmed-up ``[size, size] @ [size, size]`` float32 call and its FLOPs."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (size, size), jnp.float32)
    b = jax.random.normal(kb, (size, size), jnp.float32)
    product = jax.jit(lambda x, y: x @ y).lower(a, b).compile()
    jax.block_until_ready(product(a, b))
    return (lambda: jax.block_until_ready(product(a, b))), 2.0 * size**3


def matmul_flops(size: int = 4096, repeats: int = 5) -> dict[str, float]:
    """The machine's achievable float32 FLOP/s: a jitted ``[size, size] @ [size, size]``.

    Returns the median and best FLOP/s over ``repeats`` timed products (after a compile and
    warm-up call), counting ``2 size^3`` FLOPs each.
    """
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (size, size), jnp.float32)
    b = jax.random.normal(kb, (size, size), jnp.float32)
    product = jax.jit(lambda x, y: x @ y)
    jax.block_until_ready(product(a, b))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(product(a, b))
        times.append(time.perf_counter() - start)
    flops = 2.0 * size**3
    return {"size": size, "repeats": repeats, "flops_per_s": flops / statistics.median(times),
            "best_flops_per_s": flops / min(times), "times_s": times}
