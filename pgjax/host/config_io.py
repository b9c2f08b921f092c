"""Reading a command's config: the YAML file, ``--set`` overrides, ``--seeds``, ``--devices``.

Also what a run directory's config means for ``--resume``: :func:`config_diff` names the
keys where two configs differ, except :data:`RUNTIME_KEYS` (where a run executes, not what
it computes).
"""

from __future__ import annotations

from pathlib import Path

from pgjax.config import Config, ConfigError, apply_overrides, config_to_dict, load_config
from pgjax.host.rundir import RunError
from pgjax.presets import is_preset_name, preset_path

DEFAULT_CONFIG = "cartpole_a2c"  # a preset (pgjax.presets)


def resolve_config_path(path: str | None) -> Path:
    """CONFIG as given: an existing file, else a preset's name (``cartpole_ppo``, see
    :mod:`pgjax.presets`); none means :data:`DEFAULT_CONFIG`.

    Raises:
      ConfigError: (one line, listing the presets) for a name that is neither.
    """
    given = path or DEFAULT_CONFIG
    if Path(given).exists() or not is_preset_name(given):
        return Path(given)
    try:
        return preset_path(given)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def read_config(path: Path, overrides: list[str], seeds: int | None,
                devices: int | str | None = None) -> Config:
    """Loads a YAML config and applies ``--set`` overrides, ``--seeds`` and ``--devices``.

    An override that changes ``training.num_envs`` re-derives the settings that depend on the
    batch (:mod:`pgjax.scaling`); :func:`scaling_lines` says what changed.
    """
    return read_scaled_config(path, overrides, seeds, devices).config


def read_scaled_config(path: Path, overrides: list[str], seeds: int | None,
                       devices: int | str | None = None):
    """:func:`read_config` with the batch rule's changes: a :class:`pgjax.scaling.Scaled`."""
    from pgjax.scaling import apply_overrides_scaled  # noqa: PLC0415

    scaled = apply_overrides_scaled(load_config(path), [*overrides, *(
        [] if seeds is None else [f"training.num_seeds={seeds}"])])
    return scaled._replace(config=with_devices(scaled.config, devices))


def scaling_lines(changes) -> list[str]:
    """What the batch rule derived, as lines to print before a run (none if nothing)."""
    if len(changes) < 2:  # only training.num_envs itself, or nothing
        return []
    return [f"{changes[0]}: the batch settings follow (pgjax.scaling; an explicit --set wins, "
            "training.scale_with_num_envs=false keeps the config's):",
            *(f"  {line}" for line in changes[1:])]


def with_devices(config: Config, devices: int | str | None) -> Config:
    """``config`` with ``training.devices`` set (unchanged for None)."""
    return config if devices is None else apply_overrides(config, [f"training.devices={devices}"])


def with_logging(config: Config, backends: list[str] | None) -> Config:
    """``config`` with ``backends`` (``--log``, repeatable) added to ``logging.backends``."""
    added = [b for b in dict.fromkeys(backends or []) if b not in config.logging.backends]
    if not added:
        return config
    value = "[" + ", ".join([*config.logging.backends, *added]) + "]"
    return apply_overrides(config, [f"logging.backends={value}"])


# Where a run executes (or logs), not what it computes: a run may resume with other values.
RUNTIME_KEYS = ("training.devices", "training.split", "training.num_processes",
                "training.coordinator_address", "training.join_timeout_s",
                "logging.backends")


def config_diff(old: Config, new: Config) -> list[str]:
    """``section.key (old -> new)`` for every key where the two configs differ, except
    :data:`RUNTIME_KEYS` (a run saved on 4 devices resumes on 1, or on 8)."""
    a, b = config_to_dict(old), config_to_dict(new)
    return [f"{section}.{key} ({a[section][key]!r} -> {b[section][key]!r})"
            for section in a for key in a[section]
            if a[section][key] != b[section][key] and f"{section}.{key}" not in RUNTIME_KEYS]


def run_config(directory: Path, flag: str = "") -> Config:
    """The config.yaml of the run directory ``directory`` (``flag`` names the option in errors)."""
    if not (directory / "config.yaml").is_file():
        raise RunError(f"{flag} {directory}: not a pgjax run directory (no config.yaml)".strip())
    return load_config(directory / "config.yaml")
