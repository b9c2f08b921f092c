"""Algorithms: one module each behind a small protocol, and the registry that names them.

>>> import pgjax.algos as algos
>>> algos.names()
('reinforce', 'reinforce_baseline', 'a2c', 'ppo')
>>> algos.get("ppo").episodic, algos.get("reinforce").critic
(False, False)

Adding one: subclass :class:`Algorithm` (``name``, ``batch`` and whatever differs from an
n-step actor-critic), ``register`` it, and set ``algorithm.name`` to its name
(docs/design.md, "Adding an algorithm"; ``tests/test_algos.py`` trains a fifth one).
"""

from pgjax.algos.a2c import A2C, NStep
from pgjax.algos.base import (Algorithm, Batch, Learner, get, names, register,
                              unregister)
from pgjax.algos.ppo import PPO
from pgjax.algos.reinforce import Reinforce, ReinforceBaseline

for _algorithm in (Reinforce, ReinforceBaseline, A2C, PPO):
    register(_algorithm)

__all__ = ["A2C", "PPO", "Algorithm", "Batch", "Learner", "NStep", "Reinforce",
           "ReinforceBaseline", "get", "names", "register", "unregister"]
