"""pgjax.rollout against a one-environment-at-a-time Python reference.

The reference follows the key scheme in pgjax.rollout's module docstring: step
t uses ``step_key = split(key, T)[t]``, ``act_key, env_key = split(step_key)``;
actions for the batch are ``dist.sample(act_key)`` and environment i steps with
``split(env_key, N)[i]``. Everything else (per-env stepping with gymnax's own
``env.step``, log-probs and values per observation, next values from the final
observation, episode bookkeeping) is recomputed one environment at a time.
"""

import doctest
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import pgjax.rollout
from pgjax.envs import GymnaxEnv, init_obs_stats, make_env, normalize_obs, update_obs_stats
from pgjax.distributions import Categorical
from pgjax.networks import env_action, make_networks
from pgjax.rollout import EpisodeStats, RolloutState, make_episodic_rollout, make_rollout
from pgjax.types import Transition


@pytest.fixture(autouse=True)
def _strict_rank_promotion():
    with jax.numpy_rank_promotion("raise"):
        yield


# Built once per module: gymnax import and env construction take seconds.
CARTPOLE = make_env("CartPole-v1", max_steps_in_episode=12)
PENDULUM = make_env("Pendulum-v1", max_steps_in_episode=10)
BREAKOUT = make_env("Breakout-MinAtar")
ATOL = 1e-5


@functools.lru_cache(maxsize=None)
def _policy(env_name: str):
    """Real networks; Pendulum's log_std is raised so samples leave u in [-1, 1] (the box)."""
    env = {"CartPole-v1": CARTPOLE, "Pendulum-v1": PENDULUM, "Breakout-MinAtar": BREAKOUT}[env_name]
    nets = make_networks(env.spec)
    params = nets.init(jax.random.key(42))
    if not env.spec.discrete:
        params["actor"]["log_std"] = jnp.full_like(params["actor"]["log_std"], 1.0)
    return nets, params


def _x_critic(params, obs):
    """Uniform policy; value = CartPole's cart position, so V(s') is predictable."""
    return Categorical(jnp.zeros(obs.shape[:-1] + (2,))), obs[..., 0]


def _reference(env, apply_fn, params, states, obs, ep_return, ep_length, key, num_steps, obs_stats=None):
    """Steps each environment on its own in a Python loop.

    Returns per-step numpy records [T, N], the completed episodes as a list of
    (return, length), and the carried per-env state.
    """
    apply_fn = jax.jit(apply_fn)
    step = jax.jit(env.env.step)
    norm = (lambda o: o) if obs_stats is None else (lambda o: normalize_obs(obs_stats, o))
    n = len(states)
    fields = Transition._fields[:8]  # carry: None for these feedforward policies
    rec = {k: [] for k in fields}
    episodes = []
    for step_key in jax.random.split(key, num_steps):
        act_key, env_key = jax.random.split(step_key)
        env_keys = jax.random.split(env_key, n)
        dist, _ = apply_fn(params, norm(jnp.stack(obs)))
        actions = dist.sample(act_key)
        row = {k: [] for k in fields}
        for i in range(n):
            o_i = norm(obs[i])
            dist_i, v_i = apply_fn(params, o_i)
            a_i = actions[i]
            next_o, states[i], r, term, trunc, info = step(
                env_keys[i], states[i], env_action(env.spec, a_i), env.params
            )
            term, trunc = bool(term), bool(trunc) and not bool(term)
            next_v = 0.0 if term else float(apply_fn(params, norm(info["final_observation"]))[1])
            ep_return[i] += float(r)
            ep_length[i] += 1
            if term or trunc:
                episodes.append((ep_return[i], ep_length[i]))
                ep_return[i], ep_length[i] = 0.0, 0
            for k, v in zip(fields, (o_i, a_i, r, term, trunc, dist_i.log_prob(a_i), v_i, next_v)):
                row[k].append(np.asarray(v))
            obs[i] = next_o
        for k in fields:
            rec[k].append(np.stack(row[k]))
    rec = {k: np.stack(v) for k, v in rec.items()}
    return rec, episodes, (states, obs, ep_return, ep_length)


def _unbatch(state: RolloutState):
    n = state.obs.shape[0]
    states = [jax.tree.map(lambda x: x[i], state.env_state) for i in range(n)]
    return states, list(state.obs), [float(x) for x in state.episode_return], [int(x) for x in state.episode_length]


def _assert_matches(traj: Transition, rec: dict, mask=None):
    for field in Transition._fields[:8]:  # carry: None for feedforward policies
        got, want = np.asarray(getattr(traj, field)), rec[field]
        if mask is not None:  # compare valid steps only
            got, want = got[mask], want[mask]
        if got.dtype == bool or np.issubdtype(got.dtype, np.integer):
            np.testing.assert_array_equal(got, want, err_msg=field)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=ATOL, err_msg=field)


def _assert_stats(stats: EpisodeStats, episodes):
    assert int(stats.count) == len(episodes)
    if episodes:
        returns, lengths = zip(*episodes)
        np.testing.assert_allclose(stats.return_sum, sum(returns), rtol=1e-5)
        assert int(stats.length_sum) == sum(lengths)
        np.testing.assert_allclose(stats.return_min, min(returns), rtol=1e-5)
        np.testing.assert_allclose(stats.return_max, max(returns), rtol=1e-5)


@pytest.mark.parametrize("env", [CARTPOLE, PENDULUM], ids=lambda e: e.spec.name)
def test_matches_one_env_at_a_time_reference(env):
    nets, params = _policy(env.spec.name)
    num_envs, num_steps = 5, 16
    reset, rollout = make_rollout(env, nets.apply, num_envs=num_envs, num_steps=num_steps)
    rollout = jax.jit(rollout)
    state = reset(jax.random.key(0))
    ref_carry = _unbatch(state)
    flags = np.zeros(2, int)
    # Two rollouts: the second starts mid-episode from carried state.
    for key in jax.random.split(jax.random.key(1), 2):
        state, traj, stats, _ = rollout(params, state, key)
        rec, episodes, ref_carry = _reference(env, nets.apply, params, *ref_carry, key, num_steps)
        _assert_matches(traj, rec)
        _assert_stats(stats, episodes)
        np.testing.assert_allclose(state.episode_return, ref_carry[2], rtol=1e-5, atol=ATOL)
        np.testing.assert_array_equal(state.episode_length, ref_carry[3])
        flags += [traj.terminated.sum(), traj.truncated.sum()]
    if env is CARTPOLE:  # the data exercises both kinds of episode end
        assert flags[0] > 0 and flags[1] > 0, flags
    else:  # actions are stored unclipped (u beyond ±1); the env got the clipped ones
        assert flags[1] > 0 and np.abs(traj.action).max() > 1.0


def test_continuous_actions_are_clipped_for_the_env():
    class RewardIsAction(type(PENDULUM.env)):
        def step_env(self, key, state, action, params):
            obs, state, _, done, info = super().step_env(key, state, action, params)
            return obs, state, jnp.sum(action), done, info

    env = GymnaxEnv(RewardIsAction(), PENDULUM.params, PENDULUM.spec)
    nets, params = _policy("Pendulum-v1")
    reset, rollout = make_rollout(env, nets.apply, num_envs=64, num_steps=8)
    _, traj, _, _ = jax.jit(rollout)(params, reset(jax.random.key(0)), jax.random.key(1))
    assert np.abs(traj.action).max() > 1.0
    # Stored: u in normalised units; the env got clip(2 u, -2, 2) (Pendulum: center 0, half range 2).
    np.testing.assert_allclose(traj.reward, np.clip(2.0 * traj.action[..., 0], -2.0, 2.0), atol=1e-6)
    # log_prob is of the stored (unscaled, unclipped) sample.
    dist, _ = nets.apply(params, traj.obs)
    np.testing.assert_allclose(traj.log_prob, dist.log_prob(traj.action), rtol=1e-5, atol=ATOL)


def test_next_value_is_value_of_the_following_observation_never_a_reset():
    # With V(s) = x and CartPole's Euler step x' = x + 0.02 * x_dot, the value of
    # the observation that followed step t is known from obs[t] alone, for steps
    # inside an episode and for truncated steps (final observation) alike.
    env = make_env("CartPole-v1", max_steps_in_episode=10)
    reset, rollout = make_rollout(env, _x_critic, num_envs=32, num_steps=25)
    _, traj, stats, _ = jax.jit(rollout)(None, reset(jax.random.key(3)), jax.random.key(4))
    assert traj.truncated.sum() > 16 and traj.terminated.sum() > 0
    assert not np.any(traj.terminated & traj.truncated)
    following = traj.obs[..., 0] + 0.02 * traj.obs[..., 1]
    live = ~np.asarray(traj.terminated)
    np.testing.assert_allclose(traj.next_value[live], following[live], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(traj.next_value[traj.terminated], 0.0)
    # Inside an episode next_value[t] is value[t + 1]; after a truncation it is not
    # (value[t + 1] is V of the reset observation).
    done = np.asarray(traj.done)
    np.testing.assert_allclose(traj.next_value[:-1][~done[:-1]], traj.value[1:][~done[:-1]], atol=1e-6)
    trunc = np.asarray(traj.truncated[:-1])
    assert np.all(np.abs(traj.value[1:][trunc]) <= 0.05)  # reset: x ~ U(-0.05, 0.05)
    assert np.abs(traj.next_value[:-1][trunc] - traj.value[1:][trunc]).max() > 0.01
    # Every episode here is cut at 10 steps unless it fell earlier.
    assert int(stats.length_sum) <= 10 * int(stats.count)


def test_terminated_and_truncated_at_once_counts_as_terminated():
    # x_threshold=0 terminates every step; max_steps_in_episode=1 truncates every
    # step too: gymnax reports both, the Transition only terminated.
    env = make_env("CartPole-v1", x_threshold=0.0, max_steps_in_episode=1)
    reset, rollout = make_rollout(env, _x_critic, num_envs=8, num_steps=5)
    state = reset(jax.random.key(0))
    _, _, _, term, trunc, _ = jax.vmap(env.env.step, in_axes=(0, 0, 0, None))(
        jax.random.split(jax.random.key(9), 8), state.env_state, jnp.ones(8, jnp.int32), env.params
    )
    assert np.all(term) and np.all(trunc)
    _, traj, stats, _ = jax.jit(rollout)(None, state, jax.random.key(1))
    assert np.all(traj.terminated) and not np.any(traj.truncated)
    np.testing.assert_array_equal(traj.next_value, 0.0)
    assert int(stats.count) == 40 and int(stats.length_sum) == 40


@pytest.mark.parametrize(
    "env, action_shape, action_dtype, normalize",
    [
        (CARTPOLE, (), jnp.int32, False),
        (CARTPOLE, (), jnp.int32, True),
        (PENDULUM, (1,), jnp.float32, True),
        (BREAKOUT, (), jnp.int32, False),
    ],
    ids=["CartPole-v1", "CartPole-v1-normalized", "Pendulum-v1-normalized", "Breakout-MinAtar"],
)
def test_shapes_and_dtypes(env, action_shape, action_dtype, normalize):
    nets, params = _policy(env.spec.name)
    num_envs, num_steps = 3, 4
    reset, rollout = make_rollout(env, nets.apply, num_envs=num_envs, num_steps=num_steps, normalize_obs=normalize)
    state = reset(jax.random.key(0))
    new_state, traj, stats, obs_stats = jax.jit(rollout)(params, state, jax.random.key(1))
    tn = (num_steps, num_envs)
    chex.assert_shape(traj.obs, tn + env.spec.obs_shape)
    chex.assert_shape(traj.action, tn + action_shape)
    chex.assert_type(traj.action, action_dtype)
    chex.assert_type([traj.obs, traj.reward, traj.log_prob, traj.value, traj.next_value], jnp.float32)
    chex.assert_shape([traj.reward, traj.terminated, traj.truncated, traj.log_prob, traj.value, traj.next_value], tn)
    chex.assert_type([traj.terminated, traj.truncated], bool)
    chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
    assert all(x.shape == () for x in stats)
    assert (obs_stats is None) != normalize


def test_episode_stats_with_no_completed_episode():
    reset, rollout = make_rollout(CARTPOLE, _x_critic, num_envs=4, num_steps=3)
    _, _, stats, _ = jax.jit(rollout)(None, reset(jax.random.key(0)), jax.random.key(1))
    assert int(stats.count) == 0 and float(stats.return_sum) == 0.0 and int(stats.length_sum) == 0
    assert float(stats.return_min) == np.inf and float(stats.return_max) == -np.inf


@pytest.mark.parametrize("env", [CARTPOLE, PENDULUM, BREAKOUT], ids=lambda e: e.spec.name)
def test_compiles_once(env):
    # From reset on: gymnax resets return some leaves weakly typed (Pendulum's
    # last_u) that steps return strongly typed; that must not retrace.
    nets, params = _policy(env.spec.name)
    reset, rollout = make_rollout(env, nets.apply, num_envs=4, num_steps=8, normalize_obs=True)
    chex.clear_trace_counter()
    run = jax.jit(chex.assert_max_traces(rollout, n=1))
    state, obs_stats = reset(jax.random.key(0)), init_obs_stats(env.spec.obs_shape)
    for key in jax.random.split(jax.random.key(1), 3):
        state, traj, stats, obs_stats = run(params, state, key, obs_stats)
    assert float(obs_stats.count) == 3 * 8 * 4


def test_vmap_over_seeds_equals_separate_runs():
    nets, params = _policy("CartPole-v1")
    reset, rollout = make_rollout(CARTPOLE, nets.apply, num_envs=4, num_steps=20)
    keys = jax.random.split(jax.random.key(0), 3)

    def run(key):
        reset_key, key = jax.random.split(key)
        return rollout(params, reset(reset_key), key)

    batched = jax.jit(jax.vmap(run))(keys)
    for s in range(3):
        single = jax.jit(run)(keys[s])
        chex.assert_trees_all_close(jax.tree.map(lambda x: x[s], batched), single, atol=ATOL)
    assert int(batched[2].count.sum()) > 0  # the truncation cond runs under vmap as well


def test_normalized_observations_use_the_input_stats_then_merge_the_raw_ones():
    # The policy ignores its input, so raw and normalised runs step the same.
    raw = make_rollout(CARTPOLE, _x_critic, num_envs=6, num_steps=10)
    normed = make_rollout(CARTPOLE, _x_critic, num_envs=6, num_steps=10, normalize_obs=True)
    raw_state, norm_state = raw.reset(jax.random.key(0)), normed.reset(jax.random.key(0))
    stats = init_obs_stats((4,))
    norm_stats = None  # the rollout starts from empty statistics
    for key in jax.random.split(jax.random.key(1), 3):
        raw_state, raw_traj, _, _ = jax.jit(raw.rollout)(None, raw_state, key)
        norm_state, norm_traj, _, norm_stats = jax.jit(normed.rollout)(None, norm_state, key,
                                                                        norm_stats)
        np.testing.assert_allclose(norm_traj.obs, normalize_obs(stats, raw_traj.obs), rtol=1e-5, atol=ATOL)
        # value = first obs element, so next_value (final obs included) is normalised too.
        mean, std = stats.mean[0], np.sqrt(stats.var[0] + 1e-8)
        live = ~np.asarray(raw_traj.terminated)
        np.testing.assert_allclose(
            norm_traj.next_value[live], np.clip((raw_traj.next_value[live] - mean) / std, -10, 10), rtol=1e-4, atol=1e-4
        )
        stats = update_obs_stats(stats, raw_traj.obs)
        chex.assert_trees_all_close(norm_stats, stats, rtol=1e-5, atol=ATOL)
        np.testing.assert_array_equal(norm_state.obs, raw_state.obs)  # the state keeps raw obs


# --- episodic rollouts ------------------------------------------------------


@pytest.mark.parametrize(
    "env, max_steps",
    # 20 > CartPole's limit of 12: steps after a time-limit end are masked too.
    [(CARTPOLE, None), (CARTPOLE, 20), (PENDULUM, None)],
    ids=["CartPole-v1", "CartPole-v1-past-limit", "Pendulum-v1"],
)
def test_episodic_one_episode_per_env_matches_reference(env, max_steps):
    nets, params = _policy(env.spec.name)
    num_envs = 6
    rollout = jax.jit(make_episodic_rollout(env, nets.apply, num_envs=num_envs, max_steps=max_steps))
    key = jax.random.key(7)
    traj, mask, stats, obs_stats = rollout(params, key)
    num_steps = max_steps or env.spec.max_steps_in_episode
    assert mask.shape == (num_steps, num_envs) and obs_stats is None

    # Mask: a prefix of each column, ending on the one step that carries a flag.
    mask = np.asarray(mask)
    lengths = mask.sum(0)
    np.testing.assert_array_equal(mask, np.arange(num_steps)[:, None] < lengths[None, :])
    done = np.asarray(traj.done)
    np.testing.assert_array_equal(done.sum(0), 1)
    np.testing.assert_array_equal(done[lengths - 1, np.arange(num_envs)], True)
    for field in ("reward", "log_prob", "value", "next_value"):
        np.testing.assert_array_equal(np.asarray(getattr(traj, field))[~mask], 0.0)

    # Same steps as the reference, from the same resets.
    reset_key, rollout_key = jax.random.split(key)
    obs, states = jax.vmap(env.env.reset, in_axes=(0, None))(jax.random.split(reset_key, num_envs), env.params)
    states = [jax.tree.map(lambda x: x[i], states) for i in range(num_envs)]
    rec, _, _ = _reference(env, nets.apply, params, states, list(obs), [0.0] * num_envs, [0] * num_envs, rollout_key, num_steps)
    _assert_matches(traj, rec, mask)
    ref_done = rec["terminated"] | rec["truncated"]
    np.testing.assert_array_equal(lengths, ref_done.argmax(0) + 1)  # first episode end

    returns = np.where(mask, rec["reward"], 0.0).sum(0)
    np.testing.assert_allclose(traj.reward.sum(0), returns, rtol=1e-5)
    _assert_stats(stats, list(zip(returns, lengths)))
    assert int(stats.count) == num_envs
    if max_steps:
        assert lengths.max() <= env.spec.max_steps_in_episode and traj.truncated.sum() > 0


def test_episodic_horizon_truncates_running_episodes():
    # max_steps below the time limit: episodes alive at the last step end there
    # as truncated, bootstrapping from V(obs_T) (x-position critic, as above).
    env = make_env("CartPole-v1")
    rollout = make_episodic_rollout(env, _x_critic, num_envs=16, max_steps=6, normalize_obs=True)
    traj, mask, stats, obs_stats = jax.jit(rollout)(None, jax.random.key(0), init_obs_stats((4,)))
    assert traj.reward.shape == (6, 16)
    np.testing.assert_array_equal(mask, True)  # nothing falls in 6 steps
    np.testing.assert_array_equal(traj.truncated[-1], True)
    assert not np.any(traj.done[:-1])
    assert int(stats.count) == 16 and int(stats.length_sum) == 6 * 16
    assert float(obs_stats.count) == 6 * 16
    # Statistics start empty, so the policy saw raw observations.
    following = traj.obs[-1, :, 0] + 0.02 * traj.obs[-1, :, 1]
    np.testing.assert_allclose(traj.next_value[-1], following, rtol=1e-5, atol=1e-6)


def test_doctests():
    result = doctest.testmod(pgjax.rollout, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0 and result.attempted > 0
