"""pgjax.returns against plain float64 Python loops, plus identities."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pgjax import discounted_returns, gae, masked_mean, normalize

T = 17
BATCH_SHAPES = [(), (5,), (3, 4)]
BOUNDARIES = ["random", "end_at_0", "end_at_last", "all_done", "none_done", "truncated"]


# ---------------------------------------------------------------- references
def _trajectories(x):
    """Iterate over the batch indices of a [T, ...] array."""
    return itertools.product(*(range(n) for n in x.shape[1:]))


def ref_discounted_returns(rewards, dones, gamma, bootstrap=None):
    rewards = np.asarray(rewards, np.float64)
    out = np.zeros_like(rewards)
    for b in _trajectories(rewards):
        g = 0.0 if bootstrap is None else float(np.asarray(bootstrap)[b])
        for t in reversed(range(rewards.shape[0])):
            g = rewards[(t, *b)] + gamma * (1.0 - float(dones[(t, *b)])) * g
            out[(t, *b)] = g
    return out


def ref_gae(rewards, values, next_values, terminated, dones, gamma, lam):
    rewards = np.asarray(rewards, np.float64)
    adv = np.zeros_like(rewards)
    for b in _trajectories(rewards):
        a = 0.0
        for t in reversed(range(rewards.shape[0])):
            i = (t, *b)
            delta = (
                rewards[i]
                + gamma * (1.0 - float(terminated[i])) * float(next_values[i])
                - float(values[i])
            )
            a = delta + gamma * lam * (1.0 - float(dones[i])) * a
            adv[i] = a
    return adv, adv + np.asarray(values, np.float64)


def make_case(seed, batch_shape, boundary, t=T):
    """Random rewards/values with episode boundaries of the given kind."""
    rng = np.random.default_rng(seed)
    shape = (t, *batch_shape)
    rewards = rng.normal(size=shape).astype(np.float32)
    values = rng.normal(size=shape).astype(np.float32)
    next_values = rng.normal(size=shape).astype(np.float32)
    bootstrap = rng.normal(size=batch_shape).astype(np.float32)
    dones = rng.random(shape) < 0.2
    if boundary == "end_at_0":
        dones[:] = False
        dones[0] = True
    elif boundary == "end_at_last":
        dones[:] = False
        dones[-1] = True
    elif boundary == "all_done":
        dones[:] = True
    elif boundary == "none_done":
        dones[:] = False
    # Truncated steps are done but not terminated: they still bootstrap.
    if boundary == "truncated":
        terminated = np.zeros(shape, bool)
    else:
        terminated = dones & (rng.random(shape) < 0.5)
    return dict(
        rewards=rewards,
        values=values,
        next_values=next_values,
        bootstrap=bootstrap,
        dones=dones,
        terminated=terminated,
    )


def assert_close(actual, expected):
    actual = np.asarray(actual)
    assert actual.dtype == np.float32
    scale = max(1.0, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale)


# ---------------------------------------------------------- discounted_returns
@pytest.mark.parametrize("batch_shape", BATCH_SHAPES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("use_bootstrap", [False, True])
def test_discounted_returns_matches_loop(batch_shape, boundary, use_bootstrap):
    c = make_case(0, batch_shape, boundary)
    boot = c["bootstrap"] if use_bootstrap else None
    expected = ref_discounted_returns(c["rewards"], c["dones"], 0.97, boot)
    f = jax.jit(discounted_returns)
    assert_close(f(c["rewards"], c["dones"], 0.97, boot), expected)
    assert_close(discounted_returns(c["rewards"], c["dones"], 0.97, boot), expected)


def test_discounted_returns_hand_case():
    # Episode 1 = steps 0..1, episode 2 = steps 2..3 (cut by the rollout end).
    # G_1 = 1, G_0 = 1 + 0.5 * 1 = 1.5; G_3 = 1 + 0.5 * 4 = 3, G_2 = 1 + 0.5 * 3.
    r = jnp.ones(4)
    d = jnp.array([0, 1, 0, 0])
    out = discounted_returns(r, d, 0.5, bootstrap=jnp.array(4.0))
    np.testing.assert_allclose(out, [1.5, 1.0, 2.5, 3.0])


def test_discounted_returns_vmap_over_batch_and_gamma():
    c = make_case(1, (6,), "random")
    per_traj = jax.vmap(discounted_returns, in_axes=(1, 1, None), out_axes=1)
    np.testing.assert_allclose(
        per_traj(c["rewards"], c["dones"], 0.9),
        discounted_returns(c["rewards"], c["dones"], 0.9),
        rtol=1e-6,
    )
    gammas = jnp.array([0.5, 0.9, 1.0])
    over_gamma = jax.vmap(discounted_returns, in_axes=(None, None, 0))
    out = over_gamma(c["rewards"], c["dones"], gammas)
    for i, g in enumerate([0.5, 0.9, 1.0]):
        assert_close(out[i], ref_discounted_returns(c["rewards"], c["dones"], g))


def test_discounted_returns_spanning_two_episodes_equals_halves():
    c = make_case(2, (), "none_done")
    k = 7
    dones = c["dones"].copy()
    dones[k] = True
    whole = discounted_returns(c["rewards"], dones, 0.95, c["bootstrap"])
    first = discounted_returns(c["rewards"][: k + 1], dones[: k + 1], 0.95)
    second = discounted_returns(c["rewards"][k + 1 :], dones[k + 1 :], 0.95, c["bootstrap"])
    np.testing.assert_allclose(whole, np.concatenate([first, second]), rtol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    t=st.integers(1, 12),
    n=st.integers(1, 4),
    gamma=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_discounted_returns_property(t, n, gamma, seed):
    c = make_case(seed, (n,), "random", t=t)
    expected = ref_discounted_returns(c["rewards"], c["dones"], gamma, c["bootstrap"])
    assert_close(
        discounted_returns(c["rewards"], c["dones"], gamma, c["bootstrap"]), expected
    )


def test_discounted_returns_shape_checks():
    with pytest.raises(AssertionError):
        discounted_returns(jnp.ones((4, 2)), jnp.ones((4, 3)), 0.9)
    with pytest.raises(AssertionError):
        discounted_returns(jnp.ones((4, 2)), jnp.ones((4, 2)), 0.9, bootstrap=jnp.ones(3))


def test_discounted_returns_gradient_flags():
    r = jnp.ones(3)
    d = jnp.zeros(3, bool)
    g = jax.grad(lambda r: discounted_returns(r, d, 0.5)[0])(r)
    np.testing.assert_array_equal(g, 0.0)
    g = jax.grad(lambda r: discounted_returns(r, d, 0.5, stop_target_gradients=False)[0])(r)
    np.testing.assert_allclose(g, [1.0, 0.5, 0.25])
    # Differentiable in gamma when asked: d/dgamma (1 + g + g^2) at 0.5 = 2.
    dg = jax.grad(lambda g: discounted_returns(r, d, g, stop_target_gradients=False)[0])(0.5)
    np.testing.assert_allclose(dg, 2.0)


# ------------------------------------------------------------------------ gae
@pytest.mark.parametrize("batch_shape", BATCH_SHAPES)
@pytest.mark.parametrize("boundary", BOUNDARIES)
@pytest.mark.parametrize("lam", [0.0, 0.95, 1.0])
def test_gae_matches_loop(batch_shape, boundary, lam):
    c = make_case(3, batch_shape, boundary)
    args = (c["rewards"], c["values"], c["next_values"], c["terminated"], c["dones"])
    exp_adv, exp_tgt = ref_gae(*args, 0.99, lam)
    adv, tgt = jax.jit(gae)(*args, 0.99, lam)
    assert_close(adv, exp_adv)
    assert_close(tgt, exp_tgt)


def test_gae_hand_case_truncation_vs_termination():
    # Two one-step episodes with r = 1, V(s) = 0 and V(final obs) = 10, gamma 0.5:
    # step 0 is truncated, so A_0 = 1 + 0.5 * 10 = 6; step 1 is terminated,
    # so A_1 = 1 (no bootstrap).
    r = jnp.ones(2)
    v = jnp.zeros(2)
    nv = jnp.full(2, 10.0)
    term = jnp.array([False, True])
    done = jnp.array([True, True])
    adv, tgt = gae(r, v, nv, term, done, 0.5, 0.9)
    np.testing.assert_allclose(adv, [6.0, 1.0])
    np.testing.assert_allclose(tgt, [6.0, 1.0])


def test_gae_lambda_zero_is_one_step_td():
    c = make_case(4, (5,), "random")
    adv, _ = gae(c["rewards"], c["values"], c["next_values"], c["terminated"], c["dones"], 0.9, 0.0)
    td = c["rewards"] + 0.9 * (1 - c["terminated"]) * c["next_values"] - c["values"]
    np.testing.assert_allclose(adv, td, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("batch_shape", BATCH_SHAPES)
def test_gae_lambda_one_equals_bootstrapped_discounted_returns(batch_shape):
    """With consistent next_values (next_values[t] = values[t+1] inside an
    episode), GAE(1) + V is the discounted return bootstrapped from
    next_values[T-1]; a truncated step adds gamma * V(final obs) to its reward."""
    c = make_case(5, batch_shape, "random")
    values, rewards, dones = c["values"], c["rewards"], c["dones"]
    term = c["terminated"]
    trunc = dones & ~term
    next_values = np.concatenate([values[1:], c["bootstrap"][None]], axis=0)
    # At episode ends the next value is V(final obs): anything, only truncation reads it.
    next_values = np.where(dones, c["next_values"], next_values)
    adv, tgt = gae(rewards, values, next_values, term, dones, 0.97, 1.0)
    shaped_rewards = rewards + 0.97 * trunc * next_values
    expected = discounted_returns(shaped_rewards, dones, 0.97, bootstrap=next_values[-1])
    np.testing.assert_allclose(tgt, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(adv, expected - values, rtol=1e-5, atol=1e-5)


def test_gae_lambda_one_without_truncation_equals_plain_discounted_returns():
    c = make_case(6, (4,), "random")
    dones = c["dones"]
    values = c["values"]
    next_values = np.concatenate([values[1:], c["bootstrap"][None]], axis=0)
    _, tgt = gae(c["rewards"], values, next_values, dones, dones, 0.9, 1.0)
    expected = discounted_returns(c["rewards"], dones, 0.9, bootstrap=c["bootstrap"])
    np.testing.assert_allclose(tgt, expected, rtol=1e-5, atol=1e-5)


def test_gae_spanning_two_episodes_equals_halves():
    c = make_case(7, (3,), "none_done")
    k = 9
    dones = c["dones"].copy()
    dones[k] = True
    args = lambda s: (  # noqa: E731
        c["rewards"][s], c["values"][s], c["next_values"][s], c["terminated"][s], dones[s]
    )
    whole_adv, whole_tgt = gae(*args(slice(None)), 0.99, 0.9)
    a1, t1 = gae(*args(slice(0, k + 1)), 0.99, 0.9)
    a2, t2 = gae(*args(slice(k + 1, None)), 0.99, 0.9)
    np.testing.assert_allclose(whole_adv, np.concatenate([a1, a2]), rtol=1e-6)
    np.testing.assert_allclose(whole_tgt, np.concatenate([t1, t2]), rtol=1e-6)


def test_gae_batched_equals_vmapped_per_trajectory():
    c = make_case(8, (6,), "random")
    args = (c["rewards"], c["values"], c["next_values"], c["terminated"], c["dones"])
    per_traj = jax.vmap(gae, in_axes=(1, 1, 1, 1, 1, None, None), out_axes=1)
    for a, b in zip(per_traj(*args, 0.99, 0.95), gae(*args, 0.99, 0.95)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_gae_vmap_over_lambda():
    c = make_case(9, (2,), "random")
    args = (c["rewards"], c["values"], c["next_values"], c["terminated"], c["dones"])
    lams = jnp.array([0.0, 0.5, 1.0])
    adv, _ = jax.vmap(lambda lam: gae(*args, 0.9, lam))(lams)
    for i, lam in enumerate([0.0, 0.5, 1.0]):
        assert_close(adv[i], ref_gae(*args, 0.9, lam)[0])


def test_gae_stops_gradients_to_values():
    c = make_case(10, (), "random")

    def total(values, stop):
        adv, tgt = gae(c["rewards"], values, c["next_values"], c["terminated"],
                       c["dones"], 0.9, 0.9, stop_target_gradients=stop)
        return jnp.sum(adv) + jnp.sum(tgt)

    np.testing.assert_array_equal(jax.grad(total)(c["values"], True), 0.0)
    assert np.any(jax.grad(total)(c["values"], False) != 0.0)


# ------------------------------------------------------------- normalisation
def test_normalize_matches_numpy_over_valid_entries():
    rng = np.random.default_rng(11)
    x = rng.normal(3.0, 2.0, size=(T, 8)).astype(np.float32)
    mask = rng.random((T, 8)) < 0.7
    valid = x[mask].astype(np.float64)
    expected = np.where(mask, (x - valid.mean()) / (valid.std() + 1e-8), 0.0)
    out = jax.jit(normalize)(x, mask)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        normalize(x), (x - x.mean()) / (x.std() + 1e-8), rtol=1e-5, atol=1e-5
    )


def test_normalize_padding_is_ignored_even_when_nan():
    rng = np.random.default_rng(12)
    x = rng.normal(size=(6, 3)).astype(np.float32)
    mask = np.ones((6, 3), bool)
    mask[4:, 1] = False
    poisoned = x.copy()
    poisoned[~mask] = np.nan
    np.testing.assert_allclose(normalize(poisoned, mask), normalize(x, mask), rtol=1e-6)
    g = jax.grad(lambda x: jnp.sum(normalize(x, mask) * jnp.arange(18.0).reshape(6, 3)))
    grad = g(jnp.asarray(poisoned))
    assert np.all(np.isfinite(grad))
    np.testing.assert_array_equal(grad[~mask], 0.0)


def test_normalize_per_axis_and_all_masked():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    out = normalize(x, axis=0)
    np.testing.assert_allclose(out.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(out.std(0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(normalize(x, np.zeros_like(x, bool)), 0.0)
    assert float(masked_mean(x, np.zeros_like(x, bool))) == 0.0
