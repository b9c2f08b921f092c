"""What the benchmark needs to know about an algorithm: the one module of pgjax.bench that
reads ``config.algorithm.name``.

Each function is a stand-in for a question the algorithm registry (``pgjax.algos``, issue 13)
answers; when it lands, each body becomes a lookup on the algorithm object and the rest of
the package does not change.
"""

from __future__ import annotations

from pgjax.config import ALGORITHMS, EPISODIC_ALGORITHMS, Config


def algorithm_names() -> tuple[str, ...]:
    """The names ``--algorithm`` accepts."""
    return ALGORITHMS  # registry: pgjax.algos names


def is_episodic(config: Config) -> bool:
    """Whether the algorithm rolls out whole episodes (no ``algorithm.n_steps``)."""
    return config.algorithm.name in EPISODIC_ALGORITHMS  # registry: the algorithm's rollout kind


def epochs_per_update(config: Config) -> int:
    """Passes of the loss over each batch per update: PPO's epochs, else 1."""
    return config.algorithm.epochs if config.algorithm.name == "ppo" else 1  # registry: schedule


def schedule_text(config: Config) -> str:
    """The update schedule for a header line (``", 4 epochs x 4 minibatches"``), or ``""``."""
    a = config.algorithm
    return f", {a.epochs} epochs x {a.minibatches} minibatches" if a.name == "ppo" else ""
