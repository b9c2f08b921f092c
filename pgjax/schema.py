"""The config's schema: its frozen dataclasses, their checks, and the sizes that follow.

:mod:`pgjax.config` re-exports everything here and adds the YAML form and ``--set``
overrides. Algorithm names and each algorithm's own checks come from the registry
(:mod:`pgjax.algos`); env names and env params are checked by the trainer, which builds the
env. This module imports no env library.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Union

from pgjax import algos
from pgjax.errors import ConfigError

Scalar = Union[bool, int, float, str]
EnvParams = tuple[tuple[str, Scalar], ...]
IntOrWord = Union[int, str]  # an int, or the word of _INT_OR_WORD for its key
_INT_OR_WORD = {"training.devices": ("all", ">= 1"), "training.grad_slice_samples": ("auto", ">= 0")}

ACTIVATIONS = ("tanh", "relu", "gelu", "elu", "silu")
# Experiment trackers a run can also log to (pgjax.host.tracking), each an optional extra:
# pip install 'pgjax[tensorboard]'
LOG_BACKENDS = ("tensorboard", "wandb", "mlflow")
# An episodic algorithm's budget plus one update must fit its int32 count of env steps taken.
MAX_EPISODIC_STEPS = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class EnvConfig:
    """The gymnax environment to train on."""

    name: str = "CartPole-v1"  # gymnax registry id
    params: EnvParams = ()  # overrides of gymnax env params; a dict is stored as sorted pairs
    normalize_obs: bool = False  # standardise observations (running mean, var); never state indices

    def __post_init__(self):
        if isinstance(self.params, Mapping):  # keeps the dataclass hashable and immutable
            pairs = sorted(self.params.items(), key=lambda kv: str(kv[0]))
            object.__setattr__(self, "params", tuple(pairs))


@dataclasses.dataclass(frozen=True)
class AlgorithmConfig:
    """Which advantage estimator and surrogate, and their coefficients (see docs/design.md)."""

    name: str = "a2c"  # a registered algorithm: pgjax.algos.names()
    gamma: float = 0.99  # discount, in (0, 1]
    gae_lambda: float = 1.0  # GAE lambda in [0, 1]; 1.0 is the n-step bootstrapped return
    n_steps: int = 8  # rollout length T per update (a2c, ppo); reinforce runs whole episodes
    normalize_returns: bool = True  # reinforce: standardise returns over each batch
    normalize_advantages: bool = False  # standardise advantages over each (mini)batch
    entropy_coef: float = 0.01  # weight of the entropy bonus
    value_coef: float = 0.5  # weight of the value loss
    clip_eps: float = 0.2  # ppo: probability-ratio clip epsilon
    value_clip_eps: float | None = None  # ppo: clipped value loss with this epsilon; None: plain
    epochs: int = 4  # ppo: passes over each batch
    minibatches: int = 4  # ppo: minibatches per epoch; must divide num_envs * n_steps
    # ppo: before each epoch, recompute values, advantages and value targets with the current
    # critic, so value information travels epochs * n_steps steps per update, not n_steps
    # (short rollouts at large num_envs need it; pgjax.scaling turns it on there)
    recompute_advantages: bool = False
    # ppo: how each epoch's minibatches are shuffled: "feistel" (an elementwise keyed
    # permutation, no sort) or "sort" (jax.random.permutation, uniform; slower on CPU).
    # pgjax.shuffle says why and what is tested
    shuffle: str = "feistel"


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """MLP actor and critic (optionally behind a small CNN), with orthogonal init gains."""

    hidden_sizes: tuple[int, ...] = (64, 64)  # widths of the hidden layers
    activation: str = "tanh"  # one of ACTIVATIONS
    shared_trunk: bool = False  # actor and critic share hidden layers (trained with actor_lr)
    log_std_init: float = 0.0  # continuous actions: initial log std, in half action ranges
    hidden_init_scale: float = 1.4142135623730951  # orthogonal gain of hidden layers (sqrt 2)
    policy_init_scale: float = 0.01  # orthogonal gain of the policy head: near-uniform start
    value_init_scale: float = 1.0  # orthogonal gain of the value head
    cnn: bool = False  # put a small CNN before the MLP, for image observations
    # > 0: a GRU of this many units after the MLP in actor and critic, for tasks that need
    # memory; its state is reset at episode starts, and losses replay whole rollouts
    gru_size: int = 0

    def __post_init__(self):
        if isinstance(self.hidden_sizes, list):
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam for actor and critic, with global-norm gradient clipping."""

    actor_lr: float = 3e-4  # Adam step size of the actor (and of a shared trunk)
    critic_lr: float = 1e-3  # Adam step size of the critic; ignored with shared_trunk
    max_grad_norm: float | None = 0.5  # optax.clip_by_global_norm threshold; None disables
    anneal_lr: bool = False  # decay step sizes linearly to 0 over the run's updates
    adam_eps: float = 1e-5  # Adam epsilon


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Batch shape, budget and seeds of a run, and how the host loop splits it."""

    num_envs: int = 16  # parallel environments, the N of [T, N]
    # when an override raises num_envs above a config's own, re-derive the settings that
    # depend on the batch (n_steps, PPO minibatches, ...) by pgjax.scaling's rule
    scale_with_num_envs: bool = True
    total_env_steps: int = 500_000  # env-step budget of each seed
    seed: int = 0  # base PRNG seed; the num_seeds runs derive their keys from it
    num_seeds: int = 1  # independent runs, vmapped in one program
    eval_episodes: int = 64  # fresh episodes per seed in the final evaluation (0 skips it)
    # compiled chunks per run (progress, metrics and checkpoints between them); when it does
    # not divide the updates, some chunks run one update more (pgjax.config.derive)
    num_chunks: int = 20
    devices: IntOrWord = 1  # devices num_envs is split over: a count, or "all" (pgjax.sharding)
    split: str = "envs"  # what devices split: "envs" of each seed, or whole "seeds" (small agents)
    num_processes: int = 1  # processes of a multi-host run; 0 = ask the cluster (pgjax.host.distributed)
    coordinator_address: str = ""  # multi-host: host:port of process 0; "" = env or cluster
    join_timeout_s: float = 300.0  # multi-host: seconds to wait for every process to join
    # a2c and ppo: sum each gradient over slices (a2c: of time steps; ppo: of minibatch rows)
    # of at most this many samples per device, so each slice's activations stay in cache
    # (same update, +15-40% steps/s on CPU at large N; pgjax.learner.loss_slices); "auto":
    # 8192 on CPU, the whole batch on accelerators; 0: the whole batch.
    grad_slice_samples: IntOrWord = "auto"


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    """Experiment trackers that receive the run's metrics besides metrics.csv.

    Where a run's numbers go, not what it computes: a run may resume with other backends
    (``pgjax.host.config_io.RUNTIME_KEYS``).
    """

    # any of LOG_BACKENDS, each at most once (pgjax train --log adds to it); each needs its
    # extra, e.g. pip install 'pgjax[tensorboard]'
    backends: tuple[str, ...] = ()

    def __post_init__(self):
        if isinstance(self.backends, list):
            object.__setattr__(self, "backends", tuple(self.backends))


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole experiment: one field per section."""

    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    algorithm: AlgorithmConfig = dataclasses.field(default_factory=AlgorithmConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)
    logging: LoggingConfig = dataclasses.field(default_factory=LoggingConfig)


@dataclasses.dataclass(frozen=True)
class Derived:
    """Sizes that follow from a config; see :func:`derive`.

    Chunks are numbered from 1, as in ``metrics.csv`` and the checkpoints: chunk ``c`` runs
    :meth:`chunk_updates` ``(c)`` updates, and the first ``c`` chunks together
    :meth:`updates_after` ``(c)``.
    """

    rollout_length: int  # T: n_steps, or max_steps_in_episode for reinforce
    # env steps collected per update: num_envs * rollout_length (episodic: at most that)
    steps_per_update: int
    batch_size: int  # transitions per update (= steps_per_update; episodic: padded)
    minibatch_size: int  # transitions per gradient step: batch_size // minibatches for ppo
    # updates run: total_env_steps // steps_per_update, all of them (episodic: at most
    # ceil(total_env_steps / num_envs), every episode being at least one step)
    num_updates: int
    num_chunks: int  # compiled chunks: training.num_chunks, or fewer if there are few updates
    # updates of the longest chunk: the compiled chunk's scan length (episodic: at most)
    updates_per_chunk: int
    # env steps run per seed: num_updates * steps_per_update (episodic: the budget,
    # total_env_steps; each seed stops at the update that reaches it)
    env_steps: int
    # episodic algorithms (reinforce): the env steps an update takes depend on how long its
    # episodes are, so updates run until the budget of env steps actually taken is spent
    episodic: bool = False

    @property
    def even(self) -> bool:
        """Whether every chunk runs ``updates_per_chunk`` updates (num_chunks divides them)."""
        return self.episodic or self.num_updates % self.num_chunks == 0

    def chunk_target(self, chunk: int) -> int:
        """Episodic algorithms: the env steps per seed that chunk ``chunk`` (0 to num_chunks)
        runs updates until (``total_env_steps * chunk // num_chunks``); each seed stops at the
        first update that reaches it, so it ends at most one update's steps past it."""
        if not 0 <= chunk <= self.num_chunks:
            raise ValueError(f"chunk={chunk}: must be in 0..{self.num_chunks}")
        return self.env_steps * chunk // self.num_chunks

    def updates_after(self, chunks: int) -> int:
        """Updates done by the first ``chunks`` chunks (0 to num_chunks).

        The first ``num_updates % num_chunks`` chunks run ``updates_per_chunk`` updates, the
        rest one fewer, so ``updates_after(num_chunks) == num_updates``.
        """
        if not 0 <= chunks <= self.num_chunks:
            raise ValueError(f"chunks={chunks}: must be in 0..{self.num_chunks}")
        if self.episodic:
            raise ValueError("updates_after: an episodic algorithm's updates per chunk depend on "
                             "its episodes' lengths (see chunk_target and state.update)")
        base, longer = divmod(self.num_updates, self.num_chunks)
        return chunks * base + min(chunks, longer)

    def chunk_updates(self, chunk: int) -> int:
        """Updates run by chunk number ``chunk`` (1 to num_chunks)."""
        return self.updates_after(chunk) - self.updates_after(chunk - 1)


_SECTIONS: dict[str, type] = typing.get_type_hints(Config)


def _error(key: str, value: Any, allowed: str) -> ConfigError:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return ConfigError(f"{key}={shown}: {allowed}")


def _unknown(kind: str, prefix: str, key: Any, choices: Sequence[str]) -> ConfigError:
    close = difflib.get_close_matches(str(key), choices, n=1)
    hint = f"did you mean {prefix}{close[0]}?" if close else f"expected one of {', '.join(choices)}"
    return ConfigError(f"{prefix}{key}: unknown {kind}; {hint}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, hint: Any) -> Any:
    """Returns ``value`` as the field type ``hint`` stores it, or raises ConfigError."""
    if hint == EnvParams:
        if isinstance(value, tuple) and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            value = dict(value)
        if not isinstance(value, Mapping):
            raise _error(key, value, "expected a mapping of gymnax env params")
        for name, item in value.items():
            if not isinstance(name, str):
                raise _error(key, value, "expected string keys")
            if not isinstance(item, (bool, int, float, str)):
                raise _error(f"{key}.{name}", item, "expected a bool, int, float or string")
        return tuple(sorted(value.items()))
    if hint == IntOrWord:
        word, bound = _INT_OR_WORD[key]
        if value == word or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        raise _error(key, value, f"expected an int {bound} or '{word}'")
    if typing.get_origin(hint) in (Union, types.UnionType):  # only `float | None` here
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return None if value is None else _coerce(key, value, inner)
    if typing.get_origin(hint) is tuple:  # tuple[int, ...] or tuple[str, ...] here
        item = typing.get_args(hint)[0]
        if not isinstance(value, (list, tuple)) or any(
                isinstance(v, bool) or not isinstance(v, item) for v in value):
            raise _error(key, value, f"expected a list of {'ints' if item is int else 'strings'}")
        return tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if hint is int and isinstance(value, float) and value.is_integer():  # 1e6 steps
        value = int(value)
    if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
        raise _error(key, value, f"expected {hint.__name__}, got {type(value).__name__}")
    if hint is float and not math.isfinite(value):
        raise _error(key, value, "expected a finite float")
    return value


_GE0, _GT0 = ("must be >= 0", lambda v: v >= 0), ("must be > 0", lambda v: v > 0)
_GE1 = ("must be >= 1", lambda v: v >= 1)
_GT0_OR_NULL = ("must be > 0 or null", lambda v: v is None or v > 0)
_RULES = {  # key: (what is allowed, test); checked in this order, after the types
    "env.name": ("must be an env name (pgjax envs lists them)", bool),
    "algorithm.name": (None, None),  # the registry's check: pgjax.algos.get
    "algorithm.gamma": ("must be in (0, 1]", lambda v: 0 < v <= 1),
    "algorithm.gae_lambda": ("must be in [0, 1]", lambda v: 0 <= v <= 1),
    "algorithm.n_steps": _GE1,
    "algorithm.entropy_coef": _GE0,
    "algorithm.value_coef": _GE0,
    "algorithm.clip_eps": _GT0,
    "algorithm.value_clip_eps": _GT0_OR_NULL,
    "algorithm.epochs": _GE1,
    "algorithm.minibatches": _GE1,
    "algorithm.shuffle": ("must be 'feistel' or 'sort'", ("feistel", "sort").__contains__),
    "network.hidden_sizes": ("must be a list of positive ints", lambda v: all(h > 0 for h in v)),
    "network.activation": (f"must be one of {', '.join(ACTIVATIONS)}", ACTIVATIONS.__contains__),
    "network.hidden_init_scale": _GT0,
    "network.policy_init_scale": _GE0,
    "network.value_init_scale": _GE0,
    "network.gru_size": _GE0,
    "optimizer.actor_lr": _GT0,
    "optimizer.critic_lr": _GT0,
    "optimizer.max_grad_norm": _GT0_OR_NULL,
    "optimizer.adam_eps": _GT0,
    "training.num_envs": _GE1,
    "training.seed": ("must be >= 0 and < 2**63", lambda v: 0 <= v < 2**63),
    "training.num_seeds": _GE1,
    "training.eval_episodes": _GE0,
    "training.num_chunks": _GE1,
    "training.devices": ("must be an int >= 1 or 'all'", lambda v: v == "all" or v >= 1),
    "training.grad_slice_samples": ("must be an int >= 0 or 'auto'",
                                    lambda v: v == "auto" or v >= 0),
    "training.num_processes": _GE0,
    "training.join_timeout_s": _GT0,
    "training.split": ("must be 'envs' or 'seeds'", ("envs", "seeds").__contains__),
    "logging.backends": (None, None),  # _check_backends: names the unknown one
}


def _check_backends(backends: tuple[str, ...]) -> None:
    for name in backends:
        if name not in LOG_BACKENDS:
            close = difflib.get_close_matches(str(name), LOG_BACKENDS, n=1)
            hint = f"did you mean {close[0]}?" if close else f"expected {', '.join(LOG_BACKENDS)}"
            raise ConfigError(f"logging.backends: {name!r}: unknown backend; {hint}")
    if len(set(backends)) < len(backends):
        twice = next(b for b in backends if backends.count(b) > 1)
        raise _error("logging.backends", list(backends), f"{twice!r} is listed twice")


def _rollout_length(config: Config, max_steps_in_episode: int | None) -> int | None:
    """T of one update's rollout, or None for reinforce when the episode cap is unknown."""
    if not algos.get(config.algorithm.name).episodic:
        return config.algorithm.n_steps
    key, value = "max_steps_in_episode", max_steps_in_episode
    if value is None:
        value = dict(config.env.params).get("max_steps_in_episode")
        key = "env.params.max_steps_in_episode"
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise _error(key, value, "must be an int >= 1")
    return value


def validate(config: Config, *, max_steps_in_episode: int | None = None) -> None:
    """Checks every key of ``config`` against its type and allowed range.

    Args:
      config: the config to check.
      max_steps_in_episode: the env's episode cap. REINFORCE's update size depends on it, so
        without it (and without ``env.params.max_steps_in_episode``) REINFORCE's
        ``total_env_steps >= steps_per_update`` check is skipped.

    Raises:
      ConfigError: one line naming the first bad key, its value and what is allowed.

    Examples:
      >>> validate(Config())
      >>> validate(Config(algorithm=AlgorithmConfig(gamma=1.5)))
      Traceback (most recent call last):
      ...
      pgjax.config.ConfigError: algorithm.gamma=1.5: must be in (0, 1]
    """
    for section, cls in _SECTIONS.items():
        body = getattr(config, section)
        if not isinstance(body, cls):
            raise _error(section, body, f"expected a {cls.__name__}")
        for name, hint in _hints(cls).items():
            _coerce(f"{section}.{name}", getattr(body, name), hint)
    for key, (allowed, ok) in _RULES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if key == "algorithm.name":
            algorithm = algos.get(value)  # ConfigError naming the registered ones
        elif key == "logging.backends":
            _check_backends(value)
        elif not ok(value):
            raise _error(key, value, allowed)
    t = config.training
    if isinstance(t.devices, int) and t.split == "envs" and t.num_envs % t.devices:
        raise _error("training.num_envs", t.num_envs,
                     f"must be divisible by training.devices = {t.devices}")
    if isinstance(t.devices, int) and t.split == "seeds" and t.num_seeds % t.devices:
        raise _error("training.num_seeds", t.num_seeds,
                     f"must be divisible by training.devices = {t.devices} "
                     "(training.split = 'seeds')")
    algorithm.validate(config)
    rollout = _rollout_length(config, max_steps_in_episode)
    if algorithm.episodic:
        # Every episode takes at least one step: the budget covers one update's N episodes.
        if t.total_env_steps < t.num_envs:
            raise _error("training.total_env_steps", t.total_env_steps,
                         f"must cover one update's episodes, at least training.num_envs = "
                         f"{t.num_envs} env steps")
        # The in-program count of env steps taken is int32 (one seed's, up to one update past
        # the budget).
        if rollout is not None and t.total_env_steps + t.num_envs * rollout > MAX_EPISODIC_STEPS:
            raise _error("training.total_env_steps", t.total_env_steps,
                         f"at most {MAX_EPISODIC_STEPS - t.num_envs * rollout:,} for "
                         f"{config.algorithm.name} (its env-step count is int32: the budget "
                         "plus one update of num_envs * max_steps_in_episode must be below "
                         "2**31)")
    elif rollout is not None and t.total_env_steps < t.num_envs * rollout:
        raise _error("training.total_env_steps", t.total_env_steps, "must cover one update, "
                     f"training.num_envs * algorithm.n_steps = {t.num_envs * rollout}")


def derive(config: Config, max_steps_in_episode: int | None = None) -> Derived:
    """Computes the sizes that follow from ``config``, as a new object; ``config`` is untouched.

    ``steps_per_update = num_envs * T`` with ``T = n_steps`` for n-step algorithms (a2c, ppo)
    and ``T = max_steps_in_episode`` for episodic ones (reinforce: one whole, padded episode
    per env), and all
    ``num_updates = total_env_steps // steps_per_update`` updates are split into
    ``num_chunks = min(training.num_chunks, num_updates)`` chunks. When ``num_chunks`` does not
    divide ``num_updates``, the first ``num_updates % num_chunks`` chunks run one update more
    than the rest (:meth:`Derived.chunk_updates`); one compiled chunk serves both lengths
(the host's compiled chunk). ``env_steps`` is the budget actually run: the
    ``total_env_steps % steps_per_update`` steps that do not fill an update are not.

    Episodic algorithms count the env steps they take, not the padded rollout: an update
    takes between ``num_envs`` and ``steps_per_update`` env steps, depending on how long its
    episodes are, so the number of updates is known only as training goes. Each seed runs
    updates until it has taken ``env_steps = total_env_steps`` env steps (the last update may
    go past it, by less than one update); ``num_updates = ceil(total_env_steps / num_envs)``
    bounds the updates, and chunk ``c`` runs each seed's updates until
    :meth:`Derived.chunk_target` ``(c)``, at most ``updates_per_chunk`` of them.

    Args:
      config: a config; it is validated first.
      max_steps_in_episode: the env's episode cap, needed by reinforce and reinforce_baseline;
        defaults to ``env.params.max_steps_in_episode`` when that is set.

    Returns:
      A :class:`Derived`.

    Raises:
      ConfigError: if ``config`` is invalid, or reinforce's episode cap is unknown.

    Examples:
      >>> d = derive(Config())  # 16 envs * 8 steps; 500_000 // 128 = 3906 = 6 * 196 + 14 * 195
      >>> d.steps_per_update, d.num_updates, d.env_steps, d.num_chunks, d.updates_per_chunk
      (128, 3906, 499968, 20, 196)
      >>> d.even, d.chunk_updates(6), d.chunk_updates(7), d.updates_after(7)
      (False, 196, 195, 1371)
    """
    validate(config, max_steps_in_episode=max_steps_in_episode)
    rollout = _rollout_length(config, max_steps_in_episode)
    if rollout is None:
        raise ConfigError(f"max_steps_in_episode=None: required by algorithm.name="
                          f"{config.algorithm.name!r}; pass it or set "
                          "env.params.max_steps_in_episode")
    algorithm = algos.get(config.algorithm.name)
    t = config.training
    steps = t.num_envs * rollout
    minibatches = algorithm.minibatches(config)
    if algorithm.episodic:
        # Updates until the budget of env steps taken is spent; an update takes between
        # num_envs (episodes of one step) and steps (of max_steps_in_episode) env steps.
        most = -(-t.total_env_steps // t.num_envs)
        num_chunks = min(t.num_chunks, most)
        per_chunk = -(-t.total_env_steps // num_chunks)
        return Derived(rollout_length=rollout, steps_per_update=steps, batch_size=steps,
                       minibatch_size=steps // minibatches, num_updates=most,
                       num_chunks=num_chunks, updates_per_chunk=-(-per_chunk // t.num_envs),
                       env_steps=t.total_env_steps, episodic=True)
    total = t.total_env_steps // steps
    num_chunks = min(t.num_chunks, total)
    return Derived(rollout_length=rollout, steps_per_update=steps, batch_size=steps,
                   minibatch_size=steps // minibatches, num_updates=total,
                   num_chunks=num_chunks, updates_per_chunk=-(-total // num_chunks),
                   env_steps=total * steps)


