"""Issue 14's contracts for the pure maths (pgjax.returns, pgjax.losses): no silent wrong
answers for people who call the estimators and losses from their own JAX code.

One test (or group) per finding of the issue: 1 meta-gradients, 4 flags and discounts,
5 bf16 accumulation, 6 loss shapes, 7 gamma/lambda ranges. Each failed on main before
this change (see the branch's commit message for which commit it was checked against).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax import (
    actor_critic_loss,
    discounted_returns,
    gae,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)


def _case(seed=0, t=12, n=3):
    rng = np.random.default_rng(seed)
    shape = (t, n)
    dones = rng.random(shape) < 0.2
    return dict(
        rewards=rng.normal(size=shape),
        values=rng.normal(size=shape),
        next_values=rng.normal(size=shape),
        terminated=dones & (rng.random(shape) < 0.5),
        dones=dones,
        log_probs=rng.normal(-1.0, 0.3, shape),
        old_log_probs=rng.normal(-1.0, 0.3, shape),
        values_pred=rng.normal(size=shape),
        entropy=rng.random(shape),
    )


# ----------------------------------------------------- finding 1: meta-gradients
def _outer_loss(c, gamma, lam, *, stop, ppo):
    adv, tgt = gae(c["rewards"], c["values"], c["next_values"], c["terminated"], c["dones"],
                   gamma, lam, stop_target_gradients=stop)
    extra = dict(old_log_probs=c["old_log_probs"], clip_eps=0.2) if ppo else {}
    loss, _ = actor_critic_loss(c["log_probs"], c["values_pred"], adv, tgt, c["entropy"],
                                value_coef=0.5, entropy_coef=0.01,
                                stop_target_gradients=stop, **extra)
    return loss


@pytest.mark.parametrize("ppo", [False, True], ids=["a2c", "ppo"])
def test_meta_gradient_wrt_gamma_and_lambda_matches_finite_differences(ppo):
    with jax.enable_x64(True):
        c = {k: jnp.asarray(v) for k, v in _case().items()}  # float64 and bool
        gamma, lam, h = 0.9, 0.8, 1e-6
        grad = jax.grad(lambda g, l: _outer_loss(c, g, l, stop=False, ppo=ppo), argnums=(0, 1))
        d_gamma, d_lam = (float(x) for x in grad(gamma, lam))

        def f(g, l):
            return float(_outer_loss(c, g, l, stop=False, ppo=ppo))

        fd_gamma = (f(gamma + h, lam) - f(gamma - h, lam)) / (2 * h)
        fd_lam = (f(gamma, lam + h) - f(gamma, lam - h)) / (2 * h)
        assert abs(d_gamma) > 1e-3 and abs(d_lam) > 1e-3  # a real signal, not 0 == 0
        np.testing.assert_allclose(d_gamma, fd_gamma, rtol=1e-6)
        np.testing.assert_allclose(d_lam, fd_lam, rtol=1e-6)
        # The default keeps advantages and targets constant: exactly zero.
        grad_default = jax.grad(lambda g, l: _outer_loss(c, g, l, stop=True, ppo=ppo),
                                argnums=(0, 1))(gamma, lam)
        assert [float(x) for x in grad_default] == [0.0, 0.0]


def test_meta_gradient_in_float32_under_jit():
    """What the trainer's dtypes would give: float32 inputs, traced gamma and lambda."""
    c = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in _case().items()}
    loss = jax.jit(lambda g, l: _outer_loss(c, g, l, stop=False, ppo=False))
    d_gamma, d_lam = jax.jit(jax.grad(loss, argnums=(0, 1)))(0.9, 0.8)
    with jax.enable_x64(True):
        c64 = {k: jnp.asarray(v) for k, v in _case().items()}
        want = jax.grad(lambda g, l: _outer_loss(c64, g, l, stop=False, ppo=False),
                        argnums=(0, 1))(0.9, 0.8)
    np.testing.assert_allclose([d_gamma, d_lam], [float(w) for w in want], rtol=1e-4)


def test_stop_target_gradients_false_on_each_loss():
    """Each loss differentiates through its advantages/targets when asked, never through
    the behaviour policy's old log-probs or the behaviour critic's old values."""
    c = {k: jnp.asarray(v, jnp.float32) for k, v in _case().items() if k not in ("dones",
                                                                                 "terminated")}
    lp, adv, n = c["log_probs"], c["rewards"], c["rewards"].size
    g = jax.grad(lambda a: policy_gradient_loss(lp, a, stop_target_gradients=False))(adv)
    np.testing.assert_allclose(g, -lp / n, rtol=1e-6)
    assert not np.any(jax.grad(lambda a: policy_gradient_loss(lp, a))(adv))

    v, tgt = c["values_pred"], c["values"]
    g = jax.grad(lambda t: value_loss(v, t, stop_target_gradients=False))(tgt)
    np.testing.assert_allclose(g, -(v - tgt) / n, rtol=1e-5)

    def ppo(a, old):
        return ppo_clip_loss(lp, old, a, 0.2, stop_target_gradients=False)[0]

    g_adv, g_old = jax.grad(ppo, argnums=(0, 1))(adv, c["old_log_probs"])
    ratio = np.exp(lp - c["old_log_probs"])
    kept = np.where(adv > 0, np.minimum(ratio, 1.2), np.maximum(ratio, 0.8))
    np.testing.assert_allclose(g_adv, -kept / n, rtol=1e-5)
    np.testing.assert_array_equal(g_old, 0.0)

    def clipped_value(t, old_v):
        return value_loss(v, t, old_values=old_v, clip_eps=0.1, stop_target_gradients=False)

    g_t, g_old_v = jax.grad(clipped_value, argnums=(0, 1))(tgt, c["next_values"])
    assert np.any(g_t != 0.0)
    np.testing.assert_array_equal(g_old_v, 0.0)


# --------------------------------------------------- finding 4: episode flags
@pytest.mark.parametrize("which", ["dones", "terminated"])
def test_float_flags_are_rejected_with_what_to_pass(which):
    c = _case()
    flags = dict(terminated=c["terminated"], dones=c["dones"])
    # rlax-style discounts where a flag belongs: 0.99 * (1 - done).
    flags[which] = (0.99 * (1.0 - flags[which])).astype(np.float32)
    with pytest.raises(ValueError, match=rf"{which}.*bool.*rlax"):
        gae(c["rewards"], c["values"], c["next_values"], flags["terminated"], flags["dones"],
            0.99, 0.95)
    if which == "dones":
        with pytest.raises(ValueError, match=r"dones.*bool.*rlax"):
            discounted_returns(c["rewards"], flags["dones"], 0.99)
        # Float 0/1 "dones" are refused too, not only discounts.
        with pytest.raises(ValueError, match="dones"):
            discounted_returns(c["rewards"], c["dones"].astype(np.float32), 0.99)


def test_integer_flags_must_be_zero_or_one_when_concrete():
    c = _case()
    ints = c["dones"].astype(np.int32)
    want = discounted_returns(c["rewards"], c["dones"], 0.9)
    np.testing.assert_array_equal(discounted_returns(c["rewards"], ints, 0.9), want)
    with pytest.raises(ValueError, match=r"dones must be 0 or 1.*\[2\]"):
        discounted_returns(c["rewards"], ints * 2, 0.9)
    with pytest.raises(ValueError, match="terminated must be 0 or 1"):
        gae(c["rewards"], c["values"], c["next_values"], -c["terminated"].astype(np.int32),
            c["dones"], 0.9, 0.9)
    # Traced integer flags cannot be checked, and still work.
    traced = jax.jit(discounted_returns)(c["rewards"], ints, 0.9)
    np.testing.assert_array_equal(traced, want)


def test_terminated_implies_done_in_gae():
    """A terminal step left out of ``dones`` still ends its episode: the recursion stops at
    ``dones | terminated`` (before: the next episode's advantages leaked into it)."""
    c = _case(seed=3)
    args = (c["rewards"], c["values"], c["next_values"])
    terminated = c["terminated"].copy()
    terminated[4] = True
    without = gae(*args, terminated, np.zeros_like(terminated), 0.9, 0.95)
    explicit = gae(*args, terminated, terminated, 0.9, 0.95)
    for a, b in zip(without, explicit):
        np.testing.assert_array_equal(a, b)


# --------------------------------------- finding 5: accumulate in at least float32
def test_bf16_rewards_accumulate_in_float32():
    rewards = jnp.ones(500, jnp.bfloat16)
    no = jnp.zeros(500, bool)
    g0 = (1 - 0.99**500) / (1 - 0.99)  # 99.343...
    out = discounted_returns(rewards, no, 0.99)
    assert out.dtype == jnp.bfloat16  # bf16 in, bf16 out, computed in float32
    assert float(out[0]) == float(jnp.bfloat16(g0))  # one rounding, at the end (not 64.0)
    # gamma 0.999, T=1000: 632.3, not 256.
    out = discounted_returns(jnp.ones(1000, jnp.bfloat16), jnp.zeros(1000, bool), 0.999)
    assert float(out[0]) == float(jnp.bfloat16((1 - 0.999**1000) / (1 - 0.999)))

    # gae: bf16 rewards with float32 values promote to float32 (not downcast to bf16).
    values = jnp.zeros(500, jnp.float32)
    adv, tgt = gae(rewards, values, values, no, no, 0.99, 1.0)
    assert adv.dtype == tgt.dtype == jnp.float32
    np.testing.assert_allclose(float(tgt[0]), g0, rtol=1e-5)
    # bf16 everything: bf16 results, rounded once.
    adv, tgt = gae(rewards, values.astype(jnp.bfloat16), values.astype(jnp.bfloat16), no, no,
                   0.99, 1.0)
    assert adv.dtype == tgt.dtype == jnp.bfloat16
    assert float(tgt[0]) == float(jnp.bfloat16(g0))
    # bf16 rewards with a float32 bootstrap: float32.
    out = discounted_returns(rewards, no, 0.99, bootstrap=jnp.float32(0.0))
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(float(out[0]), g0, rtol=1e-5)


def test_float32_inputs_keep_float32_and_their_numbers():
    c = _case(seed=5)
    f32 = {k: (v.astype(np.float32) if v.dtype == np.float64 else v) for k, v in c.items()}
    adv, tgt = gae(f32["rewards"], f32["values"], f32["next_values"], f32["terminated"],
                   f32["dones"], 0.99, 0.95)
    assert adv.dtype == tgt.dtype == jnp.float32
    out = discounted_returns(f32["rewards"].astype(np.int32), f32["dones"], 0.9)
    assert out.dtype == jnp.float32  # integer rewards: JAX's default float


# ------------------------------------------------------ finding 6: loss shapes
def test_losses_refuse_mismatched_shapes_instead_of_broadcasting():
    t, n = 6, 4
    lp, adv, v = jnp.zeros((t, n)), jnp.ones((t, n)), jnp.zeros((t, n))
    with pytest.raises(AssertionError, match="actor_critic_loss.*entropy"):
        actor_critic_loss(lp, v, adv, v, jnp.ones(t))  # entropy [T] vs log-probs [T, N]
    with pytest.raises(AssertionError, match="actor_critic_loss"):
        actor_critic_loss(lp, None, jnp.ones(t), None, jnp.ones((t, n)))
    with pytest.raises(AssertionError, match="actor_critic_loss"):
        actor_critic_loss(lp, jnp.zeros(t), adv, jnp.zeros(t), jnp.ones((t, n)))
    with pytest.raises(AssertionError, match="policy_gradient_loss"):
        policy_gradient_loss(jnp.zeros((t, t)), jnp.ones(t))  # [T] vs [T, T]
    with pytest.raises(AssertionError, match="policy_gradient_loss"):
        policy_gradient_loss(jnp.zeros((t, n)), 1.0)
    with pytest.raises(AssertionError, match="ppo_clip_loss"):
        ppo_clip_loss(jnp.zeros((t, t)), jnp.zeros((t, t)), jnp.ones(t), 0.2)
    # Equal shapes, any rank, still work (a scalar with a scalar too).
    assert float(policy_gradient_loss(jnp.float32(-1.0), 2.0)) == 2.0


def test_actor_critic_loss_needs_old_log_probs_and_clip_eps_together():
    """(Already true on main since 4f4e7ad; kept as the contract's test.)"""
    lp = jnp.zeros(5)
    with pytest.raises(ValueError, match="old_log_probs given without clip_eps"):
        actor_critic_loss(lp, None, lp, None, lp, old_log_probs=lp)
    with pytest.raises(ValueError, match="clip_eps given without old_log_probs"):
        actor_critic_loss(lp, None, lp, None, lp, clip_eps=0.2)


# ------------------------------------------------- finding 7: gamma and lambda
@pytest.mark.parametrize("gamma, lam, bad", [(1.5, 0.9, "gamma"), (-0.5, 0.9, "gamma"),
                                             (0.9, 2.0, "lam"), (float("nan"), 0.9, "gamma"),
                                             (0.9, -0.1, "lam")])
def test_concrete_gamma_and_lambda_outside_unit_interval_are_rejected(gamma, lam, bad):
    c = _case()
    with pytest.raises(ValueError, match=rf"gae: {bad} must be in \[0, 1\]"):
        gae(c["rewards"], c["values"], c["next_values"], c["terminated"], c["dones"], gamma, lam)
    with pytest.raises(ValueError, match=rf"gae: {bad} must be in \[0, 1\]"):
        gae(c["rewards"], c["values"], c["next_values"], c["terminated"], c["dones"],
            jnp.float32(gamma), np.float64(lam))
    if bad == "gamma":
        with pytest.raises(ValueError, match=r"discounted_returns: gamma must be in \[0, 1\]"):
            discounted_returns(c["rewards"], c["dones"], gamma)


def test_edges_and_traced_discounts_are_accepted():
    c = _case()
    args = (c["rewards"], c["values"], c["next_values"], c["terminated"], c["dones"])
    for gamma, lam in [(0.0, 0.0), (1.0, 1.0), (jnp.float32(1.0), np.float32(0.0))]:
        gae(*args, gamma, lam)
        discounted_returns(c["rewards"], c["dones"], gamma)
    # Traced (jit, vmap): cannot be checked, so they are not (the caller's responsibility).
    jax.jit(gae)(*args, 0.99, 0.95)
    out = jax.vmap(lambda g: discounted_returns(c["rewards"], c["dones"], g))(
        jnp.array([0.5, 1.0]))
    assert out.shape == (2, *c["rewards"].shape)
