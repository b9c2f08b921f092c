"""The brax family (pgjax/envs/brax.py) against Brax stepped directly, its missing extra, and a
tiny training run. Tests that need brax skip where ``pgjax[brax]`` is not installed; the
missing-extra tests run everywhere (they hide brax from the import system)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.config import ConfigError, apply_overrides, load_config
from pgjax.envs import env_names, find_family, make_env
from pgjax.types import BoxSpace


@pytest.fixture(scope="module")
def brax_envs():
    pytest.importorskip("brax", reason="needs pgjax[brax]")
    from pgjax.envs.brax import _import  # noqa: PLC0415  (quietly: mujoco prints on import)

    return _import()


def _reference(raw, episode_length, actions, keys, reset_key):
    """Brax's env stepped in Python: the time limit counted here, a real terminal from
    ``done``, an ended episode reset with that step's key. Per step: (obs, reward,
    terminated, truncated, final_obs, steps into the episode)."""
    reset, step = jax.jit(raw.reset), jax.jit(raw.step)
    state, t, out = reset(reset_key), 0, []
    for action, key in zip(actions, keys):
        stepped = step(state, action)
        t += 1
        terminated = bool(stepped.done)
        truncated = t >= episode_length and not terminated
        if terminated or truncated:
            state, ended_at, t = reset(key), t, 0
        else:
            state, ended_at = stepped, None
        out.append((np.asarray(state.obs), float(stepped.reward), terminated, truncated,
                    np.asarray(stepped.obs), ended_at))
    return out


@pytest.mark.filterwarnings("ignore:Brax System")  # the reference builds brax's env directly
def test_steps_as_brax_stepped_directly(brax_envs):
    """Same keys, same transitions; terminated vs truncated (a terminal on the limit's step
    stays terminated); final_obs is the ended episode's last observation."""
    episode_length = 3
    env = make_env("brax:inverted_pendulum", episode_length=episode_length)
    assert env.spec.max_steps_in_episode == 3
    # 0: the pole stays up for 3 steps (cut by the limit); 1: a full push tips it over on
    # the 2nd step (|angle| > 0.2); after one idle step, a push tips it on the 3rd, the limit.
    pattern = [0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1, 1]
    actions = [jnp.array([float(a)]) for a in pattern * 2]
    keys = list(jax.random.split(jax.random.key(7), len(actions)))
    reference = _reference(brax_envs.get_environment("inverted_pendulum"), episode_length,
                           actions, keys, jax.random.key(3))

    obs, state = env.reset(jax.random.key(3))
    step = jax.jit(env.step)
    kinds = set()
    for action, key, (r_obs, r_reward, r_term, r_trunc, r_final, ended_at) in zip(
            actions, keys, reference):
        out = step(key, state, action)
        assert (bool(out.terminated), bool(out.truncated)) == (r_term, r_trunc)
        np.testing.assert_allclose(out.reward, r_reward, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out.final_obs, r_final, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out.obs, r_obs, rtol=1e-5, atol=1e-6)
        if ended_at is None:
            np.testing.assert_array_equal(out.final_obs, out.obs)
        else:
            kinds.add(("terminated" if r_term else "truncated", ended_at == episode_length))
        state = out.state
    # each kind of end was compared: cut by the limit, a terminal before it, one on it
    assert {("truncated", True), ("terminated", False), ("terminated", True)} <= kinds


def test_spec_and_params(brax_envs):
    env = make_env("brax:reacher", episode_length=50, action_repeat=4, backend="positional")
    assert env.spec.obs_shape == (11,)
    assert env.spec.action_space == BoxSpace(shape=(2,), low=-1.0, high=1.0)
    assert env.spec.max_steps_in_episode == 13  # ceil(50 / 4) pgjax steps
    assert env.env.env.backend == "positional"
    assert find_family("reacher")[0].name == "brax"  # the bare name works too
    assert ("brax", "inverted_pendulum", None) in env_names()


@pytest.mark.parametrize("params, message", [
    ({"episode_length": 0}, "episode_length=0: must be a whole number >= 1"),
    ({"action_repeat": 1.5}, "action_repeat=1.5: must be a whole number >= 1"),
    ({"backend": "nope"}, "backend should be in"),
    ({"gravity": 1.0}, "unexpected keyword argument 'gravity'; valid parameters: "
                       "episode_length, action_repeat"),
])
def test_bad_params_are_one_value_error(brax_envs, params, message):
    with pytest.raises(ValueError) as error:
        make_env("brax:inverted_pendulum", **params)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_make_train_trains_on_a_brax_env(brax_envs):
    """A tiny PPO run on Brax's own test env (``fast``: cheap to compile)."""
    from pgjax.train import make_train  # noqa: PLC0415

    config = apply_overrides(load_config("pendulum_ppo"), [
        "env.name=brax:fast", "env.params.episode_length=16", "training.num_envs=4",
        "algorithm.n_steps=8", "algorithm.epochs=1", "algorithm.minibatches=1",
        "training.total_env_steps=128", "training.num_chunks=1"])
    trainer = make_train(config)
    assert trainer.config.env.name == "brax:fast"
    _, metrics = jax.jit(trainer.train)(jax.random.key(0))
    assert np.isfinite(np.asarray(metrics["loss"])).all()


# --- the extra missing: brax hidden from the import system -----------------------------------


@pytest.fixture
def without_brax(hide_package):
    hide_package("brax")  # `import brax` raises ImportError


def test_missing_extra_is_one_line_naming_it(without_brax, check_missing_family):
    check_missing_family("brax", "brax:inverted_pendulum")
    with pytest.raises(ValueError, match=r"not installed: .*brax \(pip install 'pgjax\[brax\]'\)"):
        make_env("inverted_pendulum")  # a bare name: unknown, and the family is named


def test_missing_extra_exits_2_from_the_command(without_brax, tmp_path, monkeypatch, capsys):
    from pgjax import cli  # noqa: PLC0415
    from pgjax.host.checks import build_trainer  # noqa: PLC0415

    monkeypatch.chdir(tmp_path)
    assert cli.main(["--no-cache", "train", "pendulum_ppo", "--set",
                     "env.name=brax:inverted_pendulum"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("pgjax train: error: env.name: env "
                                              "'brax:inverted_pendulum': the brax env family")
    assert "pip install 'pgjax[brax]'" in err
    assert not list(tmp_path.iterdir())  # nothing written
    with pytest.raises(ConfigError, match="pgjax\\[brax\\]"):
        build_trainer(apply_overrides(load_config("pendulum_ppo"),
                                      ["env.name=brax:inverted_pendulum"]))
