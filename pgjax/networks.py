"""Actor and critic networks built from an environment's spec.

:func:`make_networks` returns a :class:`Networks` bundle of pure functions
(``init``, ``apply``, ``actor``, ``critic``), in the manner of brax's
``PPONetworks``. Parameters are plain nested dicts of arrays.

Conventions:
  * Observations have shape ``[..., *spec.obs_shape]`` with any number of
    leading batch axes (``[]``, ``[N]``, time-major ``[T, N]``); every output
    has those same leading axes ``[...]``.
  * Discrete observations (``spec.obs_num_values = n``, e.g. FrozenLake's
    state index, ``obs_shape == ()``) are integers that the networks one-hot
    encode to ``n`` float32 inputs per element before the MLP; fed as a raw
    float, index 7 would look "between" 6 and 8 to the first layer.
  * A :class:`~pgjax.types.DiscreteSpace` gives a
    :class:`~pgjax.distributions.Categorical` policy; a 1-D
    :class:`~pgjax.types.BoxSpace` gives a
    :class:`~pgjax.distributions.DiagGaussian` whose ``log_std`` is a learned,
    state-independent ``[D]`` parameter (broadcast to ``[..., D]`` in the
    returned distribution, so every leaf shares the batch shape).
  * The Gaussian lives in *normalised* action units ``u``: the environment
    receives ``clip(center + half_range * u, low, high)`` with
    ``center = (low + high) / 2`` and ``half_range = (high - low) / 2`` per
    dimension (:func:`env_action`), so ``u = ±1`` are the box's bounds
    whatever their scale. The policy head starts near ``u = 0`` (the box's
    centre) and ``log_std`` at ``log_std_init``, a standard deviation in units
    of half the action range: the same start for a ``±0.1`` box as for a
    ``[0, 100]`` one. A dimension with an infinite bound is not rescaled
    (``center = 0``, ``half_range = 1``).
  * ``u`` is sampled unbounded, and it is what a rollout stores
    (``Transition.action``) and what ``log_prob`` and ``entropy`` are of; only
    the action sent to the environment is rescaled and clipped. Densities in
    ``u`` differ from densities in env units by the constant
    ``Σ_d log half_range_d``, which changes no gradient (and no PPO ratio).
    The greedy action, the mode ``u = mean``, maps the same way.
  * Top-level parameter keys: ``"actor"`` and ``"critic"`` for separate
    networks, ``"shared"`` for a shared trunk with two heads, ``"actor"`` alone
    without a critic. Trainers key per-network optimisers on these.
  * Initialisation follows purejaxrl: orthogonal weights with gain ``√2`` for
    hidden layers, ``0.01`` for the policy head and ``1.0`` for the value head;
    zero biases. The orthogonal matrices are drawn one at a time even under
    ``vmap`` (:func:`orthogonal`), which keeps them bit-identical and avoids a
    deadlock of batched LAPACK QR on several CPU devices.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from pgjax.actions import action_scale, env_action  # noqa: F401  (re-exported)
from pgjax.distributions import Categorical, DiagGaussian
from pgjax.types import BoxSpace, DiscreteSpace, EnvSpec

Array = jax.Array
Params = Any  # nested dict of arrays
Distribution = Categorical | DiagGaussian

_ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": nn.tanh,
    "relu": nn.relu,
    "gelu": nn.gelu,
    "elu": nn.elu,
    "silu": nn.silu,
}


def orthogonal(scale: float = 1.0) -> Callable[..., Array]:
    """``jax.nn.initializers.orthogonal(scale)``, computed one matrix at a time under vmap.

    Same values, bit for bit, as the flax initializer, unbatched or vmapped. The
    difference is how a vmap over keys (seeds) runs: flax's initializer turns it
    into one batched QR factorisation, which jaxlib's CPU LAPACK kernel splits
    over the intra-op thread pool and then waits for; when several devices of a
    multi-device CPU program (``training.devices``) do that at once, every pool
    thread ends up waiting and the program hangs (jaxlib 0.10, reproduced with
    ``--xla_force_host_platform_device_count=4``). A ``custom_vmap`` rule maps
    the unbatched initializer over the keys instead (``lax.map``); nested vmaps
    (seeds x hyperparameters) apply the rule again.
    """
    base = nn.initializers.orthogonal(scale)

    def init(key: Array, shape: Sequence[int], dtype: Any = jnp.float32) -> Array:
        @jax.custom_batching.custom_vmap
        def draw(key: Array) -> Array:
            return base(key, shape, dtype)

        @draw.def_vmap
        def _rule(axis_size: int, in_batched: Sequence[bool], key: Array):
            (batched,) = in_batched
            if not batched:
                return draw(key), False
            return jax.lax.map(draw, key), True

        return draw(key)

    return init


class Networks(NamedTuple):
    """A frozen bundle of pure network functions: what ``make_train(config, networks=...)``
    accepts (build your own with any JAX library).

    Attributes:
      init: ``init(key) -> params``, a dict of parameter groups; each group gets its own
        Adam state, ``"critic"`` with ``optimizer.critic_lr``, the others ``actor_lr``.
      apply: ``apply(params, obs) -> (dist, value)``; obs ``[..., *obs_shape]``,
        dist with batch shape ``[...]`` (``sample(key)``, ``log_prob(action)``,
        ``entropy()``, ``mode()``), value ``[...]``.
      actor: ``actor(params, obs) -> dist``.
      critic: ``critic(params, obs) -> value`` (zeros without a critic).
      spec: the :class:`~pgjax.types.EnvSpec` the networks were built for.
      initial_carry: None for feedforward networks. A recurrent network sets it to
        ``initial_carry(N) -> carry`` (leaves ``[N, ...]``: the state of N fresh episodes)
        and takes and returns the carry: ``apply(params, obs, carry) -> (dist, value,
        carry)``, ``actor(params, obs, carry) -> (dist, carry)``, ``critic(params, obs,
        carry) -> value``. The rollouts reset the carry to the initial one at every episode
        start and store the carry each step started from in ``Transition.carry``; losses
        evaluate each step from its stored carry.
      grad_apply: what the trainer's gradient step calls instead of ``apply`` when set: the
        same function (same values, same gradients to float32 rounding), with a
        ``jax.custom_vjp`` rule that computes the policy head's kernel gradient in a form
        XLA's CPU backend runs ~7x faster; so it supports reverse mode only (no ``jax.jvp``).
        :func:`make_networks` sets it for feedforward networks on the CPU backend; None: the
        gradient step uses ``apply``.
    """

    init: Callable[[Array], Params]
    apply: Callable[..., tuple]
    actor: Callable[..., Any]
    critic: Callable[..., Array]
    spec: EnvSpec
    initial_carry: Callable[[int], Any] | None = None
    grad_apply: Callable[..., tuple] | None = None


@jax.custom_vjp
def _head_matmul(x: Array, w: Array) -> Array:
    """``x @ w`` for a narrow kernel ``w`` ``[in, out]``; see :func:`_head_dot_general`."""
    return x @ w


def _head_matmul_fwd(x: Array, w: Array):
    return x @ w, (x, w)


def _head_matmul_bwd(residuals, dy: Array):
    x, w = residuals
    x2, dy2 = x.reshape(-1, x.shape[-1]), dy.reshape(-1, dy.shape[-1])
    # dw = x^T dy, computed as (dy^T x)^T: the barrier keeps XLA from folding the transpose
    # back into the dot, whose [samples, in]^T [samples, out] form runs ~7x slower on CPU for a
    # 2-wide head (0.20 -> 0.03 ms at 2048 samples; benchmarks/RESULTS.md, "Against a plain
    # JAX reference").
    return dy @ w.T, jax.lax.optimization_barrier(dy2.T @ x2).T


_head_matmul.defvjp(_head_matmul_fwd, _head_matmul_bwd)


def _head_dot_general(lhs: Array, rhs: Array, dimension_numbers, precision=None,
                      preferred_element_type=None) -> Array:
    """``lax.dot_general`` for ``nn.Dense``, whose ``[..., in] @ [in, out]`` goes through
    :func:`_head_matmul` (same values; a faster kernel gradient on CPU, no forward mode)."""
    (lhs_contract, rhs_contract), (lhs_batch, rhs_batch) = dimension_numbers
    if (tuple(lhs_contract) == (lhs.ndim - 1,) and tuple(rhs_contract) == (0,) and rhs.ndim == 2
            and not lhs_batch and not rhs_batch and precision is None
            and preferred_element_type is None):
        return _head_matmul(lhs, rhs)
    return jax.lax.dot_general(lhs, rhs, dimension_numbers, precision=precision,
                               preferred_element_type=preferred_element_type)


class _Net(nn.Module):
    """Optional conv front end, MLP trunk, then a policy and/or a value head."""

    spec: EnvSpec
    policy_head: bool
    value_head: bool
    hidden_sizes: Sequence[int]
    activation: Callable[[Array], Array]
    cnn_channels: Sequence[int]
    log_std_init: float
    hidden_init_scale: float
    policy_init_scale: float
    value_init_scale: float
    gru_size: int = 0  # > 0: a GRU cell after the MLP trunk, its state the carry
    # the policy head's matmul with the custom gradient of _head_dot_general (grad_apply)
    fast_head_grad: bool = False

    @nn.compact
    def __call__(self, obs: Array, carry: Array | None = None) -> tuple:
        batch_shape = obs.shape[: obs.ndim - len(self.spec.obs_shape)]
        hidden_init = orthogonal(self.hidden_init_scale)
        if self.spec.obs_num_values is None:
            x = obs.astype(jnp.float32)
        else:  # [..., *obs_shape, n], flattened below
            x = jax.nn.one_hot(obs, self.spec.obs_num_values, dtype=jnp.float32)
            if self.spec.obs_shape:  # an image of indices: [..., H, W, C * n] for the CNN
                x = x.reshape(x.shape[:-2] + (-1,))
        for i, channels in enumerate(self.cnn_channels):
            conv = nn.Conv(
                channels,
                (3, 3),
                padding="VALID",
                kernel_init=hidden_init,
                name=f"conv_{i}",
            )
            x = self.activation(conv(x))
        if x.ndim != len(batch_shape) + 1:  # image or conv features: flatten H, W, C
            x = x.reshape(batch_shape + (-1,))
        for i, size in enumerate(self.hidden_sizes):
            dense = nn.Dense(size, kernel_init=hidden_init, name=f"hidden_{i}")
            x = self.activation(dense(x))
        if self.gru_size:
            carry, x = nn.GRUCell(self.gru_size, kernel_init=hidden_init, name="gru")(carry, x)

        dist = value = None
        if self.policy_head:
            space = self.spec.action_space
            policy_init = orthogonal(self.policy_init_scale)
            head_dot = _head_dot_general if self.fast_head_grad else None
            if isinstance(space, DiscreteSpace):
                logits = nn.Dense(space.n, kernel_init=policy_init, name="policy",
                                  dot_general=head_dot)(x)
                dist = Categorical(logits)
            else:
                dim = space.shape[0]
                mean = nn.Dense(dim, kernel_init=policy_init, name="policy", dot_general=head_dot)(x)
                log_std_init = nn.initializers.constant(self.log_std_init)
                log_std = self.param("log_std", log_std_init, space.shape)
                dist = DiagGaussian(mean, jnp.broadcast_to(log_std, mean.shape))
        if self.value_head:
            value_init = orthogonal(self.value_init_scale)
            value = nn.Dense(1, kernel_init=value_init, name="value")(x)[..., 0]
        return (dist, value, carry) if self.gru_size else (dist, value)


def _batch_shape(spec: EnvSpec, obs: Array) -> tuple[int, ...]:
    k = len(spec.obs_shape)
    if obs.ndim < k or obs.shape[obs.ndim - k :] != spec.obs_shape:
        raise ValueError(
            f"obs shape {obs.shape} does not end in {spec.name}'s "
            f"obs_shape {spec.obs_shape}"
        )
    # A float here would be a normalised (or otherwise transformed) index, whose
    # one-hot is silently all zeros: refuse it.
    if spec.obs_num_values is not None and not jnp.issubdtype(obs.dtype, jnp.integer):
        raise ValueError(
            f"{spec.name} has discrete observations (state indices 0..{spec.obs_num_values - 1}, "
            f"one-hot encoded); got {obs.dtype} observations, which must be integers "
            "(observation normalisation does not apply to them)"
        )
    return obs.shape[: obs.ndim - k]


def make_networks(
    spec: EnvSpec,
    *,
    hidden_sizes: Sequence[int] = (64, 64),
    activation: str = "tanh",
    shared_trunk: bool = False,
    use_critic: bool = True,
    log_std_init: float = 0.0,
    hidden_init_scale: float = math.sqrt(2.0),
    policy_init_scale: float = 0.01,
    value_init_scale: float = 1.0,
    cnn: bool = False,
    cnn_channels: Sequence[int] = (16,),
    gru_size: int = 0,
) -> Networks:
    """Builds actor and critic networks for ``spec``.

    Separate networks are two MLPs, ``obs -> hidden... -> policy head`` and
    ``obs -> hidden... -> value head``; ``shared_trunk=True`` is one MLP with
    both heads. Image observations (e.g. MinAtar's ``[10, 10, C]``) are
    flattened, or with ``cnn=True`` first pass through 3x3 ``VALID``
    convolutions with ``cnn_channels`` output channels each. Discrete
    observations (``spec.obs_num_values``) are one-hot encoded first.

    For a :class:`~pgjax.types.BoxSpace` the policy is a
    :class:`~pgjax.distributions.DiagGaussian` over normalised actions ``u``
    (``±1`` are the box's bounds), with a state-independent learned
    ``log_std`` initialised to ``log_std_init``. Its samples are unbounded:
    compute ``log_prob`` of the sample ``u`` itself, and send
    :func:`env_action` (``u`` rescaled to the box and clipped) to the
    environment.

    Args:
      spec: the environment's spec.
      hidden_sizes: widths of the MLP's hidden layers.
      activation: one of ``"tanh"``, ``"relu"``, ``"gelu"``, ``"elu"``, ``"silu"``.
      shared_trunk: one trunk with policy and value heads (params ``{"shared"}``)
        instead of separate networks (params ``{"actor", "critic"}``).
      use_critic: ``False`` builds the actor only (params ``{"actor"}``), e.g. for
        plain REINFORCE; ``critic`` and ``apply`` then return zero values.
      log_std_init: initial ``log σ`` of a Gaussian policy, in normalised
        units: ``σ = exp(log_std_init)`` half action ranges (0: σ is half the
        box's width; -0.693: a quarter of it).
      hidden_init_scale: orthogonal gain of hidden (and conv) layers.
      policy_init_scale: orthogonal gain of the policy head; small values make
        the initial policy near uniform (discrete) or near zero-mean.
      value_init_scale: orthogonal gain of the value head.
      cnn: add a convolutional front end; needs ``[H, W, C]`` observations.
      cnn_channels: output channels of each conv layer.
      gru_size: > 0 adds a GRU cell of this many units after the MLP trunk of each network
        (actor, critic, or the shared trunk): a recurrent policy for memory tasks. Its
        hidden state is the carry (``{"actor": [..., H], "critic": [..., H]}``, or
        ``{"shared": ...}``), zero at an episode's start, and the bundle follows the
        recurrent contract of :class:`Networks` (``initial_carry`` set).

    Returns:
      A :class:`Networks` bundle.

    Raises:
      ValueError: for an unknown activation, ``cnn=True`` with non-image
        observations, ``shared_trunk=True`` with ``use_critic=False``, or a
        BoxSpace that is not 1-D.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from pgjax.types import DiscreteSpace, EnvSpec
      >>> spec = EnvSpec("CartPole-v1", (4,), DiscreteSpace(2), 500)
      >>> nets = make_networks(spec)
      >>> params = nets.init(jax.random.key(0))
      >>> sorted(params)
      ['actor', 'critic']
      >>> dist, value = nets.apply(params, jnp.zeros((16, 8, 4)))  # [T, N, *obs]
      >>> dist.logits.shape, value.shape
      ((16, 8, 2), (16, 8))
    """
    if activation not in _ACTIVATIONS:
        raise ValueError(
            f"activation={activation!r} is not one of {sorted(_ACTIVATIONS)}"
        )
    if cnn and len(spec.obs_shape) != 3:
        raise ValueError(
            f"cnn=True needs image observations [H, W, C]; "
            f"{spec.name} has obs_shape {spec.obs_shape}"
        )
    if shared_trunk and not use_critic:
        raise ValueError(
            "shared_trunk=True needs use_critic=True (a shared trunk has a value head)"
        )
    space = spec.action_space
    if isinstance(space, BoxSpace) and len(space.shape) != 1:
        raise ValueError(
            f"only 1-D BoxSpace actions are supported; "
            f"{spec.name} has action shape {space.shape}"
        )

    net = functools.partial(
        _Net,
        spec=spec,
        hidden_sizes=tuple(hidden_sizes),
        activation=_ACTIVATIONS[activation],
        cnn_channels=tuple(cnn_channels) if cnn else (),
        log_std_init=log_std_init,
        hidden_init_scale=hidden_init_scale,
        policy_init_scale=policy_init_scale,
        value_init_scale=value_init_scale,
    )
    dummy_obs = jnp.zeros(spec.obs_shape, jnp.int32 if spec.discrete_obs else jnp.float32)
    if gru_size:
        return _recurrent(spec, functools.partial(net, gru_size=gru_size), dummy_obs,
                          shared_trunk, use_critic, gru_size)

    # The gradient step's twin of apply (Networks.grad_apply): measured on CPU only.
    fast = jax.default_backend() == "cpu"
    if shared_trunk:
        shared = net(policy_head=True, value_head=True)
        shared_fast = net(policy_head=True, value_head=True, fast_head_grad=True)

        def init(key: Array) -> Params:
            return {"shared": shared.init(key, dummy_obs)["params"]}

        def apply(params: Params, obs: Array) -> tuple[Distribution, Array]:
            _batch_shape(spec, obs)
            return shared.apply({"params": params["shared"]}, obs)

        def grad_apply(params: Params, obs: Array) -> tuple[Distribution, Array]:
            _batch_shape(spec, obs)
            return shared_fast.apply({"params": params["shared"]}, obs)

        # Unused heads are dead code that XLA removes under jit.
        def actor(params: Params, obs: Array) -> Distribution:
            return apply(params, obs)[0]

        def critic(params: Params, obs: Array) -> Array:
            return apply(params, obs)[1]

        return Networks(init, apply, actor, critic, spec, grad_apply=grad_apply if fast else None)

    actor_net = net(policy_head=True, value_head=False)
    actor_fast = net(policy_head=True, value_head=False, fast_head_grad=True)
    critic_net = net(policy_head=False, value_head=True)

    def init(key: Array) -> Params:
        actor_key, critic_key = jax.random.split(key)
        params = {"actor": actor_net.init(actor_key, dummy_obs)["params"]}
        if use_critic:
            params["critic"] = critic_net.init(critic_key, dummy_obs)["params"]
        return params

    def actor(params: Params, obs: Array) -> Distribution:
        _batch_shape(spec, obs)
        return actor_net.apply({"params": params["actor"]}, obs)[0]

    def critic(params: Params, obs: Array) -> Array:
        batch_shape = _batch_shape(spec, obs)
        if not use_critic:
            return jnp.zeros(batch_shape, jnp.float32)
        return critic_net.apply({"params": params["critic"]}, obs)[1]

    def apply(params: Params, obs: Array) -> tuple[Distribution, Array]:
        return actor(params, obs), critic(params, obs)

    def grad_apply(params: Params, obs: Array) -> tuple[Distribution, Array]:
        _batch_shape(spec, obs)
        return actor_fast.apply({"params": params["actor"]}, obs)[0], critic(params, obs)

    return Networks(init, apply, actor, critic, spec, grad_apply=grad_apply if fast else None)


def _recurrent(spec: EnvSpec, net: Callable[..., nn.Module], dummy_obs: Array,
               shared_trunk: bool, use_critic: bool, size: int) -> Networks:
    """The GRU variant of :func:`make_networks`: each network carries its own GRU state."""
    groups = ["shared"] if shared_trunk else ["actor"] + (["critic"] if use_critic else [])
    nets = {g: net(policy_head=g != "critic", value_head=g != "actor") for g in groups}

    def initial_carry(n: int) -> dict[str, Array]:
        return {g: jnp.zeros((n, size), jnp.float32) for g in groups}

    def init(key: Array) -> Params:
        keys = dict(zip(groups, jax.random.split(key, len(groups))))
        zero = jnp.zeros((size,), jnp.float32)
        return {g: nets[g].init(keys[g], dummy_obs, zero)["params"] for g in groups}

    def run(group: str, params: Params, obs: Array, carry: dict) -> tuple:
        _batch_shape(spec, obs)
        return nets[group].apply({"params": params[group]}, obs, carry[group])

    def apply(params: Params, obs: Array, carry: dict) -> tuple[Distribution, Array, dict]:
        if shared_trunk:
            dist, value, h = run("shared", params, obs, carry)
            return dist, value, {"shared": h}
        dist, _, h_actor = run("actor", params, obs, carry)
        new = {"actor": h_actor}
        if use_critic:
            _, value, new["critic"] = run("critic", params, obs, carry)
        else:
            value = jnp.zeros(_batch_shape(spec, obs), jnp.float32)
        return dist, value, new

    def actor(params: Params, obs: Array, carry: dict) -> tuple[Distribution, dict]:
        dist, _, new = apply(params, obs, carry)  # the critic's part is dead code under jit
        return dist, new

    def critic(params: Params, obs: Array, carry: dict) -> Array:
        return apply(params, obs, carry)[1]

    return Networks(init, apply, actor, critic, spec, initial_carry=initial_carry)
