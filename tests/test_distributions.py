"""pgjax.distributions against closed forms computed in float64 NumPy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.distributions import Categorical, DiagGaussian

N_SAMPLES = 200_000
BATCH_SHAPES = [(), (5,), (3, 4)]


@pytest.fixture(autouse=True)
def _strict_rank_promotion():
    # Accidental broadcasting, e.g. log_std [D] against mean [N, D], must be explicit.
    with jax.numpy_rank_promotion("raise"):
        yield


# ---------------------------------------------------------------- references
def ref_log_softmax(logits):
    x = np.asarray(logits, np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def ref_categorical_entropy(logits):
    logp = ref_log_softmax(logits)
    return -(np.exp(logp) * logp).sum(axis=-1)


def ref_gaussian_log_prob(action, mean, log_std):
    a, m, s = (np.asarray(x, np.float64) for x in (action, mean, log_std))
    z = (a - m) / np.exp(s)
    return (-0.5 * z**2 - s - 0.5 * np.log(2 * np.pi)).sum(axis=-1)


def ref_gaussian_entropy(log_std, batch_shape):
    s = np.broadcast_to(np.asarray(log_std, np.float64), (*batch_shape, np.shape(log_std)[-1]))
    return (s + 0.5 * np.log(2 * np.pi * np.e)).sum(axis=-1)


def _random_logits(batch_shape, n_actions=5, scale=3.0, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(scale=scale, size=(*batch_shape, n_actions)).astype(np.float32)


def _random_actions(batch_shape, n_actions=5, seed=1):
    rng = np.random.default_rng(seed)
    return rng.integers(0, n_actions, size=batch_shape).astype(np.int32)


# ---------------------------------------------------------------- categorical
@pytest.mark.parametrize("batch_shape", BATCH_SHAPES)
def test_categorical_log_prob_entropy_probs_match_closed_form(batch_shape):
    logits = _random_logits(batch_shape)
    action = _random_actions(batch_shape)
    dist = Categorical(jnp.asarray(logits))
    ref_logp = ref_log_softmax(logits)

    expected = np.take_along_axis(ref_logp, action[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(action)), expected, atol=1e-5)
    np.testing.assert_allclose(dist.entropy(), ref_categorical_entropy(logits), atol=1e-5)
    np.testing.assert_allclose(dist.probs(), np.exp(ref_logp), atol=1e-6)
    np.testing.assert_array_equal(dist.mode(), logits.argmax(axis=-1))
    assert dist.log_prob(jnp.asarray(action)).shape == batch_shape
    assert dist.entropy().shape == batch_shape
    assert dist.mode().dtype == jnp.int32


def test_categorical_extreme_logits_stay_finite():
    logits = np.array(
        [[1e4, 0.0, -1e4], [-1e4, 1e4, 1e4], [1e4, 1e4, 1e4]], np.float32
    )
    dist = Categorical(jnp.asarray(logits))
    for a in range(3):
        logp = dist.log_prob(jnp.full((3,), a, jnp.int32))
        assert np.all(np.isfinite(logp))
        expected = ref_log_softmax(logits)[:, a]
        np.testing.assert_allclose(logp, expected, rtol=1e-6, atol=1e-3)
    entropy = dist.entropy()
    assert np.all(np.isfinite(entropy))
    np.testing.assert_allclose(entropy, [0.0, math.log(2), math.log(3)], atol=1e-5)
    np.testing.assert_allclose(dist.probs(), np.exp(ref_log_softmax(logits)), atol=1e-6)
    grad = jax.grad(lambda x: Categorical(x).log_prob(jnp.array([1, 0, 2])).sum())(
        jnp.asarray(logits)
    )
    assert np.all(np.isfinite(grad))


def test_categorical_sample_frequencies_match_probs():
    logits = np.array([0.5, -1.0, 2.0, 0.0, -3.0], np.float32)
    probs = np.exp(ref_log_softmax(logits))
    dist = Categorical(jnp.broadcast_to(jnp.asarray(logits), (N_SAMPLES, logits.size)))
    samples = dist.sample(jax.random.key(0))
    assert samples.shape == (N_SAMPLES,)
    assert samples.dtype == jnp.int32
    freq = np.bincount(np.asarray(samples), minlength=logits.size) / N_SAMPLES
    stderr = np.sqrt(probs * (1 - probs) / N_SAMPLES)
    np.testing.assert_array_less(np.abs(freq - probs), 5 * stderr + 1e-12)


def test_categorical_sample_shape_and_determinism():
    dist = Categorical(jnp.asarray(_random_logits((3, 4))))
    key = jax.random.key(7)
    a = dist.sample(key)
    assert a.shape == (3, 4) and a.dtype == jnp.int32
    np.testing.assert_array_equal(a, dist.sample(key))
    assert np.all((np.asarray(a) >= 0) & (np.asarray(a) < 5))


def test_categorical_log_prob_gradient_is_onehot_minus_softmax():
    logits = _random_logits((6,))
    action = _random_actions((6,))
    grad = jax.grad(lambda x: Categorical(x).log_prob(jnp.asarray(action)).sum())(
        jnp.asarray(logits)
    )
    expected = np.eye(5)[action] - np.exp(ref_log_softmax(logits))
    np.testing.assert_allclose(grad, expected, atol=1e-6)


def test_categorical_entropy_gradient_matches_closed_form():
    # dH/dz_i = -p_i (log p_i + H)
    logits = _random_logits((4,))
    grad = jax.grad(lambda x: Categorical(x).entropy().sum())(jnp.asarray(logits))
    logp = ref_log_softmax(logits)
    h = ref_categorical_entropy(logits)[:, None]
    np.testing.assert_allclose(grad, -np.exp(logp) * (logp + h), atol=1e-5)


def test_categorical_jit_and_vmap():
    logits = jnp.asarray(_random_logits((8,)))
    action = jnp.asarray(_random_actions((8,)))

    @jax.jit
    def make(x):
        return Categorical(x)  # a pytree can be returned from jit

    dist = make(logits)
    assert isinstance(dist, Categorical)
    eager = Categorical(logits)
    jitted = jax.jit(lambda d, a: (d.log_prob(a), d.entropy(), d.mode()))(dist, action)
    np.testing.assert_allclose(jitted[0], eager.log_prob(action), rtol=1e-6)
    np.testing.assert_allclose(jitted[1], eager.entropy(), rtol=1e-6)
    np.testing.assert_array_equal(jitted[2], eager.mode())

    per_row = jax.vmap(lambda d, a: d.log_prob(a))(dist, action)
    np.testing.assert_allclose(per_row, eager.log_prob(action), rtol=1e-6)
    keys = jax.random.split(jax.random.key(0), 8)
    samples = jax.vmap(lambda d, k: d.sample(k))(dist, keys)
    assert samples.shape == (8,) and samples.dtype == jnp.int32


def test_categorical_log_prob_rejects_wrong_action_shape():
    dist = Categorical(jnp.zeros((4, 3)))
    with pytest.raises(AssertionError):
        dist.log_prob(jnp.zeros((4, 1), jnp.int32))


# ---------------------------------------------------------------- gaussian
@pytest.mark.parametrize("batch_shape", BATCH_SHAPES)
@pytest.mark.parametrize("full_log_std", [False, True])
def test_gaussian_log_prob_and_entropy_match_closed_form(batch_shape, full_log_std):
    rng = np.random.default_rng(0)
    d = 3
    mean = rng.normal(size=(*batch_shape, d)).astype(np.float32)
    log_std_shape = (*batch_shape, d) if full_log_std else (d,)
    log_std = rng.normal(scale=0.5, size=log_std_shape).astype(np.float32)
    action = rng.normal(scale=2.0, size=(*batch_shape, d)).astype(np.float32)
    dist = DiagGaussian(jnp.asarray(mean), jnp.asarray(log_std))

    logp = dist.log_prob(jnp.asarray(action))
    assert logp.shape == batch_shape
    np.testing.assert_allclose(
        logp, ref_gaussian_log_prob(action, mean, log_std), rtol=1e-5, atol=1e-5
    )
    entropy = dist.entropy()
    assert entropy.shape == batch_shape
    np.testing.assert_allclose(
        entropy, ref_gaussian_entropy(log_std, batch_shape), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(dist.mode(), mean)
    assert dist.sample(jax.random.key(0)).shape == (*batch_shape, d)


def test_gaussian_sample_mean_and_std():
    mean = np.array([1.0, -2.0, 0.0], np.float32)
    log_std = np.array([0.0, -1.0, 1.0], np.float32)
    std = np.exp(log_std.astype(np.float64))
    dist = DiagGaussian(jnp.broadcast_to(jnp.asarray(mean), (N_SAMPLES, 3)), jnp.asarray(log_std))
    samples = np.asarray(dist.sample(jax.random.key(0)), np.float64)
    assert samples.shape == (N_SAMPLES, 3)
    # Standard errors: std / sqrt(n) for the mean, about std / sqrt(2n) for the std.
    np.testing.assert_array_less(
        np.abs(samples.mean(axis=0) - mean), 5 * std / np.sqrt(N_SAMPLES)
    )
    np.testing.assert_array_less(
        np.abs(samples.std(axis=0) - std), 5 * std / np.sqrt(2 * N_SAMPLES)
    )


def test_gaussian_log_prob_gradients_match_closed_form():
    # d/dμ = (a - μ) / σ², d/dlog σ = z² - 1 with z = (a - μ) / σ.
    rng = np.random.default_rng(3)
    mean = rng.normal(size=(5, 2)).astype(np.float32)
    log_std = np.array([0.3, -0.4], np.float32)
    action = rng.normal(size=(5, 2)).astype(np.float32)

    def total_log_prob(m, s):
        return DiagGaussian(m, s).log_prob(jnp.asarray(action)).sum()

    g_mean, g_log_std = jax.grad(total_log_prob, argnums=(0, 1))(
        jnp.asarray(mean), jnp.asarray(log_std)
    )
    std = np.exp(log_std.astype(np.float64))
    z = (action - mean) / std
    np.testing.assert_allclose(g_mean, (action - mean) / std**2, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_log_std, (z**2 - 1).sum(axis=0), rtol=1e-5, atol=1e-5)


def test_gaussian_jit_and_vmap():
    mean = jnp.asarray(np.random.default_rng(0).normal(size=(6, 2)), jnp.float32)
    log_std = jnp.full((6, 2), -0.5)
    action = jnp.zeros((6, 2))
    dist = jax.jit(DiagGaussian)(mean, log_std)
    assert isinstance(dist, DiagGaussian)
    eager = DiagGaussian(mean, log_std)
    np.testing.assert_allclose(
        jax.jit(lambda d, a: d.log_prob(a))(dist, action), eager.log_prob(action), rtol=1e-6
    )
    per_row = jax.vmap(lambda d, a: d.log_prob(a))(dist, action)
    np.testing.assert_allclose(per_row, eager.log_prob(action), rtol=1e-6)
    keys = jax.random.split(jax.random.key(0), 6)
    assert jax.vmap(lambda d, k: d.sample(k))(dist, keys).shape == (6, 2)


def test_gaussian_log_prob_rejects_wrong_action_shape():
    dist = DiagGaussian(jnp.zeros((4, 2)), jnp.zeros(2))
    with pytest.raises(AssertionError):
        dist.log_prob(jnp.zeros((4,)))
