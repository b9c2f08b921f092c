"""make_train: probe environments with known answers, CartPole learning,
vmap over seeds and hyperparameters, state invariants, compile-once."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

import pgjax
import pytest

import probe_envs
from pgjax.config import Config, apply_overrides
from pgjax.envs import wrap_env
from pgjax.networks import env_action
from pgjax.train import default_hparams, make_train


def _config(*overrides):
    return apply_overrides(Config(), list(overrides))


def _probe_trainer(probe, *overrides):
    config = _config(
        "training.num_envs=16",
        "algorithm.n_steps=4",
        "training.total_env_steps=12800",  # 200 updates
        "optimizer.actor_lr=3e-3",
        "optimizer.critic_lr=3e-3",
        "algorithm.gamma=0.9",
        *overrides,
    )
    return make_train(config, env=wrap_env(probe, name=type(probe).__name__))


def _train(trainer, seed=0):
    return jax.jit(trainer.train)(jax.random.key(seed))


def _train_key(trainer, key):
    return jax.jit(trainer.train)(key)


# -------------------------------------------------------------- probe envs
@pytest.mark.parametrize("algo", ["a2c", "ppo"])
def test_probe_constant_reward_value(algo):
    trainer = _probe_trainer(probe_envs.ConstantReward(), f"algorithm.name={algo}")
    state, _ = _train(trainer)
    value = trainer.networks.critic(state.params, jnp.zeros((1,)))
    np.testing.assert_allclose(value, 1.0, atol=0.05)


def test_probe_obs_dependent_value():
    trainer = _probe_trainer(probe_envs.ObsReward())
    state, _ = _train(trainer)
    values = trainer.networks.critic(state.params, jnp.array([[1.0], [-1.0]]))
    np.testing.assert_allclose(values, [1.0, -1.0], atol=0.1)


@pytest.mark.parametrize("algo", ["a2c", "ppo", "reinforce", "reinforce_baseline"])
def test_probe_action_dependent_reward_policy(algo):
    trainer = _probe_trainer(probe_envs.ActionReward(), f"algorithm.name={algo}",
                             "training.total_env_steps=32000")
    state, _ = _train(trainer)
    dist = trainer.networks.actor(state.params, jnp.array([[1.0], [-1.0]]))
    np.testing.assert_array_equal(dist.mode(), [1, 0])
    assert np.all(np.asarray(dist.probs())[[0, 1], [1, 0]] > 0.9)


def test_probe_two_step_discounting():
    trainer = _probe_trainer(probe_envs.TwoStep())
    state, _ = _train(trainer)
    values = trainer.networks.critic(state.params, jnp.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(values, [0.9, 1.0], atol=0.05)


def test_probe_continuous_action_mean():
    # With no entropy bonus the std collapses; a high step size then lets the mean
    # drift past the bound, where clipping flattens the reward. 3e-4 is stable.
    trainer = _probe_trainer(probe_envs.ContinuousActionReward(), "algorithm.name=ppo",
                             "training.total_env_steps=64000", "algorithm.entropy_coef=0.0",
                             "optimizer.actor_lr=3e-4", "optimizer.critic_lr=3e-4")
    state, _ = _train(trainer)
    dist = trainer.networks.actor(state.params, jnp.zeros((1,)))
    np.testing.assert_allclose(dist.mode(), [0.5], atol=0.1)


@pytest.mark.parametrize("greedy", [True, False])
def test_initial_continuous_actions_centre_on_an_offset_box(greedy):
    # reward = the env action in [10, 20]: the mean starts at u = 0, the box's centre 15
    # (it once started at 0, clipped to 10); sampled actions clip symmetrically around it.
    trainer = _probe_trainer(probe_envs.ActionIsReward(10.0, 20.0), "training.eval_episodes=256",
                             "network.log_std_init=-0.693")
    state = trainer.init(jax.random.key(0))
    returns = np.asarray(jax.jit(trainer.evaluate, static_argnums=2)(state, jax.random.key(1), greedy))
    assert np.all((returns >= 10.0) & (returns <= 20.0))
    if greedy:
        np.testing.assert_allclose(returns, 15.0, atol=0.2)
    else:
        assert abs(returns.mean() - 15.0) < 0.3 and returns.std() > 1.0


def test_probe_continuous_action_mean_on_an_asymmetric_box():
    # [0, 1] with the target at 0.75: the policy learns u = 0.5, the env sees 0.75.
    trainer = _probe_trainer(probe_envs.ContinuousActionReward(0.0, 1.0, 0.75), "algorithm.name=ppo",
                             "training.total_env_steps=64000", "algorithm.entropy_coef=0.0",
                             "optimizer.actor_lr=3e-4", "optimizer.critic_lr=3e-4")
    state, _ = _train(trainer)
    dist = trainer.networks.actor(state.params, jnp.zeros((1,)))
    np.testing.assert_allclose(env_action(trainer.env.spec, dist.mode()), [0.75], atol=0.05)


# ---------------------------------------------------------------- CartPole
def test_cartpole_a2c_learns():
    """The default config (CartPole-v1, a2c), CI-sized: two seeds, 300k steps each."""
    trainer = make_train(_config("training.total_env_steps=300000"))

    def run(key):
        train_key, eval_key = jax.random.split(key)
        state, _ = trainer.train(train_key)
        return trainer.evaluate(state, eval_key).mean()

    returns = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 2))
    assert float(returns.mean()) >= 400, returns


def test_reinforce_improves_over_random():
    trainer = make_train(_config(
        "algorithm.name=reinforce", "training.num_envs=8", "training.total_env_steps=40000",
        "optimizer.actor_lr=1e-2", "algorithm.entropy_coef=0.0",
    ))
    state0 = trainer.init(jax.random.key(0))
    random_return = float(jax.jit(trainer.evaluate)(state0, jax.random.key(1), greedy=False).mean())
    state, metrics = _train(trainer)
    metrics = {k: v[:int(state.update)] for k, v in metrics.items()}  # the updates run
    trained = float(jax.jit(trainer.evaluate)(state, jax.random.key(1), greedy=False).mean())
    assert random_return < 40
    assert trained > 3 * random_return, (random_return, trained)
    window = lambda s: jax.tree.map(lambda x: x[s], metrics)  # noqa: E731
    assert float(pgjax.episode_mean(window(slice(-10, None)))) > 2 * float(
        pgjax.episode_mean(window(slice(0, 3))))


def test_reinforce_budget_counts_the_env_steps_its_episodes_take():
    """Issue 14, finding 8: the budget is env steps taken, not the padded rollout (each update
    rolls 4 envs for up to 200 steps: 800 counted before, although its episodes take fewer)."""
    trainer = make_train(_config(
        "algorithm.name=reinforce", "training.num_envs=4", "env.params.max_steps_in_episode=200",
        "training.total_env_steps=3000", "training.eval_episodes=2"))
    state, metrics = _train(trainer)
    m = jax.tree.map(np.asarray, metrics)
    n, taken = int(state.update), m["env_steps_taken"]
    assert m["loss"].shape == (trainer.derived.num_updates,) == (750,)  # at most 3000 / 4
    # Each update's count is its four episodes' lengths, as the episode statistics give them.
    assert (m["episode_count"][:n] == 4).all()
    np.testing.assert_allclose(taken[:n], m["episode_length"][:n] * 4, rtol=1e-6)
    # Stopped at the first update that reached the budget; the rows after it are padding.
    assert int(state.env_steps) == taken.sum() >= 3000 > taken[:n - 1].sum()
    assert n > 3000 // 800 + 1
    assert np.isnan(m["loss"][n:]).all() and (taken[n:] == 0).all()
    assert (m["episode_count"][n:] == 0).all()
    assert np.isfinite(float(pgjax.episode_mean(metrics)))

    # The reference: update() in a Python loop until 3000 env steps are taken.
    reference, steps, updates = trainer.init(jax.random.key(0)), 0, 0
    update = jax.jit(trainer.update)
    while steps < 3000:
        reference, row = update(reference)
        steps, updates = steps + int(row["env_steps_taken"]), updates + 1
    assert (updates, steps) == (n, int(state.env_steps))
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(reference.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    # Vmapped over seeds, each seed stops at its own update, as it does alone.
    keys = jax.random.split(jax.random.key(1), 2)
    states, _ = jax.jit(jax.vmap(trainer.train))(keys)
    for i in range(2):
        alone, _ = _train_key(trainer, keys[i])
        assert int(states.update[i]) == int(alone.update)
        assert int(states.env_steps[i]) == int(alone.env_steps)


def test_episodic_anneal_lr_follows_the_env_steps_taken():
    # An episodic run's number of updates is not known ahead: its learning rate anneals with
    # the share of the env-step budget taken. From the same state at half the budget, the
    # first Adam step (lr * g / |g|) is half the unannealed one.
    def first_step(anneal):
        trainer = make_train(_config(
            "algorithm.name=reinforce", "training.num_envs=4", "training.total_env_steps=1000",
            "env.params.max_steps_in_episode=50", f"optimizer.anneal_lr={anneal}"))
        state = trainer.init(jax.random.key(0))._replace(env_steps=jnp.int32(500))
        new, _ = jax.jit(trainer.update)(state)
        return np.concatenate([np.ravel(b - a) for a, b in zip(
            jax.tree.leaves(state.params), jax.tree.leaves(new.params))])

    on, off = first_step("true"), first_step("false")
    moved = np.abs(off) > 1e-6
    np.testing.assert_allclose(np.median(on[moved] / off[moved]), 0.5, rtol=1e-2)


def test_pendulum_stays_finite():
    trainer = make_train(_config(
        "env.name=Pendulum-v1", "algorithm.name=ppo", "training.num_envs=16",
        "algorithm.n_steps=32", "training.total_env_steps=40960", "env.normalize_obs=true",
    ))
    state, metrics = _train(trainer)
    ended = np.asarray(metrics["episode_count"]) > 0
    episode = {k: np.asarray(metrics.pop(k))[ended] for k in ("episode_return", "episode_length")}
    for name, leaf in jax.tree_util.tree_leaves_with_path((state.params, metrics, episode)):
        assert np.all(np.isfinite(np.asarray(leaf))), name


@pytest.mark.parametrize("algo", ["ppo", "reinforce"])
def test_discrete_obs_env_trains_one_hot_without_normalisation(algo):
    # FrozenLake-misc observes a state index; a preset's normalize_obs=true is ignored for it.
    trainer = make_train(_config(
        "env.name=FrozenLake-misc", f"algorithm.name={algo}", "env.normalize_obs=true",
        "training.num_envs=8", "training.total_env_steps=2560", "training.eval_episodes=4",
    ))
    state, metrics = _train(trainer)
    assert state.obs_stats is None
    assert trainer.networks.init(jax.random.key(0))["actor"]["hidden_0"]["kernel"].shape[0] == 16
    metrics = {k: v[:int(state.update)] for k, v in metrics.items()}  # reinforce: NaN after
    for name, leaf in jax.tree_util.tree_leaves_with_path((state.params, metrics)):
        assert np.all(np.isfinite(np.asarray(leaf))), name
    returns = jax.jit(trainer.evaluate)(state, jax.random.key(1))
    assert returns.shape == (4,) and np.all((returns >= 0) & (returns <= 1))


# ------------------------------------------------------- vmap and invariants
SMALL = ("training.num_envs=8", "training.total_env_steps=2560")  # 40 updates


def test_vmap_over_seeds_different_keys_differ_identical_keys_agree():
    trainer = make_train(_config(*SMALL))
    train = jax.jit(jax.vmap(trainer.train))
    keys = jax.random.split(jax.random.key(0), 4)
    states, metrics = train(keys)
    flat = jax.vmap(lambda p: jax.flatten_util.ravel_pytree(p)[0])(states.params)
    for i in range(4):
        for j in range(i + 1, 4):
            assert not np.allclose(flat[i], flat[j])
    again, again_metrics = train(jnp.stack([keys[1]] * 4))
    for leaf in jax.tree.leaves((again.params, again_metrics)):
        leaf = np.asarray(leaf)
        for i in range(1, 4):
            np.testing.assert_array_equal(leaf[0], leaf[i])
    single, _ = jax.jit(trainer.train)(keys[1])
    for a, b in zip(jax.tree.leaves(single.params), jax.tree.leaves(again.params)):
        np.testing.assert_allclose(a, b[0], rtol=1e-5, atol=1e-6)


def test_vmap_over_hyperparameters_matches_separate_configs():
    base = _config(*SMALL)
    trainer = make_train(base)
    lrs = jnp.array([1e-4, 7e-4, 3e-3])
    hp = jax.tree.map(lambda x: jnp.broadcast_to(x, (3,)), default_hparams(base))
    hp = hp._replace(actor_lr=lrs, critic_lr=lrs, entropy_coef=jnp.array([0.0, 0.01, 0.1]))
    key = jax.random.key(3)
    states, _ = jax.jit(jax.vmap(trainer.train, in_axes=(None, 0)))(key, hp)
    for i, (lr, ent) in enumerate([(1e-4, 0.0), (7e-4, 0.01), (3e-3, 0.1)]):
        cfg = apply_overrides(base, [f"optimizer.actor_lr={lr}", f"optimizer.critic_lr={lr}",
                                     f"algorithm.entropy_coef={ent}"])
        alone, _ = jax.jit(make_train(cfg).train)(key)
        for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(states.params)):
            np.testing.assert_allclose(a, b[i], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("algo", ["a2c", "ppo", "reinforce", "reinforce_baseline"])
def test_update_preserves_state_and_compiles_once(algo):
    overrides = [f"algorithm.name={algo}", *SMALL, "env.normalize_obs=true"]
    if algo.startswith("reinforce"):
        overrides += ["env.params.max_steps_in_episode=50", "training.total_env_steps=4000"]
    trainer = make_train(_config(*overrides))
    state = trainer.init(jax.random.key(0))
    chex.clear_trace_counter()  # the counter is keyed by function name, shared across params

    @jax.jit
    @chex.assert_max_traces(n=1)
    def update(state):
        return trainer.update(state)

    new_state, metrics = update(state)
    for _ in range(3):
        new_state, metrics = update(new_state)
    chex.assert_trees_all_equal_shapes_and_dtypes(state, new_state)
    assert jax.tree.structure(state) == jax.tree.structure(new_state)
    assert int(new_state.update) == 4
    for value in metrics.values():
        assert value.shape == ()


def test_train_metrics_are_per_update_arrays():
    trainer = make_train(_config(*SMALL))
    _, metrics = _train(trainer)
    assert {"loss", "policy_loss", "value_loss", "entropy", "grad_norm", "episode_return",
            "episode_count"} <= set(metrics)
    for value in metrics.values():
        assert value.shape == (trainer.derived.num_updates,)


@pytest.mark.parametrize("max_grad_norm", [0.5, None])
def test_flattened_optimizer_matches_optax_per_leaf(max_grad_norm):
    """The trainer's optimiser (optax.flatten of clip + Adam) makes the per-leaf optax updates."""
    from pgjax.learner import optimizer as _optimizer

    config = apply_overrides(Config(), [f"optimizer.max_grad_norm={max_grad_norm or 'null'}"])
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"w": jax.random.normal(k1, (4, 3)), "b": jnp.zeros(3), "s": jnp.ones(())}
    tx = _optimizer(config, jnp.float32(1e-2), jnp.float32(max_grad_norm or 0.0))
    adam = optax.adam(1e-2, eps=config.optimizer.adam_eps)
    ref = adam if max_grad_norm is None else optax.chain(optax.clip_by_global_norm(max_grad_norm), adam)
    state, ref_state, p, q = tx.init(params), ref.init(params), params, params
    for i in range(3):
        grads = jax.tree.map(lambda x: 3.0 * jax.random.normal(jax.random.fold_in(k2, i), x.shape), params)
        updates, state = tx.update(grads, state, p)
        ref_updates, ref_state = ref.update(grads, ref_state, q)
        p, q = optax.apply_updates(p, updates), optax.apply_updates(q, ref_updates)
    for a, b in zip(jax.tree.leaves(p), jax.tree.leaves(q)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("algorithm,normalize_advantages,slices", [
    ("a2c", False, 6), ("a2c", True, 6),  # time slices of 2 steps x 8 envs
    ("ppo", True, 3)])  # minibatches of 48 rows in 3 strided slices of 16
def test_sliced_gradient_matches_the_whole_batch(algorithm, normalize_advantages, slices):
    """training.grad_slice_samples changes how a gradient is summed, not the update."""
    base = [f"algorithm.name={algorithm}", "training.num_envs=8", "algorithm.n_steps=12",
            "algorithm.minibatches=2", "algorithm.value_clip_eps=0.2",
            "network.hidden_sizes=[16]", f"algorithm.normalize_advantages={normalize_advantages}"]
    whole = make_train(apply_overrides(Config(), [*base, "training.grad_slice_samples=0"]))
    sliced = make_train(apply_overrides(Config(), [*base, "training.grad_slice_samples=20"]))
    from pgjax.learner import loss_slices
    assert loss_slices(sliced.config) == slices and loss_slices(whole.config) == 1
    state = jax.jit(whole.init)(jax.random.key(3))
    for _ in range(3):
        want, want_metrics = jax.jit(whole.update)(state)
        got, metrics = jax.jit(sliced.update)(state)
        for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(want.params)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
        assert set(metrics) == set(want_metrics)
        for name in metrics:
            np.testing.assert_allclose(metrics[name], want_metrics[name], rtol=1e-5, atol=1e-6)
        state = want


def test_loss_slices_follow_devices_platform_and_algorithm():
    from pgjax.learner import loss_slices

    big = apply_overrides(Config(), ["training.num_envs=2048", "algorithm.n_steps=128"])
    assert loss_slices(big) == 32  # 4 steps x 2048 envs = 8192 samples a slice
    assert loss_slices(big, num_devices=2) == 16  # 1024 envs a device
    assert loss_slices(big, platform="gpu") == 1  # "auto": whole batch on accelerators
    # PPO: each minibatch of 2048 x 128 / 4 = 65536 rows, in slices of 8192.
    assert loss_slices(apply_overrides(big, ["algorithm.name=ppo"])) == 8
    assert loss_slices(apply_overrides(big, ["algorithm.name=reinforce"])) == 1
    assert loss_slices(apply_overrides(big, ["training.grad_slice_samples=2048"])) == 128
    assert loss_slices(Config()) == 1  # 8 x 16: fits


def test_grad_slice_samples_is_validated():
    from pgjax.config import ConfigError

    with pytest.raises(ConfigError, match="grad_slice_samples"):
        apply_overrides(Config(), ["training.grad_slice_samples=-1"])
    with pytest.raises(ConfigError, match="expected an int >= 0 or 'auto'"):
        apply_overrides(Config(), ["training.grad_slice_samples=some"])


def test_greedy_where_takes_the_mode_where_greedy_and_samples_elsewhere():
    from pgjax.distributions import Categorical, DiagGaussian
    from pgjax.evaluation import GreedyWhere as _GreedyWhere

    key = jax.random.key(0)
    greedy = jnp.array([True, False, True, False])
    logits = jax.random.normal(jax.random.key(1), (4, 3))
    for dist in (Categorical(logits), DiagGaussian(logits, jnp.zeros((4, 3)))):
        got = _GreedyWhere(dist, greedy).sample(key)
        mode, sampled = dist.mode(), dist.sample(key)
        assert got.shape == mode.shape
        np.testing.assert_array_equal(got[::2], mode[::2])
        np.testing.assert_array_equal(got[1::2], sampled[1::2])
        assert not np.array_equal(got[1::2], mode[1::2])


def test_evaluate_both_runs_greedy_and_sampled_episodes():
    # A uniform policy (zero policy head): greedy always pushes left (action 0, the first of
    # equal logits) and falls within a few steps; sampled, it lasts ~22 steps on average.
    trainer = make_train(_config("network.policy_init_scale=0.0", "training.eval_episodes=32"))
    state = trainer.init(jax.random.key(0))
    returns = jax.jit(trainer.evaluate_both)(state, jax.random.key(1))
    assert returns.greedy.shape == returns.sampled.shape == (32,)
    assert float(returns.greedy.max()) <= 12
    assert float(returns.sampled.mean()) > 15 > float(returns.greedy.mean())
    if jax.config.jax_threefry_partitionable:  # JAX's default: split(k, 2E)[:E] == split(k, E)
        # so the greedy half resets (and steps) as evaluate's greedy episodes with that key.
        greedy_only = jax.jit(trainer.evaluate)(state, jax.random.key(1))
        np.testing.assert_array_equal(returns.greedy, greedy_only)
