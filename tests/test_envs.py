"""pgjax.envs: make_env (registry, overrides, errors), specs, observation statistics."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax.envs
from pgjax.envs import (
    Env,
    ObsStats,
    init_obs_stats,
    make_env,
    normalize_obs,
    update_obs_stats,
    uses_obs_normalization,
    wrap_env,
)
from pgjax.types import BoxSpace, DiscreteSpace, EnvSpec


@pytest.fixture(autouse=True)
def _strict_rank_promotion():
    with jax.numpy_rank_promotion("raise"):
        yield


# --- make_env ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name, obs_shape, action_space, max_steps",
    [
        ("CartPole-v1", (4,), DiscreteSpace(2), 500),
        ("Pendulum-v1", (3,), BoxSpace((1,), -2.0, 2.0), 200),
        ("Breakout-MinAtar", (10, 10, 4), DiscreteSpace(3), 1000),
        ("PointRobot-misc", (6,), BoxSpace((2,), (-0.1, -0.1), (0.1, 0.1)), 100),
    ],
)
def test_spec(name, obs_shape, action_space, max_steps):
    env = make_env(name)
    assert isinstance(env, Env)
    assert env.spec == EnvSpec(name, obs_shape, action_space, max_steps)
    hash(env.spec)  # static under jit
    if isinstance(action_space, BoxSpace):
        low = env.spec.action_space.low
        assert all(type(x) is float for x in (low if isinstance(low, tuple) else (low,)))
    obs, _ = env.env.reset(jax.random.key(0), env.params)
    assert obs.shape == obs_shape


def test_param_override():
    env = make_env("CartPole-v1", max_steps_in_episode=20, gravity=5.0)
    assert env.params.max_steps_in_episode == 20
    assert env.params.gravity == 5.0
    assert env.spec.max_steps_in_episode == 20
    assert make_env("CartPole-v1").params.max_steps_in_episode == 500  # defaults untouched

    # The override takes effect: with a 3-step limit every episode is cut at 3.
    state = env.env.reset(jax.random.key(0), make_env("CartPole-v1", max_steps_in_episode=3).params)[1]
    short = make_env("CartPole-v1", max_steps_in_episode=3)
    truncs = []
    for t in range(3):
        _, state, _, _, truncated, _ = short.env.step(jax.random.key(t), state, 1, short.params)
        truncs.append(bool(truncated))
    assert truncs == [False, False, True]


def test_wrap_env_custom_instance():
    base = make_env("CartPole-v1")
    env = wrap_env(base.env, name="MyPole", max_steps_in_episode=7)
    assert env.spec == EnvSpec("MyPole", (4,), DiscreteSpace(2), 7)
    assert env.params.max_steps_in_episode == 7 and env.env is base.env
    assert wrap_env(base.env).spec == base.spec  # name and params default to the env's
    with pytest.raises(ValueError, match="'nope' for MyPole; valid fields: .*gravity"):
        wrap_env(base.env, name="MyPole", nope=1)


def test_discrete_observation_space_is_recorded():
    env = make_env("FrozenLake-misc")  # obs: the agent's cell, an int32 index in 0..15
    assert env.spec == EnvSpec("FrozenLake-misc", (), DiscreteSpace(4), 100, obs_num_values=16)
    assert env.spec.discrete_obs and not make_env("CartPole-v1").spec.discrete_obs
    assert uses_obs_normalization(make_env("CartPole-v1").spec, True)
    assert not uses_obs_normalization(env.spec, True)  # a state index is never standardised
    assert not uses_obs_normalization(make_env("CartPole-v1").spec, False)


def test_env_without_observation_space_has_real_valued_obs():
    cartpole = make_env("CartPole-v1").env

    class NoObsSpace(type(cartpole)):
        def observation_space(self, params):
            raise NotImplementedError  # gymnax's base class does this

    assert wrap_env(NoObsSpace()).spec.obs_num_values is None


def test_discrete_observation_space_with_float_obs_is_rejected():
    frozen = make_env("FrozenLake-misc").env

    class FloatIndex(type(frozen)):
        def observe(self, key, state, action, params):
            return super().observe(key, state, action, params).astype(jnp.float32)

    with pytest.raises(ValueError, match="discrete but reset returns float32"):
        wrap_env(FloatIndex())


def test_unknown_param_lists_fields():
    with pytest.raises(ValueError, match="'max_step'.*max_steps_in_episode"):
        make_env("CartPole-v1", max_step=20)


def test_unknown_name_suggests_and_lists():
    with pytest.raises(ValueError) as info:
        make_env("CartPole-v2")
    message = str(info.value)
    assert "did you mean 'CartPole-v1'" in message
    for name in ("Pendulum-v1", "Breakout-MinAtar", "Catch-bsuite"):
        assert name in message


def test_unknown_name_without_close_match():
    with pytest.raises(ValueError, match="unknown environment 'zzzz'; valid names: CartPole-v1"):
        make_env("zzzz")


# --- observation statistics -------------------------------------------------


def _merge_all(chunks, obs_shape, masks=None):
    stats = init_obs_stats(obs_shape)
    for i, chunk in enumerate(chunks):
        mask = None if masks is None else jnp.asarray(masks[i])
        stats = jax.jit(update_obs_stats)(stats, jnp.asarray(chunk, jnp.float32), mask)
    return stats


def test_obs_stats_merge_equals_numpy_concatenation():
    rng = np.random.default_rng(0)
    obs_shape = (3, 2)
    # Chunks of different sizes and leading ranks ([N, ...] and [T, N, ...]),
    # with shifting means and scales, so every term of the merge matters.
    chunks = [
        rng.normal(5.0, 2.0, size=(7, *obs_shape)),
        rng.normal(-3.0, 0.5, size=(4, 9, *obs_shape)),
        rng.normal(100.0, 10.0, size=(1, *obs_shape)),
        rng.normal(0.0, 1.0, size=(2, 3, *obs_shape)),
    ]
    stats = _merge_all(chunks, obs_shape)
    flat = np.concatenate([c.reshape(-1, *obs_shape) for c in chunks]).astype(np.float64)
    assert stats.count.dtype == jnp.float32 and float(stats.count) == len(flat)
    np.testing.assert_allclose(stats.mean, flat.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.var, flat.var(0), rtol=1e-5)


def test_obs_stats_masked_merge_equals_numpy_over_valid():
    rng = np.random.default_rng(1)
    chunks = [rng.normal(i, 1.0 + i, size=(6, 5, 4)) for i in range(3)]
    masks = [rng.random((6, 5)) < 0.6 for _ in chunks]
    masks[1][:] = False  # an empty batch leaves the stats unchanged
    stats = _merge_all(chunks, (4,), masks)
    valid = np.concatenate([c[m] for c, m in zip(chunks, masks)])
    assert float(stats.count) == len(valid)
    np.testing.assert_allclose(stats.mean, valid.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(stats.var, valid.var(0), rtol=1e-5)
    empty = update_obs_stats(init_obs_stats((4,)), jnp.ones((2, 4)), jnp.zeros(2, bool))
    np.testing.assert_array_equal(empty.mean, 0.0)
    np.testing.assert_array_equal(empty.var, 1.0)


def test_obs_stats_count_past_int32_range():
    # Billions of env steps: a float32 count keeps counting (an int32 would wrap)
    # and a new batch still moves the mean by its weight n / (count + n).
    stats = ObsStats(jnp.zeros(2), jnp.ones(2), jnp.asarray(3e9, jnp.float32))
    new = update_obs_stats(stats, jnp.full((3_000_000, 2), 1001.0))
    assert float(new.count) == pytest.approx(3.003e9, rel=1e-6)
    np.testing.assert_allclose(new.mean, 1001.0 * 3e6 / 3.003e9, rtol=1e-4)
    assert np.all(np.isfinite(new.var))
    assert jax.tree.map(lambda x: x.dtype, new) == jax.tree.map(lambda x: x.dtype, stats)


def test_normalize_obs():
    stats = ObsStats(jnp.array([1.0, -2.0]), jnp.array([4.0, 0.25]), jnp.array(10.0))
    obs = jnp.array([[[3.0, -2.5]], [[1.0, 100.0]]])  # [T=2, N=1, 2]
    out = normalize_obs(stats, obs, clip=5.0)
    np.testing.assert_allclose(out, [[[1.0, -1.0]], [[0.0, 5.0]]], rtol=1e-6)
    assert out.dtype == jnp.float32 and out.shape == obs.shape
    # Empty statistics leave observations (up to clipping) as they are.
    np.testing.assert_allclose(normalize_obs(init_obs_stats((2,)), obs[0]), obs[0], rtol=1e-6)


def test_doctests():
    import pgjax.envs.base
    import pgjax.envs.gymnax
    import pgjax.envs.obs

    for module in (pgjax.envs.base, pgjax.envs.gymnax, pgjax.envs.obs):
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert result.failed == 0 and result.attempted > 0, module.__name__
