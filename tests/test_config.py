"""Tests for pgjax.config: YAML and dict round trips, overrides, validation messages, derive."""

import copy
import dataclasses
import math
import pathlib
import subprocess
import sys

import pytest

from pgjax.config import (
    ACTIVATIONS,
    AlgorithmConfig,
    Config,
    ConfigError,
    Derived,
    EnvConfig,
    NetworkConfig,
    OptimizerConfig,
    TrainingConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    derive,
    load_config,
    save_config,
    validate,
)

ROOT = pathlib.Path(__file__).resolve().parents[1]
PRESETS = sorted(ROOT.glob("configs/*.yaml"))

# A config that differs from the defaults in every kind of field: tuples, env params, None,
# small exponent floats, sqrt(2), and a string YAML would otherwise read as a float.
CUSTOM = Config(
    env=EnvConfig(name="1e5", params={"max_steps_in_episode": 200, "gravity": 9.8},
                  normalize_obs=True),
    algorithm=AlgorithmConfig(name="ppo", gamma=1.0, gae_lambda=0.95, n_steps=16,
                              value_clip_eps=0.2, epochs=3, minibatches=8),
    network=NetworkConfig(hidden_sizes=(128, 32, 7), activation="relu", shared_trunk=True,
                          hidden_init_scale=math.sqrt(2), log_std_init=-0.5),
    optimizer=OptimizerConfig(actor_lr=2.5e-4, critic_lr=1e-3, max_grad_norm=None,
                              anneal_lr=True, adam_eps=1e-8),
    training=TrainingConfig(num_envs=32, total_env_steps=1_000_000, seed=7, num_seeds=4,
                            eval_episodes=0, num_chunks=5),
)


def test_default_config_validates():
    config = Config()
    assert validate(config) is None
    assert config_from_dict({}) == config
    d = derive(config)
    assert (d.steps_per_update, d.batch_size, d.minibatch_size) == (128, 128, 128)
    assert d.num_updates > 0 and d.num_chunks == config.training.num_chunks


@pytest.mark.parametrize("path", PRESETS, ids=[p.name for p in PRESETS])
def test_preset_loads_validates_and_round_trips(path, tmp_path):
    text = path.read_bytes()
    config = load_config(path)
    assert path.read_bytes() == text  # loading leaves the preset untouched
    validate(config)
    if config.algorithm.name not in ("reinforce", "reinforce_baseline") or (
            "max_steps_in_episode" in dict(config.env.params)):
        assert derive(config).num_updates >= 1
    save_config(config, tmp_path / path.name)
    assert load_config(tmp_path / path.name) == config


def test_config_and_algorithm_registry_import_no_gymnax():
    # Config input is checked before the env library (seconds to import) is loaded.
    code = ("import sys\nimport pgjax.config as c\nc.validate(c.Config())\n"
            "assert 'gymnax' not in sys.modules, 'gymnax imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_config_is_the_default_preset_but_its_tuned_fields():
    # Config() holds the library's defaults; the default preset (pgjax train's) differs only in
    # the fields tuned for CartPole a2c (the preset file says why).
    preset = load_config(ROOT / "configs" / "cartpole_a2c.yaml")
    assert preset == dataclasses.replace(
        Config(), env=dataclasses.replace(Config().env, normalize_obs=True),
        optimizer=dataclasses.replace(Config().optimizer, actor_lr=2e-4))


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [Config(), CUSTOM], ids=["default", "custom"])
def test_dict_round_trip(config):
    data = config_to_dict(config)
    assert isinstance(data["network"]["hidden_sizes"], list)
    assert isinstance(data["env"]["params"], dict)
    assert config_from_dict(data) == config


@pytest.mark.parametrize("config", [Config(), CUSTOM], ids=["default", "custom"])
def test_yaml_round_trip(config, tmp_path):
    save_config(config, tmp_path / "c.yaml")
    loaded = load_config(tmp_path / "c.yaml")
    assert loaded == config
    assert type(loaded.network.hidden_sizes) is tuple
    assert type(loaded.env.params) is tuple
    assert type(loaded.optimizer.adam_eps) is float
    assert hash(loaded) == hash(config)


def test_yaml_reads_exponent_floats_and_int_for_float(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optimizer:\n  actor_lr: 3e-4\n  adam_eps: 1E-8\nalgorithm:\n  gamma: 1\n"
                    "training:\n  total_env_steps: 1e6\n")
    config = load_config(path)
    assert config.optimizer.actor_lr == 3e-4 and config.optimizer.adam_eps == 1e-8
    assert config.algorithm.gamma == 1.0 and type(config.algorithm.gamma) is float
    assert config.training.total_env_steps == 10**6
    assert type(config.training.total_env_steps) is int


def test_missing_sections_and_keys_take_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("env:\nalgorithm:\n  name: ppo\n")
    assert load_config(path) == Config(algorithm=AlgorithmConfig(name="ppo"))
    path.write_text("")
    assert load_config(path) == Config()


def test_from_dict_does_not_mutate_input():
    data = {"network": {"hidden_sizes": [32, 32]}, "env": {"params": {"b": 1, "a": 2}}}
    before = copy.deepcopy(data)
    config = config_from_dict(data)
    assert data == before
    assert config.network.hidden_sizes == (32, 32)
    assert config.env.params == (("a", 2), ("b", 1))


def test_to_dict_is_a_copy():
    config = Config()
    data = config_to_dict(config)
    data["network"]["hidden_sizes"].append(1)
    data["training"]["num_envs"] = 1
    assert config == Config()


def test_dataclasses_are_frozen_and_normalise_lists():
    config = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.algorithm.gamma = 0.5  # type: ignore[misc]
    assert NetworkConfig(hidden_sizes=[8, 8]).hidden_sizes == (8, 8)
    assert EnvConfig(params={"b": 1, "a": 2}).params == (("a", 2), ("b", 1))


# --- overrides ---------------------------------------------------------------------------------


def test_overrides_nested_keys_lists_and_null():
    config = Config()
    new = apply_overrides(config, [
        "algorithm.gamma=0.95",
        "network.hidden_sizes=[128,128]",
        "optimizer.max_grad_norm=null",
        "optimizer.actor_lr=1e-3",
        "env.params.max_steps_in_episode=200",
        "env.name=Acrobot-v1",
        "training.num_envs = 16",
    ])
    assert new.algorithm.gamma == 0.95
    assert new.network.hidden_sizes == (128, 128)
    assert new.optimizer.max_grad_norm is None
    assert new.optimizer.actor_lr == 1e-3
    assert new.env.params == (("max_steps_in_episode", 200),)
    assert new.env.name == "Acrobot-v1"
    assert new.training.num_envs == 16
    assert config == Config()  # the input is untouched


def test_overrides_validate_the_result_as_a_whole():
    # minibatches=3 alone does not divide 16 * 8 for ppo; with n_steps=3 it does.
    new = apply_overrides(Config(), ["algorithm.name=ppo", "algorithm.minibatches=3",
                                     "algorithm.n_steps=3"])
    assert derive(new).minibatch_size == 16
    with pytest.raises(ConfigError, match="algorithm.minibatches"):
        apply_overrides(Config(), ["algorithm.name=ppo", "algorithm.minibatches=3"])


def test_override_replaces_whole_env_params():
    config = Config(env=EnvConfig(params={"a": 1}))
    assert apply_overrides(config, ["env.params={b: 2}"]).env.params == (("b", 2),)
    assert apply_overrides(config, ["env.params.b=2"]).env.params == (("a", 1), ("b", 2))


@pytest.mark.parametrize("override, key", [
    ("algorithm.gamma", "algorithm.gamma"),
    ("gamma=0.9", "gamma"),
    ("algorithm.gamma.x=1", "algorithm.gamma.x"),
    ("network.hidden_sizes=[1,", "network.hidden_sizes"),
    ("algorithm.gama=0.9", "did you mean algorithm.gamma?"),
    ("algoritm.gamma=0.9", "did you mean algorithm?"),
    ("algorithm.gamma=high", "algorithm.gamma"),
    ("network.hidden_sizes=[64, true]", "network.hidden_sizes"),
])
def test_bad_overrides(override, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("?", r"\?")) as info:
        apply_overrides(Config(), [override])
    assert "\n" not in str(info.value)


# --- validation --------------------------------------------------------------------------------

BAD = [
    # (section, key, value, text the message must contain besides the key)
    ("algorithm", "gama", 0.9, "did you mean algorithm.gamma?"),
    ("network", "hidden_size", [8], "did you mean network.hidden_sizes?"),
    ("training", "num_env", 8, "did you mean training.num_envs?"),
    ("training", "num_envs", True, "expected int, got bool"),
    ("training", "num_envs", 8.5, "expected int, got float"),
    ("algorithm", "normalize_returns", 1, "expected bool"),
    ("algorithm", "gamma", "0.9", "expected float, got str"),
    ("algorithm", "gamma", True, "expected float, got bool"),
    ("algorithm", "name", 3, "expected str"),
    ("network", "hidden_sizes", 64, "list of ints"),
    ("network", "hidden_sizes", [64, True], "list of ints"),
    ("network", "hidden_sizes", [64, 0], "positive ints"),
    ("network", "hidden_sizes", [-1], "positive ints"),
    ("env", "params", [1, 2], "mapping"),
    ("env", "params", {"x": [1]}, "env.params.x"),
    ("algorithm", "gamma", 0.0, "(0, 1]"),
    ("algorithm", "gamma", 1.5, "(0, 1]"),
    ("algorithm", "gamma", float("nan"), "finite"),
    ("algorithm", "gae_lambda", -0.1, "[0, 1]"),
    ("algorithm", "gae_lambda", 1.01, "[0, 1]"),
    ("optimizer", "actor_lr", 0.0, "> 0"),
    ("optimizer", "critic_lr", -1e-3, "> 0"),
    ("optimizer", "adam_eps", 0, "> 0"),
    ("optimizer", "max_grad_norm", 0.0, "> 0 or null"),
    ("training", "num_envs", 0, ">= 1"),
    ("algorithm", "n_steps", 0, ">= 1"),
    ("algorithm", "epochs", 0, ">= 1"),
    ("algorithm", "minibatches", 0, ">= 1"),
    ("training", "num_seeds", 0, ">= 1"),
    ("training", "num_chunks", 0, ">= 1"),
    ("training", "eval_episodes", -1, ">= 0"),
    ("training", "seed", -1, ">= 0"),
    ("training", "total_env_steps", 127, "one update, training.num_envs * algorithm.n_steps = 128"),
    ("algorithm", "name", "ppo2", "reinforce, reinforce_baseline, a2c, ppo"),
    ("network", "activation", "swish", "tanh, relu, gelu, elu, silu"),
    ("algorithm", "entropy_coef", -0.01, ">= 0"),
    ("algorithm", "value_coef", -0.5, ">= 0"),
    ("algorithm", "clip_eps", 0.0, "> 0"),
    ("algorithm", "value_clip_eps", -0.2, "> 0 or null"),
    ("network", "policy_init_scale", -0.01, ">= 0"),
    ("env", "name", "", "must be an env name"),
]


@pytest.mark.parametrize("section, key, value, text", BAD,
                         ids=[f"{s}.{k}={v!r}" for s, k, v, _ in BAD])
def test_bad_values_name_key_value_and_rule(section, key, value, text):
    with pytest.raises(ConfigError) as info:
        config_from_dict({section: {key: value}})
    message = str(info.value)
    assert isinstance(info.value, ValueError)
    assert f"{section}.{key}" in message and text in message
    assert "\n" not in message


def test_ppo_minibatches_must_divide_batch():
    with pytest.raises(ConfigError, match=r"algorithm.minibatches=3: must divide .* = 128"):
        config_from_dict({"algorithm": {"name": "ppo", "minibatches": 3}})
    # a2c ignores minibatches, so the same value is fine there.
    assert config_from_dict({"algorithm": {"minibatches": 3}}).algorithm.minibatches == 3


def test_boundary_values_are_allowed():
    config_from_dict({"algorithm": {"gamma": 1, "gae_lambda": 0.0, "entropy_coef": 0}})
    config_from_dict({"algorithm": {"gae_lambda": 1.0}, "network": {"hidden_sizes": []}})
    config_from_dict({"training": {"total_env_steps": 128}})
    assert type(config_from_dict({"training": {"num_envs": 8.0}}).training.num_envs) is int


def test_unknown_section_suggests_closest():
    with pytest.raises(ConfigError, match=r"^trainig: unknown section; did you mean training\?$"):
        config_from_dict({"trainig": {"num_envs": 8}})
    with pytest.raises(ConfigError, match="zzz: unknown section; expected one of env, algorithm"):
        config_from_dict({"zzz": {}})


def test_top_level_and_sections_must_be_mappings():
    with pytest.raises(ConfigError, match="config"):
        config_from_dict([1, 2])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="algorithm"):
        config_from_dict({"algorithm": [1]})


def test_validate_checks_directly_built_configs():
    with pytest.raises(ConfigError, match="training.num_envs=True"):
        validate(Config(training=TrainingConfig(num_envs=True)))
    with pytest.raises(ConfigError, match="algorithm.gamma"):
        validate(dataclasses.replace(Config(), algorithm=AlgorithmConfig(gamma=2.0)))
    with pytest.raises(ConfigError, match="network"):
        validate(Config(network=TrainingConfig()))  # type: ignore[arg-type]


def test_reinforce_budget_counts_env_steps_taken():
    # An episodic update takes num_envs to num_envs * cap env steps: the budget must cover
    # num_envs (episodes of one step), and fit the int32 count with one update more.
    config = Config(algorithm=AlgorithmConfig(name="reinforce"),
                    training=TrainingConfig(num_envs=64, total_env_steps=10_000))
    validate(config)
    validate(config, max_steps_in_episode=500)  # below 64 * 500: still whole updates
    with pytest.raises(ConfigError, match=r"training.total_env_steps=63: .* training.num_envs = 64"):
        validate(apply_overrides(config, ["training.total_env_steps=63"]))
    big = apply_overrides(config, [f"training.total_env_steps={2**31 - 64 * 500}"])
    with pytest.raises(ConfigError, match=r"at most 2,147,451,647 for reinforce"):
        validate(big, max_steps_in_episode=500)
    validate(apply_overrides(config, [f"training.total_env_steps={2**31 - 1 - 64 * 500}"]),
             max_steps_in_episode=500)
    with pytest.raises(ConfigError, match="max_steps_in_episode=0"):
        validate(config, max_steps_in_episode=0)
    with pytest.raises(ConfigError, match="env.params.max_steps_in_episode='x'"):
        validate(dataclasses.replace(config, env=EnvConfig(params={"max_steps_in_episode": "x"})))


# --- files -------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, line", [
    ("algorithm:\n  gamma: 0.9\n  n_steps: [8\n", 4),
    ("algorithm:\n  gamma: 0.9\n\tn_steps: 8\n", 3),
    ("algorithm:\n  gamma: 0.9\n  gamma: 0.8\n", 3),
    ("training:\n  num_envs: 8\n training: 1\n", 3),
])
def test_malformed_yaml_names_file_and_line(tmp_path, text, line):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=rf"bad.yaml:{line}: invalid YAML") as info:
        load_config(path)
    assert "\n" not in str(info.value)


def test_file_errors_name_the_path(tmp_path):
    with pytest.raises(ConfigError, match="missing.yaml: cannot read"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path)  # a directory
    path = tmp_path / "typo.yaml"
    path.write_text("algorithm:\n  gama: 0.9\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: algorithm.gama: .*algorithm.gamma\?"):
        load_config(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="typo.yaml: config"):
        load_config(path)
    with pytest.raises(ConfigError, match="cannot write"):
        save_config(Config(), tmp_path / "no" / "such" / "dir.yaml")


# --- derive ------------------------------------------------------------------------------------


def test_derive_a2c_defaults():
    config = Config()
    d = derive(config)
    assert isinstance(d, Derived) and config == Config()
    # 500_000 // (16 * 8) = 3906 updates, all run: 6 chunks of 196, then 14 of 195.
    assert d == Derived(rollout_length=8, steps_per_update=128, batch_size=128,
                        minibatch_size=128, num_updates=3906, num_chunks=20,
                        updates_per_chunk=196, env_steps=3906 * 128)
    assert not d.even
    assert [d.chunk_updates(c) for c in range(1, 21)] == [196] * 6 + [195] * 14


def test_derive_ppo_exact_split():
    config = replace_sections(algorithm={"name": "ppo", "n_steps": 128, "minibatches": 4},
                              training={"num_envs": 4, "total_env_steps": 512 * 100,
                                        "num_chunks": 10})
    d = derive(config)
    assert (d.batch_size, d.minibatch_size) == (512, 128)
    assert (d.num_updates, d.num_chunks, d.updates_per_chunk) == (100, 10, 10)
    assert d.even and {d.chunk_updates(c) for c in range(1, 11)} == {10}
    assert d.env_steps == config.training.total_env_steps


@pytest.mark.parametrize("updates,chunks", [(61, 40), (3906, 20), (7, 3), (100, 10), (5, 5)])
def test_derive_runs_every_update_in_uneven_chunks(updates, chunks):
    d = derive(replace_sections(training={"total_env_steps": 128 * updates + 100,
                                          "num_chunks": chunks}))
    assert (d.num_updates, d.num_chunks, d.env_steps) == (updates, chunks, updates * 128)
    sizes = [d.chunk_updates(c) for c in range(1, chunks + 1)]
    assert sum(sizes) == updates and max(sizes) == d.updates_per_chunk
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)
    assert [d.updates_after(c) for c in range(chunks + 1)] == [
        sum(sizes[:c]) for c in range(chunks + 1)]
    assert d.even == (len(set(sizes)) == 1)
    with pytest.raises(ValueError, match="chunks="):
        d.updates_after(chunks + 1)


def test_derive_caps_chunks_at_the_number_of_updates():
    d = derive(replace_sections(training={"total_env_steps": 128 * 3 + 100}))
    assert (d.num_updates, d.num_chunks, d.updates_per_chunk) == (3, 3, 1)


def test_derive_reinforce_uses_the_episode_cap():
    config = replace_sections(algorithm={"name": "reinforce_baseline"},
                              training={"num_envs": 10, "total_env_steps": 100_000})
    with pytest.raises(ConfigError, match="max_steps_in_episode"):
        derive(config)
    d = derive(config, max_steps_in_episode=500)
    assert (d.rollout_length, d.steps_per_update, d.minibatch_size) == (500, 5000, 5000)
    # Updates until 100k env steps are taken: at most 100k / 10 (episodes of one step);
    # chunk c ends at 5,000 * c env steps, after at most 5,000 / 10 updates.
    assert (d.num_updates, d.num_chunks, d.updates_per_chunk) == (10_000, 20, 500)
    assert (d.episodic, d.env_steps, d.even) == (True, 100_000, True)
    assert [d.chunk_target(c) for c in (0, 1, 20)] == [0, 5_000, 100_000]
    with pytest.raises(ValueError, match="episodic"):
        d.updates_after(1)
    from_params = apply_overrides(config, ["env.params.max_steps_in_episode=200"])
    assert derive(from_params).steps_per_update == 2000
    assert derive(from_params, max_steps_in_episode=100).steps_per_update == 1000


def test_derive_rejects_a_budget_below_one_update():
    config = Config(training=TrainingConfig(total_env_steps=100))
    with pytest.raises(ConfigError, match="training.total_env_steps=100"):
        derive(config)


def replace_sections(**sections):
    """Default config with some keys of some sections changed, via the validated dict path."""
    data = config_to_dict(Config())
    for name, updates in sections.items():
        data[name].update(updates)
    return config_from_dict(data)


def test_reinforce_with_shared_trunk_is_refused():
    config = apply_overrides(Config(), ["algorithm.name=reinforce_baseline", "network.shared_trunk=true"])
    with pytest.raises(ConfigError, match="network.shared_trunk"):
        apply_overrides(config, ["algorithm.name=reinforce"])


def test_activation_lists_agree_with_networks():
    from pgjax import networks

    assert set(ACTIVATIONS) == set(networks._ACTIVATIONS)
