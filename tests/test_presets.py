"""pgjax.presets: the shipped YAML presets, found by name from any directory, one copy."""

import pathlib

import pytest

import pgjax
from pgjax.host import config_io as run
from pgjax.config import ConfigError, load_config
from pgjax.presets import PRESETS_DIR, is_preset_name, preset_names, preset_path

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_configs_is_the_package_folder_not_a_copy():
    # The top-level configs/ is a link to pgjax/presets/: one set of files, nothing to drift.
    assert (ROOT / "configs").resolve() == PRESETS_DIR
    assert sorted(p.stem for p in (ROOT / "configs").glob("*.yaml")) == preset_names()
    assert {"cartpole_a2c", "cartpole_ppo", "cartpole_reinforce",
            "cartpole_reinforce_baseline"} <= set(preset_names())


def test_every_preset_loads_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in preset_names():
        assert load_config(name) == load_config(preset_path(name))
    assert pgjax.load_config("cartpole_a2c").algorithm.name == "a2c"


def test_unknown_preset_is_one_line_listing_the_presets(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_config("cartpole")
    message = str(e.value)
    assert "\n" not in message and "unknown preset 'cartpole'" in message
    assert all(name in message for name in preset_names())
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        run.resolve_config_path("nope")


def test_paths_stay_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not is_preset_name("configs/cartpole_a2c.yaml") and not is_preset_name("x.yml")
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config("cartpole_a2c.yaml")  # a path (suffix), not under this directory
    # A file in the working directory wins over a preset of the same name.
    (tmp_path / "cartpole_a2c").write_text("algorithm:\n  name: ppo\n")
    assert load_config("cartpole_a2c").algorithm.name == "ppo"
    assert run.resolve_config_path("cartpole_a2c") == pathlib.Path("cartpole_a2c")


def test_the_command_default_is_the_a2c_preset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run.resolve_config_path(None) == preset_path("cartpole_a2c")
    assert run.resolve_config_path("cartpole_ppo") == preset_path("cartpole_ppo")
    with pytest.raises(ValueError, match="unknown preset"):
        preset_path("../cartpole_a2c")


def test_train_with_an_unknown_preset_exits_2_with_one_line(tmp_path, monkeypatch, capsys):
    from pgjax import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["--no-cache", "train", "cartpole"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown preset 'cartpole'" in err and "cartpole_ppo" in err
