"""gymnax environments for pgjax: construction, specs, observation normalisation.

:func:`make_env` looks a name up in gymnax's registry and returns an :class:`Env`
bundle: the gymnax environment, its parameters (with any overrides applied)
and an :class:`~pgjax.types.EnvSpec` that networks and configs read.
:func:`wrap_env` does the same for a gymnax environment instance, e.g. a
custom one that is not in the registry.

Observation normalisation is a pure function of explicit statistics, not a
stateful wrapper: :class:`ObsStats` lives in the caller's state (the rollout
state, see :mod:`pgjax.rollout`), :func:`update_obs_stats` merges a batch into
it and :func:`normalize_obs` applies it. Observations are ``[..., *obs_shape]``
with any number of leading batch axes (``[N, ...]``, ``[T, N, ...]``).

A discrete observation space (gymnax ``Discrete(n)``, e.g. FrozenLake-misc's
state index) is recorded in ``EnvSpec.obs_num_values``; the networks one-hot
encode such observations, and they are never normalised: standardising a
state index would turn it into a float that is no longer an index.
:func:`uses_obs_normalization` is that rule, which the rollouts and the
trainer apply to ``normalize_obs=True``.

gymnax is imported inside :func:`make_env`, so importing this module is cheap.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.types import BoxSpace, DiscreteSpace, EnvSpec

Array = jax.Array


class Env(NamedTuple):
    """A gymnax environment bundled with its parameters and spec.

    Attributes:
      env: the gymnax ``Environment`` (its ``step``/``reset`` take ``params``).
      params: the gymnax ``EnvParams`` to pass to ``env.step``/``env.reset``.
      spec: the :class:`~pgjax.types.EnvSpec` derived from ``env`` and ``params``.
    """

    env: Any
    params: Any
    spec: EnvSpec


def make_env(name: str, **env_params: Any) -> Env:
    """Builds a gymnax environment by registry name, overriding default params.

    Args:
      name: a gymnax registry name, e.g. ``"CartPole-v1"``, ``"Pendulum-v1"``,
        ``"Breakout-MinAtar"`` (``gymnax.registered_envs`` lists them all).
      **env_params: fields of the environment's gymnax ``EnvParams`` to
        override, e.g. ``max_steps_in_episode=20``.

    Returns:
      An :class:`Env` whose ``spec.max_steps_in_episode`` reflects overrides.

    Raises:
      ValueError: if ``name`` is not registered (the message suggests the
        closest names and lists every valid one), if a keyword is not a field
        of the environment's params (the message lists the valid fields), or
        if the action space is neither discrete nor a box.

    Examples:
      >>> env = make_env("CartPole-v1", max_steps_in_episode=20)
      >>> env.spec.obs_shape, env.spec.action_space, env.spec.max_steps_in_episode
      ((4,), DiscreteSpace(n=2), 20)
      >>> make_env("Pendulum-v1").spec.action_space
      BoxSpace(shape=(1,), low=-2.0, high=2.0)
      >>> spec = make_env("FrozenLake-misc").spec  # a state index in 0..15
      >>> spec.obs_shape, spec.obs_num_values
      ((), 16)
    """
    import gymnax  # noqa: PLC0415  (deferred: importing gymnax takes seconds)

    valid = list(gymnax.registered_envs)
    if name not in valid:
        close = difflib.get_close_matches(name, valid, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise ValueError(
            f"unknown environment {name!r}.{hint} Valid names: {', '.join(valid)}."
        )
    env, params = gymnax.make(name)
    return wrap_env(env, params, name=name, **env_params)


def wrap_env(env: Any, params: Any = None, *, name: str | None = None, **env_params: Any) -> Env:
    """Bundles a gymnax environment instance (e.g. a custom one) as an :class:`Env`.

    Args:
      env: a gymnax ``Environment`` with ``reset``, ``step``, ``default_params``
        and a ``Discrete`` or ``Box`` action space. If its
        ``observation_space`` is ``Discrete(n)``, the spec records ``n`` as
        ``obs_num_values``; an env without ``observation_space`` (gymnax's
        base class raises ``NotImplementedError``) has real-valued observations.
      params: its ``EnvParams``; ``None`` means ``env.default_params``.
      name: the spec's name; ``None`` means ``env.name``.
      **env_params: fields of ``params`` to override.

    Returns:
      An :class:`Env` with the spec derived from ``env`` and ``params``.

    Raises:
      ValueError: for an override that is not a field of ``params`` (the
        message lists the valid fields), or an unsupported action space.

    Examples:
      >>> import gymnax
      >>> env = wrap_env(gymnax.make("Acrobot-v1")[0], max_steps_in_episode=50)
      >>> env.spec
      EnvSpec(name='Acrobot-v1', obs_shape=(6,), action_space=DiscreteSpace(n=3), max_steps_in_episode=50, obs_num_values=None)
    """
    params = env.default_params if params is None else params
    name = env.name if name is None else name
    if env_params:
        fields = [f.name for f in dataclasses.fields(params)]
        unknown = sorted(set(env_params) - set(fields))
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(map(repr, unknown))} for {name}; "
                f"valid fields: {', '.join(fields)}."
            )
        params = params.replace(**env_params)
    return Env(env=env, params=params, spec=_make_spec(name, env, params))


def _static(x: Any) -> float | tuple:
    """A bound as a Python float, or nested tuples of floats for arrays.

    A float32 bound becomes the shortest decimal that rounds to it (0.1, not
    0.10000000149011612), so specs read and compare as written.
    """
    x = np.asarray(x)
    if x.ndim > 0:
        return tuple(_static(v) for v in x)
    if x.dtype == np.float32:
        return float(str(x[()]))  # numpy prints the shortest round-trip decimal
    return float(x)


def _make_spec(name: str, env: Any, params: Any) -> EnvSpec:
    from gymnax.environments import spaces  # noqa: PLC0415

    obs, _ = jax.eval_shape(env.reset, jax.random.key(0), params)
    space = env.action_space(params)
    if isinstance(space, spaces.Discrete):
        action_space = DiscreteSpace(int(space.n))
    elif isinstance(space, spaces.Box):
        action_space = BoxSpace(
            shape=(int(space.shape),)
            if np.ndim(space.shape) == 0
            else tuple(int(d) for d in space.shape),
            low=_static(space.low),
            high=_static(space.high),
        )
    else:
        raise ValueError(
            f"{name}: action space {space!r} is not supported; pgjax handles "
            "Discrete and Box action spaces."
        )
    try:
        obs_space = env.observation_space(params)
    except NotImplementedError:  # optional for custom envs: real-valued observations
        obs_space = None
    obs_num_values = None
    if isinstance(obs_space, spaces.Discrete):
        if not jnp.issubdtype(obs.dtype, jnp.integer):
            raise ValueError(
                f"{name}: observation space {obs_space!r} is discrete but reset "
                f"returns {obs.dtype} observations; pgjax one-hot encodes discrete "
                "observations and needs them as integers."
            )
        obs_num_values = int(obs_space.n)
    return EnvSpec(
        name=name,
        obs_shape=tuple(obs.shape),
        action_space=action_space,
        max_steps_in_episode=int(params.max_steps_in_episode),
        obs_num_values=obs_num_values,
    )


def uses_obs_normalization(spec: EnvSpec, normalize_obs: bool) -> bool:
    """Whether observations of ``spec`` are normalised when ``normalize_obs`` asks.

    Real-valued observations are, when asked. Discrete observations (state
    indices, ``spec.obs_num_values`` set) never are: the networks one-hot
    encode them, and ``(index - mean) / std`` would be a meaningless float, so
    ``env.normalize_obs: true`` (e.g. in a preset made for another env) is
    ignored for them.

    Examples:
      >>> from pgjax.types import DiscreteSpace
      >>> box_obs = EnvSpec("CartPole-v1", (4,), DiscreteSpace(2), 500)
      >>> index_obs = EnvSpec("FrozenLake-misc", (), DiscreteSpace(4), 100, obs_num_values=16)
      >>> uses_obs_normalization(box_obs, True), uses_obs_normalization(index_obs, True)
      (True, False)
    """
    return bool(normalize_obs) and spec.obs_num_values is None


class ObsStats(NamedTuple):
    """Running mean and variance of observations, per observation element.

    Attributes:
      mean: ``[*obs_shape]`` float32.
      var: ``[*obs_shape]`` float32, the population variance (``ddof=0``).
      count: ``[]`` float32 number of observations merged so far. A float
        never overflows (an int32 count would wrap after 2**31 steps); past
        2**24 it is no longer an exact integer, but the merge only uses the
        ratio ``n / (count + n)``, which stays accurate to float32 precision.
    """

    mean: Array
    var: Array
    count: Array


def init_obs_stats(obs_shape: tuple[int, ...]) -> ObsStats:
    """Empty statistics: ``mean=0``, ``var=1``, ``count=0``.

    With ``count=0`` the first :func:`update_obs_stats` replaces ``mean`` and
    ``var`` by the batch's own, and :func:`normalize_obs` is the identity
    (up to clipping) until then.

    Examples:
      >>> init_obs_stats((3,)).count
      Array(0., dtype=float32)
    """
    return ObsStats(
        mean=jnp.zeros(obs_shape, jnp.float32),
        var=jnp.ones(obs_shape, jnp.float32),
        count=jnp.zeros((), jnp.float32),
    )


def update_obs_stats(
    stats: ObsStats, batch_obs: Array, mask: Array | None = None
) -> ObsStats:
    r"""Merges a batch of observations into running statistics (Chan et al.).

    With ``(m_a, v_a, n_a)`` the running and ``(m_b, v_b, n_b)`` the batch
    moments, ``delta = m_b - m_a`` and ``n = n_a + n_b``::

        mean = m_a + delta * n_b / n
        var  = (v_a n_a + v_b n_b + delta^2 n_a n_b / n) / n

    which equals the mean and variance over the concatenation of everything
    merged so far. See *Updating formulae and a pairwise algorithm for
    computing sample variances*, Chan, Golub & LeVeque 1979. The batch moments
    are computed in two passes (mean, then squared deviations) in float32.

    Args:
      stats: running statistics, leaves ``[*obs_shape]`` and ``[]``.
      batch_obs: ``[..., *obs_shape]``; every leading axis is a batch axis.
      mask: optional ``[...]`` bool; only observations where it is true are
        merged. An all-false mask leaves ``stats`` unchanged.

    Returns:
      The merged :class:`ObsStats`, same shapes and dtypes as ``stats``.

    Examples:
      >>> s = update_obs_stats(init_obs_stats((2,)), jnp.array([[0., 1.], [2., 5.]]))
      >>> s.mean, s.var, s.count
      (Array([1., 3.], dtype=float32), Array([1., 4.], dtype=float32), Array(2., dtype=float32))
    """
    x = jnp.asarray(batch_obs, jnp.float32)
    batch_axes = tuple(range(x.ndim - stats.mean.ndim))
    # keepdims, then explicit broadcasts: no implicit rank promotion.
    if mask is None:
        w = None
        n_b = jnp.asarray(np.prod([x.shape[a] for a in batch_axes]), jnp.float32)
        m_b = jnp.mean(x, axis=batch_axes, keepdims=True)
        v_b = jnp.mean(jnp.square(x - m_b), axis=batch_axes, keepdims=True)
    else:
        w = jnp.asarray(mask, jnp.float32)
        w = jnp.broadcast_to(w.reshape(w.shape + (1,) * stats.mean.ndim), x.shape)
        n_b = jnp.sum(w[(...,) + (0,) * stats.mean.ndim])
        safe_n_b = jnp.maximum(n_b, 1.0)
        m_b = jnp.sum(w * x, axis=batch_axes, keepdims=True) / safe_n_b
        v_b = jnp.sum(w * jnp.square(x - m_b), axis=batch_axes, keepdims=True) / safe_n_b
    m_b, v_b = m_b.reshape(stats.mean.shape), v_b.reshape(stats.mean.shape)
    n_a = stats.count
    n = n_a + n_b
    safe_n = jnp.maximum(n, 1.0)  # n == 0 only for an empty mask on empty stats
    delta = m_b - stats.mean
    mean = stats.mean + delta * (n_b / safe_n)
    m2 = stats.var * n_a + v_b * n_b + jnp.square(delta) * (n_a * n_b / safe_n)
    empty = n_b == 0
    return ObsStats(
        mean=jnp.where(empty, stats.mean, mean),
        var=jnp.where(empty, stats.var, m2 / safe_n),
        count=n,
    )


def normalize_obs(stats: ObsStats, obs: Array, clip: float = 10.0) -> Array:
    """Standardises observations: ``clip((obs - mean) / sqrt(var + 1e-8), ±clip)``.

    Args:
      stats: statistics with leaves ``[*obs_shape]``.
      obs: ``[..., *obs_shape]``, any leading batch axes.
      clip: bound on the absolute normalised value.

    Returns:
      float32 array shaped like ``obs``.

    Examples:
      >>> s = ObsStats(jnp.array([1.0]), jnp.array([4.0]), jnp.array(10.0))
      >>> normalize_obs(s, jnp.array([[3.0], [101.0]]))
      Array([[ 1.],
             [10.]], dtype=float32)
    """
    obs = jnp.asarray(obs, jnp.float32)
    mean = jnp.broadcast_to(stats.mean, obs.shape)
    inv_std = jnp.broadcast_to(jax.lax.rsqrt(stats.var + 1e-8), obs.shape)
    return jnp.clip((obs - mean) * inv_std, -clip, clip)
