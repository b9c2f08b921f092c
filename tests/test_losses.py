"""pgjax.losses against NumPy references, exact gradients and unbiasedness."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax import (
    actor_critic_loss,
    discounted_returns,
    entropy_bonus,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)

RNG = np.random.default_rng(0)


def _masked_mean_np(x, mask):
    x = np.asarray(x, np.float64)
    return x.mean() if mask is None else x[np.asarray(mask, bool)].mean()


def _data(shape=(9, 4), seed=0):
    rng = np.random.default_rng(seed)
    return dict(
        log_probs=rng.normal(-1.0, 0.5, shape).astype(np.float32),
        old_log_probs=rng.normal(-1.0, 0.5, shape).astype(np.float32),
        advantages=rng.normal(size=shape).astype(np.float32),
        values=rng.normal(size=shape).astype(np.float32),
        old_values=rng.normal(size=shape).astype(np.float32),
        targets=rng.normal(size=shape).astype(np.float32),
        entropy=rng.random(shape).astype(np.float32),
        mask=rng.random(shape) < 0.7,
    )


# ------------------------------------------------------------- plain values
@pytest.mark.parametrize("use_mask", [False, True])
def test_losses_match_numpy(use_mask):
    d = _data()
    mask = d["mask"] if use_mask else None
    np.testing.assert_allclose(
        policy_gradient_loss(d["log_probs"], d["advantages"], mask),
        _masked_mean_np(-d["log_probs"] * d["advantages"], mask),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        value_loss(d["values"], d["targets"], mask),
        0.5 * _masked_mean_np((d["values"] - d["targets"]) ** 2, mask),
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        entropy_bonus(d["entropy"], mask), _masked_mean_np(d["entropy"], mask), rtol=1e-5
    )


def test_clipped_value_loss_matches_loop():
    d = _data(shape=(40,))
    eps = 0.2
    expected = 0.0
    for v, vo, t in zip(d["values"], d["old_values"], d["targets"]):
        clipped = vo + min(max(v - vo, -eps), eps)
        expected += max((v - t) ** 2, (clipped - t) ** 2)
    expected = 0.5 * expected / 40
    out = value_loss(d["values"], d["targets"], old_values=d["old_values"], clip_eps=eps)
    np.testing.assert_allclose(out, expected, rtol=1e-5)


@pytest.mark.parametrize("use_mask", [False, True])
def test_ppo_clip_loss_matches_loop(use_mask):
    d = _data(shape=(60,))
    mask = d["mask"] if use_mask else np.ones(60, bool)
    eps = 0.2
    terms, clipped, kls = [], [], []
    for lp, olp, a, m in zip(d["log_probs"], d["old_log_probs"], d["advantages"], mask):
        if not m:
            continue
        ratio = float(np.exp(np.float64(lp) - np.float64(olp)))
        terms.append(min(ratio * a, min(max(ratio, 1 - eps), 1 + eps) * a))
        clipped.append(abs(ratio - 1) > eps)
        kls.append((ratio - 1) - np.log(ratio))
    loss, metrics = ppo_clip_loss(
        d["log_probs"], d["old_log_probs"], d["advantages"], eps, mask if use_mask else None
    )
    np.testing.assert_allclose(loss, -np.mean(terms), rtol=1e-5)
    np.testing.assert_allclose(metrics["clip_fraction"], np.mean(clipped), rtol=1e-6)
    np.testing.assert_allclose(metrics["approx_kl"], np.mean(kls), rtol=1e-4, atol=1e-7)


def test_actor_critic_loss_is_sum_of_parts():
    d = _data()
    loss, m = actor_critic_loss(
        d["log_probs"], d["values"], d["advantages"], d["targets"], d["entropy"],
        value_coef=0.25, entropy_coef=0.1, mask=d["mask"],
    )
    expected = (
        policy_gradient_loss(d["log_probs"], d["advantages"], d["mask"])
        + 0.25 * value_loss(d["values"], d["targets"], d["mask"])
        - 0.1 * entropy_bonus(d["entropy"], d["mask"])
    )
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    np.testing.assert_allclose(m["loss"], loss)
    # PPO variant and no-critic variant.
    loss, m = actor_critic_loss(
        d["log_probs"], d["values"], d["advantages"], d["targets"], d["entropy"],
        value_coef=0.5, entropy_coef=0.0, old_log_probs=d["old_log_probs"], clip_eps=0.2,
        old_values=d["old_values"], value_clip_eps=0.3,
    )
    expected = ppo_clip_loss(d["log_probs"], d["old_log_probs"], d["advantages"], 0.2)[0] + (
        0.5 * value_loss(d["values"], d["targets"], old_values=d["old_values"], clip_eps=0.3)
    )
    np.testing.assert_allclose(loss, expected, rtol=1e-6)
    assert {"clip_fraction", "approx_kl"} <= set(m)
    loss, m = actor_critic_loss(d["log_probs"], None, d["advantages"], None, d["entropy"])
    np.testing.assert_allclose(loss, policy_gradient_loss(d["log_probs"], d["advantages"]))
    assert float(m["value_loss"]) == 0.0


# ---------------------------------------------------------------- gradients
def test_softmax_policy_gradient_closed_form():
    """For pi = softmax(theta), grad_theta log pi(a) = onehot(a) - pi, so
    grad L = -mean_i A_i (onehot(a_i) - pi)."""
    theta = jnp.array([0.3, -1.0, 0.5])
    actions = np.array([0, 2, 2, 1, 0])
    adv = np.array([1.0, -0.5, 2.0, 0.3, -1.2], np.float32)

    def loss(theta):
        log_pi = jax.nn.log_softmax(theta)
        return policy_gradient_loss(log_pi[actions], adv)

    pi = np.exp(theta) / np.exp(theta).sum()
    expected = -np.mean(adv[:, None] * (np.eye(3)[actions] - pi[None]), axis=0)
    np.testing.assert_allclose(jax.grad(loss)(theta), expected, rtol=1e-5, atol=1e-7)


def test_ppo_gradient_equals_policy_gradient_at_ratio_one():
    d = _data(shape=(30,))
    g_ppo = jax.grad(lambda lp: ppo_clip_loss(lp, d["log_probs"], d["advantages"], 0.2)[0])
    g_pg = jax.grad(lambda lp: policy_gradient_loss(lp, d["advantages"]))
    np.testing.assert_allclose(g_ppo(d["log_probs"]), g_pg(d["log_probs"]), rtol=1e-5)


def test_ppo_clipped_entries_have_no_gradient():
    # ratio 1.5 with A > 0 and ratio 0.5 with A < 0 are clipped: zero gradient.
    old = jnp.log(jnp.array([0.4, 0.4, 0.4]))
    lp = jnp.log(jnp.array([0.6, 0.2, 0.44]))
    adv = jnp.array([1.0, -1.0, 1.0])
    g = jax.grad(lambda lp: ppo_clip_loss(lp, old, adv, 0.2)[0])(lp)
    np.testing.assert_allclose(g[:2], 0.0)
    assert g[2] != 0.0


def test_no_gradient_reaches_advantages_targets_or_old_values():
    d = _data()

    def total(adv, tgt, old_lp, old_v):
        l1 = policy_gradient_loss(d["log_probs"], adv)
        l2 = value_loss(d["values"], tgt, old_values=old_v, clip_eps=0.2)
        l3, _ = ppo_clip_loss(d["log_probs"], old_lp, adv, 0.2)
        l4, _ = actor_critic_loss(d["log_probs"], d["values"], adv, tgt, d["entropy"],
                                  old_log_probs=old_lp, clip_eps=0.2)
        return l1 + l2 + l3 + l4

    grads = jax.grad(total, argnums=(0, 1, 2, 3))(
        d["advantages"], d["targets"], d["old_log_probs"], d["old_values"]
    )
    for g in grads:
        np.testing.assert_array_equal(g, 0.0)


def test_masked_entries_change_neither_loss_nor_gradient():
    d = _data()
    mask = d["mask"]
    garbage = {k: np.where(mask, v, 1e6).astype(v.dtype) for k, v in d.items() if k != "mask"}

    def loss(lp, v, ent, src):
        out, _ = actor_critic_loss(
            lp, v, src["advantages"], src["targets"], ent, value_coef=0.5,
            entropy_coef=0.1, mask=mask, old_log_probs=src["old_log_probs"], clip_eps=0.2,
        )
        return out

    args = lambda s: (s["log_probs"], s["values"], s["entropy"], s)  # noqa: E731
    np.testing.assert_allclose(loss(*args(garbage)), loss(*args(d)), rtol=1e-6)
    g_clean = jax.grad(loss, argnums=(0, 1, 2))(*args(d))
    g_garbage = jax.grad(loss, argnums=(0, 1, 2))(*args(garbage))
    for a, b in zip(g_clean, g_garbage):
        np.testing.assert_allclose(a, b, rtol=1e-6)
        np.testing.assert_array_equal(np.asarray(a)[~mask], 0.0)


def test_losses_under_jit_and_vmap():
    d = _data(shape=(5, 6, 7))
    per_batch = jax.vmap(policy_gradient_loss, in_axes=(1, 1, 1))(
        d["log_probs"], d["advantages"], d["mask"]
    )
    for i in range(6):
        np.testing.assert_allclose(
            per_batch[i],
            _masked_mean_np(-d["log_probs"][:, i] * d["advantages"][:, i], d["mask"][:, i]),
            rtol=1e-5,
        )
    jitted = jax.jit(ppo_clip_loss)(d["log_probs"], d["old_log_probs"], d["advantages"], 0.1)
    eager = ppo_clip_loss(d["log_probs"], d["old_log_probs"], d["advantages"], 0.1)
    np.testing.assert_allclose(jitted[0], eager[0], rtol=1e-6)


# ------------------------------------------------------------- unbiasedness
def _mean_and_stderr(samples):
    samples = np.asarray(samples, np.float64)
    return samples.mean(0), samples.std(0, ddof=1) / np.sqrt(samples.shape[0])


def _bandit_gradients(baseline, num_batches=4000, batch=32, seed=0):
    """Per-batch gradient estimates of J(theta) = sum_a pi(a) mu(a) for a
    4-armed softmax bandit with N(mu(a), 1) rewards, and the exact gradient."""
    theta = jnp.array([0.2, -0.4, 0.7, 0.0])
    mu = jnp.array([5.0, 5.5, 4.5, 6.0])  # large common offset: baselines matter

    def estimate(key):
        k1, k2 = jax.random.split(key)
        actions = jax.random.categorical(k1, theta, shape=(batch,))
        rewards = mu[actions] + jax.random.normal(k2, (batch,))
        adv = rewards - baseline(theta, mu, actions)

        def loss(th):
            return policy_gradient_loss(jax.nn.log_softmax(th)[actions], adv)

        return -jax.grad(loss)(theta)  # ascent direction: estimates grad J

    keys = jax.random.split(jax.random.key(seed), num_batches)
    grads = jax.jit(jax.vmap(estimate))(keys)
    pi = np.exp(np.float64(theta)) / np.exp(np.float64(theta)).sum()
    mu64 = np.float64(mu)
    exact = pi * (mu64 - pi @ mu64)  # d/dtheta_j sum_a pi_a mu_a
    return np.asarray(grads), exact


def test_policy_gradient_is_unbiased_and_baseline_reduces_variance_bandit():
    no_base, exact = _bandit_gradients(lambda th, mu, a: 0.0)
    mean, se = _mean_and_stderr(no_base)
    assert np.all(np.abs(mean - exact) < 4.5 * se), (mean, exact, se)

    state_value = lambda th, mu, a: jax.nn.softmax(th) @ mu  # noqa: E731
    with_base, _ = _bandit_gradients(state_value, seed=1)
    mean_b, se_b = _mean_and_stderr(with_base)
    assert np.all(np.abs(mean_b - exact) < 4.5 * se_b), (mean_b, exact, se_b)
    # Variance of the estimator (summed over parameters) drops sharply.
    var, var_b = no_base.var(0, ddof=1).sum(), with_base.var(0, ddof=1).sum()
    assert var_b < 0.2 * var, (var_b, var)


def test_unbiasedness_check_detects_a_biased_estimator():
    """The tolerance above has power: an action-dependent 'baseline' (the arm's
    own mean reward) leaves pure noise, whose expected gradient is 0, not grad J."""
    biased, exact = _bandit_gradients(lambda th, mu, a: mu[a], seed=2)
    mean, se = _mean_and_stderr(biased)
    assert np.any(np.abs(mean - exact) > 10 * se)


# A 3-state, 2-action episodic MDP with random termination and a horizon of
# H steps. J(theta) = E[sum_t gamma^t r_t] for a tabular softmax policy.
S, A, H, GAMMA = 3, 2, 4, 0.9
_m = np.random.default_rng(42)
P = _m.dirichlet(np.ones(S), size=(S, A))  # P[s, a, s']
R = _m.normal(1.0, 1.0, size=(S, A))  # mean reward of (s, a)
P_TERM = np.array([[0.1, 0.4], [0.3, 0.0], [0.2, 0.5]])
THETA = np.array([[0.5, -0.2], [0.0, 0.3], [-0.6, 0.1]])


def _exact_values(theta):
    """Float64 dynamic programming: V[t, s] for t = 0..H (V[H] = 0)."""
    pi = np.exp(theta) / np.exp(theta).sum(1, keepdims=True)
    v = np.zeros((H + 1, S))
    for t in reversed(range(H)):
        q = R + GAMMA * (1 - P_TERM) * (P @ v[t + 1])
        v[t] = (pi * q).sum(1)
    return v


def _exact_gradient(theta, s0_probs):
    """Central finite differences of the float64 DP objective."""
    j = lambda th: s0_probs @ _exact_values(th)[0]  # noqa: E731
    grad = np.zeros_like(theta)
    for idx in np.ndindex(*theta.shape):
        e = np.zeros_like(theta)
        e[idx] = 1e-6
        grad[idx] = (j(theta + e) - j(theta - e)) / 2e-6
    return grad


def _mdp_gradients(use_baseline, num_batches=3000, batch=32, seed=0):
    s0_probs = np.array([0.5, 0.3, 0.2])
    v_exact = jnp.asarray(_exact_values(THETA)[:H], jnp.float32)  # [H, S]
    theta = jnp.asarray(THETA, jnp.float32)
    disc = GAMMA ** jnp.arange(H, dtype=jnp.float32)[:, None]
    r_mean, p_term, p_next = (jnp.asarray(x, jnp.float32) for x in (R, P_TERM, P))

    def episode(key):
        def step(carry, key):
            s, alive = carry
            ka, kr, kt, ks = jax.random.split(key, 4)
            a = jax.random.categorical(ka, theta[s])
            r = r_mean[s, a] + jax.random.normal(kr)
            term = jax.random.uniform(kt) < p_term[s, a]
            s_next = jax.random.choice(ks, S, p=p_next[s, a])
            out = (s, a, r * alive, alive)
            return (s_next, alive & ~term), (out, term)

        k0, key = jax.random.split(key)
        s0 = jax.random.choice(k0, S, p=jnp.asarray(s0_probs))
        (_, _), ((s, a, r, alive), term) = jax.lax.scan(
            step, (s0, jnp.array(True)), jax.random.split(key, H)
        )
        return s, a, r.astype(jnp.float32), alive, term

    def estimate(key):
        s, a, r, alive, term = jax.vmap(episode, out_axes=1)(jax.random.split(key, batch))
        dones = (term & alive).at[-1].set(True)  # the horizon ends every episode
        returns = discounted_returns(r, dones, GAMMA)  # [H, batch]
        baseline = v_exact[jnp.arange(H)[:, None], s] if use_baseline else 0.0
        # Policy gradient theorem for the discounted objective: gamma^t (G_t - b).
        # Steps after termination carry zero advantage; the mean over all H * batch
        # entries times H is the per-episode sum, so the estimate stays exact.
        adv = disc * (returns - baseline) * alive

        def loss(th):
            log_pi = jax.nn.log_softmax(th)[s, a]
            return H * policy_gradient_loss(log_pi, adv)

        return -jax.grad(loss)(theta)

    keys = jax.random.split(jax.random.key(seed), num_batches)
    grads = jax.jit(jax.vmap(estimate))(keys).reshape(num_batches, -1)
    return np.asarray(grads), _exact_gradient(THETA, s0_probs).reshape(-1)


def test_reward_to_go_policy_gradient_is_unbiased_on_tabular_mdp():
    no_base, exact = _mdp_gradients(use_baseline=False)
    mean, se = _mean_and_stderr(no_base)
    assert np.all(np.abs(mean - exact) < 4.5 * se), (mean, exact, se)

    with_base, _ = _mdp_gradients(use_baseline=True, seed=1)
    mean_b, se_b = _mean_and_stderr(with_base)
    assert np.all(np.abs(mean_b - exact) < 4.5 * se_b), (mean_b, exact, se_b)
    var, var_b = no_base.var(0, ddof=1).sum(), with_base.var(0, ddof=1).sum()
    assert var_b < 0.7 * var, (var_b, var)
