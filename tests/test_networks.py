"""pgjax.networks: shapes, parameter layout, initialisation, options and errors."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.distributions import Categorical, DiagGaussian
from pgjax.networks import Networks, action_scale, env_action, make_networks
from pgjax.types import BoxSpace, DiscreteSpace, EnvSpec

CARTPOLE = EnvSpec("CartPole-v1", (4,), DiscreteSpace(2), 500)
PENDULUM = EnvSpec("Pendulum-v1", (3,), BoxSpace((1,), -2.0, 2.0), 200)
MINATAR = EnvSpec("Breakout-MinAtar", (10, 10, 4), DiscreteSpace(3), 1000)
FROZEN_LAKE = EnvSpec("FrozenLake-misc", (), DiscreteSpace(4), 100, obs_num_values=16)
SPECS = {"cartpole": CARTPOLE, "pendulum": PENDULUM, "minatar": MINATAR}
LEADING_DIMS = [(), (7,), (5, 3)]
LAYOUTS = {
    "separate": dict(shared_trunk=False, use_critic=True),
    "shared": dict(shared_trunk=True, use_critic=True),
    "no_critic": dict(shared_trunk=False, use_critic=False),
}
ACTIVATIONS = ["tanh", "relu", "gelu", "elu", "silu"]


@pytest.fixture(autouse=True)
def _strict_rank_promotion():
    with jax.numpy_rank_promotion("raise"):
        yield


def _obs(spec, leading, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.normal(size=(*leading, *spec.obs_shape)), jnp.float32)


def _check_dist(spec, dist, leading):
    if spec.discrete:
        assert isinstance(dist, Categorical)
        assert dist.logits.shape == (*leading, spec.action_space.n)
    else:
        assert isinstance(dist, DiagGaussian)
        d = spec.action_space.shape[0]
        assert dist.mean.shape == (*leading, d)
        assert dist.log_std.shape == (*leading, d)


def _outputs(nets, params, obs):
    """Everything a trainer calls, traced once under jit."""
    dist, value = nets.apply(params, obs)
    log_prob = dist.log_prob(dist.sample(jax.random.key(1)))
    return dist, value, log_prob, dist.entropy(), nets.actor(params, obs), nets.critic(params, obs)


def _check_outputs(spec, outputs, leading):
    dist, value, log_prob, entropy, actor_dist, critic_value = outputs
    _check_dist(spec, dist, leading)
    _check_dist(spec, actor_dist, leading)
    for x in (value, log_prob, entropy, critic_value):
        assert x.shape == leading and x.dtype == jnp.float32


# ---------------------------------------------------------------- shapes and layout
@pytest.mark.parametrize("spec_name", SPECS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_output_shapes_for_any_leading_dims(spec_name, layout):
    spec = SPECS[spec_name]
    nets = make_networks(spec, **LAYOUTS[layout])
    assert isinstance(nets, Networks) and nets.spec == spec
    params = nets.init(jax.random.key(0))
    for leading in LEADING_DIMS[:-1]:  # shapes only: abstract evaluation, no compile
        outputs = jax.eval_shape(functools.partial(_outputs, nets), params, _obs(spec, leading))
        _check_outputs(spec, outputs, leading)
    leading = LEADING_DIMS[-1]
    outputs = jax.jit(_outputs, static_argnums=0)(nets, params, _obs(spec, leading))
    _check_outputs(spec, outputs, leading)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(outputs))


@pytest.mark.parametrize(
    "layout, keys",
    [("separate", ["actor", "critic"]), ("shared", ["shared"]), ("no_critic", ["actor"])],
)
def test_param_layout(layout, keys):
    params = make_networks(CARTPOLE, **LAYOUTS[layout]).init(jax.random.key(0))
    assert type(params) is dict and sorted(params) == keys
    assert all(isinstance(x, jax.Array) for x in jax.tree.leaves(params))


def test_separate_networks_are_two_mlps():
    params = make_networks(CARTPOLE).init(jax.random.key(0))
    actor = params["actor"]
    assert sorted(actor) == ["hidden_0", "hidden_1", "policy"]
    assert sorted(params["critic"]) == ["hidden_0", "hidden_1", "value"]
    assert actor["hidden_0"]["kernel"].shape == (4, 64)
    assert actor["policy"]["kernel"].shape == (64, 2)
    assert params["critic"]["value"]["kernel"].shape == (64, 1)


def test_shared_trunk_has_one_trunk_and_two_heads():
    nets = make_networks(PENDULUM, shared_trunk=True)
    params = nets.init(jax.random.key(0))
    assert sorted(params["shared"]) == ["hidden_0", "hidden_1", "log_std", "policy", "value"]
    obs = _obs(PENDULUM, (6,))
    dist, value = nets.apply(params, obs)
    np.testing.assert_allclose(nets.actor(params, obs).mean, dist.mean, rtol=1e-6)
    np.testing.assert_allclose(nets.critic(params, obs), value, rtol=1e-6)


def test_actor_gradient_does_not_touch_critic_params():
    nets = make_networks(CARTPOLE)
    params = nets.init(jax.random.key(0))
    obs = _obs(CARTPOLE, (8,))

    def loss(p):
        return -nets.actor(p, obs).log_prob(jnp.zeros(8, jnp.int32)).mean()

    grads = jax.grad(loss)(params)
    assert all(np.all(g == 0) for g in jax.tree.leaves(grads["critic"]))
    assert any(np.any(g != 0) for g in jax.tree.leaves(grads["actor"]))


def test_no_critic_returns_zero_values():
    nets = make_networks(PENDULUM, use_critic=False)
    params = nets.init(jax.random.key(0))
    obs = _obs(PENDULUM, (5, 3))
    np.testing.assert_array_equal(nets.critic(params, obs), np.zeros((5, 3)))
    _, value = nets.apply(params, obs)
    np.testing.assert_array_equal(value, np.zeros((5, 3)))


def test_init_and_actor_vmap_over_seeds():
    nets = make_networks(CARTPOLE)
    keys = jax.random.split(jax.random.key(0), 3)
    shapes = jax.eval_shape(jax.vmap(nets.init), keys)
    assert shapes["actor"]["hidden_0"]["kernel"].shape == (3, 4, 64)
    params = jax.tree.map(lambda *x: jnp.stack(x), *[nets.init(k) for k in keys])
    obs = _obs(CARTPOLE, (8,))
    logits = jax.vmap(nets.actor, in_axes=(0, None))(params, obs).logits
    assert logits.shape == (3, 8, 2)
    np.testing.assert_allclose(logits[1], nets.actor(nets.init(keys[1]), obs).logits, atol=1e-6)


# ---------------------------------------------------------------- initialisation
def test_initial_discrete_policy_is_near_uniform():
    for spec in (CARTPOLE, MINATAR):
        nets = make_networks(spec)
        dist = nets.actor(nets.init(jax.random.key(0)), _obs(spec, (64,)))
        n = spec.action_space.n
        np.testing.assert_allclose(dist.probs(), np.full((64, n), 1.0 / n), atol=0.02)


@pytest.mark.parametrize("layout", ["separate", "shared"])
def test_gaussian_log_std_starts_at_log_std_init(layout):
    nets = make_networks(PENDULUM, log_std_init=-0.7, **LAYOUTS[layout])
    params = nets.init(jax.random.key(0))
    top = "actor" if layout == "separate" else "shared"
    np.testing.assert_allclose(params[top]["log_std"], [-0.7])
    dist = nets.actor(params, _obs(PENDULUM, (4,)))
    np.testing.assert_allclose(dist.log_std, np.full((4, 1), -0.7), rtol=1e-6)
    assert np.all(np.abs(np.asarray(dist.mean)) < 0.2)  # policy_init_scale=0.01


def _assert_orthogonal(kernel, scale):
    w = np.asarray(kernel, np.float64)
    np.testing.assert_allclose(w.T @ w, scale**2 * np.eye(w.shape[1]), atol=1e-4)


def test_orthogonal_init_scales_and_zero_biases():
    params = make_networks(
        CARTPOLE, hidden_init_scale=np.sqrt(2), policy_init_scale=0.01, value_init_scale=1.0
    ).init(jax.random.key(0))
    _assert_orthogonal(params["actor"]["hidden_1"]["kernel"], np.sqrt(2))  # square 64x64
    _assert_orthogonal(params["critic"]["hidden_1"]["kernel"], np.sqrt(2))
    _assert_orthogonal(params["actor"]["policy"]["kernel"], 0.01)  # 64x2
    _assert_orthogonal(params["critic"]["value"]["kernel"], 1.0)  # 64x1
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if path[-1].key == "bias":
            np.testing.assert_array_equal(leaf, 0.0)


def test_custom_init_scale_and_hidden_sizes():
    params = make_networks(CARTPOLE, hidden_sizes=(64, 64, 64), hidden_init_scale=0.5).init(
        jax.random.key(0)
    )
    assert sorted(params["actor"]) == ["hidden_0", "hidden_1", "hidden_2", "policy"]
    _assert_orthogonal(params["actor"]["hidden_2"]["kernel"], 0.5)


# ---------------------------------------------------------------- options
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_builds_and_runs(activation):
    nets = make_networks(CARTPOLE, activation=activation)
    dist, value = nets.apply(nets.init(jax.random.key(0)), _obs(CARTPOLE, (3,)))
    assert dist.logits.shape == (3, 2) and value.shape == (3,)
    assert np.all(np.isfinite(dist.logits)) and np.all(np.isfinite(value))


def test_activations_differ():
    obs = _obs(CARTPOLE, (4,))
    values = [
        make_networks(CARTPOLE, activation=a).critic(
            make_networks(CARTPOLE).init(jax.random.key(0)), obs
        )
        for a in ("tanh", "relu")
    ]
    assert not np.allclose(values[0], values[1])


def test_bad_activation_names_value_and_choices():
    with pytest.raises(ValueError, match=r"'sigmoid'.*'elu'.*'gelu'.*'relu'.*'silu'.*'tanh'"):
        make_networks(CARTPOLE, activation="sigmoid")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_cnn_front_end_on_minatar(layout):
    nets = make_networks(MINATAR, cnn=True, cnn_channels=(16,), **LAYOUTS[layout])
    params = nets.init(jax.random.key(0))
    top = next(iter(params))
    assert params[top]["conv_0"]["kernel"].shape == (3, 3, 4, 16)
    # 3x3 VALID conv: 10x10 -> 8x8, flattened to 8 * 8 * 16 features.
    assert params[top]["hidden_0"]["kernel"].shape == (8 * 8 * 16, 64)
    for leading in LEADING_DIMS:
        outputs = jax.eval_shape(functools.partial(_outputs, nets), params, _obs(MINATAR, leading))
        _check_outputs(MINATAR, outputs, leading)
    dist, value = jax.jit(nets.apply)(params, _obs(MINATAR, (2,)))
    assert np.all(np.isfinite(dist.logits)) and np.all(np.isfinite(value))


def test_minatar_mlp_flattens_and_accepts_bool_obs():
    nets = make_networks(MINATAR)
    params = nets.init(jax.random.key(0))
    assert params["actor"]["hidden_0"]["kernel"].shape == (10 * 10 * 4, 64)
    obs = _obs(MINATAR, (2, 3)) > 0
    dist, value = nets.apply(params, obs)
    assert dist.logits.shape == (2, 3, 3) and value.shape == (2, 3)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_discrete_obs_are_the_mlp_applied_to_their_one_hot(layout):
    nets = make_networks(FROZEN_LAKE, **LAYOUTS[layout])
    params = nets.init(jax.random.key(0))
    assert params[next(iter(params))]["hidden_0"]["kernel"].shape == (16, 64)
    # The same layers (same parameter tree) on 16 real-valued inputs, fed one_hot(obs).
    one_hot_spec = EnvSpec("OneHot", (16,), DiscreteSpace(4), 100)
    reference = make_networks(one_hot_spec, **LAYOUTS[layout])
    assert jax.tree.structure(reference.init(jax.random.key(0))) == jax.tree.structure(params)
    obs = jnp.array([[0, 5, 15], [7, 7, 3]], jnp.int32)  # [T, N] state indices
    dist, value = jax.jit(nets.apply)(params, obs)
    ref_dist, ref_value = reference.apply(params, jax.nn.one_hot(obs, 16, dtype=jnp.float32))
    assert dist.logits.shape == (2, 3, 4) and value.shape == (2, 3)
    np.testing.assert_allclose(dist.logits, ref_dist.logits, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(value, ref_value, rtol=1e-6, atol=1e-7)


def test_discrete_obs_must_be_integers():
    nets = make_networks(FROZEN_LAKE)
    params = nets.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"FrozenLake-misc has discrete observations.*float32"):
        nets.apply(params, jnp.zeros((8,), jnp.float32))  # e.g. a normalised index


def test_cnn_rejects_flat_obs():
    with pytest.raises(ValueError, match=r"cnn=True.*\(4,\)"):
        make_networks(CARTPOLE, cnn=True)


def test_other_config_errors():
    with pytest.raises(ValueError, match="shared_trunk"):
        make_networks(CARTPOLE, shared_trunk=True, use_critic=False)
    box_2d = EnvSpec("Box2D", (3,), BoxSpace((2, 2), -1.0, 1.0), 10)
    with pytest.raises(ValueError, match="1-D"):
        make_networks(box_2d)


def test_wrong_obs_shape_is_rejected():
    nets = make_networks(CARTPOLE)
    params = nets.init(jax.random.key(0))
    with pytest.raises(ValueError, match=r"\(8, 3\).*\(4,\)"):
        nets.apply(params, jnp.zeros((8, 3)))


# ---------------------------------------------------------------- env_action
ASYMMETRIC = EnvSpec("Box2", (3,), BoxSpace((2,), (0.0, -0.1), (1.0, 0.1)), 10)


def test_env_action_rescales_then_clips_box_and_passes_discrete():
    # Pendulum's [-2, 2]: center 0, half range 2. u = ±1 are the bounds, beyond them clipped.
    u = jnp.array([[-3.0], [-1.0], [0.0], [0.25], [1.0], [7.0]])
    np.testing.assert_array_equal(
        env_action(PENDULUM, u), [[-2.0], [-2.0], [0.0], [0.5], [2.0], [2.0]]
    )
    discrete = jnp.array([0, 1, 1], jnp.int32)
    assert env_action(CARTPOLE, discrete) is discrete


def test_env_action_asymmetric_per_dimension_bounds_and_leading_dims():
    # [0, 1]: center 0.5, half range 0.5; [-0.1, 0.1]: center 0, half range 0.1.
    u = jnp.array([[[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0], [0.5, -0.5], [-5.0, 5.0]]])  # [1, 5, 2]
    out = jax.jit(env_action, static_argnums=0)(ASYMMETRIC, u)
    np.testing.assert_allclose(
        out, [[[0.0, -0.1], [1.0, 0.1], [0.5, 0.0], [0.75, -0.05], [0.0, 0.1]]], atol=1e-7
    )
    center, half_range = action_scale(ASYMMETRIC.action_space)
    np.testing.assert_allclose(center, [0.5, 0.0])
    np.testing.assert_allclose(half_range, [0.5, 0.1])


def test_unbounded_box_dimension_is_not_rescaled():
    spec = EnvSpec("Half", (3,), BoxSpace((2,), (-np.inf, -4.0), (np.inf, 0.0)), 10)
    center, half_range = action_scale(spec.action_space)
    np.testing.assert_array_equal(center, [0.0, -2.0])
    np.testing.assert_array_equal(half_range, [1.0, 2.0])
    np.testing.assert_array_equal(env_action(spec, jnp.array([5.0, 1.0])), [5.0, 0.0])


@pytest.mark.parametrize("layout", ["separate", "shared"])
def test_greedy_action_starts_at_the_box_centre(layout):
    nets = make_networks(ASYMMETRIC, **LAYOUTS[layout])
    dist = nets.actor(nets.init(jax.random.key(0)), _obs(ASYMMETRIC, (64,)))
    # policy_init_scale=0.01: the mean starts near u = 0, i.e. the centre (0.5, 0.0).
    greedy = np.asarray(env_action(ASYMMETRIC, dist.mode()))
    np.testing.assert_allclose(greedy, np.broadcast_to([0.5, 0.0], (64, 2)), atol=0.2 * 0.1)


def test_initial_clip_fraction_does_not_depend_on_the_box_scale():
    """With std 1 in env units (the old scheme) a ±0.1 box clipped 92% of the samples at init.

    Now the std is exp(log_std_init) half ranges: the fraction is P(|N(0, σ)| > 1) for every
    box, 31.7% for σ = 1 (log_std_init 0) and 4.6% for σ = 0.5 (-0.693).
    """
    for low, high in [(-0.1, 0.1), (0.0, 100.0)]:
        spec = EnvSpec("Box", (3,), BoxSpace((1,), low, high), 10)
        for log_std_init, expected in [(0.0, 0.317), (-0.693, 0.046)]:
            nets = make_networks(spec, log_std_init=log_std_init)
            dist = nets.actor(nets.init(jax.random.key(0)), _obs(spec, (8192,)))
            action = np.asarray(env_action(spec, dist.sample(jax.random.key(1))))
            clipped = np.mean((action <= low) | (action >= high))
            assert abs(clipped - expected) < 0.02, (low, high, log_std_init, clipped)


def test_log_prob_and_entropy_in_u_are_env_unit_ones_up_to_the_log_jacobian():
    # a = c + h u with u ~ N(mu, sigma): a ~ N(c + h mu, h sigma), and
    # log p_u(u) = log p_a(a) + sum log h, H_u = H_a - sum log h (a constant: same gradients).
    center, half_range = action_scale(ASYMMETRIC.action_space)
    nets = make_networks(ASYMMETRIC, log_std_init=-0.5)
    params = nets.init(jax.random.key(0))
    dist = nets.actor(params, _obs(ASYMMETRIC, (32,)))
    u = np.asarray(dist.sample(jax.random.key(1)))
    mean, log_std = np.asarray(dist.mean), np.asarray(dist.log_std)
    env_units = DiagGaussian(center + half_range * mean, log_std + np.log(half_range))
    log_jacobian = np.sum(np.log(half_range))
    np.testing.assert_allclose(
        dist.log_prob(jnp.asarray(u)), env_units.log_prob(center + half_range * u) + log_jacobian,
        rtol=1e-5,
    )
    np.testing.assert_allclose(dist.entropy(), env_units.entropy() - log_jacobian, rtol=1e-5)
    # inside the box, env_action is exactly that affine map
    inside = np.all(np.abs(u) < 1.0, axis=-1)
    np.testing.assert_allclose(
        np.asarray(env_action(ASYMMETRIC, jnp.asarray(u)))[inside],
        (center + half_range * u)[inside], atol=1e-6,
    )


def test_log_prob_uses_unclipped_sample():
    nets = make_networks(PENDULUM, log_std_init=1.0)  # wide: samples leave u in [-1, 1]
    params = nets.init(jax.random.key(0))
    dist = nets.actor(params, _obs(PENDULUM, (256,)))
    action = dist.sample(jax.random.key(1))
    clipped = env_action(PENDULUM, action)
    assert np.any(np.abs(np.asarray(action)) > 1.0)
    assert np.all(np.abs(np.asarray(clipped)) <= 2.0)
    assert np.all(np.isfinite(dist.log_prob(action)))


# ---------------------------------------------------------------- grad_apply
def _loss_of(apply_fn, spec, obs):
    def loss(params):
        dist, value = apply_fn(params, obs)
        action = dist.mode()
        return jnp.mean(dist.log_prob(action) * obs.reshape(-1)[0]) + jnp.mean(value ** 2) \
            - 0.01 * jnp.mean(dist.entropy())
    return loss


@pytest.mark.parametrize("spec_name", ["cartpole", "pendulum"])
@pytest.mark.parametrize("layout", ["separate", "shared"])
@pytest.mark.parametrize("leading", [(7,), (5, 3)])
def test_grad_apply_has_the_values_and_gradients_of_apply(spec_name, layout, leading):
    """The gradient step's twin (a custom_vjp policy head) against plain autodiff of apply."""
    spec = SPECS[spec_name]
    nets = make_networks(spec, **LAYOUTS[layout])
    assert nets.grad_apply is not None  # set on the CPU backend
    params = nets.init(jax.random.key(0))
    obs = _obs(spec, leading)
    want = jax.jit(_loss_of(nets.apply, spec, obs))(params)
    got = jax.jit(_loss_of(nets.grad_apply, spec, obs))(params)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    g_want = jax.jit(jax.grad(_loss_of(nets.apply, spec, obs)))(params)
    g_got = jax.jit(jax.grad(_loss_of(nets.grad_apply, spec, obs)))(params)
    for a, b in zip(jax.tree.leaves(g_got), jax.tree.leaves(g_want)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_grad_apply_vmaps_over_seeds_and_differentiates_twice():
    nets = make_networks(CARTPOLE)
    params = jax.vmap(nets.init)(jax.random.split(jax.random.key(0), 3))
    obs = _obs(CARTPOLE, (16,))
    grads = {name: jax.jit(jax.vmap(jax.grad(_loss_of(fn, CARTPOLE, obs))))(params)
             for name, fn in [("apply", nets.apply), ("grad_apply", nets.grad_apply)]}
    for a, b in zip(jax.tree.leaves(grads["grad_apply"]), jax.tree.leaves(grads["apply"])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)

    def norm_of_grad(fn):  # reverse over reverse, as a meta-gradient through a step does
        return lambda p: optax_free_norm(jax.grad(_loss_of(fn, CARTPOLE, obs))(p))

    def optax_free_norm(tree):
        return sum(jnp.sum(x ** 2) for x in jax.tree.leaves(tree))

    one = jax.tree.map(lambda x: x[0], params)
    second = {name: jax.grad(norm_of_grad(fn))(one)
              for name, fn in [("apply", nets.apply), ("grad_apply", nets.grad_apply)]}
    for a, b in zip(jax.tree.leaves(second["grad_apply"]), jax.tree.leaves(second["apply"])):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
