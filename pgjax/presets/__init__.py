"""The YAML presets that ship with pgjax, by name: ``cartpole_a2c`` is ``cartpole_a2c.yaml``.

The files live in this package (installed with it, so ``pgjax train cartpole_ppo`` and
``pgjax.load_config("cartpole_a2c")`` work from any directory); the repository's top-level
``configs/`` is a link to this folder, not a second copy.

Examples:
  >>> "cartpole_a2c" in preset_names()
  True
  >>> preset_path("cartpole_ppo").name
  'cartpole_ppo.yaml'
  >>> is_preset_name("cartpole_ppo"), is_preset_name("configs/cartpole_ppo.yaml")
  (True, False)
"""

from __future__ import annotations

from pathlib import Path

PRESETS_DIR = Path(__file__).resolve().parent
SUFFIX = ".yaml"


def preset_names() -> list[str]:
    """The names of the shipped presets, sorted."""
    return sorted(p.stem for p in PRESETS_DIR.glob(f"*{SUFFIX}"))


def is_preset_name(text: str) -> bool:
    """Whether ``text`` has the form of a preset name rather than a path: no path separator
    and no ``.yaml``/``.yml`` suffix (it may still name no preset)."""
    return bool(text) and "/" not in text and "\\" not in text and not text.endswith((".yaml", ".yml"))


def preset_path(name: str) -> Path:
    """The file of preset ``name``.

    Raises:
      ValueError: (one line, listing the presets) if there is no such preset.
    """
    path = PRESETS_DIR / f"{name}{SUFFIX}"
    if not is_preset_name(name) or not path.is_file():
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}"
                         " (or give a path to a YAML file)")
    return path


__all__ = ["PRESETS_DIR", "is_preset_name", "preset_names", "preset_path"]
