"""The error type of bad input a person must fix (layer 0: imported by config and algorithms)."""

from __future__ import annotations

from typing import Any


class ConfigError(ValueError):
    """Bad config input that a person must fix. The message is always a single line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


ConfigError.__module__ = "pgjax.config"  # where users import it from


def config_error(key: str, value: Any, allowed: str) -> ConfigError:
    """``ConfigError("key=value: allowed")``, the one format every config message uses."""
    return ConfigError(f"{key}={value!r}: {allowed}")
