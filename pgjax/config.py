"""Experiment configuration: frozen dataclasses, YAML files, ``--set`` overrides, validation.

A :class:`Config` has six sections, each a frozen dataclass whose fields all have defaults
(chosen for A2C on gymnax ``CartPole-v1``):

* ``env`` (:class:`EnvConfig`): the gymnax environment and overrides of its params;
* ``algorithm`` (:class:`AlgorithmConfig`): the advantage estimator, surrogate and coefficients;
* ``network`` (:class:`NetworkConfig`): layer sizes, activation and initialisation;
* ``optimizer`` (:class:`OptimizerConfig`): Adam step sizes, gradient clipping, schedule;
* ``training`` (:class:`TrainingConfig`): batch shape, budget, seeds, chunks of the host loop;
* ``logging`` (:class:`LoggingConfig`): experiment trackers (TensorBoard, W&B, MLflow) that
  also receive the metrics.

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
e.g. ``algorithm.gamma=1.5: must be in (0, 1]``. Nothing here imports an env library, so
input is checked before anything is built or compiled; env names and env param names are
checked by the trainer, which builds the env. The dataclasses and checks live in
:mod:`pgjax.schema`; this module adds files and overrides, and re-exports them.

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

import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from pgjax.errors import ConfigError
from pgjax.schema import (ACTIVATIONS, AlgorithmConfig, Config, Derived, EnvConfig,  # noqa: F401
                          EnvParams, IntOrWord, LOG_BACKENDS, LoggingConfig, NetworkConfig,
                          OptimizerConfig, TrainingConfig,
                          _error, _hints, _SECTIONS, _unknown, _coerce, derive, validate)

MAX_YAML_DEPTH = 16  # a config is 3 levels deep (section, key, env param); lists add a few


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-5`` as a float, rejects duplicate keys, and refuses
    nesting deeper than :data:`MAX_YAML_DEPTH` (PyYAML recurses once per level: a deep
    enough file would raise RecursionError)."""

    def compose_node(self, parent, index):
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested more than {MAX_YAML_DEPTH} levels deep (a pgjax config "
                    "has sections of keys)", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

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
            shown = raw if len(raw) <= 60 else raw[:57] + "..."
            raise ConfigError(f"{key.strip()}={shown!r}: cannot parse value as YAML: "
                              f"{getattr(e, 'problem', None) or e}") from e
        body = data.setdefault(parts[0], {})
        if nested:
            if not isinstance(body.get("params"), dict):
                raise _error("env.params", body.get("params"), "expected a mapping of env params")
            body["params"][parts[2]] = value
        else:
            body[parts[1]] = value
    return config_from_dict(data, check=check)


def __getattr__(name: str):
    # Derived from the registry on each access (registered algorithms included), so there
    # is no second list of names to drift: ALGORITHMS, and EPISODIC_ALGORITHMS (whole
    # episodes per update, no n_steps).
    from pgjax import algos  # noqa: PLC0415

    if name == "ALGORITHMS":
        return algos.names()
    if name == "EPISODIC_ALGORITHMS":
        return tuple(n for n in algos.names() if algos.get(n).episodic)
    raise AttributeError(f"module 'pgjax.config' has no attribute {name!r}")
