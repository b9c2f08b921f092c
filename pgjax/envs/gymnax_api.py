"""Any environment written to gymnax's interface, by import path (the ``gymnax-api`` family).

``env.name: "package.module:Factory"`` imports ``package.module``, calls ``Factory`` and wraps
what it returns: an env, or ``(env, params)`` (``env.default_params`` when only an env). The
factory is any callable (a class such as gymnax's ``CartPole``, a function such as Craftax's
``make_craftax_env_from_name``), or the attribute may be an env instance itself; a dotted
attribute (``module:Class.method``) is followed. The family lists no names (``pgjax envs``
cannot enumerate importable modules); it claims any name of that form. Write
``gymnax-api:package.module:Factory`` where the module's top-level name is also a family's
name (``gymnax``).

**env.params**: each one is a keyword argument of the factory when the factory takes it (a
named parameter, or ``**kwargs``); otherwise it overrides the field of that name of the env's
params dataclass (``max_steps_in_episode=50``); a name that is neither is an error listing
both. So ``env.params.name=Craftax-Classic-Symbolic-v1`` reaches Craftax's factory and
``env.params.max_timesteps=1000`` Craftax's ``EnvParams``.

**Steps.** ``env.step(key, state, action, params)`` is probed (``jax.eval_shape``, nothing is
compiled) and one of three ways of stepping chosen:

* six values (gymnax >= 1.0: ``obs, state, reward, terminated, truncated, info``) with
  ``info["final_observation"]``: the env resets itself and says everything; used as is (as
  :mod:`pgjax.envs.gymnax` does);
* five values (``obs, state, reward, done, info``: gymnax <= 0.0.9, Craftax) from an env whose
  class defines ``step_env`` and ``reset_env`` (the base class of every gymnax version and
  of Craftax's ``EnvironmentAutoReset``/``EnvironmentNoAutoReset``): pgjax calls ``step_env``
  (the step without reset) and resets with ``reset_env`` itself, splitting the key as gymnax's
  ``step`` does. So it works whether or not the env's own ``step`` resets, and ``final_obs``
  is the observation the episode reached (old gymnax's ``step`` loses it: it returns the next
  episode's first observation and no final one). Methods reached through a wrapper's
  ``__getattr__`` do not count (stepping the wrapped env would skip the wrapper);
* anything else (a wrapper, a bare ``step``): pgjax calls ``step`` and resets where ``done``
  itself. For an env that does not reset itself that is exact. For one that does, the extra
  reset only draws another first state, but the observation and state ``step`` returned at the
  end are already the next episode's: pgjax then cannot see the time limit, and every ended
  episode counts as terminated (no bootstrap), as in old gymnax.

**Terminated vs truncated** for five values, where ``done`` merges them:
old gymnax and Craftax put only ``info["discount"]`` there, and it is
``1 - is_terminal(state)`` with the time limit inside ``is_terminal``
(``state.time >= params.max_steps_in_episode``; Craftax: ``state.timestep >=
params.max_timesteps``): 0 at the limit too, so it cannot tell them apart. pgjax reads, in
order: ``info["terminated"]`` and ``info["truncated"]`` if both are there; otherwise a done
step is truncated where ``info["discount"] > 0`` (dm_env's convention: bootstrap) or where the
pre-reset state is at the time limit and ``env.is_terminal`` with the limit lifted (params'
limit set to the int32 maximum) is false, so a real terminal on the last step stays terminated.
Without ``is_terminal`` reaching the limit counts as truncated.

The spec's time limit is params' ``max_steps_in_episode`` (gymnax) or ``max_timesteps``
(Craftax); an env with neither is refused (pgjax needs one for evaluation and REINFORCE).
Action spaces are read by shape (``n``: discrete; ``low``/``high``/``shape``: box), so
Craftax's own ``spaces`` work without gymnax. Rendering is not supported.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from pgjax.envs.base import EnvFamily, EnvStep, register_family
from pgjax.types import BoxSpace, DiscreteSpace, EnvSpec

Array = jax.Array

FAMILY = "gymnax-api"
# module.path:attribute(.attribute)*
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
# Where envs written to gymnax's interface keep their time limit and step count.
_LIMIT_FIELDS = ("max_steps_in_episode", "max_timesteps")
_TIME_FIELDS = ("time", "timestep")
_NO_LIMIT = int(np.iinfo(np.int32).max)


def is_import_path(name: str) -> bool:
    """Whether ``name`` has the form ``package.module:Attribute``."""
    return bool(_IMPORT_PATH.match(name))


def resolve(path: str) -> Any:
    """The object ``"package.module:Attribute"`` names.

    Raises:
      ValueError: the module cannot be imported (with the import error) or has no such
        attribute (with the closest public names).
    """
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001  (an ImportError, or the module's own failure)
        raise ValueError(f"env {path!r}: cannot import module {module_name!r}: "
                         f"{type(error).__name__}: {error}") from error
    obj = module
    for i, part in enumerate(attribute.split(".")):
        if not hasattr(obj, part):
            where = ".".join([module_name] + attribute.split(".")[:i])
            public = sorted(n for n in dir(obj) if not n.startswith("_"))
            import difflib  # noqa: PLC0415

            close = difflib.get_close_matches(part, public, n=3, cutoff=0.5)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            raise ValueError(f"env {path!r}: {where} has no attribute {part!r}{hint}")
        obj = getattr(obj, part)
    return obj


def _accepts(name: str) -> bool:
    """The family claims import paths; one that does not resolve raises ValueError here, so
    that the error is about the env's name."""
    if not is_import_path(name):
        return False
    resolve(name)
    return True


class GymnaxApiEnv:
    """An env written to gymnax's interface, as a pgjax :class:`~pgjax.envs.base.Env`.

    Attributes:
      env: the env object; params: its params (with any overrides); spec: the spec.
      mode: how it is stepped: ``"six"`` (its own step: gymnax >= 1.0), ``"step_env"``
        (its ``step_env`` and ``reset_env``, pgjax resetting) or ``"step"`` (its ``step``,
        pgjax resetting where done); see the module docstring.
    """

    def __init__(self, env: Any, params: Any, spec: EnvSpec, mode: str,
                 limit_field: str | None, time_field: str | None, natural_terminal: bool):
        self.env, self.params, self.spec, self.mode = env, params, spec, mode
        self._limit_field, self._time_field = limit_field, time_field
        self._natural_terminal = natural_terminal

    def __repr__(self) -> str:
        return f"GymnaxApiEnv({self.spec.name!r}, mode={self.mode!r})"

    def reset(self, key: Array) -> tuple[Array, Any]:
        return self.env.reset(key, self.params)

    def step(self, key: Array, state: Any, action: Array) -> EnvStep:
        if self.mode == "six":
            obs, state, reward, terminated, truncated, info = self.env.step(
                key, state, action, self.params)
            terminated = jnp.asarray(terminated).astype(bool)
            truncated = jnp.asarray(truncated).astype(bool) & ~terminated
            return EnvStep(obs, state, reward, terminated, truncated, info["final_observation"])
        key_step, key_reset = jax.random.split(key)
        if self.mode == "step_env":
            out = self.env.step_env(key_step, state, action, self.params)
        else:
            out = self.env.step(key_step, state, action, self.params)
        if len(out) == 6:  # a six-value step without final_observation: done is either
            obs_st, state_st, reward, terminated, truncated, info = out
            terminated = jnp.asarray(terminated).astype(bool)
            truncated = jnp.asarray(truncated).astype(bool) & ~terminated
        else:
            obs_st, state_st, reward, done, info = out
            terminated, truncated = self._split_done(jnp.asarray(done).astype(bool),
                                                     state_st, info)
        obs_re, state_re = self.env.reset(key_reset, self.params)
        done = terminated | truncated
        state = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), state_re, state_st)
        obs = jax.tree.map(lambda r, s: jax.lax.select(done, r, s), obs_re, obs_st)
        return EnvStep(obs, state, reward, terminated, truncated, obs_st)

    def _split_done(self, done: Array, state: Any, info: Any) -> tuple[Array, Array]:
        """Terminated and truncated from a five-value step's ``done`` (module docstring)."""
        info = info if isinstance(info, dict) else {}
        if "terminated" in info and "truncated" in info:
            terminated = done & jnp.asarray(info["terminated"]).astype(bool)
            return terminated, done & ~terminated & jnp.asarray(info["truncated"]).astype(bool)
        truncated = jnp.zeros((), bool)
        if "discount" in info:
            truncated = truncated | (jnp.asarray(info["discount"]) > 0)
        if self._limit_field is not None and self._time_field is not None:
            limit = getattr(self.params, self._limit_field)
            at_limit = getattr(state, self._time_field) >= limit
            if self._natural_terminal:
                lifted = dataclasses.replace(self.params, **{self._limit_field: _NO_LIMIT})
                natural = jnp.asarray(self.env.is_terminal(state, lifted)).astype(bool)
                at_limit = at_limit & ~natural
            truncated = truncated | at_limit
        truncated = done & truncated
        return done & ~truncated, truncated

    def render_problem(self) -> str | None:
        return f"pgjax cannot draw {self.spec.name}: the gymnax-api adapter does not render"


def _defines(obj: Any, method: str) -> bool:
    """Whether ``obj``'s class (not a ``__getattr__`` proxy) defines ``method``."""
    return any(method in vars(cls) for cls in type(obj).__mro__ if cls is not object)


def _first_field(obj: Any, names: tuple[str, ...]) -> str | None:
    return next((n for n in names if hasattr(obj, n)), None)


def _default_params(env: Any, name: str) -> Any:
    try:
        params = env.default_params
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"{name}: env.default_params failed ({type(error).__name__}: "
                         f"{error}); return (env, params) from the factory") from error
    if isinstance(params, BaseException):  # Craftax's base class returns, not raises, one
        raise ValueError(f"{name}: env.default_params is not implemented; return (env, params) "
                         "from the factory")
    return params


def _space(space: Any, name: str, what: str) -> DiscreteSpace | BoxSpace | None:
    from pgjax.envs.gymnax import _static  # noqa: PLC0415  (gymnax itself is not imported)

    if hasattr(space, "n") and not hasattr(space, "low"):
        return DiscreteSpace(int(space.n))
    if all(hasattr(space, a) for a in ("low", "high", "shape")):
        shape = space.shape
        shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)
        return BoxSpace(shape=shape, low=_static(space.low), high=_static(space.high))
    if what == "action":
        raise ValueError(f"{name}: action space {space!r} is not supported; pgjax handles "
                         "discrete (with n) and box (with low, high, shape) action spaces.")
    return None


def _check_gymnax_like(env: Any, name: str) -> None:
    missing = [m for m in ("reset", "step", "action_space") if not callable(getattr(env, m, None))]
    if missing:
        raise ValueError(f"{name}: a {type(env).__name__} is not a gymnax-API environment "
                         f"(no {', '.join(missing)}); it needs reset(key, params), "
                         "step(key, state, action, params) and action_space(params)")


def _fields(params: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(params)] if dataclasses.is_dataclass(params) else []


def wrap_gymnax_api(env: Any, params: Any = None, *, name: str | None = None,
                    **env_params: Any) -> GymnaxApiEnv:
    """Wraps an env written to gymnax's interface (any version, Craftax) as a pgjax env.

    Args:
      env: an object with ``reset(key, params)``, ``step(key, state, action, params)`` and
        ``action_space(params)``.
      params: its params; ``None`` means ``env.default_params``.
      name: the spec's name; ``None`` means ``env.name`` or the class name.
      **env_params: fields of ``params`` to override.

    Raises:
      ValueError: not gymnax-like, an unknown params field (the valid ones listed), no time
        limit in params, a step that returns neither five nor six values, or an action space
        pgjax cannot act in.
    """
    name = name or getattr(env, "name", None) or type(env).__name__
    _check_gymnax_like(env, name)
    params = _default_params(env, name) if params is None else params
    if env_params:
        fields = _fields(params)
        unknown = sorted(set(env_params) - set(fields))
        if unknown:
            raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {name}; "
                             f"valid fields: {', '.join(fields) or '(none)'}.")
        params = dataclasses.replace(params, **env_params)
    limit_field = _first_field(params, _LIMIT_FIELDS)
    if limit_field is None:
        raise ValueError(f"{name}: its params ({type(params).__name__}) have no time limit "
                         f"({' or '.join(_LIMIT_FIELDS)}); pgjax needs one")

    key = jax.random.key(0)
    try:
        obs, state = jax.eval_shape(env.reset, key, params)
        action_space = _space(env.action_space(params), name, "action")
        action = (jax.ShapeDtypeStruct((), jnp.int32) if isinstance(action_space, DiscreteSpace)
                  else jax.ShapeDtypeStruct(action_space.shape, jnp.float32))
        out = jax.eval_shape(env.step, key, state, action, params)
    except ValueError:
        raise
    except Exception as error:  # noqa: BLE001  (a reset or step that cannot be traced)
        raise ValueError(f"{name}: reset/step with gymnax's signature failed: "
                         f"{type(error).__name__}: {error}") from error
    if not isinstance(out, (tuple, list)) or len(out) not in (5, 6):
        raise ValueError(f"{name}: step returned {type(out).__name__}"
                         f"{f' of {len(out)} values' if isinstance(out, (tuple, list)) else ''}; "
                         "gymnax's step returns five (obs, state, reward, done, info) or six "
                         "(obs, state, reward, terminated, truncated, info) values")
    info = out[-1]
    if len(out) == 6 and isinstance(info, dict) and "final_observation" in info:
        mode = "six"
    elif len(out) == 5 and _defines(env, "step_env") and _defines(env, "reset_env"):
        mode = "step_env"
        step_env = jax.eval_shape(env.step_env, key, state, action, params)
        if len(step_env) != 5:
            mode = "step"
    else:
        mode = "step"

    natural = False
    if callable(getattr(env, "is_terminal", None)) and dataclasses.is_dataclass(params):
        try:
            lifted = dataclasses.replace(params, **{limit_field: _NO_LIMIT})
            natural = jax.eval_shape(env.is_terminal, state, lifted).shape == ()
        except Exception:  # noqa: BLE001  (then reaching the limit counts as truncated)
            natural = False

    try:
        obs_space = env.observation_space(params)
    except Exception:  # noqa: BLE001  (optional: real-valued observations)
        obs_space = None
    obs_num_values = None
    if obs_space is not None and isinstance(_space(obs_space, name, "obs"), DiscreteSpace):
        if jnp.issubdtype(obs.dtype, jnp.integer):
            obs_num_values = int(obs_space.n)
    spec = EnvSpec(name=name, obs_shape=tuple(obs.shape), action_space=action_space,
                   max_steps_in_episode=int(getattr(params, limit_field)),
                   obs_num_values=obs_num_values)
    return GymnaxApiEnv(env, params, spec, mode, limit_field,
                        _first_field(state, _TIME_FIELDS), natural)


def _keywords(factory: Callable) -> tuple[set[str], bool] | None:
    """The keyword names ``factory`` takes and whether it takes ``**kwargs``; None if unknown."""
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return None
    kinds = inspect.Parameter
    names = {p.name for p in signature.parameters.values()
             if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)}
    return names, any(p.kind == kinds.VAR_KEYWORD for p in signature.parameters.values())


def make_from_path(path: str, **env_params: Any) -> GymnaxApiEnv:
    """The ``gymnax-api`` family's ``make``: the env ``"package.module:Factory"`` builds.

    ``env_params`` go to the factory where it takes them, else to the env's params fields
    (module docstring). The spec is named after the attribute (``Factory``), the part of the
    name after its last colon.

    Raises:
      ValueError: an import path that does not resolve, a factory that fails (with its error),
        a result that is not a gymnax-API env, a param neither the factory nor the env's params
        take, or what :func:`wrap_gymnax_api` refuses.
    """
    factory = resolve(path)
    name = path.rsplit(":", 1)[-1]
    if not callable(factory) or (not inspect.isclass(factory) and callable(
            getattr(factory, "step", None))):
        if env_params:  # an env instance: every param is one of its params' fields
            return wrap_gymnax_api(factory, name=name, **env_params)
        return wrap_gymnax_api(factory, name=name)
    keywords = _keywords(factory)
    if keywords is None:
        to_factory, to_params = dict(env_params), {}
    else:
        names, var_kw = keywords
        to_factory = {k: v for k, v in env_params.items() if var_kw or k in names}
        to_params = {k: v for k, v in env_params.items() if k not in to_factory}
    try:
        made = factory(**to_factory)
    except Exception as error:  # noqa: BLE001  (whatever the factory raises, as one line)
        call = ", ".join(f"{k}={v!r}" for k, v in to_factory.items())
        raise ValueError(f"env {path!r}: {name}({call}) failed: "
                         f"{type(error).__name__}: {error}") from error
    env, params = made if isinstance(made, tuple) and len(made) == 2 else (made, None)
    _check_gymnax_like(env, f"env {path!r}")
    if to_params:
        fields = _fields(_default_params(env, name) if params is None else params)
        unknown = sorted(set(to_params) - set(fields))
        if unknown:
            takes = sorted(keywords[0] - {"self"}) if keywords else []
            raise ValueError(
                f"env {path!r}: unknown parameter(s) {', '.join(map(repr, unknown))}: neither a "
                f"keyword of {name} ({', '.join(takes) or 'it takes none'}) nor a field of its "
                f"params ({', '.join(fields) or 'none'})")
    return wrap_gymnax_api(env, params, name=name, **to_params)


register_family(EnvFamily(FAMILY, names=list, make=make_from_path, accepts=_accepts))
