"""What the benchmark asks of an algorithm, answered by the registry (:mod:`pgjax.algos`).

The harness never compares an algorithm's name: a registered algorithm (a fifth one
included) is benchmarked like the shipped four.
"""

from __future__ import annotations

from pgjax import algos
from pgjax.config import Config


def algorithm_names() -> tuple[str, ...]:
    """The names ``--algorithm`` accepts: every registered algorithm."""
    return tuple(algos.names())


def is_episodic(config: Config) -> bool:
    """Whether the algorithm rolls out whole episodes (no ``algorithm.n_steps``)."""
    return algos.get(config.algorithm.name).episodic


def epochs_per_update(config: Config) -> int:
    """Passes of the loss over each batch per update (PPO's epochs; 1 for the others)."""
    return algos.get(config.algorithm.name).epochs(config)


def schedule_text(config: Config) -> str:
    """The update schedule for a header line (``", 4 epochs x 4 minibatches"``), or ``""``
    for one gradient step on the whole batch."""
    algorithm = algos.get(config.algorithm.name)
    epochs, minibatches = algorithm.epochs(config), algorithm.minibatches(config)
    return f", {epochs} epochs x {minibatches} minibatches" if epochs * minibatches > 1 else ""
