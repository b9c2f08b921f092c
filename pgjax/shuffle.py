"""Minibatch shuffles: a random permutation of ``arange(n)`` from a key, two ways.

PPO shuffles its ``T * N`` samples before each epoch (``algorithm.shuffle``):

* ``"feistel"`` (default): :func:`feistel_permutation`, a keyed pseudo-random permutation
  computed elementwise: each index is encrypted by an 8-round Feistel network on
  ``ceil(log2 n)`` bits (round function: MurmurHash3's 32-bit finaliser of the input and a
  round key; round keys from ``jax.random.bits``), and an index that lands at or past ``n``
  is encrypted again until it does not ("cycle walking", which keeps it a bijection of
  ``[0, n)``). O(n) integer arithmetic, no sort.
* ``"sort"``: :func:`jax.random.permutation`, which sorts ``n`` random keys (twice for
  ``n`` above ~1,600). Uniform over all ``n!`` permutations; the numbers pgjax gave before
  ``"feistel"`` existed.

Why the default is not the sort: on the CPU backend the two sorts of a
``jax.random.permutation`` of 8,192 samples took ~2.8 ms per epoch, 27% of PPO's
update at N = 64 (4 epochs x 4 minibatches, T = 128; benchmarks/RESULTS.md, "Against a
plain JAX reference"), more than all of its rollout. A Feistel permutation is not uniform over
permutations (it is one of at most ``2**256`` keyed bijections), but what a minibatch shuffle
needs from it holds and is tested (tests/test_shuffle.py): every index once, each index
equally likely at every position, pairs of indices in the same minibatch as often as under a
uniform shuffle, and unrelated permutations for different keys. Both are pure functions of the
key, so a run and its resume give the same numbers for a given choice.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

Array = jax.Array

METHODS = ("feistel", "sort")
ROUNDS = 8


def _mix(value: Array, round_key: Array) -> Array:
    """MurmurHash3's fmix32 of ``value`` combined with ``round_key`` (uint32 arithmetic)."""
    h = value * jnp.uint32(0x9E3779B9) ^ round_key
    h = h ^ (h >> 16)
    h = h * jnp.uint32(0x85EBCA6B)
    h = h ^ (h >> 13)
    h = h * jnp.uint32(0xC2B2AE35)
    return h ^ (h >> 16)


def feistel_permutation(key: Array, n: int, rounds: int = ROUNDS) -> Array:
    """A pseudo-random permutation of ``arange(n)`` (int32), elementwise: no sort.

    ``n`` is static. The indices' ``b = max(ceil(log2 n), 2)`` bits are split into a high and a
    low half; round ``i`` xors one half with a hash of the other and round key ``i`` (even
    rounds change the high half, odd rounds the low one), so each round, and the whole
    network, is a bijection of ``[0, 2**b)``; indices mapped to ``>= n`` (fewer than half of
    them) are mapped again until they fall below ``n``. See the module docstring for what this
    shuffle is and is not.

    >>> import jax
    >>> p = feistel_permutation(jax.random.key(0), 10)
    >>> sorted(p.tolist()) == list(range(10))
    True
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"feistel_permutation: n must be a non-negative int, got {n!r}")
    if n <= 1:
        return jnp.arange(n, dtype=jnp.int32)
    bits = max((n - 1).bit_length(), 2)
    low_bits = bits // 2
    low_mask, high_mask = jnp.uint32((1 << low_bits) - 1), jnp.uint32((1 << (bits - low_bits)) - 1)
    round_keys = jax.random.bits(key, (rounds,), jnp.uint32)

    def encrypt(x: Array) -> Array:
        high, low = x >> low_bits, x & low_mask
        for i in range(rounds):
            if i % 2 == 0:
                high = high ^ (_mix(low, round_keys[i]) & high_mask)
            else:
                low = low ^ (_mix(high, round_keys[i]) & low_mask)
        return (high << low_bits) | low

    first = encrypt(jnp.arange(n, dtype=jnp.uint32))
    # Cycle walking: an index that lands outside [0, n) follows its cycle of the bijection on
    # [0, 2**b) until it is back inside; every cycle through [0, n) returns there, so the
    # result is a bijection of [0, n). Fewer than half land outside, and each extra pass
    # halves that share on average.
    walked = jax.lax.while_loop(lambda y: jnp.any(y >= n),
                                lambda y: jnp.where(y >= n, encrypt(y), y), first)
    return walked.astype(jnp.int32)


def permutation(key: Array, n: int, method: str = "feistel") -> Array:
    """A random permutation of ``arange(n)`` by ``method``: ``"feistel"``
    (:func:`feistel_permutation`) or ``"sort"`` (:func:`jax.random.permutation`)."""
    if method == "feistel":
        return feistel_permutation(key, n)
    if method == "sort":
        return jax.random.permutation(key, n)
    raise ValueError(f"shuffle method must be one of {', '.join(METHODS)}; got {method!r}")
