"""make_train: one pure, compiled training program per configuration.

Every algorithm is ``grad log pi(a|s) * A`` with a different estimator ``A``
(DESIGN.md, "Algorithms as estimators"):

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

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from pgjax.config import EPISODIC_ALGORITHMS, Config, Derived, derive
from pgjax.envs import Env, ObsStats, init_obs_stats, make_env, uses_obs_normalization
from pgjax.envs import normalize_obs as apply_obs_stats
from pgjax.losses import actor_critic_loss
from pgjax.networks import Networks, make_networks
from pgjax.returns import discounted_returns, gae, normalize
from pgjax.rollout import EpisodeStats, RolloutState, make_episodic_rollout, make_rollout
from pgjax.sharding import Sharding, make_sharding

Array = jax.Array
Metrics = dict[str, Array]


class HParams(NamedTuple):
    """Float hyperparameters, carried in the state as float32 scalars (traced).

    Any of them can be vmapped: ``jax.vmap(train)(keys, hparams)`` with
    leaves of shape ``[S]``. Build one with :func:`default_hparams` and
    ``._replace``.
    """

    gamma: Array
    gae_lambda: Array
    actor_lr: Array
    critic_lr: Array
    entropy_coef: Array
    value_coef: Array
    clip_eps: Array
    max_grad_norm: Array  # ignored when config.optimizer.max_grad_norm is None


class TrainState(NamedTuple):
    """Everything that changes during training (a pytree).

    Attributes:
      params: network parameters, ``{"actor", "critic"}`` or ``{"shared"}``.
      opt_state: optax states, one per parameter group (same keys).
      rollout: the n-step rollout state (a2c, ppo); None for episodic algorithms.
      obs_stats: observation statistics of episodic algorithms (a2c and ppo
        keep theirs in ``rollout.obs_stats``); None without normalisation.
      key: PRNG key.
      update: updates done, int32. Env steps are derived from it
        (``update * steps_per_update``) on the host, in Python ints, so no
        counter overflows at billions of steps.
      hparams: the run's :class:`HParams`.
    """

    params: Any
    opt_state: Any
    rollout: RolloutState | None
    obs_stats: ObsStats | None
    key: Array
    update: Array
    hparams: HParams


class EvalReturns(NamedTuple):
    """The returns of one evaluation of both policies (leaves ``[E]``, or ``[S, E]`` vmapped).

    Attributes:
      greedy: of the greedy policy (each step takes the distribution's mode).
      sampled: of the stochastic policy that trained (each step samples its action).
    """

    greedy: Array
    sampled: Array


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
    # The update after its rollout: (state, traj, mask, key) -> (params, opt_state, metrics).
    learn: Callable[..., tuple[Any, Any, Metrics]]
    # (state, key) -> EvalReturns: greedy and sampled episodes in one rollout.
    evaluate_both: Callable[..., EvalReturns]


class _Batch(NamedTuple):
    """What the loss needs, leaves ``[T, N, ...]`` or flattened ``[B, ...]``."""

    obs: Array
    action: Array
    advantage: Array
    target: Array
    old_log_prob: Array
    old_value: Array
    mask: Array | None  # valid steps of episodic rollouts; None when all are valid


def default_hparams(config: Config) -> HParams:
    """The config's float hyperparameters as float32 arrays."""
    a, o = config.algorithm, config.optimizer
    values = HParams(
        gamma=a.gamma,
        gae_lambda=a.gae_lambda,
        actor_lr=o.actor_lr,
        critic_lr=o.critic_lr,
        entropy_coef=a.entropy_coef,
        value_coef=a.value_coef,
        clip_eps=a.clip_eps,
        max_grad_norm=o.max_grad_norm if o.max_grad_norm is not None else jnp.inf,
    )
    return HParams(*(jnp.asarray(v, jnp.float32) for v in values))


def _optimizer(config: Config, lr: Array, max_grad_norm: Array) -> optax.GradientTransformation:
    # optax.flatten: the optimiser sees one vector, not a leaf per layer. Same update, but one
    # fused clip-and-Adam instead of a dozen small ones; the chunk compiles ~0.35 s faster on
    # CPU (the 2x64 a2c program, 1.45 -> 1.10 s; benchmarks/RESULTS.md, time to solve).
    adam = optax.adam(lr, eps=config.optimizer.adam_eps)
    if config.optimizer.max_grad_norm is not None:
        adam = optax.chain(optax.clip_by_global_norm(max_grad_norm), adam)
    return optax.flatten(adam)


# Samples per device in one gradient slice with training.grad_slice_samples = "auto" on CPU:
# the fastest for the 2x64 a2c on this project's CPU at N = 256, 2048 and 4096 (T = 128).
AUTO_SLICE_SAMPLES = 8192


def grad_slices(rows: int, samples_per_row: int, max_samples: int) -> int:
    """The fewest equal slices of ``rows`` (a divisor) holding at most ``max_samples``
    samples each, ``samples_per_row`` per row; 1 when ``max_samples`` is 0 or all fit.

    >>> grad_slices(128, 2048, 8192), grad_slices(128, 16, 8192), grad_slices(6, 10, 25)
    (32, 1, 3)
    """
    if max_samples <= 0 or rows * samples_per_row <= max_samples:
        return 1
    return next(c for c in range(2, rows + 1)
                if rows % c == 0 and rows // c * samples_per_row <= max_samples or c == rows)


def loss_slices(config: Config, *, num_devices: int = 1, platform: str = "cpu") -> int:
    """How many slices each gradient is summed over (1: the whole batch at once), for
    ``training.grad_slice_samples`` on ``num_devices`` devices of ``platform``: a2c slices
    its batch by time step, PPO each minibatch by row; REINFORCE (masked) never slices."""
    a, t = config.algorithm, config.training
    if a.name not in ("a2c", "ppo"):
        return 1
    max_samples = t.grad_slice_samples
    if max_samples == "auto":
        max_samples = AUTO_SLICE_SAMPLES if platform == "cpu" else 0
    envs = max(t.num_envs // num_devices if t.split == "envs" else t.num_envs, 1)
    if a.name == "a2c":
        return grad_slices(a.n_steps, envs, max_samples)
    return grad_slices(max(a.n_steps * envs // a.minibatches, 1), 1, max_samples)


def observation_stats(state: TrainState) -> ObsStats | None:
    """The observation statistics the policy of ``state`` acts with (None without
    observation normalisation); apply them with :func:`pgjax.envs.normalize_obs`."""
    return state.obs_stats if state.rollout is None else state.rollout.obs_stats


def _ep_metrics(stats: EpisodeStats) -> Metrics:
    count = stats.count.astype(jnp.float32)
    return {
        "episode_return": stats.return_sum / jnp.maximum(count, 1.0),
        "episode_length": stats.length_sum.astype(jnp.float32) / jnp.maximum(count, 1.0),
        "episode_count": count,
    }


class _Greedy(NamedTuple):
    """A distribution whose ``sample`` is its mode: the greedy policy."""

    dist: Any

    def sample(self, key):
        del key
        return self.dist.mode()

    def log_prob(self, action):
        return self.dist.log_prob(action)


class _GreedyWhere(NamedTuple):
    """A batch of distributions that take their mode where ``greedy`` (``[N]`` bool) and
    sample elsewhere: greedy and sampled episodes in one rollout."""

    dist: Any
    greedy: Array

    def sample(self, key):
        mode, sampled = self.dist.mode(), self.dist.sample(key)
        greedy = self.greedy.reshape(self.greedy.shape + (1,) * (mode.ndim - self.greedy.ndim))
        return jnp.where(greedy, mode, sampled)

    def log_prob(self, action):
        return self.dist.log_prob(action)


def make_train(config: Config, *, env: Env | None = None) -> Trainer:
    """Builds the pure functions that train ``config``.

    Args:
      config: a :class:`pgjax.config.Config`; validated here.
      env: an :class:`~pgjax.envs.Env` to train on instead of
        ``make_env(config.env.name, **config.env.params)``, e.g. your own
        gymnax environment wrapped with :func:`pgjax.envs.wrap_env`.

    Returns:
      A :class:`Trainer` with

      * ``init(key, hparams=None) -> TrainState``;
      * ``update(state) -> (state, metrics)``: one rollout and its gradient
        step(s); metrics are scalars (losses, entropy, grad norm, mean return
        of the episodes completed in this update, ...);
      * ``train(key, hparams=None) -> (state, metrics)``: ``init`` then a
        ``lax.scan`` of ``derived.num_updates`` updates; metrics ``[U]``;
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
    if env is None:
        env = make_env(config.env.name, **dict(config.env.params))
    derived = derive(config, max_steps_in_episode=env.spec.max_steps_in_episode)
    a, net = config.algorithm, config.network
    episodic = a.name in EPISODIC_ALGORITHMS
    use_critic = a.name != "reinforce"
    networks = make_networks(
        env.spec,
        hidden_sizes=net.hidden_sizes,
        activation=net.activation,
        shared_trunk=net.shared_trunk,
        use_critic=use_critic,
        log_std_init=net.log_std_init,
        hidden_init_scale=net.hidden_init_scale,
        policy_init_scale=net.policy_init_scale,
        value_init_scale=net.value_init_scale,
        cnn=net.cnn,
    )
    # Never for discrete observations (state indices): the rollouts ignore the flag for them too.
    normalize_obs = uses_obs_normalization(env.spec, config.env.normalize_obs)
    # The env batch is split over training.devices (one device: a mesh of one).
    t = config.training
    sharding = make_sharding(t.devices, num_envs=t.num_envs, split=t.split,
                             num_seeds=t.num_seeds)
    if episodic:
        episodic_rollout = make_episodic_rollout(
            env, networks.apply, num_envs=config.training.num_envs, normalize_obs=normalize_obs,
            shard=sharding.envs,
        )
    else:
        rollout_fns = make_rollout(
            env,
            networks.apply,
            num_envs=config.training.num_envs,
            num_steps=a.n_steps,
            normalize_obs=normalize_obs,
            shard=sharding.envs,
        )
    # Gradients summed over slices of at most grad_slice_samples per device.
    slices = loss_slices(config, num_devices=sharding.num_devices,
                         platform=sharding.mesh.devices.flat[0].platform)

    eval_envs = max(config.training.eval_episodes, 1)

    def policy_only(mode: str):
        # Evaluation needs no critic: a zero value keeps the rollout's interface. "both": the
        # first eval_envs envs act greedily, the next eval_envs sample.
        def apply(params, obs):
            dist = networks.actor(params, obs)
            value = jnp.zeros(obs.shape[: obs.ndim - len(env.spec.obs_shape)])
            if mode == "both":
                return _GreedyWhere(dist, jnp.arange(2 * eval_envs) < eval_envs), value
            return (_Greedy(dist) if mode == "greedy" else dist), value

        return apply

    def eval_rollout(mode: str):
        envs = 2 * eval_envs if mode == "both" else eval_envs
        return make_episodic_rollout(
            env, policy_only(mode), num_envs=envs, normalize_obs=normalize_obs,
            shard=sharding.envs if envs % sharding.num_devices == 0 else None,
        )

    eval_rollouts = {mode: eval_rollout(mode) for mode in ("greedy", "sampled", "both")}
    default = default_hparams(config)

    def lr_of(group: str, hp: HParams) -> Array:
        return hp.critic_lr if group == "critic" else hp.actor_lr

    def init(key: Array, hparams: HParams | None = None) -> TrainState:
        hparams = default if hparams is None else HParams(*(jnp.asarray(h, jnp.float32) for h in hparams))
        key, net_key, env_key = jax.random.split(key, 3)
        params = sharding.replicated(networks.init(net_key))
        opt_state = {g: _optimizer(config, lr_of(g, hparams), hparams.max_grad_norm).init(p)
                     for g, p in params.items()}
        rollout_state = None if episodic else rollout_fns.reset(env_key)
        obs_stats = init_obs_stats(env.spec.obs_shape) if episodic and normalize_obs else None
        return TrainState(params, opt_state, rollout_state, obs_stats, key,
                          jnp.zeros((), jnp.int32), hparams)

    def loss_fn(params, batch: _Batch, hp: HParams, normalized: bool = False):
        dist, value = networks.apply(params, batch.obs)
        log_prob = dist.log_prob(batch.action)
        advantage = batch.advantage
        if a.normalize_advantages and not normalized:
            advantage = normalize(advantage, batch.mask)
        ppo = a.name == "ppo"
        return actor_critic_loss(
            log_prob,
            value if use_critic else None,
            advantage,
            batch.target if use_critic else None,
            dist.entropy(),
            value_coef=hp.value_coef,
            entropy_coef=hp.entropy_coef,
            mask=batch.mask,
            old_log_probs=batch.old_log_prob if ppo else None,
            clip_eps=hp.clip_eps if ppo else None,
            old_values=batch.old_value if ppo else None,
            value_clip_eps=a.value_clip_eps,
        )

    def gradient_step(params, opt_state, batch: _Batch, hp: HParams, lr_scale: Array,
                      slices: int = 1, strided: bool = False):
        if slices == 1:
            (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch, hp)
        else:
            grads, metrics = _sliced_grads(params, batch, hp, slices, strided)
        new_params, new_opt_state = {}, {}
        for group in params:
            tx = _optimizer(config, lr_of(group, hp) * lr_scale, hp.max_grad_norm)
            updates, new_opt_state[group] = tx.update(grads[group], opt_state[group], params[group])
            new_params[group] = optax.apply_updates(params[group], updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return sharding.replicated(new_params), new_opt_state, metrics

    def _sliced_grads(params, batch: _Batch, hp: HParams, slices: int, strided: bool):
        # The mean loss over an unmasked batch is the mean of the losses of `slices` equal
        # slices of it, so its gradient is the mean of theirs. One slice's activations at a
        # time stay in cache, where the whole batch's [samples, width] ones do not. a2c: time
        # slices of [T, N]; PPO (strided): piece j holds minibatch rows j, j + slices, ...,
        # so each device keeps its share of every piece.
        if a.normalize_advantages:  # over the whole batch, as the unsliced loss does
            batch = batch._replace(advantage=normalize(batch.advantage, batch.mask))
        if strided:
            pieces = jax.tree.map(
                lambda x: jnp.moveaxis(x.reshape((-1, slices, *x.shape[1:])), 1, 0), batch)
        else:
            pieces = jax.tree.map(lambda x: x.reshape((slices, -1, *x.shape[1:])), batch)

        def grads_of(piece):
            (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                params, piece, hp, normalized=True)
            return grads, metrics

        def body(total, piece):
            return jax.tree.map(jnp.add, total, grads_of(piece)), None

        first = jax.tree.map(lambda x: x[0], pieces)
        zeros = jax.tree.map(jnp.zeros_like, jax.eval_shape(grads_of, first))
        total, _ = jax.lax.scan(body, zeros, pieces)
        return jax.tree.map(lambda x: x / slices, total)

    def lr_scale_of(state: TrainState) -> Array:
        if not config.optimizer.anneal_lr:
            return jnp.ones((), jnp.float32)
        return 1.0 - state.update.astype(jnp.float32) / derived.num_updates

    def learn(state: TrainState, traj, mask: Array | None, key: Array | None,
              last_obs: Array | None = None):
        """Advantages and targets from a rollout's ``traj``, then the gradient step(s).

        ``mask`` marks the valid steps of an episodic rollout (None for n-step
        rollouts); ``key`` shuffles PPO's minibatches (unused otherwise).
        ``last_obs`` ``[N, *obs_shape]``: the observation after the rollout's last step, as
        the policy sees it (normalised with the rollout's statistics); PPO with
        ``algorithm.recompute_advantages`` bootstraps from the current critic's value of it
        (without it, from the acting critic's ``traj.next_value[-1]``).
        Returns ``(params, opt_state, metrics)``.
        """
        hp = state.hparams
        if episodic:
            # Complete episodes only: the time limit ends an episode, no bootstrap.
            returns = discounted_returns(traj.reward, traj.done, hp.gamma)
            if a.normalize_returns:
                returns = normalize(returns, mask)
            advantage = returns - traj.value if use_critic else returns
            batch = _Batch(traj.obs, traj.action, advantage, returns, traj.log_prob, traj.value, mask)
        else:
            advantage, target = gae(traj.reward, traj.value, traj.next_value, traj.terminated,
                                    traj.done, hp.gamma, hp.gae_lambda)
            # Every n-step transition is valid: no mask (None), so losses take plain means.
            batch = _Batch(traj.obs, traj.action, advantage, target, traj.log_prob, traj.value, None)
        if a.name == "ppo":
            return _ppo_epochs(state, batch, key, lr_scale_of(state), traj, last_obs)
        return gradient_step(state.params, state.opt_state, batch, hp, lr_scale_of(state),
                             slices=slices)  # 1 for REINFORCE's masked batches (loss_slices)

    def episodic_update(state: TrainState) -> tuple[TrainState, Metrics]:
        key, rollout_key = jax.random.split(state.key)
        traj, mask, ep_stats, obs_stats = episodic_rollout(state.params, rollout_key, state.obs_stats)
        params, opt_state, metrics = learn(state, traj, mask, None)
        metrics["env_steps_valid"] = jnp.sum(mask, dtype=jnp.float32)
        new_state = state._replace(params=params, opt_state=opt_state, obs_stats=obs_stats,
                                   key=key, update=state.update + 1)
        return new_state, {**metrics, **_ep_metrics(ep_stats)}

    def nstep_update(state: TrainState) -> tuple[TrainState, Metrics]:
        key, rollout_key, shuffle_key = jax.random.split(state.key, 3)
        rollout_state, traj, ep_stats = rollout_fns.rollout(state.params, state.rollout, rollout_key)
        last_obs = None
        if a.recompute_advantages:  # the obs after the last step, as the policy saw obs[t]
            stats = state.rollout.obs_stats
            last_obs = rollout_state.obs if stats is None else apply_obs_stats(stats, rollout_state.obs)
        params, opt_state, metrics = learn(state, traj, None, shuffle_key, last_obs)
        new_state = state._replace(params=params, opt_state=opt_state, rollout=rollout_state,
                                   key=key, update=state.update + 1)
        return new_state, {**metrics, **_ep_metrics(ep_stats)}

    def recomputed(params, traj, last_obs: Array | None) -> tuple[Array, Array]:
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

    def _ppo_epochs(state: TrainState, batch: _Batch, key: Array, lr_scale: Array, traj,
                    last_obs: Array | None):
        size = derived.batch_size
        hp = state.hparams

        def epoch(carry, epoch_key):
            epoch_batch = batch
            if a.recompute_advantages:
                value, next_value = recomputed(carry[0], traj, last_obs)
                advantage, target = gae(traj.reward, value, next_value, traj.terminated,
                                        traj.done, hp.gamma, hp.gae_lambda)
                epoch_batch = batch._replace(advantage=advantage, target=target)
            flat = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), epoch_batch)
            perm = jax.random.permutation(epoch_key, size)
            shuffled = jax.tree.map(
                lambda x: x[perm].reshape((a.minibatches, -1, *x.shape[1:])), flat
            )
            # Each device takes its share of every minibatch's rows (else the
            # partitioner gathers the batch and every device does all the work).
            shuffled = sharding.envs(shuffled, axis=1)

            def minibatch(carry, mb):
                params, opt_state = carry
                params, opt_state, metrics = gradient_step(params, opt_state, mb, state.hparams,
                                                           lr_scale, slices, strided=True)
                return (params, opt_state), metrics

            return jax.lax.scan(minibatch, carry, shuffled)

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (state.params, state.opt_state), jax.random.split(key, a.epochs)
        )
        return params, opt_state, jax.tree.map(jnp.mean, metrics)

    update = episodic_update if episodic else nstep_update

    def train(key: Array, hparams: HParams | None = None) -> tuple[TrainState, Metrics]:
        state = init(key, hparams)
        return jax.lax.scan(lambda s, _: update(s), state, None, length=derived.num_updates)

    def evaluate(state: TrainState, key: Array, greedy: bool | Array = True) -> Array:
        obs_stats = state.obs_stats if episodic else state.rollout.obs_stats

        def returns(greedy: bool) -> Array:
            rollout = eval_rollouts["greedy" if greedy else "sampled"]
            traj, _, _, _ = rollout(state.params, key, obs_stats)
            return jnp.sum(traj.reward, axis=0)

        if isinstance(greedy, bool):
            return returns(greedy)
        # A traced flag (e.g. evaluate passed to jit as an argument): pick at run time.
        return jax.lax.cond(greedy, lambda: returns(True), lambda: returns(False))

    def evaluate_both(state: TrainState, key: Array) -> EvalReturns:
        # One rollout of 2E envs, not two of E: one compiled rollout (half the compile time of
        # two); both halves end within one episode cap, and the idle steps are skipped. With
        # JAX's default partitionable threefry, split(key, 2E)[:E] == split(key, E): the
        # greedy half plays the episodes of evaluate(state, key, greedy=True).
        obs_stats = state.obs_stats if episodic else state.rollout.obs_stats
        traj, _, _, _ = eval_rollouts["both"](state.params, key, obs_stats)
        returns = jnp.sum(traj.reward, axis=0)
        return EvalReturns(greedy=returns[:eval_envs], sampled=returns[eval_envs:])

    return Trainer(init, update, train, evaluate, config, derived, env, networks, default, sharding,
                   learn, evaluate_both)
