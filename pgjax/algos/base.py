"""The algorithm protocol and registry.

Every policy-gradient algorithm is ``grad log pi(a|s) * A`` with a different estimator ``A``
(docs/design.md). An :class:`Algorithm` says only what differs between them; the generic
trainer (:func:`pgjax.train.make_train`) does the rest (rollouts, optimiser, sharding,
gradient slicing, evaluation):

=====================  =========================================================
``episodic``           whole episodes per update (True: env steps counted as taken, the
                       budget spent by a while-loop of updates) or n-step auto-reset rollouts
``critic``             whether it trains a value network
``validate(config)``   its own config checks: raise :class:`ConfigError` (one line)
``minibatches(c)``     gradient steps per epoch (1: the whole batch), ``epochs(c)``
``slicing(c)``         how a gradient may be summed over slices: ``"time"``, ``"rows"``, None
``batch(traj, ...)``   a rollout's :class:`~pgjax.types.Transition` -> a :class:`Batch`
                       (advantages and value targets)
``loss(dist, ...)``    the scalar loss and its metrics, from the pure losses of
                       :mod:`pgjax.losses`
``update(...)``        its update schedule: default one gradient step on the whole batch
``scale(rule)``        its part of the large-batch rule (:mod:`pgjax.scaling`), optional
=====================  =========================================================

Register one with :func:`register`; ``algorithm.name`` in a config then selects it, and
``pgjax.algos.names()`` is the list the config accepts. Nothing outside ``pgjax/algos``
compares an algorithm's name. This module imports no config (the config imports the
registry to check names), so algorithms read config fields by attribute.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, NamedTuple

import jax

from pgjax.errors import ConfigError, config_error
from pgjax.losses import actor_critic_loss

Array = jax.Array
Metrics = dict[str, Array]


class Batch(NamedTuple):
    """What a loss needs: leaves ``[T, N, ...]``, or flattened ``[B, ...]`` in minibatches.

    Attributes:
      obs: observations as the policy saw them (normalised where that is on).
      action: actions taken.
      advantage: advantage estimates (constants of the loss).
      target: value targets (unused without a critic).
      old_log_prob: log-probabilities under the acting policy.
      old_value: values under the acting critic.
      mask: valid steps of episodic rollouts; None when every step is valid.
      carry: a recurrent network's state before each step (None for feedforward networks).
      starts: for a recurrent network, where a new episode starts (``starts[t] =
        done[t - 1]``, ``starts[0]`` false): the loss replays each sequence from
        ``carry[0]``, resetting the carry there. Filled in by the trainer.
    """

    obs: Array
    action: Array
    advantage: Array
    target: Array
    old_log_prob: Array
    old_value: Array
    mask: Array | None
    carry: Any = None
    starts: Array | None = None


class Learner(NamedTuple):
    """What :func:`pgjax.train.make_train` hands an algorithm's :meth:`Algorithm.update`.

    Attributes:
      config: the run's config.
      derived: its sizes (:class:`pgjax.config.Derived`).
      networks: the :class:`pgjax.networks.Networks` being trained.
      gradient_step: ``(params, opt_state, batch, hp, lr_scale, strided=False) ->
        (params, opt_state, metrics)``: the loss's gradient (summed over slices where the
        config asks; ``strided``: slices take every k-th row, for minibatches split over
        devices) and one optimiser step per parameter group.
      shard_rows: ``(tree, axis=1) -> tree`` splits that axis of a ``[minibatches, rows,
        ...]`` tree over the devices (identity on one device).
      values: ``(params, traj, last_obs) -> (value, next_value)``, both ``[T, N]``: the
        rollout's values under the critic of ``params`` (``last_obs``: the observation after
        the last step, as the policy sees it); a truncated step keeps the acting critic's
        V(final observation), a terminated one gets 0. For updates that recompute
        advantages (PPO's ``algorithm.recompute_advantages``).
    """

    config: Any
    derived: Any
    networks: Any
    gradient_step: Callable[..., tuple[Any, Any, Metrics]]
    shard_rows: Callable[..., Any]
    values: Callable[..., tuple[Array, Array]]
    # A recurrent network: minibatches must keep each env's sequence whole ([T, n] slices).
    recurrent: bool = False


class Algorithm:
    """Base class of pgjax's algorithms: override what differs (module docstring).

    The defaults are an n-step actor-critic with one gradient step per update; a subclass
    must set ``name`` and implement :meth:`batch`.
    """

    name: str = ""
    episodic: bool = False  # whole episodes per update, else n-step auto-reset rollouts
    critic: bool = True  # trains a value network
    minibatched: bool = False  # its update flattens and shuffles the batch into minibatches

    def validate(self, config: Any) -> None:
        """Raises :class:`ConfigError` for a config this algorithm cannot train."""

    def minibatches(self, config: Any) -> int:
        return 1

    def epochs(self, config: Any) -> int:
        return 1

    def slicing(self, config: Any) -> str | None:
        """``"time"``: the batch may be summed over slices of time steps; ``"rows"``: each
        minibatch over slices of rows; None: never sliced (e.g. masked episodic batches)."""
        return None

    def batch(self, traj: Any, mask: Array | None, hp: Any, config: Any) -> Batch:
        """Advantages and value targets of a rollout; ``mask`` marks the valid steps of
        episodic rollouts (None otherwise); ``hp`` is the run's :class:`pgjax.train.HParams`."""
        raise NotImplementedError(f"{type(self).__name__}.batch")

    def loss(self, dist: Any, value: Array, batch: Batch, hp: Any,
             config: Any) -> tuple[Array, Metrics]:
        """The loss of one (mini)batch under the current parameters: ``dist`` and ``value``
        are the networks' outputs on ``batch.obs``; advantages are already normalised where
        ``algorithm.normalize_advantages`` asks."""
        return actor_critic_loss(
            dist.log_prob(batch.action),
            value if self.critic else None,
            batch.advantage,
            batch.target if self.critic else None,
            dist.entropy(),
            value_coef=hp.value_coef,
            entropy_coef=hp.entropy_coef,
            mask=batch.mask,
            value_clip_eps=config.algorithm.value_clip_eps,
        )

    def update(self, learner: Learner, params: Any, opt_state: Any, batch: Batch, hp: Any,
               lr_scale: Array, key: Array, traj: Any,
               last_obs: Array | None) -> tuple[Any, Any, Metrics]:
        """The gradient step(s) of one update: by default one, on the whole batch."""
        return learner.gradient_step(params, opt_state, batch, hp, lr_scale)

    def scale(self, rule: Any) -> None:
        """Its part of the batch rule when ``training.num_envs`` grows (:mod:`pgjax.scaling`):
        call ``rule.put(key, value, why)``; by default nothing changes."""

    def __repr__(self) -> str:
        return f"<algorithm {self.name!r}>"


_REGISTRY: dict[str, Algorithm] = {}


def register(algorithm: Algorithm, *, replace: bool = False) -> Algorithm:
    """Registers an algorithm under ``algorithm.name`` (an instance, or a class to
    instantiate); returns the instance. A name already taken needs ``replace=True``."""
    if isinstance(algorithm, type):
        algorithm = algorithm()
    name = getattr(algorithm, "name", "")
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"algorithm name {name!r}: must be a Python identifier")
    if name in _REGISTRY and not replace and _REGISTRY[name] is not algorithm:
        raise ValueError(f"algorithm {name!r} is already registered; pass replace=True")
    _REGISTRY[name] = algorithm
    return algorithm


def unregister(name: str) -> None:
    """Removes a registered algorithm (e.g. one a test registered)."""
    _REGISTRY.pop(name, None)


def names() -> tuple[str, ...]:
    """The registered algorithm names, in registration order."""
    return tuple(_REGISTRY)


def get(name: str) -> Algorithm:
    """The algorithm registered as ``name``.

    Raises:
      ConfigError: for an unknown name (``algorithm.name=...: must be one of ...``).
    """
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise config_error("algorithm.name", name,
                           f"must be one of {', '.join(_REGISTRY)}{hint}") from None
