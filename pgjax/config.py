"""Experiment configuration: frozen dataclasses, YAML files, ``--set`` overrides, validation.

A :class:`Config` has five sections, each a frozen dataclass whose fields all have defaults
(chosen for A2C on gymnax ``CartPole-v1``):

* ``env`` (:class:`EnvConfig`): the gymnax environment and overrides of its params;
* ``algorithm`` (:class:`AlgorithmConfig`): the advantage estimator, surrogate and coefficients;
* ``network`` (:class:`NetworkConfig`): layer sizes, activation and initialisation;
* ``optimizer`` (:class:`OptimizerConfig`): Adam step sizes, gradient clipping, schedule;
* ``training`` (:class:`TrainingConfig`): batch shape, budget, seeds, chunks of the host loop.

The YAML form maps one-to-one onto the fields; missing sections and keys take defaults::

    env:
      name: CartPole-v1
      params: {max_steps_in_episode: 200}   # a mapping in YAML, sorted (key, value) pairs here
    algorithm: {name: ppo, gae_lambda: 0.95}
    network:
      hidden_sizes: [64, 64]                  # a list in YAML, a tuple here
    optimizer: {actor_lr: 2.5e-4, max_grad_norm: null}

Exponent floats without a dot (``1e-5``) read as floats, as in YAML 1.2 (PyYAML alone would
read a string); ints are accepted for float fields and integral floats (``1e6``) for int
fields, never bools for either. Sizes that follow from a config (updates, minibatch size,
chunks) come from :func:`derive`, which returns a new :class:`Derived` and never writes back
into the config. Every problem with user input raises
:class:`ConfigError`, whose message is one line naming the key, the value and what is allowed,
e.g. ``algorithm.gamma=1.5: must be in (0, 1]``. This module imports neither jax nor gymnax,
so input is checked before anything compiles; env names and env param names are checked by
the trainer, which builds the env.

Example:
  >>> import pathlib, tempfile
  >>> path = pathlib.Path(tempfile.mkdtemp()) / "ppo.yaml"
  >>> _ = path.write_text("algorithm:\\n  name: ppo\\n  gae_lambda: 0.95\\n")
  >>> config = apply_overrides(load_config(path), ["network.hidden_sizes=[128, 128]"])
  >>> config.algorithm.name, config.algorithm.gae_lambda, config.network.hidden_sizes
  ('ppo', 0.95, (128, 128))
  >>> derive(config).minibatch_size  # 16 envs * 8 steps / 4 minibatches
  32
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Union

import yaml

Scalar = Union[bool, int, float, str]
EnvParams = tuple[tuple[str, Scalar], ...]
IntOrWord = Union[int, str]  # an int, or the word of _INT_OR_WORD for its key
_INT_OR_WORD = {"training.devices": ("all", ">= 1"), "training.grad_slice_samples": ("auto", ">= 0")}

ALGORITHMS = ("reinforce", "reinforce_baseline", "a2c", "ppo")
EPISODIC_ALGORITHMS = ("reinforce", "reinforce_baseline")  # whole episodes, no n_steps
ACTIVATIONS = ("tanh", "relu", "gelu", "elu", "silu")


class ConfigError(ValueError):
    """Bad config input that a person must fix. The message is always a single line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


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
    """Which advantage estimator and surrogate, and their coefficients (see DESIGN.md)."""

    name: str = "a2c"  # one of ALGORITHMS
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

    def __post_init__(self):
        if isinstance(self.hidden_sizes, list):
            object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """Adam for actor and critic, with global-norm gradient clipping."""

    actor_lr: float = 7e-4  # Adam step size of the actor (and of a shared trunk)
    critic_lr: float = 7e-4  # Adam step size of the critic; ignored with shared_trunk
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
    num_processes: int = 1  # processes of a multi-host run; 0 = ask the cluster (pgjax.distributed)
    coordinator_address: str = ""  # multi-host: host:port of process 0; "" = env or cluster
    # a2c and ppo: sum each gradient over slices (a2c: of time steps; ppo: of minibatch rows)
    # of at most this many samples per device, so each slice's activations stay in cache
    # (same update, +15-40% steps/s on CPU at large N; pgjax.train.loss_slices); "auto":
    # 8192 on CPU, the whole batch on accelerators; 0: the whole batch.
    grad_slice_samples: IntOrWord = "auto"


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole experiment: one field per section."""

    env: EnvConfig = dataclasses.field(default_factory=EnvConfig)
    algorithm: AlgorithmConfig = dataclasses.field(default_factory=AlgorithmConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    optimizer: OptimizerConfig = dataclasses.field(default_factory=OptimizerConfig)
    training: TrainingConfig = dataclasses.field(default_factory=TrainingConfig)


@dataclasses.dataclass(frozen=True)
class Derived:
    """Sizes that follow from a config; see :func:`derive`.

    Chunks are numbered from 1, as in ``metrics.csv`` and the checkpoints: chunk ``c`` runs
    :meth:`chunk_updates` ``(c)`` updates, and the first ``c`` chunks together
    :meth:`updates_after` ``(c)``.
    """

    rollout_length: int  # T: n_steps, or max_steps_in_episode for reinforce
    steps_per_update: int  # env steps collected per update: num_envs * rollout_length
    batch_size: int  # transitions per update (= steps_per_update)
    minibatch_size: int  # transitions per gradient step: batch_size // minibatches for ppo
    num_updates: int  # updates run: total_env_steps // steps_per_update, all of them
    num_chunks: int  # compiled chunks: training.num_chunks, or fewer if there are few updates
    updates_per_chunk: int  # updates of the longest chunk: the compiled chunk's scan length
    env_steps: int  # env steps run per seed: num_updates * steps_per_update

    @property
    def even(self) -> bool:
        """Whether every chunk runs ``updates_per_chunk`` updates (num_chunks divides them)."""
        return self.num_updates % self.num_chunks == 0

    def updates_after(self, chunks: int) -> int:
        """Updates done by the first ``chunks`` chunks (0 to num_chunks).

        The first ``num_updates % num_chunks`` chunks run ``updates_per_chunk`` updates, the
        rest one fewer, so ``updates_after(num_chunks) == num_updates``.
        """
        if not 0 <= chunks <= self.num_chunks:
            raise ValueError(f"chunks={chunks}: must be in 0..{self.num_chunks}")
        base, longer = divmod(self.num_updates, self.num_chunks)
        return chunks * base + min(chunks, longer)

    def chunk_updates(self, chunk: int) -> int:
        """Updates run by chunk number ``chunk`` (1 to num_chunks)."""
        return self.updates_after(chunk) - self.updates_after(chunk - 1)


_SECTIONS: dict[str, type] = typing.get_type_hints(Config)


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-5`` as a float and rejects duplicate keys."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                if key_node.value in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key_node.value!r}", key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


class _Dumper(yaml.SafeDumper):
    """SafeDumper that quotes strings :class:`_Loader` reads as floats; lists on one line."""

    def represent_list(self, data):
        return self.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)


_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*\.?[0-9_]*|\.[0-9_]+)[eE][-+]?[0-9]+$")
_Dumper.add_representer(list, _Dumper.represent_list)
for _cls in (_Loader, _Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


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
    if typing.get_origin(hint) is tuple:  # only tuple[int, ...] here
        if not isinstance(value, (list, tuple)) or any(
                isinstance(v, bool) or not isinstance(v, int) for v in value):
            raise _error(key, value, "expected a list of ints")
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
    "env.name": ("must be a gymnax env id", bool),
    "algorithm.name": (f"must be one of {', '.join(ALGORITHMS)}", ALGORITHMS.__contains__),
    "algorithm.gamma": ("must be in (0, 1]", lambda v: 0 < v <= 1),
    "algorithm.gae_lambda": ("must be in [0, 1]", lambda v: 0 <= v <= 1),
    "algorithm.n_steps": _GE1,
    "algorithm.entropy_coef": _GE0,
    "algorithm.value_coef": _GE0,
    "algorithm.clip_eps": _GT0,
    "algorithm.value_clip_eps": _GT0_OR_NULL,
    "algorithm.epochs": _GE1,
    "algorithm.minibatches": _GE1,
    "network.hidden_sizes": ("must be a list of positive ints", lambda v: all(h > 0 for h in v)),
    "network.activation": (f"must be one of {', '.join(ACTIVATIONS)}", ACTIVATIONS.__contains__),
    "network.hidden_init_scale": _GT0,
    "network.policy_init_scale": _GE0,
    "network.value_init_scale": _GE0,
    "optimizer.actor_lr": _GT0,
    "optimizer.critic_lr": _GT0,
    "optimizer.max_grad_norm": _GT0_OR_NULL,
    "optimizer.adam_eps": _GT0,
    "training.num_envs": _GE1,
    "training.seed": _GE0,
    "training.num_seeds": _GE1,
    "training.eval_episodes": _GE0,
    "training.num_chunks": _GE1,
    "training.devices": ("must be an int >= 1 or 'all'", lambda v: v == "all" or v >= 1),
    "training.grad_slice_samples": ("must be an int >= 0 or 'auto'",
                                    lambda v: v == "auto" or v >= 0),
    "training.num_processes": _GE0,
    "training.split": ("must be 'envs' or 'seeds'", ("envs", "seeds").__contains__),
}


def _rollout_length(config: Config, max_steps_in_episode: int | None) -> int | None:
    """T of one update's rollout, or None for reinforce when the episode cap is unknown."""
    if config.algorithm.name not in EPISODIC_ALGORITHMS:
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
        if not ok(value):
            raise _error(key, value, allowed)
    a, t = config.algorithm, config.training
    batch = t.num_envs * a.n_steps
    if a.name == "ppo" and batch % a.minibatches:
        raise _error("algorithm.minibatches", a.minibatches,
                     f"must divide training.num_envs * algorithm.n_steps = {batch}")
    if isinstance(t.devices, int) and t.split == "envs" and t.num_envs % t.devices:
        raise _error("training.num_envs", t.num_envs,
                     f"must be divisible by training.devices = {t.devices}")
    if isinstance(t.devices, int) and t.split == "seeds" and t.num_seeds % t.devices:
        raise _error("training.num_seeds", t.num_seeds,
                     f"must be divisible by training.devices = {t.devices} "
                     "(training.split = 'seeds')")
    if a.name == "reinforce" and config.network.shared_trunk:
        raise _error("network.shared_trunk", True, "plain reinforce has no critic to share a trunk "
                     "with; use false, or algorithm.name=reinforce_baseline")
    rollout = _rollout_length(config, max_steps_in_episode)
    if rollout is not None and t.total_env_steps < t.num_envs * rollout:
        length = "max_steps_in_episode" if a.name in EPISODIC_ALGORITHMS else "algorithm.n_steps"
        raise _error("training.total_env_steps", t.total_env_steps, "must cover one update, "
                     f"training.num_envs * {length} = {t.num_envs * rollout}")


def derive(config: Config, max_steps_in_episode: int | None = None) -> Derived:
    """Computes the sizes that follow from ``config``, as a new object; ``config`` is untouched.

    ``steps_per_update = num_envs * T`` with ``T = n_steps`` for a2c/ppo and
    ``T = max_steps_in_episode`` for reinforce (one whole, padded episode per env), and all
    ``num_updates = total_env_steps // steps_per_update`` updates are split into
    ``num_chunks = min(training.num_chunks, num_updates)`` chunks. When ``num_chunks`` does not
    divide ``num_updates``, the first ``num_updates % num_chunks`` chunks run one update more
    than the rest (:meth:`Derived.chunk_updates`); one compiled chunk serves both lengths
    (``pgjax.run.compile_programs``). ``env_steps`` is the budget actually run: the
    ``total_env_steps % steps_per_update`` steps that do not fill an update are not.

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
    steps = config.training.num_envs * rollout
    total = config.training.total_env_steps // steps
    num_chunks = min(config.training.num_chunks, total)
    minibatches = config.algorithm.minibatches if config.algorithm.name == "ppo" else 1
    return Derived(rollout_length=rollout, steps_per_update=steps, batch_size=steps,
                   minibatch_size=steps // minibatches, num_updates=total,
                   num_chunks=num_chunks, updates_per_chunk=-(-total // num_chunks),
                   env_steps=total * steps)


def config_to_dict(config: Config) -> dict[str, dict[str, Any]]:
    """Returns ``config`` as plain YAML types: a dict of sections, lists for tuples.

    Examples:
      >>> config_to_dict(Config())["network"]["hidden_sizes"]
      [64, 64]
    """
    out = {}
    for section, cls in _SECTIONS.items():
        body = getattr(config, section)
        out[section] = {}
        for name, hint in _hints(cls).items():
            value = getattr(body, name)
            if isinstance(value, tuple):
                value = dict(value) if hint == EnvParams else list(value)
            out[section][name] = value
    return out


def config_from_dict(data: Mapping[str, Any], *, check: bool = True) -> Config:
    """Builds and validates a config from a mapping of sections; missing keys take defaults.

    With ``check=False`` only each value's type is checked, not the ranges and the relations
    between keys (:func:`validate`): for a config that is an intermediate step.

    ``data`` is not modified. Lists become tuples and ints in float fields become floats.

    Raises:
      ConfigError: for an unknown section or key, a wrong type or a value out of range.

    Examples:
      >>> config_from_dict({"algorithm": {"gamma": 1}}).algorithm.gamma
      1.0
      >>> config_from_dict({"algorithm": {"gama": 0.9}})
      Traceback (most recent call last):
      ...
      pgjax.config.ConfigError: algorithm.gama: unknown key; did you mean algorithm.gamma?
    """
    if not isinstance(data, Mapping):
        raise _error("config", data, "expected a mapping of sections")
    sections = {}
    for section, body in data.items():
        if section not in _SECTIONS:
            raise _unknown("section", "", section, list(_SECTIONS))
        if body is not None and not isinstance(body, Mapping):
            raise _error(section, body, "expected a mapping of keys")
        hints = _hints(_SECTIONS[section])
        kwargs = {}
        for name, value in (body or {}).items():
            if name not in hints:
                raise _unknown("key", f"{section}.", name, list(hints))
            kwargs[name] = _coerce(f"{section}.{name}", value, hints[name])
        sections[section] = _SECTIONS[section](**kwargs)
    config = Config(**sections)
    if check:
        validate(config)
    return config


def load_config(path: str | os.PathLike) -> Config:
    """Loads and validates a YAML config file (see the module docstring for its form).

    ``path`` may also name a shipped preset (``"cartpole_a2c"``, :mod:`pgjax.presets`): a
    string that is not an existing file and has no path separator or ``.yaml`` suffix.

    Raises:
      ConfigError: naming the path if it cannot be read, the path and line if it is not valid
        YAML (duplicate keys included), and the path and key if a value is wrong; listing the
        presets for an unknown preset name.
    """
    # Imported here: pgjax.presets loads the pgjax package, which this module does not need.
    from pgjax.presets import is_preset_name, preset_path  # noqa: PLC0415

    if isinstance(path, str) and is_preset_name(path) and not os.path.exists(path):
        try:
            path = preset_path(path)
        except ValueError as e:
            raise ConfigError(str(e)) from None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{os.fspath(path)}: cannot read config file: {e}") from e
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{os.fspath(path)}:{mark.line + 1}" if mark else os.fspath(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(e, 'problem', None) or e}") from e
    try:
        return config_from_dict({} if data is None else data)
    except ConfigError as e:
        raise ConfigError(f"{os.fspath(path)}: {e}") from e


def save_config(config: Config, path: str | os.PathLike) -> None:
    """Writes ``config`` as YAML that :func:`load_config` reads back to an equal config."""
    try:
        with open(path, "w", encoding="utf-8") as f:
            yaml.dump(config_to_dict(config), f, Dumper=_Dumper, sort_keys=False)
    except OSError as e:
        raise ConfigError(f"{os.fspath(path)}: cannot write config file: {e}") from e


def apply_overrides(config: Config, overrides: Sequence[str], *, check: bool = True) -> Config:
    """Returns a new config with ``section.key=value`` overrides (``--set``) applied.

    Each value is parsed as YAML (``0.95``, ``[128, 128]``, ``null``, ``ppo``) and checked like
    a file's; ``env.params.<name>=value`` sets one env param. Later overrides win, and the
    result is validated once, so ``algorithm.name=ppo`` may come before the sizes it needs
    (``check=False``: types only, see :func:`config_from_dict`).

    Raises:
      ConfigError: for a malformed override, or a key or value the result cannot have.

    Examples:
      >>> overrides = ["algorithm.gamma=0.95", "env.params.max_steps_in_episode=200"]
      >>> new = apply_overrides(Config(), overrides)
      >>> new.algorithm.gamma, new.env.params
      (0.95, (('max_steps_in_episode', 200),))
    """
    data = config_to_dict(config)
    for item in overrides:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        nested = parts[:2] == ["env", "params"] and len(parts) == 3
        if not sep or not all(parts) or not (len(parts) == 2 or nested):
            raise ConfigError(f"{item!r}: expected section.key=value, e.g. algorithm.gamma=0.95")
        try:
            value = yaml.load(raw, Loader=_Loader)
        except yaml.YAMLError as e:
            raise ConfigError(f"{key.strip()}={raw!r}: cannot parse value as YAML: "
                              f"{getattr(e, 'problem', None) or e}") from e
        body = data.setdefault(parts[0], {})
        if nested:
            if not isinstance(body.get("params"), dict):
                raise _error("env.params", body.get("params"), "expected a mapping of env params")
            body["params"][parts[2]] = value
        else:
            body[parts[1]] = value
    return config_from_dict(data, check=check)

