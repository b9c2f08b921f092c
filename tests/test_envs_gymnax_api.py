"""The gymnax-api family (pgjax/envs/gymnax_api.py): any gymnax-interface env by import path.

The five-value envs below are written the way gymnax <= 0.0.9 and Craftax write theirs: a
``step`` that resets itself (or, like Craftax's ``EnvironmentNoAutoReset``, does not) and
returns ``obs, state, reward, done, info`` with ``info = {"discount": 1 - is_terminal}``,
where ``is_terminal`` includes the time limit.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from pgjax.config import ConfigError, apply_overrides, load_config
from pgjax.envs import find_family, make_env
from pgjax.envs.gymnax_api import GymnaxApiEnv, wrap_gymnax_api
from pgjax.train import episode_mean, make_train

HERE = __name__  # the import path of this module, for "module:Factory" names


class Discrete:
    def __init__(self, n):
        self.n, self.shape = n, ()


# --- a corridor written to old gymnax's interface --------------------------------------------
# Action 1 moves right, 0 stays; the episode terminates at position `length`; the time limit
# is a params field. Starting at `start`: with length=3, max_steps=3, always moving right ends
# on the last step with a real terminal (must stay terminated); always staying is cut by the
# limit (truncated); start=1 terminates before the limit.


@struct.dataclass
class State:
    pos: jax.Array
    time: jax.Array


@struct.dataclass
class Params:
    length: int = 3
    start: int = 0
    max_steps_in_episode: int = 3


@struct.dataclass
class CraftaxState:  # Craftax's names: state.timestep, params.max_timesteps
    pos: jax.Array
    timestep: jax.Array


@struct.dataclass
class CraftaxParams:
    length: int = 3
    start: int = 0
    max_timesteps: int = 3


class OldCorridor:
    """gymnax <= 0.0.9's Environment, verbatim in structure: step = step_env + auto-reset."""

    TIME, LIMIT, STATE, PARAMS = "time", "max_steps_in_episode", State, Params

    @property
    def default_params(self):
        return self.PARAMS()

    def step(self, key, state, action, params=None):  # gymnax 0.0.9's Environment.step
        params = self.default_params if params is None else params
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, reward, done, info = self.step_env(key_step, state, action, params)
        obs_re, state_re = self.reset_env(key_reset, params)
        state = jax.tree.map(lambda x, y: jax.lax.select(done, x, y), state_re, state_st)
        obs = jax.lax.select(done, obs_re, obs_st)
        return obs, state, reward, done, info

    def reset(self, key, params=None):
        return self.reset_env(key, self.default_params if params is None else params)

    def step_env(self, key, state, action, params):
        state = self.STATE(state.pos + action, getattr(state, self.TIME) + 1)
        done = self.is_terminal(state, params)
        reward = (state.pos >= params.length).astype(jnp.float32)
        return self.get_obs(state), state, reward, done, {"discount": self.discount(state, params)}

    def reset_env(self, key, params):
        # The key decides nothing but a noise channel, so that reset keys show in obs.
        noise = jax.random.uniform(key)
        state = self.STATE(jnp.int32(params.start), jnp.int32(0))
        return self.get_obs(state) + jnp.array([0.0, 0.0, noise]), state

    def get_obs(self, state):
        return jnp.array([state.pos, getattr(state, self.TIME), 0.0], jnp.float32)

    def is_terminal(self, state, params):  # old gymnax: the time limit is terminal too
        at_limit = getattr(state, self.TIME) >= getattr(params, self.LIMIT)
        return (state.pos >= params.length) | at_limit

    def discount(self, state, params):
        return jax.lax.select(self.is_terminal(state, params), 0.0, 1.0)

    def action_space(self, params=None):
        return Discrete(2)


class CraftaxCorridor(OldCorridor):
    TIME, LIMIT, STATE, PARAMS = "timestep", "max_timesteps", CraftaxState, CraftaxParams


class NoAutoResetCorridor(OldCorridor):
    """Craftax's EnvironmentNoAutoReset: step is step_env, nothing resets."""

    def step(self, key, state, action, params=None):
        return self.step_env(key, state, action, self.default_params if params is None else params)


class BareCorridor:
    """No step_env/reset_env on its class: a bare five-value step that does not reset."""

    def __init__(self):
        self._inner = OldCorridor()
        self.default_params = Params()

    def reset(self, key, params):
        return self._inner.reset_env(key, params)

    def step(self, key, state, action, params):
        return self._inner.step_env(key, state, action, params)

    def is_terminal(self, state, params):
        return self._inner.is_terminal(state, params)

    def action_space(self, params):
        return Discrete(2)


class Proxy:
    """A gymnax wrapper: step_env reaches the wrapped env only through __getattr__."""

    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        return getattr(self._env, name)


def old_corridor_pair():  # a factory returning (env, params)
    return OldCorridor(), Params(length=4)


def _episode(env: GymnaxApiEnv, actions, seed=0):
    """Steps one env through ``actions``; the EnvSteps as numpy, and the reset obs."""
    obs, state = env.reset(jax.random.key(seed))
    steps, step = [], jax.jit(env.step)
    for i, a in enumerate(actions):
        out = step(jax.random.key(100 + i), state, jnp.int32(a))
        steps.append(jax.tree.map(np.asarray, out._replace(state=None)))
        state = out.state
    return steps


# --- (1) a gymnax 1.x env by import path steps as the gymnax adapter does --------------------


def _rollout(env, key, num_envs=4, steps=120):
    reset_key, key = jax.random.split(key)
    obs, state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

    def one(carry, key):
        state = carry
        act_key, step_key = jax.random.split(key)
        action = jax.random.randint(act_key, (num_envs,), 0, 2)
        out = jax.vmap(env.step)(jax.random.split(step_key, num_envs), state, action)
        return out.state, out._replace(state=out.state)

    return jax.lax.scan(one, state, jax.random.split(key, steps))[1]


def test_gymnax_env_by_import_path_steps_as_the_gymnax_adapter():
    by_path = make_env("gymnax.environments.classic_control.cartpole:CartPole",
                       max_steps_in_episode=20)
    reference = make_env("CartPole-v1", max_steps_in_episode=20)
    assert isinstance(by_path, GymnaxApiEnv) and by_path.mode == "six"
    assert by_path.spec == reference.spec._replace(name="CartPole")
    ours = jax.jit(_rollout, static_argnums=0)(by_path, jax.random.key(3))
    theirs = jax.jit(_rollout, static_argnums=0)(reference, jax.random.key(3))
    jax.tree.map(np.testing.assert_array_equal, ours, theirs)
    assert ours.terminated.any() and ours.truncated.any()  # both kinds of end were compared
    assert not (ours.terminated & ours.truncated).any()


# --- (2) five values: terminated vs truncated, final_obs --------------------------------------


@pytest.mark.parametrize("factory", ["OldCorridor", "CraftaxCorridor"])
def test_five_value_step_splits_done_into_terminated_and_truncated(factory):
    env = make_env(f"{HERE}:{factory}")
    assert env.mode == "step_env" and env.spec.max_steps_in_episode == 3
    # moving right: the terminal is reached on the limit's step: terminated, not truncated
    steps = _episode(env, [1, 1, 1])
    assert [(bool(s.terminated), bool(s.truncated)) for s in steps] == [(0, 0), (0, 0), (1, 0)]
    np.testing.assert_array_equal(steps[-1].final_obs, [3, 3, 0])  # where the episode ended
    assert steps[-1].obs[0] == 0 and steps[-1].obs[1] == 0  # the next episode's first obs
    np.testing.assert_array_equal(steps[0].final_obs, steps[0].obs)  # no end: the same
    # staying: the limit cuts it
    steps = _episode(env, [0, 0, 0])
    assert [(bool(s.terminated), bool(s.truncated)) for s in steps] == [(0, 0), (0, 0), (0, 1)]
    np.testing.assert_array_equal(steps[-1].final_obs, [0, 3, 0])
    # terminal before the limit
    steps = _episode(make_env(f"{HERE}:{factory}", start=1), [1, 1])
    assert [(bool(s.terminated), bool(s.truncated)) for s in steps] == [(0, 0), (1, 0)]


def test_five_value_env_resets_as_its_own_step_would():
    """pgjax's step_env + reset equals the old env's own auto-resetting step, same keys."""
    env = make_env(f"{HERE}:old_corridor_pair")  # a factory returning (env, params)
    assert env.params.length == 4 and env.spec.max_steps_in_episode == 3
    _, state = env.reset(jax.random.key(0))
    ours = theirs = state
    for i, a in enumerate([1, 1, 1, 0, 1, 0, 0, 0]):
        key = jax.random.key(i)
        out = env.step(key, ours, jnp.int32(a))
        obs, theirs, *_ = env.env.step(key, theirs, jnp.int32(a), env.params)
        np.testing.assert_array_equal(out.obs, obs)
        jax.tree.map(np.testing.assert_array_equal, out.state, theirs)
        ours = out.state
    assert env.step(jax.random.key(9), ours, jnp.int32(0)).truncated  # length 4 not reached


def test_a_wrapper_that_resets_itself_counts_every_end_as_terminated():
    # Its step_env is reached through __getattr__ only, so pgjax steps the wrapper, which
    # returns the next episode's state at the end: the limit cannot be seen (documented).
    env = wrap_gymnax_api(Proxy(OldCorridor()), name="wrapped")
    assert env.mode == "step"
    steps = _episode(env, [0, 0, 0])
    assert bool(steps[-1].terminated) and not bool(steps[-1].truncated)


# --- (3) an env that does not reset itself is reset ------------------------------------------


@pytest.mark.parametrize("factory, mode", [("NoAutoResetCorridor", "step_env"),
                                           ("BareCorridor", "step")])
def test_an_env_that_does_not_reset_itself_is_reset(factory, mode):
    env = make_env(f"{HERE}:{factory}")
    assert env.mode == mode
    steps = _episode(env, [1, 1, 1, 1])
    assert [(bool(s.terminated), bool(s.truncated)) for s in steps][2] == (True, False)
    np.testing.assert_array_equal(steps[2].final_obs, [3, 3, 0])
    assert steps[2].obs[0] == 0 and steps[2].obs[1] == 0  # reset, so the next step goes on
    np.testing.assert_array_equal(steps[3].obs[:2], [1, 1])
    steps = _episode(env, [0, 0, 0])
    assert bool(steps[-1].truncated) and not bool(steps[-1].terminated)


# --- (4) errors --------------------------------------------------------------------------------


def not_an_env():
    return {"step": 1}


def failing_factory(size: int = 3):
    raise RuntimeError("no such level")


class SixWithoutFinal(OldCorridor):
    def step(self, key, state, action, params=None):
        return (1, 2, 3)


@pytest.mark.parametrize("name, params, message", [
    ("nosuch_pkg.envs:Env", {}, "cannot import module 'nosuch_pkg.envs': ModuleNotFoundError"),
    (f"{HERE}:OldCorridr", {}, "has no attribute 'OldCorridr'; did you mean 'OldCorridor'"),
    (f"{HERE}:failing_factory", {"size": 5},
     "failing_factory(size=5) failed: RuntimeError: no such level"),
    (f"{HERE}:not_an_env", {}, "a dict is not a gymnax-API environment (no reset, step"),
    (f"{HERE}:OldCorridor", {"lenght": 5},
     "unknown parameter(s) 'lenght': neither a keyword of OldCorridor (it takes none) nor a "
     "field of its params (length, start, max_steps_in_episode)"),
    (f"{HERE}:SixWithoutFinal", {}, "step returned tuple of 3 values; gymnax's step returns"),
    ("gymnax:make", {}, "for the import path, write gymnax-api:gymnax:make"),
])
def test_errors_are_one_value_error(name, params, message):
    with pytest.raises(ValueError) as error:
        make_env(name, **params)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_bad_import_path_is_a_config_error_about_env_name():
    from pgjax.host.checks import build_trainer  # noqa: PLC0415

    config = apply_overrides(load_config("configs/cartpole_a2c.yaml"),
                             ["env.name=nosuch_pkg.envs:Env"])
    with pytest.raises(ConfigError, match=r"^env.name: env 'nosuch_pkg.envs:Env': cannot import"):
        build_trainer(config)


def test_the_family_lists_no_names_and_claims_import_paths():
    from pgjax.envs import env_names  # noqa: PLC0415

    assert not [row for row in env_names() if row[0] == "gymnax-api"]
    assert find_family(f"{HERE}:OldCorridor")[0].name == "gymnax-api"
    assert find_family(f"gymnax-api:{HERE}:OldCorridor")[1] == f"{HERE}:OldCorridor"
    assert find_family("CartPole-v1")[0].name == "gymnax"


# --- (5) make_train trains on one by name ------------------------------------------------------


def test_make_train_trains_on_an_import_path_env_with_its_params():
    config = apply_overrides(load_config("configs/cartpole_a2c.yaml"), [
        f"env.name={HERE}:OldCorridor", "env.params.length=2", "env.params.max_steps_in_episode=4",
        "training.num_envs=4", "training.total_env_steps=640", "training.num_chunks=1"])
    trainer = make_train(config)
    assert trainer.config.env.name == f"{HERE}:OldCorridor"  # kept, with its params
    assert dict(trainer.config.env.params) == {"length": 2, "max_steps_in_episode": 4}
    state, metrics = jax.jit(trainer.train)(jax.random.key(0))
    assert np.isfinite(np.asarray(metrics["loss"])).all()
    assert 0 < float(episode_mean(metrics)) <= 1  # reward 1 at the goal, 0 if cut
