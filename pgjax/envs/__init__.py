"""Environments: pgjax's :class:`Env` protocol, one adapter per env family, observation
statistics.

* :mod:`pgjax.envs.base`: the protocol (:class:`Env`, :class:`EnvStep`), the family
  registry (:func:`register_family`) and :func:`make_env`;
* :mod:`pgjax.envs.gymnax`: the gymnax adapter (:func:`wrap_env`, :class:`GymnaxEnv`), the
  only module that imports gymnax;
* :mod:`pgjax.envs.gymnax_api`: any env written to gymnax's interface (gymnax 1.x or
  <= 0.0.9, Craftax) by import path, ``"package.module:Factory"`` (:func:`wrap_gymnax_api`);
* :mod:`pgjax.envs.brax`: Brax's envs (``"brax:inverted_pendulum"``), with ``pgjax[brax]``;
* :mod:`pgjax.envs.xminigrid`: XLand-MiniGrid's envs (``"MiniGrid-Empty-5x5"``), with
  ``pgjax[xminigrid]``;
* :mod:`pgjax.envs.classic_control`: frames and GIFs of gymnax's classic-control envs, drawn
  without pygame (what :class:`GymnaxEnv`'s ``render`` uses for them);
* :mod:`pgjax.envs.obs`: observation statistics (:class:`ObsStats`,
  :func:`update_obs_stats`, :func:`normalize_obs`, :func:`uses_obs_normalization`).

Adding an env family: write an adapter whose envs follow :class:`Env` and call
``register_family(EnvFamily(name, names, make))`` (docs/design.md, "Adding an env family").
Or pass any object following :class:`Env` to ``make_train(config, env=...)``.
"""

from pgjax.envs import gymnax as _gymnax  # noqa: F401  (registers the gymnax family first)
from pgjax.envs import gymnax_api as _gymnax_api  # noqa: F401  (any env by import path)
from pgjax.envs import xminigrid as _xminigrid  # noqa: F401  (pgjax[xminigrid]; imports it lazily)
from pgjax.envs import brax as _brax  # noqa: F401  (pgjax[brax]; imports brax lazily)
from pgjax.envs.base import (Env, EnvFamily, EnvStep, env_names, families, find_family,
                             make_env, register_family)
from pgjax.envs.gymnax import GymnaxEnv, wrap_env
from pgjax.envs.gymnax_api import GymnaxApiEnv, wrap_gymnax_api
from pgjax.envs.obs import (ObsStats, init_obs_stats, normalize_obs, update_obs_stats,
                            uses_obs_normalization)

__all__ = [
    "Env", "EnvFamily", "EnvStep", "GymnaxApiEnv", "GymnaxEnv", "ObsStats", "env_names", "families",
    "find_family", "init_obs_stats", "make_env", "normalize_obs", "register_family",
    "update_obs_stats", "uses_obs_normalization", "wrap_env", "wrap_gymnax_api",
]
