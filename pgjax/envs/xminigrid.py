"""The XLand-MiniGrid adapter (the ``xminigrid`` family, ``pip install 'pgjax[xminigrid]'``):
the only module in pgjax that imports xminigrid.

``env.name: "xminigrid:MiniGrid-Empty-5x5"`` (or the bare name; ``pgjax envs`` lists them)
builds ``xminigrid.make(name, **env.params)``: each param is a field of the env's
``EnvParams`` (``view_size``, ``max_steps``, ...). The XLand tasks (``XLand-MiniGrid-R1-9x9``
...) take their goal and rules from a benchmark's ruleset: ``env.params.benchmark`` (one of
``xminigrid.registered_benchmarks()``, e.g. ``trivial-21k``; xminigrid downloads it to
``~/.xland_minigrid`` on first use) and ``env.params.ruleset`` (its index, default 0). Without
a benchmark an XLand env is refused: its default ruleset has a goal that is never reached.

**Actions**: ``Discrete(6)`` (forward, turn left, turn right, pick up, put down, toggle).
**Observations**: the agent's ``[view_size, view_size, 2]`` view, a tile and a colour index
per cell (uint8). The spec records ``obs_num_values = 13`` (xminigrid's ``NUM_TILES``; its 12
colours fit below it): the networks one-hot encode both channels, as for any discrete
observation, and the image stays small (uint8) in rollout buffers.

**Steps.** xminigrid's ``step(params, timestep, action)`` takes no key and returns a
dm_env-style ``TimeStep``: ``step_type`` LAST where the episode ended, with ``discount`` 0 on
a real terminal (the goal reached) and 1 where ``step_num`` reached ``params.max_steps`` (the
time limit, to bootstrap). So ``terminated = last & (discount == 0)`` and
``truncated = last & (discount > 0)``. An ended episode is reset with the step's ``key``
(``env.reset(params, key)``; xminigrid's own ``GymAutoResetWrapper`` would derive it from
the state's key instead), and ``final_obs`` is the ended episode's last view. The state pgjax
carries is the whole ``TimeStep``. Rendering is not supported.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.envs.base import (EnvFamily, EnvStep, import_problem, missing_extra, register_family,
                             select_reset)
from pgjax.types import DiscreteSpace, EnvSpec

Array = jax.Array

FAMILY = "xminigrid"
# pgjax's params: the XLand tasks' ruleset; every other env.params entry is an EnvParams field.
RULESET_PARAMS = ("benchmark", "ruleset")


def _import() -> Any:
    import xminigrid  # noqa: PLC0415  (the extra: imported only when used)

    return xminigrid


def _missing() -> str | None:
    return import_problem(_import)


def registered_names() -> list[str]:
    """xminigrid's registered env names, or none where xminigrid is not installed."""
    if _missing() is not None:
        return []
    return list(_import().registered_environments())


class XMiniGridEnv:
    """An XLand-MiniGrid env and its params as a pgjax :class:`~pgjax.envs.base.Env`.

    Attributes:
      env: the xminigrid ``Environment``; params: its ``EnvParams`` (with any overrides and
        the ruleset); spec: the :class:`~pgjax.types.EnvSpec`.
    """

    def __init__(self, env: Any, params: Any, spec: EnvSpec):
        self.env, self.params, self.spec = env, params, spec

    def __repr__(self) -> str:
        return f"XMiniGridEnv({self.spec.name!r})"

    def reset(self, key: Array) -> tuple[Array, Any]:
        timestep = self.env.reset(self.params, key)
        return timestep.observation, timestep

    def step(self, key: Array, state: Any, action: Array) -> EnvStep:
        from xminigrid.types import StepType  # noqa: PLC0415

        stepped = self.env.step(self.params, state, action)
        done = stepped.step_type == StepType.LAST
        terminated = done & (stepped.discount == 0)
        truncated = done & ~terminated
        state = select_reset(done, self.env.reset(self.params, key), stepped)
        return EnvStep(state.observation, state, stepped.reward.astype(jnp.float32), terminated,
                       truncated, stepped.observation)

    def render_problem(self) -> str | None:
        return f"pgjax cannot draw {self.spec.name}: the xminigrid adapter does not render"


def _fields(params: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(params)]


def _with_ruleset(name: str, params: Any, benchmark: str | None, ruleset: Any) -> Any:
    """The XLand task's params with the benchmark's ruleset (module docstring)."""
    xminigrid = _import()
    xland = hasattr(params, "ruleset")
    if not xland:
        if benchmark is not None or ruleset is not None:
            raise ValueError(f"env {name!r}: benchmark and ruleset are for the XLand-MiniGrid "
                             "tasks; MiniGrid envs have fixed goals")
        return params
    benchmarks = ", ".join(xminigrid.registered_benchmarks())
    if benchmark is None:
        raise ValueError(f"env {name!r}: an XLand task needs a ruleset: env.params.benchmark "
                         f"(e.g. {xminigrid.registered_benchmarks()[0]}) and env.params.ruleset")
    if benchmark not in xminigrid.registered_benchmarks():
        raise ValueError(f"benchmark={benchmark!r}: must be one of {benchmarks}")
    ruleset = 0 if ruleset is None else ruleset
    if isinstance(ruleset, bool) or not isinstance(ruleset, int) or ruleset < 0:
        raise ValueError(f"ruleset={ruleset!r}: must be a whole number >= 0")
    try:
        loaded = xminigrid.load_benchmark(benchmark)
    except Exception as error:  # noqa: BLE001  (no network, a bad file: one line)
        raise ValueError(f"env {name!r}: could not load benchmark {benchmark!r}: "
                         f"{type(error).__name__}: {' '.join(str(error).split())[:200]}") from None
    if ruleset >= loaded.num_rulesets():
        raise ValueError(f"ruleset={ruleset}: benchmark {benchmark!r} has "
                         f"{loaded.num_rulesets()} rulesets (0 .. {loaded.num_rulesets() - 1})")
    return params.replace(ruleset=loaded.get_ruleset(ruleset))


def make_xminigrid(name: str, **env_params: Any) -> XMiniGridEnv:
    """The ``xminigrid`` family's ``make``: env ``name`` with ``env_params`` (module docstring).

    Raises:
      ValueError: xminigrid not installed (the extra to install), an unknown name, a param
        that is not a field of the env's params (the valid ones listed), a bad time limit, an
        XLand task without a benchmark, or a benchmark that cannot be loaded.
    """
    problem = missing_extra(XMINIGRID, name)
    if problem:
        raise ValueError(problem)
    xminigrid = _import()
    if name not in xminigrid.registered_environments():
        raise ValueError(f"unknown xminigrid environment {name!r}; valid names: "
                         f"{', '.join(xminigrid.registered_environments())}")
    benchmark, ruleset = (env_params.pop(k, None) for k in RULESET_PARAMS)
    env, params = xminigrid.make(name)
    fields = _fields(params)
    unknown = sorted(set(env_params) - set(fields))
    if unknown:
        extra = ", ".join(RULESET_PARAMS) if hasattr(params, "ruleset") else ""
        raise ValueError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {name}; "
                         f"valid: {', '.join(f for f in fields if f != 'ruleset')}"
                         f"{', ' + extra if extra else ''}.")
    max_steps = env_params.get("max_steps", params.max_steps)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1:
        raise ValueError(f"max_steps={max_steps!r}: must be a whole number >= 1")
    params = _with_ruleset(name, params.replace(**env_params), benchmark, ruleset)
    from xminigrid.core.constants import NUM_COLORS, NUM_TILES  # noqa: PLC0415

    obs = jax.eval_shape(env.reset, params, jax.random.key(0)).observation
    if not hasattr(obs, "shape"):
        raise ValueError(f"env {name!r}: dict observations are not supported")
    spec = EnvSpec(name=name, obs_shape=tuple(obs.shape),
                   action_space=DiscreteSpace(int(env.num_actions(params))),
                   max_steps_in_episode=int(params.max_steps),
                   obs_num_values=max(int(NUM_TILES), int(NUM_COLORS)))
    return XMiniGridEnv(env, params, spec)


XMINIGRID = EnvFamily(FAMILY, registered_names, make_xminigrid, extra="xminigrid",
                      missing=_missing)
register_family(XMINIGRID)
