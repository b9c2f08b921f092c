"""A plain-JAX A2C and PPO, written the way a user writes a PureJaxRL-style script in an
afternoon: what ``pgjax bench --reference`` times pgjax's training against.

The same mathematics as pgjax's a2c and ppo (:mod:`pgjax.algos`), on the same gymnax env,
with none of pgjax's code: separate actor and critic MLPs (orthogonal init, gains sqrt 2,
0.01 and 1.0, zero biases), T steps of N auto-resetting envs in one ``lax.scan``, GAE
with truncated steps bootstrapped from V(final observation) and terminated ones not, the
policy-gradient (a2c) or clipped (ppo) surrogate plus ``value_coef`` x squared error minus
``entropy_coef`` x entropy, PPO's epochs x shuffled minibatches, and one Adam per network
after clipping its gradient's global norm. Everything is written out by hand with
``jax.numpy``, ``jax.lax`` and optax, constants closed over, compiled with ``jax.jit``'s
defaults.

What it leaves out, as such a script does: gradient slices, traced hyperparameters, the
metrics beyond the losses and the mean episode return, sharding. It refuses configs it does
not implement (continuous actions, a shared trunk, CNN or GRU networks, observation
normalisation, value clipping, recomputed advantages, episodic algorithms).

Keys follow pgjax's scheme (:mod:`pgjax.rollout`, :func:`pgjax.train.make_train`), so that
from the same state both programs make the same update up to float rounding
(tests/test_bench_reference.py): an update splits its key into ``(key, rollout_key,
shuffle_key)``; step t of the rollout takes ``split(rollout_key, T)[t]``, split into an
action key and an env key that is split over the N envs; PPO's epoch e shuffles with
``permutation(split(shuffle_key, epochs)[e], T * N)``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pgjax.config import Config, ConfigError

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "gelu": jax.nn.gelu, "elu": jax.nn.elu,
               "silu": jax.nn.silu}


class RefState(NamedTuple):
    params: Any  # {"actor": [(w, b), ...], "critic": [(w, b), ...]}
    opt_state: Any  # {"actor": ..., "critic": ...}
    env_state: Any  # gymnax state, leaves [N, ...]
    obs: jax.Array  # [N, obs_size]
    episode_return: jax.Array  # [N], return so far of each running episode
    key: jax.Array
    update: jax.Array  # updates done, int32


class Batch(NamedTuple):
    obs: jax.Array
    action: jax.Array
    advantage: jax.Array
    target: jax.Array
    old_log_prob: jax.Array


class Reference(NamedTuple):
    """``init(key) -> RefState``, ``update(state) -> (state, metrics)``, and the pieces the
    tests compare with pgjax: ``loss(params, batch) -> (loss, metrics)``,
    ``learn(state, traj, key) -> (params, opt_state)`` (the update after its rollout, on a
    :class:`pgjax.types.Transition`), ``from_pgjax(train_state) -> RefState``."""

    init: Callable[[jax.Array], RefState]
    update: Callable[[RefState], tuple[RefState, dict]]
    loss: Callable[..., tuple[jax.Array, dict]]
    learn: Callable[..., tuple[Any, Any]]
    from_pgjax: Callable[[Any], RefState]


def unsupported(config: Config, env: Any) -> list[str]:
    """What of ``config`` and ``env`` the reference does not implement (empty: all of it)."""
    a, n, o = config.algorithm, config.network, config.optimizer
    problems = []
    if a.name not in ("a2c", "ppo"):
        problems.append(f"algorithm.name={a.name} (a2c and ppo only)")
    if not hasattr(env, "env") or not hasattr(env, "params"):
        problems.append(f"env {env!r} (a gymnax env only)")
    elif not env.spec.discrete or env.spec.obs_num_values is not None or len(env.spec.obs_shape) != 1:
        problems.append(f"env {env.spec.name} (discrete actions and flat real observations only)")
    if n.shared_trunk or n.cnn or n.gru_size:
        problems.append("network.shared_trunk/cnn/gru_size (separate MLPs only)")
    if n.activation not in ACTIVATIONS:
        problems.append(f"network.activation={n.activation}")
    if config.env.normalize_obs:
        problems.append("env.normalize_obs=true")
    if a.value_clip_eps is not None:
        problems.append("algorithm.value_clip_eps")
    if a.name == "ppo" and a.recompute_advantages:
        problems.append("algorithm.recompute_advantages=true")
    if o.anneal_lr:
        problems.append("optimizer.anneal_lr=true")
    if config.training.devices not in (1, "1"):
        problems.append("training.devices (one device only)")
    return problems


def orthogonal_dense(key, n_in: int, n_out: int, gain: float):
    return jax.nn.initializers.orthogonal(gain)(key, (n_in, n_out)), jnp.zeros((n_out,))


def init_mlp(key, sizes: list[int], gains: list[float]):
    keys = jax.random.split(key, len(sizes) - 1)
    return [orthogonal_dense(k, i, o, g) for k, i, o, g in zip(keys, sizes[:-1], sizes[1:], gains)]


def mlp(layers, x, activation):
    for w, b in layers[:-1]:
        x = activation(x @ w + b)
    w, b = layers[-1]
    return x @ w + b


def gae(reward, value, next_value, terminated, done, gamma: float, lam: float):
    """Advantages and targets, ``[T, N]``: a backward scan of
    ``A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}``."""
    delta = reward + gamma * (1.0 - terminated) * next_value - value

    def body(advantage, x):
        delta_t, done_t = x
        advantage = delta_t + gamma * lam * (1.0 - done_t) * advantage
        return advantage, advantage

    _, advantage = jax.lax.scan(body, jnp.zeros_like(value[0]), (delta, done), reverse=True)
    return advantage, advantage + value


def make_reference(config: Config, env: Any, *, num_envs: int) -> Reference:
    """The reference A2C or PPO of ``config`` (``algorithm.n_steps``, networks, coefficients,
    optimiser) on ``env`` (a gymnax env wrapped by :func:`pgjax.envs.make_env`), N envs.

    Raises:
      ConfigError: for what the reference does not implement (:func:`unsupported`).
    """
    problems = unsupported(config, env)
    if problems:
        raise ConfigError("--reference: the plain JAX reference does not implement "
                          + "; ".join(problems))
    a, n, o = config.algorithm, config.network, config.optimizer
    gym, gym_params = env.env, env.params
    T, N = a.n_steps, num_envs
    obs_size, n_actions = env.spec.obs_shape[0], env.spec.action_space.n
    act = ACTIVATIONS[n.activation]
    ppo = a.name == "ppo"
    epochs, minibatches = (a.epochs, a.minibatches) if ppo else (1, 1)
    gamma, lam = a.gamma, a.gae_lambda
    hidden = list(n.hidden_sizes)

    def optimizer(lr):
        adam = optax.adam(lr, eps=o.adam_eps)
        if o.max_grad_norm is None:
            return adam
        return optax.chain(optax.clip_by_global_norm(o.max_grad_norm), adam)

    tx = {"actor": optimizer(o.actor_lr), "critic": optimizer(o.critic_lr)}
    env_step = jax.vmap(gym.step, in_axes=(0, 0, 0, None))
    env_reset = jax.vmap(gym.reset, in_axes=(0, None))

    def strong(tree):  # gymnax resets give weakly typed leaves; step gives strong ones
        return jax.tree.map(lambda x: jnp.asarray(x, x.dtype), tree)

    def actor(params, obs):
        return mlp(params["actor"], obs, act)

    def critic(params, obs):
        return mlp(params["critic"], obs, act)[..., 0]

    def start(params, env_key, key):
        obs, env_state = env_reset(jax.random.split(env_key, N), gym_params)
        opt_state = {g: tx[g].init(params[g]) for g in params}
        return RefState(params, opt_state, strong(env_state), strong(obs),
                        jnp.zeros((N,), jnp.float32), key, jnp.zeros((), jnp.int32))

    def init(key):
        key, actor_key, critic_key, env_key = jax.random.split(key, 4)
        params = {
            "actor": init_mlp(actor_key, [obs_size, *hidden, n_actions],
                              [n.hidden_init_scale] * len(hidden) + [n.policy_init_scale]),
            "critic": init_mlp(critic_key, [obs_size, *hidden, 1],
                               [n.hidden_init_scale] * len(hidden) + [n.value_init_scale]),
        }
        return start(params, env_key, key)

    def rollout(params, state, key):
        def step(carry, step_key):
            env_state, obs, ep_return, return_sum, count = carry
            act_key, env_key = jax.random.split(step_key)
            logits, value = actor(params, obs), critic(params, obs)
            action = jax.random.categorical(act_key, logits).astype(jnp.int32)
            log_prob = jnp.take_along_axis(jax.nn.log_softmax(logits), action[:, None], 1)[:, 0]
            next_obs, env_state, reward, terminated, truncated, info = env_step(
                jax.random.split(env_key, N), env_state, action, gym_params)
            reward = reward.astype(jnp.float32)
            terminated = terminated.astype(bool)
            truncated = truncated.astype(bool) & ~terminated
            # V(pre-reset observation), only needed on the rare truncated step.
            final_value = jax.lax.cond(jnp.any(truncated),
                                       lambda o: critic(params, o), lambda o: jnp.zeros(N),
                                       info["final_observation"])
            done = terminated | truncated
            ep_return = ep_return + reward
            return_sum = return_sum + jnp.sum(jnp.where(done, ep_return, 0.0))
            count = count + jnp.sum(done)
            ep_return = jnp.where(done, 0.0, ep_return)
            out = (obs, action, reward, terminated, truncated, log_prob,
                   value, final_value)
            return (env_state, next_obs, ep_return, return_sum, count), out

        carry = (state.env_state, state.obs, state.episode_return, jnp.zeros(()),
                 jnp.zeros((), jnp.int32))
        (env_state, obs, ep_return, return_sum, count), traj = jax.lax.scan(
            step, carry, jax.random.split(key, T))
        obs_t, action, reward, terminated, truncated, log_prob, value, final_value = traj
        following = jnp.concatenate([value[1:], critic(params, obs)[None]])
        next_value = jnp.where(truncated, final_value, jnp.where(terminated, 0.0, following))
        state = state._replace(env_state=strong(env_state), obs=obs, episode_return=ep_return)
        stats = {"episode_return": return_sum / jnp.maximum(count, 1), "episode_count": count}
        return state, (obs_t, action, reward, terminated, truncated, log_prob, value,
                       next_value), stats

    def loss(params, batch: Batch):
        logits, value = actor(params, batch.obs), critic(params, batch.obs)
        log_probs = jax.nn.log_softmax(logits)
        log_prob = jnp.take_along_axis(log_probs, batch.action[..., None], -1)[..., 0]
        entropy = jnp.mean(-jnp.sum(jnp.exp(log_probs) * log_probs, -1))
        advantage = batch.advantage
        if a.normalize_advantages:
            advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
        if ppo:
            ratio = jnp.exp(log_prob - batch.old_log_prob)
            clipped = jnp.clip(ratio, 1.0 - a.clip_eps, 1.0 + a.clip_eps)
            policy_loss = -jnp.mean(jnp.minimum(ratio * advantage, clipped * advantage))
        else:
            policy_loss = -jnp.mean(log_prob * advantage)
        value_loss = 0.5 * jnp.mean((value - batch.target) ** 2)
        total = policy_loss + a.value_coef * value_loss - a.entropy_coef * entropy
        return total, {"policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy}

    def gradient_step(carry, batch):
        params, opt_state = carry
        (total, metrics), grads = jax.value_and_grad(loss, has_aux=True)(params, batch)
        new_params, new_opt_state = {}, {}
        for g in params:  # one Adam per network, each clipping its own gradient
            updates, new_opt_state[g] = tx[g].update(grads[g], opt_state[g], params[g])
            new_params[g] = optax.apply_updates(params[g], updates)
        return (new_params, new_opt_state), {"loss": total, **metrics}

    def learn_batch(params, opt_state, batch: Batch, key):
        if not ppo:
            return gradient_step((params, opt_state), batch)

        def epoch(carry, epoch_key):
            flat = jax.tree.map(lambda x: x.reshape((T * N, *x.shape[2:])), batch)
            perm = jax.random.permutation(epoch_key, T * N)
            shuffled = jax.tree.map(lambda x: x[perm].reshape((minibatches, -1, *x.shape[1:])),
                                    flat)
            return jax.lax.scan(gradient_step, carry, shuffled)

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (params, opt_state), jax.random.split(key, epochs))
        return (params, opt_state), jax.tree.map(jnp.mean, metrics)

    def make_batch(obs, action, reward, terminated, truncated, log_prob, value, next_value):
        advantage, target = gae(reward, value, next_value, terminated.astype(jnp.float32),
                                (terminated | truncated).astype(jnp.float32), gamma, lam)
        return Batch(obs, action, advantage, target, log_prob)

    def update(state: RefState):
        key, rollout_key, shuffle_key = jax.random.split(state.key, 3)
        state, traj, stats = rollout(state.params, state, rollout_key)
        (params, opt_state), metrics = learn_batch(state.params, state.opt_state,
                                                   make_batch(*traj), shuffle_key)
        state = state._replace(params=params, opt_state=opt_state, key=key,
                               update=state.update + 1)
        return state, {**metrics, **stats}

    def learn(state: RefState, traj, key):
        batch = make_batch(traj.obs, traj.action, traj.reward, traj.terminated, traj.truncated,
                           traj.log_prob, traj.value, traj.next_value)
        (params, opt_state), _ = learn_batch(state.params, state.opt_state, batch, key)
        return params, opt_state

    def from_pgjax(train_state) -> RefState:
        """A fresh pgjax :class:`~pgjax.train.TrainState` as the reference's: its parameters
        (``hidden_i``, ``policy``, ``value`` Dense layers as ``(kernel, bias)`` lists), its
        env state, observation, running returns, key and update count, and a fresh Adam
        state (pgjax's, flattened, is its equal before the first update)."""
        def layers(group, head):
            names = [f"hidden_{i}" for i in range(len(hidden))] + [head]
            return [(group[k]["kernel"], group[k]["bias"]) for k in names]

        p = train_state.params
        params = {"actor": layers(p["actor"], "policy"), "critic": layers(p["critic"], "value")}
        r = train_state.rollout
        return RefState(params, {g: tx[g].init(params[g]) for g in params}, r.env_state, r.obs,
                        r.episode_return, train_state.key, train_state.update)

    return Reference(init, update, loss, learn, from_pgjax)
