"""make_train: one pure, compiled training program per configuration, for any registered
algorithm, env and network.

Every algorithm is ``grad log pi(a|s) * A`` with a different estimator ``A``; the algorithm
object (:mod:`pgjax.algos`, picked by ``algorithm.name``) says which rollout it needs, how a
trajectory becomes a batch, its loss and its update schedule. Everything else is here and
the same for all of them:

=====================  ==========================  =================================
algorithm              rollout                     advantage
=====================  ==========================  =================================
``reinforce``          one whole episode per env   ``G_t`` (normalised per batch)
``reinforce_baseline`` one whole episode per env   ``G_t - V(s_t)``, V regressed on G
``a2c``                n steps, auto-reset         ``gae`` (lam=1: n-step bootstrap)
``ppo``                n steps, auto-reset         ``gae``, clipped ratio, epochs x minibatches
=====================  ==========================  =================================

:func:`make_train` does the Python-side work (environment, networks, sizes) and
returns pure functions: ``init(key, hparams=None)``, ``update(state)``,
``train(key, hparams=None)``, ``evaluate(state, key)`` and
``evaluate_both(state, key)``. Float
hyperparameters live in the state as traced arrays (:class:`HParams`), so
``jax.vmap(train)(keys, hparams)`` sweeps them in one program; shape-setting
options (num_envs, n_steps, network sizes, epochs, minibatches) are static.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from pgjax import algos
from pgjax.config import Config, ConfigError, Derived, derive
from pgjax.envs import Env, ObsStats, init_obs_stats, make_env, uses_obs_normalization
from pgjax.envs import normalize_obs as apply_obs_stats
from pgjax.evaluation import EvalReturns, make_evaluate
from pgjax.hparams import HParams, as_hparams, default_hparams  # noqa: F401  (re-exported)
from pgjax.learner import (AUTO_SLICE_SAMPLES, grad_slices, loss_slices, lr_of,  # noqa: F401
                           make_gradient_step, optimizer)
from pgjax.networks import Networks, make_networks
from pgjax.rollout import EpisodeStats, RolloutState, make_episodic_rollout, make_rollout
from pgjax.acting import episode_mean, episode_metrics, policy_step, reset_carry  # noqa: F401
from pgjax.sharding import Sharding, make_sharding

Array = jax.Array
Metrics = dict[str, Array]

# Episodic train(): the most per-update metric rows it allocates (derived.num_updates bounds
# the updates; beyond this, run_until in chunks, as pgjax train does).
MAX_TRAIN_ROWS = 1 << 22


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree).

    Attributes:
      params: network parameters, ``{"actor", "critic"}`` or ``{"shared"}`` (or your
        networks' groups: each top-level key gets its own Adam state).
      opt_state: optax states, one per parameter group (same keys).
      rollout: the n-step rollout state; None for episodic algorithms.
      obs_stats: the observation statistics the policy acts with (the one home of them, for
        every algorithm); None without normalisation.
      key: PRNG key.
      update: updates done, int32. An n-step algorithm's env steps are derived from it
        (``update * steps_per_update``) on the host, in Python ints, so no
        counter overflows at billions of steps.
      hparams: the run's :class:`HParams`.
      env_steps: episodic algorithms (reinforce): the env steps taken so far, int32 (an
        update takes as many as its episodes last, not its padded rollout); None for n-step
        algorithms.
    """

    params: Any
    opt_state: Any
    rollout: RolloutState | None
    obs_stats: ObsStats | None
    key: Array
    update: Array
    hparams: HParams
    env_steps: Array | None = None


class Trainer(NamedTuple):
    """What :func:`make_train` returns: pure functions plus what they close over."""

    init: Callable[..., TrainState]
    update: Callable[[TrainState], tuple[TrainState, Metrics]]
    train: Callable[..., tuple[TrainState, Metrics]]
    evaluate: Callable[..., Array]
    config: Config
    derived: Derived
    env: Env
    networks: Networks
    hparams: HParams
    sharding: Sharding
    # The update after its rollout: (state, traj, mask, key, last_obs=None) ->
    # (params, opt_state, metrics).
    learn: Callable[..., tuple[Any, Any, Metrics]]
    # (state, key) -> EvalReturns: greedy and sampled episodes in one rollout.
    evaluate_both: Callable[..., EvalReturns]
    # The registered algorithm object that config.algorithm.name names.
    algorithm: algos.Algorithm | None = None
    # (state, target, max_updates) -> (state, metrics [max_updates], updates run): updates
    # until state.env_steps >= target (episodic algorithms; see make_train).
    run_until: Callable[..., tuple[TrainState, Metrics, Array]] | None = None


def observation_stats(state: TrainState) -> ObsStats | None:
    """The observation statistics the policy of ``state`` acts with (None without
    observation normalisation); apply them with :func:`pgjax.envs.normalize_obs`."""
    return state.obs_stats


def _check_arguments(config: Any, env: Any, networks: Any) -> None:
    """One clear error for the arguments a caller is likely to get wrong."""
    if not isinstance(config, Config):
        raise TypeError(f"make_train: config must be a pgjax.config.Config, got "
                        f"{type(config).__name__}; load one with pgjax.load_config(...) or "
                        "pgjax.config.config_from_dict(a_dict)")
    if env is not None and not isinstance(env, Env):
        hint = (" (a gymnax environment: wrap it with pgjax.wrap_env(env, env_params))"
                if hasattr(env, "default_params") else "")
        raise TypeError(f"make_train: env must follow pgjax.envs.Env (spec, reset(key), "
                        f"step(key, state, action)); got {type(env).__name__}{hint}")
    if networks is not None and not isinstance(networks, Networks):
        raise TypeError(f"make_train: networks must be a pgjax.Networks, got "
                        f"{type(networks).__name__}")


def _with_env_name(config: Config, env: Env) -> Config:
    """The config that describes ``env``: a custom env's name replaces ``env.name`` (and the
    params, which were not used to build it)."""
    if env.spec.name == config.env.name.split(":")[-1]:
        return config
    return dataclasses.replace(config, env=dataclasses.replace(config.env, name=env.spec.name,
                                                               params=()))


def default_networks(config: Config, env: Env, algorithm: algos.Algorithm) -> Networks:
    """The networks ``config.network`` describes for ``env`` (a critic if the algorithm has one)."""
    net = config.network
    return make_networks(
        env.spec, hidden_sizes=net.hidden_sizes, activation=net.activation,
        shared_trunk=net.shared_trunk, use_critic=algorithm.critic,
        log_std_init=net.log_std_init, hidden_init_scale=net.hidden_init_scale,
        policy_init_scale=net.policy_init_scale, value_init_scale=net.value_init_scale,
        cnn=net.cnn, gru_size=net.gru_size)


def make_train(config: Config, *, env: Env | None = None,
               networks: Networks | None = None) -> Trainer:
    """Builds the pure functions that train ``config``.

    Args:
      config: a :class:`pgjax.config.Config`; validated here. ``algorithm.name`` picks a
        registered algorithm (:mod:`pgjax.algos`).
      env: a :class:`pgjax.envs.Env` to train on instead of
        ``make_env(config.env.name, **config.env.params)``: your own gymnax environment
        wrapped with :func:`pgjax.envs.wrap_env`, or any object following the protocol.
      networks: a :class:`pgjax.networks.Networks` to train instead of the ones
        ``config.network`` describes: ``init(key) -> params`` (a dict of parameter groups;
        ``"critic"`` gets ``critic_lr``, the others ``actor_lr``), and ``apply``, ``actor``
        and ``critic`` as documented there; with ``initial_carry`` set, a recurrent network
        whose carry the rollouts reset at episode starts.

    Returns:
      A :class:`Trainer` with

      * ``init(key, hparams=None) -> TrainState``;
      * ``update(state) -> (state, metrics)``: one rollout and its gradient
        step(s); metrics are scalars (losses, entropy, grad norm, and the mean return
        and length of the episodes that ended in this update with their
        ``episode_count``: NaN mean when none ended; average over updates with
        :func:`episode_mean`, which weights by the count);
      * ``train(key, hparams=None) -> (state, metrics)``: ``init`` then a
        ``lax.scan`` of ``derived.num_updates`` updates; metrics ``[U]``. Episodic
        algorithms (reinforce) count the env steps their episodes take, not the padded
        rollout (``metrics["env_steps_taken"]`` per update, ``state.env_steps`` in all):
        ``train`` runs updates until ``total_env_steps`` are taken (the last update may go
        past it) and returns ``derived.num_updates`` rows, an upper bound: the rows after
        ``state.update`` updates are NaN (``episode_count`` and ``env_steps_taken`` 0);
        ``trainer.run_until(state, target, max_updates)`` runs such a loop in pieces;
      * ``evaluate(state, key, greedy=True) -> returns[E]``: the undiscounted
        returns of ``training.eval_episodes`` fresh episodes (greedy: the
        policy's mode; else sampled);
      * ``evaluate_both(state, key) -> EvalReturns``: ``E`` greedy and ``E``
        sampled episodes as one rollout of ``2E`` envs (one compiled rollout
        for both; the two halves start from different resets).

      All are jittable and vmappable (over keys, hyperparameters or states).

    Examples:
      >>> import jax
      >>> from pgjax.config import Config, TrainingConfig
      >>> trainer = make_train(Config(training=TrainingConfig(num_envs=8, total_env_steps=640)))
      >>> state, metrics = jax.jit(trainer.train)(jax.random.key(0))
      >>> metrics["loss"].shape  # 640 // (8 envs * 8 steps) updates
      (10,)
    """
    _check_arguments(config, env, networks)
    algorithm = algos.get(config.algorithm.name)
    if env is None:
        env = make_env(config.env.name, **dict(config.env.params))
    else:
        config = _with_env_name(config, env)
    derived = derive(config, max_steps_in_episode=env.spec.max_steps_in_episode)
    if networks is None:
        networks = default_networks(config, env, algorithm)
    a, t = config.algorithm, config.training
    if networks.initial_carry is not None and a.recompute_advantages:
        raise ConfigError("algorithm.recompute_advantages=True: not supported with a recurrent "
                          "network yet (it needs the carry of each step replayed)")
    # The gradient step's forward pass (grad_apply: the same values, a faster backward on CPU).
    net_step = policy_step(networks.grad_apply or networks.apply, networks.initial_carry)
    recurrent = networks.initial_carry is not None
    if recurrent and algorithm.minibatched and t.num_envs % algorithm.minibatches(config):
        raise ConfigError(f"algorithm.minibatches={algorithm.minibatches(config)}: must divide "
                          f"training.num_envs = {t.num_envs} with a recurrent network "
                          "(minibatches are whole sequences of whole envs)")
    # Never for discrete observations (state indices): the rollouts ignore the flag for them too.
    normalize_obs = uses_obs_normalization(env.spec, config.env.normalize_obs)
    # The env batch is split over training.devices (one device: a mesh of one).
    sharding = make_sharding(t.devices, num_envs=t.num_envs, split=t.split,
                             num_seeds=t.num_seeds)
    rollout_kw = dict(num_envs=t.num_envs, normalize_obs=normalize_obs, shard=sharding.envs,
                      initial_carry=networks.initial_carry)
    if algorithm.episodic:
        episodic_rollout = make_episodic_rollout(env, networks.apply, **rollout_kw)
    else:
        rollout_fns = make_rollout(env, networks.apply, num_steps=a.n_steps, **rollout_kw)
    # Gradients summed over slices of at most grad_slice_samples per device.
    slices = 1 if recurrent else loss_slices(config, num_devices=sharding.num_devices,
                                             platform=sharding.mesh.devices.flat[0].platform)

    def replay(params, obs, carry, starts):
        # Each env's sequence from the carry its first step started from, reset where a new
        # episode starts: gradients flow back through time within the rollout.
        initial = networks.initial_carry(obs.shape[1])

        def step(h, x):
            o, start = x
            dist, value, h = networks.apply(params, o, reset_carry(h, initial, start))
            return h, (dist, value)

        _, (dist, value) = jax.lax.scan(step, jax.tree.map(lambda c: c[0], carry), (obs, starts))
        return dist, value

    gradient_step = make_gradient_step(config, algorithm, net_step, slices, sharding.replicated,
                                       replay=replay if recurrent else None)
    eval_fn, eval_both_fn = make_evaluate(
        env, networks, episodes=t.eval_episodes, normalize_obs=normalize_obs,
        shard=sharding.envs, num_devices=sharding.num_devices)
    default = default_hparams(config)

    def init(key: Array, hparams: HParams | None = None) -> TrainState:
        hparams = default if hparams is None else as_hparams(hparams)
        key, net_key, env_key = jax.random.split(key, 3)
        params = sharding.replicated(networks.init(net_key))
        opt_state = {g: optimizer(config, lr_of(g, hparams), hparams.max_grad_norm).init(p)
                     for g, p in params.items()}
        rollout_state = None if algorithm.episodic else rollout_fns.reset(env_key)
        obs_stats = init_obs_stats(env.spec.obs_shape) if normalize_obs else None
        env_steps = jnp.zeros((), jnp.int32) if algorithm.episodic else None
        return TrainState(params, opt_state, rollout_state, obs_stats, key,
                          jnp.zeros((), jnp.int32), hparams, env_steps)

    def values(params, traj, last_obs: Array | None) -> tuple[Array, Array]:
        # Values of obs[0..T-1] and of the obs after the last step under the current critic;
        # a truncated step keeps the acting critic's V(final observation) (the final
        # observation is not stored; time limits are rare steps), a terminated one gets 0.
        value = networks.critic(params, traj.obs).astype(jnp.float32)
        last = (traj.next_value[-1] if last_obs is None
                else networks.critic(params, last_obs).astype(jnp.float32))
        following = jnp.concatenate([value[1:], last[None]], axis=0)
        next_value = jnp.where(traj.truncated, traj.next_value,
                               jnp.where(traj.terminated, 0.0, following))
        return value, next_value

    learner = algos.Learner(config, derived, networks, gradient_step,
                            lambda tree, axis=1: sharding.envs(tree, axis=axis), values,
                            recurrent)

    def lr_scale_of(state: TrainState) -> Array:
        if not config.optimizer.anneal_lr:
            return jnp.ones((), jnp.float32)
        if algorithm.episodic:  # the share of the budget of env steps taken still to go
            spent = state.env_steps.astype(jnp.float32) / derived.env_steps
            return jnp.maximum(1.0 - spent, 0.0)
        return 1.0 - state.update.astype(jnp.float32) / derived.num_updates

    def learn(state: TrainState, traj, mask: Array | None, key: Array | None,
              last_obs: Array | None = None):
        """Advantages and targets from a rollout's ``traj`` (the algorithm's ``batch``), then
        its gradient step(s) (its ``update``).

        ``mask`` marks the valid steps of an episodic rollout (None for n-step
        rollouts); ``key`` shuffles PPO's minibatches (unused otherwise).
        ``last_obs`` ``[N, *obs_shape]``: the observation after the rollout's last step, as
        the policy sees it (normalised with the rollout's statistics); PPO with
        ``algorithm.recompute_advantages`` bootstraps from the current critic's value of it
        (without it, from the acting critic's ``traj.next_value[-1]``).
        Returns ``(params, opt_state, metrics)``. It does not advance ``state.update`` (which
        ``optimizer.anneal_lr`` reads, and from which env steps are counted): a caller running
        its own loop sets ``state._replace(params=..., opt_state=..., update=state.update + 1)``.

        Raises:
          ValueError: at trace time, when ``traj``, ``mask`` or ``last_obs`` is not shaped as
            this trainer's rollouts are (``[T, N]`` with T and N from the config), naming the
            expected and the given shape.
        """
        _check_rollout(traj, mask, last_obs)
        batch = algorithm.batch(traj, mask, state.hparams, config)
        if recurrent:  # where the loss's replay resets the carry
            done = traj.terminated | traj.truncated
            batch = batch._replace(starts=jnp.concatenate([jnp.zeros_like(done[:1]), done[:-1]]))
        return algorithm.update(learner, state.params, state.opt_state, batch, state.hparams,
                                lr_scale_of(state), key, traj, last_obs)

    def _check_rollout(traj, mask, last_obs) -> None:
        steps = derived.rollout_length
        want = (steps, t.num_envs)
        what = ("max_steps_in_episode" if algorithm.episodic else "algorithm.n_steps")
        fields = {"obs": want + env.spec.obs_shape, "reward": want, "terminated": want,
                  "truncated": want, "log_prob": want, "value": want, "next_value": want}
        for name, shape in fields.items():
            got = tuple(jnp.shape(getattr(traj, name)))
            if got != shape:
                raise ValueError(
                    f"learn: traj.{name} has shape {got}; this trainer's rollouts are "
                    f"[T, N] = [{steps}, {t.num_envs}] (T = {what}, N = training.num_envs)"
                    f", so expected {shape}")
        if algorithm.episodic and (mask is None or tuple(jnp.shape(mask)) != want):
            raise ValueError(f"learn: mask must mark the valid steps, shape {want}; got "
                             f"{None if mask is None else tuple(jnp.shape(mask))}")
        if last_obs is not None and tuple(jnp.shape(last_obs)) != want[1:] + env.spec.obs_shape:
            raise ValueError(f"learn: last_obs has shape {tuple(jnp.shape(last_obs))}; "
                             f"expected {want[1:] + env.spec.obs_shape}")

    def episodic_update(state: TrainState) -> tuple[TrainState, Metrics]:
        key, rollout_key = jax.random.split(state.key)
        traj, mask, ep_stats, obs_stats = episodic_rollout(state.params, rollout_key,
                                                           state.obs_stats)
        params, opt_state, metrics = learn(state, traj, mask, None)
        taken = jnp.sum(mask, dtype=jnp.int32)  # the env steps of its episodes, not the padding
        metrics["env_steps_taken"] = taken
        new_state = state._replace(params=params, opt_state=opt_state, obs_stats=obs_stats,
                                   key=key, update=state.update + 1,
                                   env_steps=state.env_steps + taken)
        return new_state, {**metrics, **episode_metrics(ep_stats)}

    def nstep_update(state: TrainState) -> tuple[TrainState, Metrics]:
        key, rollout_key, shuffle_key = jax.random.split(state.key, 3)
        rollout_state, traj, ep_stats, obs_stats = rollout_fns.rollout(
            state.params, state.rollout, rollout_key, state.obs_stats)
        last_obs = None
        if a.recompute_advantages:  # the obs after the last step, as the policy saw obs[t]
            stats = state.obs_stats
            last_obs = rollout_state.obs if stats is None else apply_obs_stats(stats, rollout_state.obs)
        params, opt_state, metrics = learn(state, traj, None, shuffle_key, last_obs)
        new_state = state._replace(params=params, opt_state=opt_state, rollout=rollout_state,
                                   obs_stats=obs_stats, key=key, update=state.update + 1)
        return new_state, {**metrics, **episode_metrics(ep_stats)}

    update = episodic_update if algorithm.episodic else nstep_update

    def run_until(state: TrainState, target: Array | int,
                  max_updates: int) -> tuple[TrainState, Metrics, Array]:
        """Episodic algorithms: updates until ``state.env_steps >= target`` (each seed stops at
        the update that reaches it) or ``max_updates`` of them; a ``lax.while_loop``, so under
        ``vmap`` the seeds that are done wait, unchanged, for the others. Returns the state,
        metrics ``[max_updates]`` (rows past the updates run: NaN, and 0 for
        ``episode_count`` and ``env_steps_taken``) and the number of updates run."""
        if not algorithm.episodic:
            raise ValueError(f"run_until: {config.algorithm.name} takes a fixed number of env "
                             "steps per update; scan update() derived.num_updates times")
        shapes = jax.eval_shape(update, state)[1]
        empty = {name: jnp.full((max_updates, *x.shape),
                                jnp.nan if jnp.issubdtype(x.dtype, jnp.floating) else 0, x.dtype)
                 for name, x in shapes.items()}
        empty["episode_count"] = jnp.zeros_like(empty["episode_count"])

        def going(carry):
            s, i, _ = carry
            return (s.env_steps < target) & (i < max_updates)

        def body(carry):
            s, i, rows = carry
            s, metrics = update(s)
            rows = {name: rows[name].at[i].set(metrics[name]) for name in rows}
            return s, i + 1, rows

        state, ran, metrics = jax.lax.while_loop(going, body, (state, jnp.zeros((), jnp.int32),
                                                               empty))
        return state, metrics, ran

    def train(key: Array, hparams: HParams | None = None) -> tuple[TrainState, Metrics]:
        state = init(key, hparams)
        if algorithm.episodic:
            if derived.num_updates > MAX_TRAIN_ROWS:
                raise ValueError(
                    f"train: {config.algorithm.name} with training.total_env_steps = "
                    f"{derived.env_steps:,} and num_envs = {t.num_envs} may need up to "
                    f"{derived.num_updates:,} updates (episodes of one step), more metric "
                    f"rows than train keeps ({MAX_TRAIN_ROWS:,}); run it in chunks with "
                    "run_until, or with pgjax train")
            state, metrics, _ = run_until(state, derived.env_steps, derived.num_updates)
            return state, metrics
        return jax.lax.scan(lambda s, _: update(s), state, None, length=derived.num_updates)

    def evaluate(state: TrainState, key: Array, greedy: bool | Array = True) -> Array:
        return eval_fn(state.params, state.obs_stats, key, greedy)

    def evaluate_both(state: TrainState, key: Array) -> EvalReturns:
        return eval_both_fn(state.params, state.obs_stats, key)

    return Trainer(init, update, train, evaluate, config, derived, env, networks, default, sharding,
                   learn, evaluate_both, algorithm, run_until if algorithm.episodic else None)
