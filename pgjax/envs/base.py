"""pgjax's environment protocol and the registry of environment families.

Everything above this package (rollouts, evaluation, rendering, benchmarks, memory
estimates) talks to environments through :class:`Env` only; each env library has one
adapter module here (``pgjax/envs/gymnax.py`` is the only module that imports gymnax).

An :class:`Env` is one environment, unbatched; callers ``jax.vmap`` it:

* ``spec``: an :class:`~pgjax.types.EnvSpec` (observation shape, action space, time limit);
* ``reset(key) -> (obs, state)``;
* ``step(key, state, action) -> EnvStep``: ``action`` in the env's own units (for a box:
  already rescaled and clipped by :func:`pgjax.networks.env_action`). The step **resets
  automatically** where an episode ended: ``EnvStep.obs`` is then the first observation of
  the next episode, and ``EnvStep.final_obs`` the observation the ended episode reached
  (equal to ``obs`` on the other steps). ``terminated`` and ``truncated`` are bool,
  ``truncated`` only where the episode did not terminate (a time limit, bootstrapped).

Optional: ``render(states, returns, path)`` draws an episode from the env state before each
step (``pgjax render``); ``render_problem()`` says why it cannot (None when it can).

An env family is a named way of building envs by name (:func:`register_family`);
:func:`make_env` looks a name up in every family, or in one with ``"family:name"``. A family
whose library is an optional extra (``pgjax[brax]``) is registered whether or not the extra is
installed: without it, it lists no names, and ``"family:name"`` is one line naming the extra.
"""

from __future__ import annotations

import difflib
from typing import Any, Callable, NamedTuple, Protocol, Sequence, runtime_checkable

import jax

from pgjax.types import EnvSpec

Array = jax.Array


class EnvStep(NamedTuple):
    """What :meth:`Env.step` returns (one env; leaves ``[N, ...]`` under ``vmap``).

    Attributes:
      obs: the next observation; the first of a new episode where this step ended one.
      state: the env state after the step (after the reset where the episode ended).
      reward: the reward for the action.
      terminated: bool, a true terminal state (no bootstrap).
      truncated: bool, the time limit cut the episode, and it did not terminate.
      final_obs: the observation the step reached before any reset (``obs`` where the
        episode goes on): what a truncated step bootstraps from.
    """

    obs: Array
    state: Any
    reward: Array
    terminated: Array
    truncated: Array
    final_obs: Array


def select_reset(done: Array, fresh: Any, stepped: Any) -> Any:
    """``fresh`` (a reset's state or observation) where ``done``, else ``stepped``, leaf by
    leaf: an adapter's auto-reset for one env (``done`` a bool scalar). A reset leaf of another
    dtype than the stepped one (a weakly typed zero) takes the stepped leaf's dtype, so the
    state's structure and dtypes stay what a ``lax.scan`` carries; PRNG key leaves are fine."""
    def pick(new, old):
        if new.dtype != old.dtype:
            new = new.astype(old.dtype)
        return jax.lax.select(done, new, old)

    return jax.tree.map(pick, fresh, stepped)


@runtime_checkable
class Env(Protocol):
    """One environment, unbatched (see the module docstring for the contract)."""

    spec: EnvSpec

    def reset(self, key: Array) -> tuple[Array, Any]: ...

    def step(self, key: Array, state: Any, action: Array) -> EnvStep: ...


class EnvFamily(NamedTuple):
    """A named source of environments.

    Attributes:
      name: the family's name, the prefix of ``"family:env"`` names.
      names: ``() -> names`` of the envs it builds (may import its library).
      make: ``(name, **params) -> Env``; raises ValueError for unknown params.
      unsupported: ``() -> {name: reason}`` for listed envs pgjax cannot train.
      accepts: ``(name) -> bool``: whether the family builds ``name`` though ``names()``
        does not list it (a family without enumerable names, e.g. import paths); may raise
        ValueError to say why a name of its form cannot be built. Asked only after no
        family lists the name.
      extra: the pip extra that installs the family's library (``"brax"`` for
        ``pgjax[brax]``), or None for a family that needs none.
      missing: ``() -> why`` the family's library cannot be imported here (the import
        error, one line), or None where it can; ``names()`` is then empty.
    """

    name: str
    names: Callable[[], Sequence[str]]
    make: Callable[..., Env]
    unsupported: Callable[[], dict[str, str]] = dict
    accepts: Callable[[str], bool] = lambda name: False
    extra: str | None = None
    missing: Callable[[], str | None] = lambda: None


_FAMILIES: dict[str, EnvFamily] = {}


def register_family(family: EnvFamily) -> None:
    """Adds (or replaces) an env family; :func:`make_env` then finds its names."""
    _FAMILIES[family.name] = family


def families() -> dict[str, EnvFamily]:
    """The registered families, in registration order (gymnax first)."""
    return dict(_FAMILIES)


def import_problem(load: Callable[[], Any]) -> str | None:
    """Why ``load()`` (the import of an optional extra's library) fails here, as one line of
    at most 200 characters, or None where it succeeds: an :class:`EnvFamily`'s ``missing``."""
    try:
        load()
    except Exception as error:  # noqa: BLE001  (ImportError, or a broken install's own error)
        return " ".join(f"{type(error).__name__}: {error}".split())[:200]
    return None


def missing_extra(family: EnvFamily, name: str | None = None) -> str | None:
    """One line saying that ``family``'s extra is not installed and how to install it (about
    env ``name`` where given), or None where its library imports."""
    why = family.missing()
    if why is None:
        return None
    about = f"env {name!r}: " if name else ""
    return (f"{about}the {family.name} env family needs its library, which is not installed "
            f"({why}); install it with: pip install 'pgjax[{family.extra or family.name}]'")


def env_names() -> list[tuple[str, str, str | None]]:
    """Every env a family can build: ``(family, name, reason it is unsupported or None)``."""
    rows = []
    for family in _FAMILIES.values():
        unsupported = family.unsupported()
        rows += [(family.name, name, unsupported.get(name)) for name in family.names()]
    return rows


def find_family(name: str) -> tuple[EnvFamily, str]:
    """The family that builds ``name`` and the name inside it.

    A bare name goes to the first family (in registration order) that lists it, so that
    ``"CartPole-v1"`` never imports a later family's library; a name no family lists goes to
    the families' ``accepts`` (e.g. ``"package.module:Factory"``, the ``gymnax-api`` family).

    Raises:
      ValueError: for an unknown name (closest names suggested, every valid one listed, and
        the families whose extra is not installed), a ``"family:name"`` whose family's extra
        is not installed (the extra to install), one that its family marks unsupported (with
        the reason), or one a family accepts by form but cannot build (its reason, e.g. a
        module that cannot be imported).
    """
    if ":" in name and name.split(":", 1)[0] in _FAMILIES:
        family, inner = _FAMILIES[name.split(":", 1)[0]], name.split(":", 1)[1]
        problem = missing_extra(family, name)
        if problem:
            raise ValueError(problem)
        candidates = list(family.names())
        if inner not in candidates and family.accepts(inner):
            return family, inner
    else:
        family, inner, candidates = None, name, []
        for fam in _FAMILIES.values():
            if name in fam.names():
                family, candidates = fam, [name]
                break
        if family is None:
            for fam in _FAMILIES.values():
                if fam.accepts(name):
                    return fam, name
            candidates = [n for fam in _FAMILIES.values() for n in fam.names()]
    if family is None or inner not in candidates:
        close = difflib.get_close_matches(inner, candidates, n=3, cutoff=0.5)
        hint = f"did you mean {' or '.join(repr(c) for c in close)}? " if close else ""
        if family is not None:  # "gymnax:make": an import path whose module is a family's name
            for fam in _FAMILIES.values():
                try:
                    if fam is not family and fam.accepts(name):
                        hint += f"for the import path, write {fam.name}:{name}; "
                        break
                except ValueError:
                    pass
        absent = [f"{fam.name} (pip install 'pgjax[{fam.extra or fam.name}]')"
                  for fam in _FAMILIES.values() if family is None and fam.missing()]
        more = f"; not installed: {', '.join(absent)}" if absent else ""
        raise ValueError(f"unknown environment {name!r}; {hint}valid names: "
                         f"{', '.join(candidates)}{more}")
    reason = family.unsupported().get(inner)
    if reason:
        raise ValueError(f"environment {name!r} is not supported: {reason}.")
    return family, inner


def make_env(name: str, **env_params: Any) -> Env:
    """Builds an environment by name, overriding its default params.

    Args:
      name: an env name of a registered family, e.g. ``"CartPole-v1"``, ``"Pendulum-v1"``,
        ``"Breakout-MinAtar"`` (gymnax), or ``"family:name"`` to pick the family.
        ``pgjax envs`` lists them all. Or any gymnax-API env by import path,
        ``"package.module:Factory"`` (:mod:`pgjax.envs.gymnax_api`; ``env_params`` then go
        to the factory where it takes them).
      **env_params: the env's params to override, e.g. ``max_steps_in_episode=20``.

    Returns:
      An :class:`Env` whose ``spec.max_steps_in_episode`` reflects the overrides.

    Raises:
      ValueError: for an unknown or unsupported name (the message suggests the closest
        names), an unknown param (the message lists the valid ones), or an action space
        pgjax cannot act in.

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
    family, inner = find_family(name)
    return family.make(inner, **env_params)
