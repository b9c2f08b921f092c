"""The gymnax adapter: the only module in pgjax that imports gymnax or reads its info dict.

:func:`wrap_env` turns a gymnax ``Environment`` (a registered one or your own) into a
:class:`GymnaxEnv`, pgjax's :class:`~pgjax.envs.base.Env`; the ``gymnax`` family builds
registered ones by name. gymnax itself is imported on first use (it takes seconds).
gymnax 1.x's ``step`` returns ``obs, state, reward, terminated, truncated, info`` with the
pre-reset observation in ``info["final_observation"]``.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.envs import classic_control
from pgjax.envs.base import EnvFamily, EnvStep, register_family
from pgjax.types import BoxSpace, DiscreteSpace, EnvSpec

Array = jax.Array

# Bsuite envs whose reset downloads a dataset: no network in jit, no training.
_UNSUPPORTED = {"MNISTBandit-bsuite": "its reset downloads MNIST at construction"}
# Environments pgjax draws: classic control with pgjax.envs.classic_control (gymnax's
# Visualizer would need pygame for them), the rest with gymnax's Visualizer
# (gymnax/visualize/visualizer.py, matplotlib only).
RENDERABLE = classic_control.NAMES + (
    "Catch-bsuite", "Asterix-MinAtar", "Breakout-MinAtar", "Freeway-MinAtar",
    "Seaquest-MinAtar", "SpaceInvaders-MinAtar", "Pong-misc", "PointRobot-misc",
    "MetaMaze-misc", "FourRooms-misc")


class GymnaxEnv:
    """A gymnax environment and its params as a pgjax :class:`~pgjax.envs.base.Env`.

    Attributes:
      env: the gymnax ``Environment``.
      params: its ``EnvParams`` (with any overrides).
      spec: the :class:`~pgjax.types.EnvSpec` derived from both.
    """

    def __init__(self, env: Any, params: Any, spec: EnvSpec):
        self.env, self.params, self.spec = env, params, spec

    def __repr__(self) -> str:
        return f"GymnaxEnv({self.spec.name!r})"

    def reset(self, key: Array) -> tuple[Array, Any]:
        return self.env.reset(key, self.params)

    def step(self, key: Array, state: Any, action: Array) -> EnvStep:
        obs, state, reward, terminated, truncated, info = self.env.step(
            key, state, action, self.params)
        terminated = terminated.astype(bool)
        truncated = truncated.astype(bool) & ~terminated  # gymnax may report both
        return EnvStep(obs, state, reward, terminated, truncated, info["final_observation"])

    def render_problem(self) -> str | None:
        """Why this env cannot be drawn, or None if it can."""
        name = self.spec.name
        if name not in RENDERABLE:
            return f"gymnax's visualiser cannot draw {name}; it draws {', '.join(RENDERABLE)}"
        return None

    def render(self, states: Sequence[Any], returns: Sequence[float],
               path: str | os.PathLike) -> None:
        """Animates one episode (a GIF for ``.gif``): classic control with
        :mod:`pgjax.envs.classic_control`, the other envs with gymnax's ``Visualizer``.

        ``states``: the env state before each step, one per frame; ``returns``: the return
        so far at each frame, shown in the title.
        """
        name = self.spec.name
        if name in classic_control.NAMES:
            classic_control.write_animation(
                [classic_control.draw(name, state, self.params,
                                      classic_control.title(name, step + 1, float(ret)))
                 for step, (state, ret) in enumerate(zip(states, returns))], path)
            return
        import matplotlib  # noqa: PLC0415

        matplotlib.use("Agg")
        from gymnax.visualize import Visualizer  # noqa: PLC0415

        Visualizer(self.env, self.params, list(states), list(returns)).animate(os.fspath(path))


def registered_names() -> list[str]:
    import gymnax  # noqa: PLC0415  (deferred: importing gymnax takes seconds)

    return list(gymnax.registered_envs)


def make_gymnax(name: str, **env_params: Any) -> GymnaxEnv:
    """A registered gymnax env by name (the ``gymnax`` family's ``make``)."""
    import gymnax  # noqa: PLC0415

    env, params = gymnax.make(name)
    return wrap_env(env, params, name=name, **env_params)


def wrap_env(env: Any, params: Any = None, *, name: str | None = None,
             **env_params: Any) -> GymnaxEnv:
    """Bundles a gymnax environment instance (e.g. a custom one) as a pgjax env.

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
      A :class:`GymnaxEnv` with the spec derived from ``env`` and ``params``.

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
        for key, value in env_params.items():
            _check_param(key, value, getattr(params, key))
        params = params.replace(**env_params)
    return GymnaxEnv(env=env, params=params, spec=_make_spec(name, env, params))


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


def _check_param(key: str, value: Any, default: Any) -> None:
    """Refuses an override of another kind than the field's default (a string for a number,
    a fraction for a count) or a step limit below 1, before JAX sees it.

    Raises:
      ValueError: ``"key=value: must be ..."``.
    """
    kind = np.asarray(default).dtype.kind
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if not (kind == "b" and isinstance(value, bool)):
            raise ValueError(f"{key}={value!r}: must be a number like its default {default!r}")
    elif kind in "iu" and float(value) != int(value):
        raise ValueError(f"{key}={value!r}: must be a whole number (default {default!r})")
    if key == "max_steps_in_episode" and value < 1:
        raise ValueError(f"{key}={value!r}: must be >= 1")


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


register_family(EnvFamily("gymnax", registered_names, make_gymnax, lambda: dict(_UNSUPPORTED)))
