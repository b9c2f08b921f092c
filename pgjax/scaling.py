"""Batch-aware settings: what follows from ``training.num_envs``, by one documented rule.

A preset is tuned at its own ``training.num_envs``, ``N0`` (16 for the classic-control
presets). Raise only ``num_envs`` to ``N = k * N0`` and keep everything else, and the batch is
fast and does not learn (benchmarks/RESULTS.md, "Large batches"): with the same env-step budget
the run gets ``k`` times fewer updates, each rollout is as long as before although ``k`` times
more environments already give the gradient its precision, and PPO's fixed minibatch *count*
turns into ever larger minibatches stepped with an unchanged learning rate.

On an accelerator one rollout-and-update at N = 4096 costs about what it costs at N = 16, so
the wall time to a result is about the number of **sequential updates** to reach it, and the
rule aims at few updates and few env steps. For ``k > 1`` and the n-step algorithms (a2c,
ppo), each key below is re-derived from the preset's value unless it is set explicitly:

* PPO, ``env.normalize_obs``: on. Measured, not derived: with raw observations CartPole ppo
  at N=4096 reached 490 in 0 of 4 seeds within the preset's budget, with running statistics
  in 4 of 4. Not for a2c, where it depends on the env (measured at N=1024: CartPole a2c 0/4
  without, 4/4 with; Acrobot a2c 4/4 without, 0/4 with), so the preset decides (the
  cartpole_a2c preset normalises, acrobot_a2c does not).
* ``algorithm.n_steps``: ``T = T0 / k`` rounded down to a power of two, but at least
  :data:`MIN_STEPS` (and at most ``T0``): more environments, shorter rollouts, so a budget
  buys more updates. A preset with ``T0 <= MIN_STEPS`` keeps its ``T0``.
* PPO, ``algorithm.minibatches``: the minibatch *size* grows with the square root of the batch,
  ``mb = mb0 * sqrt(B / B0)`` (``B = N * T`` samples per update; the nearest divisor of ``B``),
  and ``minibatches = B / mb``: larger batches give both larger minibatches (less gradient
  noise) and more gradient steps per epoch.
* Learning rates, by Adam's square-root rule (the step grows with the square root of the
  samples behind each gradient step, ``g = mb / mb0`` for PPO, ``B / B0`` for a2c):
  PPO's ``critic_lr * sqrt(g)``; PPO's ``actor_lr`` stays (the clipped ratio already bounds how
  far the policy moves per update); a2c's ``actor_lr`` and ``critic_lr`` by ``sqrt(g)``, at most
  :data:`MAX_LR_FACTOR` times the preset's (a2c has no clip: a larger policy step overshoots).
  Skipped with ``network.shared_trunk`` (one optimiser for both heads).
* PPO, ``algorithm.recompute_advantages``: on when the rollout got shorter. Value information
  travels ``n_steps`` steps per update; recomputing advantages and targets with the current
  critic before each epoch makes that ``epochs * n_steps`` again.
* A recurrent network (``network.gru_size > 0``) keeps the preset's ``n_steps`` (its
  gradients reach back at most one rollout, so a shorter one would shorten its memory; and
  so nothing is recomputed), and PPO's minibatches are whole env sequences: their count is
  the divisor of ``N`` nearest the minibatch size above.
* a2c, ``optimizer.anneal_lr``: on, so the larger steps end small (a2c has no clip).
* a2c, ``algorithm.normalize_advantages``: on. A large batch fits the critic well, so the
  advantages shrink as the policy improves; unnormalised, the fixed entropy bonus then
  outweighs them and a solved policy drifts away (measured: CartPole a2c at N=1024 reached 490
  and fell back in 2 of 4 seeds; normalised, 4 of 4 stayed). At the presets' small batches
  (128 samples) the per-batch statistics are noisy, so the presets leave it off.

Nothing changes for ``k <= 1`` (the presets are tuned for their own N), for REINFORCE (one
whole episode per environment: nothing in it depends on N), or with
``training.scale_with_num_envs: false``.

Example:
  >>> from pgjax.config import AlgorithmConfig, Config, OptimizerConfig
  >>> ppo = Config(algorithm=AlgorithmConfig(name="ppo", n_steps=32, minibatches=4),
  ...              optimizer=OptimizerConfig(actor_lr=1e-3, critic_lr=1e-3))
  >>> scaled = scale_to_num_envs(ppo, 4096)
  >>> a, o = scaled.config.algorithm, scaled.config.optimizer
  >>> a.n_steps, a.minibatches, a.recompute_advantages, o.actor_lr, o.critic_lr
  (8, 32, True, 0.001, 0.00283)
  >>> print("\\n".join(scaled.changes))
  training.num_envs 16 -> 4096
  env.normalize_obs False -> True (running statistics of N x T observations per update)
  algorithm.n_steps 32 -> 8 (32 * 16/4096, at least 8)
  algorithm.minibatches 4 -> 32 (minibatch 128 -> 1024 samples = 128 * sqrt(32768/512))
  optimizer.critic_lr 0.001 -> 0.00283 (x sqrt(1024/128))
  algorithm.recompute_advantages False -> True (n_steps 32 -> 8: recompute before each epoch)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from pgjax import algos
from pgjax.algos.a2c import MAX_LR_FACTOR  # noqa: F401  (re-exported: the a2c cap)
from pgjax.config import Config, apply_overrides

# The shortest rollout the rule chooses; a preset's own shorter n_steps is kept.
MIN_STEPS = 8


class Scaled(NamedTuple):
    """A config moved to another ``num_envs`` by the rule, and what the rule did."""

    config: Config
    changes: tuple[str, ...]  # one line per key the rule set: "key old -> new (why)"


def _pow2_floor(x: float) -> int:
    return 1 << max(int(math.floor(math.log2(max(x, 1.0)))), 0)


def _divisor_near(total: int, want: float) -> int:
    """The divisor of ``total`` nearest ``want`` on a log scale (ties: the larger)."""
    divisors = [d for d in range(1, math.isqrt(total) + 1) if total % d == 0]
    divisors += [total // d for d in divisors]
    return min(divisors, key=lambda d: (abs(math.log(d / want)), -d))


def _round(x: float) -> float:
    return float(f"{x:.3g}")


class _Rule:
    """What an algorithm's :meth:`~pgjax.algos.Algorithm.scale` works with: the preset
    (``config``, ``n0``, ``batch0 = n0 * T0``), the new ``num_envs``, the caller's explicit
    keys (never changed), and ``put`` to set a key with the reason it is printed with."""

    def __init__(self, config: Config, num_envs: int, explicit: dict, new: dict,
                 changes: list):
        self.config, self.num_envs, self._explicit = config, num_envs, explicit
        self._new, self._changes = new, changes
        self.n0 = config.training.num_envs
        self.batch0 = self.n0 * config.algorithm.n_steps
        self.round, self.divisor_near = _round, _divisor_near

    @property
    def recurrent(self) -> bool:
        """The built-in networks have a GRU (``network.gru_size > 0``)."""
        return bool(self.get("network.gru_size"))

    def explicit_has(self, key: str) -> bool:
        return key in self._explicit

    def get(self, key: str) -> Any:
        """The key's value as the caller set it, else the preset's."""
        section, name = key.split(".")
        return self._explicit.get(key, getattr(getattr(self.config, section), name))

    def put(self, key: str, value: Any, why: str) -> None:
        section, name = key.split(".")
        old = getattr(getattr(self.config, section), name)
        if key in self._explicit or value == old:
            return
        self._new.setdefault(section, {})[name] = value
        self._changes.append(f"{key} {old} -> {value} ({why})")

    def shrink_n_steps(self) -> int:
        """Sets ``algorithm.n_steps`` to ``T0 * n0 / N`` rounded down to a power of two, at
        least :data:`MIN_STEPS` (unless explicit, ``T0 <= MIN_STEPS``, or a recurrent network,
        whose gradients reach back ``n_steps`` steps at most); returns the T used."""
        t0 = self.config.algorithm.n_steps
        steps = self.get("algorithm.n_steps")
        if not self.explicit_has("algorithm.n_steps") and t0 > MIN_STEPS \
                and not self.recurrent:
            steps = max(MIN_STEPS, min(t0, _pow2_floor(t0 * self.n0 / self.num_envs)))
            self.put("algorithm.n_steps", steps,
                     f"{t0} * {self.n0}/{self.num_envs}, at least {MIN_STEPS}")
        return steps


def scale_to_num_envs(config: Config, num_envs: int, *,
                      explicit: Mapping[str, Any] | None = None) -> Scaled:
    """``config`` moved to ``training.num_envs = num_envs`` by the batch rule (module docstring).

    Args:
      config: the tuned config (a preset); its ``training.num_envs`` is ``N0``, and its values
        are the ``T0``, ``mb0`` and learning rates the rule scales from.
      num_envs: the new N.
      explicit: ``{"section.key": value}`` settings the caller fixes (its ``--set``): they are
        used as given, the rule changes none of them, and derives the rest from them (e.g. the
        minibatch count from an explicit ``algorithm.n_steps``).

    Returns:
      A :class:`Scaled`; its config is validated. ``config`` is untouched.
    """
    t = config.training
    explicit = dict(explicit or {})
    n0 = t.num_envs
    changes = [f"training.num_envs {n0} -> {num_envs}"] if num_envs != n0 else []
    new: dict[str, dict[str, Any]] = {"env": {}, "training": {}, "algorithm": {},
                                      "optimizer": {}}
    for key, value in explicit.items():  # used as given
        section, name = key.split(".")
        new.setdefault(section, {})[name] = value
    new["training"]["num_envs"] = num_envs

    rule = _Rule(config, num_envs, explicit, new, changes)
    on = explicit.get("training.scale_with_num_envs", t.scale_with_num_envs)
    algorithm = algos.get(explicit.get("algorithm.name", config.algorithm.name))
    if num_envs > n0 and on and not algorithm.episodic:
        algorithm.scale(rule)  # its part of the rule (pgjax.algos: a2c, ppo)
    sections = {name: dataclasses.replace(getattr(config, name), **values)
                for name, values in new.items()}
    scaled = dataclasses.replace(config, **sections)
    return Scaled(apply_overrides(scaled, []), tuple(changes))


def override_keys(overrides: Sequence[str]) -> set[str]:
    """The ``section.key`` names that ``--set`` overrides set."""
    return {item.partition("=")[0].strip() for item in overrides}


def apply_overrides_scaled(config: Config, overrides: Sequence[str]) -> Scaled:
    """:func:`pgjax.config.apply_overrides`, with the batch rule when they change num_envs.

    When the overrides set ``training.num_envs`` to another value than ``config``'s (and
    ``training.scale_with_num_envs`` is true after them), ``config`` with the overrides applied
    is moved by :func:`scale_to_num_envs` from ``config``'s num_envs, keeping every key the
    overrides set: an explicit setting always wins. Otherwise this is ``apply_overrides``.

    Examples:
      >>> from pgjax.config import AlgorithmConfig, Config
      >>> ppo = Config(algorithm=AlgorithmConfig(name="ppo", n_steps=32, minibatches=4))
      >>> s = apply_overrides_scaled(ppo, ["training.num_envs=1024", "algorithm.n_steps=16"])
      >>> s.config.algorithm.n_steps, s.config.algorithm.minibatches  # mb 128 * sqrt(32) -> 1024
      (16, 16)
      >>> apply_overrides_scaled(ppo, ["algorithm.gamma=0.9"]).changes
      ()
    """
    # Types only: the literal config may be invalid (e.g. one update of the preset's rollout
    # at the new num_envs overruns the budget) where the scaled one is not.
    literal = apply_overrides(config, overrides, check=False)
    if literal.training.num_envs == config.training.num_envs:
        return Scaled(apply_overrides(config, overrides), ())
    explicit = {key: getattr(getattr(literal, key.split(".")[0]), key.split(".")[1])
                for key in override_keys(overrides) if key.count(".") == 1}
    scaled = scale_to_num_envs(config, literal.training.num_envs, explicit=explicit)
    # Every override on top, as given (env.params.* too): an explicit setting wins.
    return scaled._replace(config=apply_overrides(scaled.config, overrides))
