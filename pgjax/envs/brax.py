"""The Brax adapter (the ``brax`` family, ``pip install 'pgjax[brax]'``): the only module in
pgjax that imports brax.

``env.name: "brax:inverted_pendulum"`` (or the bare ``inverted_pendulum``; ``pgjax envs``
lists them) builds ``brax.envs.get_environment(name, **kwargs)`` inside Brax's own
``EpisodeWrapper``, the time limit Brax's training uses. ``env.params``:

* ``episode_length`` (default 1000, Brax's) and ``action_repeat`` (default 1) go to the
  ``EpisodeWrapper``; an episode is ``ceil(episode_length / action_repeat)`` pgjax steps,
  the spec's ``max_steps_in_episode``;
* every other one goes to the env's constructor, e.g. ``backend`` (``generalized``, Brax's
  default; ``positional`` and ``spring`` are cheaper), ``n_frames`` or the env's own
  options (``reacher``: none; ``ant``: ``ctrl_cost_weight``, ...).

**Actions** are a box of ``action_size`` between -1 and 1 (Brax's actuators' normalised
range; pgjax's Gaussian then needs no rescaling). **Observations** are the env's ``obs``
vector (envs with dict observations are refused).

**Steps.** Brax's step is deterministic and takes no key; its ``State.done`` merges a real
terminal (``ant`` falling over, the pendulum tipping) with the time limit, which the
``EpisodeWrapper`` marks in ``State.info["truncation"]`` (1 where the limit cut an episode
that did not also terminate). So ``truncated = done & truncation`` (bootstrapped from
``final_obs``) and ``terminated = done & ~truncation``. Brax's own ``AutoResetWrapper`` would
return every env to the first state it was ever reset to; pgjax instead resets an ended
episode with the step's ``key`` (``env.reset(key)``, a fresh initial state per episode, as
gymnax does), and ``final_obs`` is the ended episode's last observation. The reset is
computed every step and selected where done (``vmap`` would compute both branches of a
``cond`` anyway). Rendering is not supported.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import warnings
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.envs.base import (EnvFamily, EnvStep, import_problem, missing_extra, register_family,
                             select_reset)
from pgjax.types import BoxSpace, EnvSpec

Array = jax.Array

FAMILY = "brax"
# What pgjax's wrapper takes; every other env.params entry goes to the env's constructor.
WRAPPER_PARAMS = {"episode_length": 1000, "action_repeat": 1}


def _import() -> Any:
    """``brax.envs``, imported quietly: mujoco prints "Failed to import warp" to stdout when
    warp (its GPU backend, not needed here) is absent, which would land in pgjax's output.

    Raises:
      ImportError (or whatever a broken install raises) where brax cannot be imported.
    """
    with contextlib.redirect_stdout(io.StringIO()):
        import brax.envs  # noqa: PLC0415  (the extra: imported only when used)
        from brax.envs.wrappers import training  # noqa: PLC0415, F401

    return brax.envs


@contextlib.contextmanager
def _quiet_construction():
    """Building a Brax env: MuJoCo's warnings become Python warnings while it lasts (MuJoCo's
    default prints them and writes MUJOCO_LOG.TXT into the working directory); the two that
    every construction of Brax's own envs gives, which no user can act on, are dropped:
    Brax's "not actively being maintained" notice and the deprecated ``settotalmass`` of its
    model files (halfcheetah, hopper, ...)."""
    import mujoco  # noqa: PLC0415  (brax's dependency)

    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(lambda text: warnings.warn(f"MuJoCo: {text}", stacklevel=2))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Brax System", category=UserWarning)
            warnings.filterwarnings("ignore", message=".*'settotalmass' is deprecated")
            yield
    finally:
        mujoco.set_mju_user_warning(previous)


def _missing() -> str | None:
    return import_problem(_import)


def registered_names() -> list[str]:
    """Brax's registered env names, or none where brax is not installed."""
    if _missing() is not None:
        return []
    return sorted(getattr(_import(), "_envs", {}))


class BraxEnv:
    """A Brax env in Brax's ``EpisodeWrapper``, as a pgjax :class:`~pgjax.envs.base.Env`.

    Attributes:
      env: the wrapped Brax env (``env.env`` the env itself).
      spec: the :class:`~pgjax.types.EnvSpec`.
    """

    def __init__(self, env: Any, spec: EnvSpec):
        self.env, self.spec = env, spec

    def __repr__(self) -> str:
        return f"BraxEnv({self.spec.name!r})"

    def reset(self, key: Array) -> tuple[Array, Any]:
        state = self.env.reset(key)
        return state.obs, state

    def step(self, key: Array, state: Any, action: Array) -> EnvStep:
        stepped = self.env.step(state, action)
        done = stepped.done.astype(bool)
        truncated = done & stepped.info["truncation"].astype(bool)
        terminated = done & ~truncated
        state = select_reset(done, self.env.reset(key), stepped)
        return EnvStep(state.obs, state, stepped.reward.astype(jnp.float32), terminated,
                       truncated, stepped.obs)

    def render_problem(self) -> str | None:
        return f"pgjax cannot draw {self.spec.name}: the brax adapter does not render"


def _whole(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) \
            or value < 1:
        raise ValueError(f"{key}={value!r}: must be a whole number >= 1 "
                         f"(default {WRAPPER_PARAMS[key]})")
    return int(value)


def _keywords(env_class: Any) -> list[str]:
    """The keyword arguments an env class's constructor names (and PipelineEnv's)."""
    names = []
    for cls in inspect.getmro(env_class):
        init = vars(cls).get("__init__")
        if init is None:
            continue
        try:
            parameters = inspect.signature(init).parameters.values()
        except (TypeError, ValueError):
            continue
        names += [p.name for p in parameters if p.name != "self" and p.kind in (
            p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names]
    return names


def make_brax(name: str, **env_params: Any) -> BraxEnv:
    """The ``brax`` family's ``make``: Brax env ``name`` with ``env_params`` (module docstring).

    Raises:
      ValueError: brax not installed (the extra to install), an unknown name, a param neither
        the wrapper nor the env's constructor takes (both lists), a bad ``episode_length`` or
        ``action_repeat``, or an env with dict observations.
    """
    problem = missing_extra(BRAX, name)
    if problem:
        raise ValueError(problem)
    envs = _import()
    from brax.envs.wrappers.training import EpisodeWrapper  # noqa: PLC0415

    registry = getattr(envs, "_envs", {})
    if name not in registry:
        raise ValueError(f"unknown brax environment {name!r}; valid names: "
                         f"{', '.join(sorted(registry))}")
    wrapper = {k: _whole(k, env_params.pop(k)) for k in list(env_params) if k in WRAPPER_PARAMS}
    wrapper = {**WRAPPER_PARAMS, **wrapper}
    try:
        with _quiet_construction():
            raw = envs.get_environment(name, **env_params)
    except TypeError as error:
        takes = sorted(set(_keywords(registry[name])) - {"sys", "kwargs"})
        raise ValueError(f"brax env {name!r}: {' '.join(str(error).split())}; valid "
                         f"parameters: {', '.join(WRAPPER_PARAMS)} (pgjax's episode wrapper), "
                         f"{', '.join(takes) or 'none'} (the env)") from None
    except Exception as error:  # noqa: BLE001  (a bad value, e.g. an unknown backend)
        call = ", ".join(f"{k}={v!r}" for k, v in env_params.items())
        raise ValueError(f"env {name!r}: brax get_environment({name!r}{', ' if call else ''}"
                         f"{call}) failed: {type(error).__name__}: "
                         f"{' '.join(str(error).split())[:200]}") from None
    env = EpisodeWrapper(raw, wrapper["episode_length"], wrapper["action_repeat"])
    state = jax.eval_shape(env.reset, jax.random.key(0))
    if not hasattr(state.obs, "shape") or len(state.obs.shape) != 1:
        raise ValueError(f"env {name!r}: observations {jax.tree.map(lambda x: x.shape, state.obs)}"
                         " are not one vector; pgjax's brax adapter takes vector observations")
    spec = EnvSpec(name=name, obs_shape=tuple(state.obs.shape),
                   action_space=BoxSpace(shape=(int(raw.action_size),), low=-1.0, high=1.0),
                   max_steps_in_episode=-(-wrapper["episode_length"] // wrapper["action_repeat"]))
    return BraxEnv(env, spec)


BRAX = EnvFamily(FAMILY, registered_names, make_brax, extra="brax", missing=_missing)
register_family(BRAX)
