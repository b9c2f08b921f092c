"""The xminigrid family (pgjax/envs/xminigrid.py) against XLand-MiniGrid stepped directly, its
missing extra, XLand rulesets, and a tiny training run. Tests that need xminigrid skip where
``pgjax[xminigrid]`` is not installed; the missing-extra tests run everywhere."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.config import apply_overrides, load_config
from pgjax.envs import env_names, find_family, make_env
from pgjax.types import DiscreteSpace

# MiniGrid-Empty-5x5: the agent starts at (1, 1) facing east, the goal is at (3, 3).
# Actions: 0 forward, 1 turn right, 2 turn left, 3 pick up (nothing in reach: no change).
TO_GOAL = [0, 0, 1, 0, 0]  # reaches the goal on the 5th step
MAX_STEPS = 6


@pytest.fixture(scope="module")
def xminigrid():
    return pytest.importorskip("xminigrid", reason="needs pgjax[xminigrid]")


def _reference(xminigrid, actions, keys, reset_key):
    """xminigrid's env stepped in Python from its TimeStep: a LAST step is terminated where
    its discount is 0 and truncated where it is 1; an ended episode is reset with that step's
    key. Per step: (TimeStep after any reset, reward, terminated, truncated, final obs)."""
    env, params = xminigrid.make("MiniGrid-Empty-5x5", max_steps=MAX_STEPS)
    reset, step = jax.jit(env.reset), jax.jit(env.step)
    timestep, out = reset(params, reset_key), []
    for action, key in zip(actions, keys):
        stepped = step(params, timestep, action)
        last = int(stepped.step_type) == 2  # StepType.LAST
        terminated = last and float(stepped.discount) == 0.0
        truncated = last and float(stepped.discount) == 1.0
        timestep = reset(params, key) if last else stepped
        out.append((timestep, float(stepped.reward), terminated, truncated,
                    np.asarray(stepped.observation)))
    return out


def _keyless(tree):
    return jax.tree.map(lambda x: np.asarray(jax.random.key_data(x) if jnp.issubdtype(
        x.dtype, jax.dtypes.prng_key) else x), tree)


def test_steps_as_xminigrid_stepped_directly(xminigrid):
    """Same keys, same transitions (the whole TimeStep, keys included); a goal reached before
    the limit and on the limit's step is terminated, the limit alone truncated; final_obs is
    the ended episode's last view."""
    env = make_env("xminigrid:MiniGrid-Empty-5x5", max_steps=MAX_STEPS)
    # the goal before the limit (step 5), on it (step 6, after an idle step), then cut (6 idle)
    pattern = TO_GOAL + [3] + TO_GOAL + [3] * MAX_STEPS
    actions = [jnp.int32(a) for a in pattern]
    keys = list(jax.random.split(jax.random.key(5), len(actions)))
    reference = _reference(xminigrid, actions, keys, jax.random.key(2))

    _, state = env.reset(jax.random.key(2))
    step = jax.jit(env.step)
    ends = []
    for action, key, (r_timestep, r_reward, r_term, r_trunc, r_final) in zip(
            actions, keys, reference):
        out = step(key, state, action)
        jax.tree.map(np.testing.assert_array_equal, _keyless(out.state), _keyless(r_timestep))
        np.testing.assert_array_equal(out.obs, r_timestep.observation)
        np.testing.assert_array_equal(out.final_obs, r_final)
        assert float(out.reward) == pytest.approx(r_reward)
        assert (bool(out.terminated), bool(out.truncated)) == (r_term, r_trunc)
        if r_term or r_trunc:
            ends.append((bool(out.terminated), float(out.reward) > 0))
            assert int(out.state.state.step_num) == 0  # the next episode's first state
        state = out.state
    assert ends == [(True, True), (True, True), (False, False)]


def test_spec_and_params(xminigrid):
    env = make_env("MiniGrid-DoorKey-5x5", view_size=5)
    assert env.spec.obs_shape == (5, 5, 2) and env.spec.obs_num_values == 13
    assert env.spec.action_space == DiscreteSpace(6)
    assert env.spec.max_steps_in_episode == 250  # xminigrid's default for DoorKey-5x5
    assert find_family("MiniGrid-DoorKey-5x5")[0].name == "xminigrid"
    assert ("xminigrid", "MiniGrid-Empty-5x5", None) in env_names()
    obs, _ = env.reset(jax.random.key(0))
    assert obs.dtype == jnp.uint8 and int(obs.max()) < 13


@pytest.mark.parametrize("name, params, message", [
    ("MiniGrid-Empty-5x5", {"max_step": 5}, "unknown parameter(s) 'max_step' for "
                                            "MiniGrid-Empty-5x5; valid: height, width"),
    ("MiniGrid-Empty-5x5", {"max_steps": 0}, "max_steps=0: must be a whole number >= 1"),
    ("MiniGrid-Empty-5x5", {"benchmark": "trivial-21k"}, "benchmark and ruleset are for the "
                                                          "XLand-MiniGrid tasks"),
    ("XLand-MiniGrid-R1-9x9", {}, "an XLand task needs a ruleset: env.params.benchmark"),
    ("XLand-MiniGrid-R1-9x9", {"benchmark": "nope"}, "benchmark='nope': must be one of"),
])
def test_bad_params_are_one_value_error(xminigrid, name, params, message):
    with pytest.raises(ValueError) as error:
        make_env(name, **params)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_an_xland_task_takes_its_ruleset_from_the_benchmark(xminigrid, monkeypatch):
    """``benchmark`` and ``ruleset`` pick the goal and rules (xminigrid downloads benchmarks;
    a stand-in with two rulesets here): hold the red ball, or the blue one."""
    from xminigrid.benchmarks import Benchmark  # noqa: PLC0415
    from xminigrid.core.constants import TILES_REGISTRY, Colors, Tiles  # noqa: PLC0415
    from xminigrid.core.goals import AgentHoldGoal  # noqa: PLC0415
    from xminigrid.core.rules import EmptyRule  # noqa: PLC0415

    balls = [TILES_REGISTRY[Tiles.BALL, color] for color in (Colors.RED, Colors.BLUE)]
    stand_in = Benchmark(goals=jnp.stack([AgentHoldGoal(tile=b).encode() for b in balls]),
                         rules=jnp.stack([EmptyRule().encode()[None]] * 2),
                         init_tiles=jnp.stack([b[None] for b in balls]),
                         num_rules=jnp.zeros(2, jnp.int32))
    loaded = []
    monkeypatch.setattr(xminigrid, "load_benchmark", lambda name: loaded.append(name) or stand_in)
    env = make_env("XLand-MiniGrid-R1-9x9", benchmark="trivial-21k", ruleset=1)
    assert loaded == ["trivial-21k"]
    np.testing.assert_array_equal(env.params.ruleset.goal, AgentHoldGoal(tile=balls[1]).encode())
    _, timestep = env.reset(jax.random.key(0))
    assert (np.asarray(timestep.state.grid) == np.asarray(balls[1])).all(-1).sum() == 1
    with pytest.raises(ValueError, match="ruleset=2: benchmark 'trivial-21k' has 2 rulesets"):
        make_env("XLand-MiniGrid-R1-9x9", benchmark="trivial-21k", ruleset=2)


def test_make_train_trains_on_an_xminigrid_env_with_a_cnn(xminigrid):
    """A tiny PPO run; the CNN takes the one-hot view as 2 * 13 channels."""
    from pgjax.train import make_train  # noqa: PLC0415

    config = apply_overrides(load_config("cartpole_ppo"), [
        "env.name=xminigrid:MiniGrid-Empty-5x5", "env.params.view_size=5",
        "env.params.max_steps=12", "network.cnn=true", "network.hidden_sizes=[16]", "training.num_envs=4", "algorithm.n_steps=8",
        "algorithm.epochs=1", "algorithm.minibatches=1", "training.total_env_steps=128",
        "training.num_chunks=1"])
    trainer = make_train(config)
    assert trainer.config.env.name == "xminigrid:MiniGrid-Empty-5x5"
    params = trainer.networks.init(jax.random.key(1))
    shapes = {jax.tree_util.keystr(path): leaf.shape
              for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
    assert [s for k, s in shapes.items() if "conv_0" in k and "kernel" in k][0] == (3, 3, 26, 16)
    _, metrics = jax.jit(trainer.train)(jax.random.key(0))
    assert np.isfinite(np.asarray(metrics["loss"])).all()


# --- the extra missing: xminigrid hidden from the import system -------------------------------


@pytest.fixture
def without_xminigrid(hide_package):
    hide_package("xminigrid")  # `import xminigrid` raises ImportError


def test_missing_extra_is_one_line_naming_it(without_xminigrid, check_missing_family):
    check_missing_family("xminigrid", "xminigrid:MiniGrid-Empty-5x5")


def test_missing_extra_exits_2_from_the_command(without_xminigrid, tmp_path, monkeypatch,
                                                capsys):
    from pgjax import cli  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    assert cli.main(["--no-cache", "train", "cartpole_ppo", "--set",
                     "env.name=xminigrid:MiniGrid-Empty-5x5"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "pip install 'pgjax[xminigrid]'" in err
    assert err.startswith("pgjax train: error: env.name: env 'xminigrid:MiniGrid-Empty-5x5'")
    assert not list(tmp_path.iterdir())
