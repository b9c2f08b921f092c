"""pgjax.shuffle: the Feistel permutation against a pure-Python reference of the same network,
bijections for every size, and the statistics a minibatch shuffle needs (positions and
minibatch pairs as under a uniform shuffle, chi-square tests at fixed keys)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.config import Config, ConfigError, apply_overrides
from pgjax.shuffle import ROUNDS, feistel_permutation, permutation

M32 = 0xFFFFFFFF


def _python_feistel(round_keys, n):
    """The documented network, one index at a time with Python ints."""
    def mix(v, k):
        h = ((v * 0x9E3779B9) & M32) ^ k
        h ^= h >> 16
        h = (h * 0x85EBCA6B) & M32
        h ^= h >> 13
        h = (h * 0xC2B2AE35) & M32
        return h ^ (h >> 16)

    bits = max((n - 1).bit_length(), 2)
    low_bits = bits // 2
    low_mask, high_mask = (1 << low_bits) - 1, (1 << (bits - low_bits)) - 1

    def encrypt(x):
        high, low = x >> low_bits, x & low_mask
        for i, k in enumerate(round_keys):
            if i % 2 == 0:
                high ^= mix(low, k) & high_mask
            else:
                low ^= mix(high, k) & low_mask
        return (high << low_bits) | low

    out = []
    for i in range(n):
        y = encrypt(i)
        while y >= n:
            y = encrypt(y)
        out.append(y)
    return out


@pytest.mark.parametrize("n", [2, 3, 7, 64, 1000, 4097])
def test_feistel_matches_a_python_loop_of_the_same_network(n):
    key = jax.random.key(n)
    round_keys = [int(k) for k in jax.random.bits(key, (ROUNDS,), jnp.uint32)]
    assert feistel_permutation(key, n).tolist() == _python_feistel(round_keys, n)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 5, 16, 17, 100, 8192, 8193, 262144])
def test_every_index_appears_once(n):
    p = np.asarray(feistel_permutation(jax.random.key(7), n))
    assert p.dtype == np.int32 and p.shape == (n,)
    np.testing.assert_array_equal(np.sort(p), np.arange(n))


def test_jit_vmap_and_determinism():
    keys = jax.random.split(jax.random.key(0), 3)
    batched = jax.jit(jax.vmap(lambda k: feistel_permutation(k, 100)))(keys)
    for k, row in zip(keys, batched):
        np.testing.assert_array_equal(row, feistel_permutation(k, 100))
    assert len({tuple(row.tolist()) for row in batched}) == 3  # keys give different orders


def _permutations(n, count):
    keys = jax.random.split(jax.random.key(123), count)
    return np.asarray(jax.jit(jax.vmap(lambda k: feistel_permutation(k, n)))(keys))


def test_each_index_is_equally_likely_at_each_position():
    n, count = 10, 20000
    perms = _permutations(n, count)
    counts = np.stack([np.bincount(perms[:, pos], minlength=n) for pos in range(n)])
    chi2 = ((counts - count / n) ** 2 / (count / n)).sum()
    # 81 degrees of freedom: the 99.9% quantile of chi-square(81) is ~124.
    assert chi2 < 124, chi2


def test_pairs_share_a_minibatch_as_under_a_uniform_shuffle():
    n, minibatches, count = 16, 4, 20000
    perms = _permutations(n, count)
    group = np.empty_like(perms)  # the minibatch each sample lands in
    rows = np.arange(count)[:, None]
    group[rows, perms] = np.arange(n)[None, :] // (n // minibatches)
    pairs = list(itertools.combinations(range(n), 2))
    together = np.array([(group[:, i] == group[:, j]).sum() for i, j in pairs])
    p = (n // minibatches - 1) / (n - 1)  # uniform shuffle: 3/15 for every pair
    expected = count * p
    chi2 = ((together - expected) ** 2 / (expected * (1 - p))).sum()
    # 120 pairs, not independent (each row's counts are fixed), so chi-square(120) bounds it
    # loosely: its 99.9% quantile is ~173.
    assert chi2 < 173, chi2


def test_sort_is_jax_random_permutation_and_unknown_methods_fail():
    key = jax.random.key(3)
    np.testing.assert_array_equal(permutation(key, 50, "sort"), jax.random.permutation(key, 50))
    np.testing.assert_array_equal(permutation(key, 50), feistel_permutation(key, 50))
    with pytest.raises(ValueError, match="feistel, sort"):
        permutation(key, 50, "random")
    with pytest.raises(ValueError, match="non-negative int"):
        feistel_permutation(key, -1)


def test_config_names_the_allowed_shuffles():
    assert Config().algorithm.shuffle == "feistel"
    with pytest.raises(ConfigError, match="'feistel' or 'sort'"):
        apply_overrides(Config(), ["algorithm.shuffle=random"])
