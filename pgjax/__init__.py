"""pgjax: high-throughput policy-gradient reinforcement learning in JAX.

Every algorithm here is the same gradient, grad log pi(a|s) * A, with a
different advantage estimate A. The estimators (:mod:`pgjax.returns`) and
losses (:mod:`pgjax.losses`) are pure functions that other JAX code can call,
jit, vmap and differentiate. The layers above them (distributions, networks,
environments, rollouts, training, config) are imported on first use, so
``import pgjax`` stays cheap for code that only needs the estimators.
"""

import importlib
import os


def _avoid_xla_cpu_hang() -> None:
    """Works around an XLA CPU deadlock seen with jaxlib 0.10.

    With the thunk runtime's concurrency-optimised scheduler, some programs
    that scan a training loop and then run an evaluation rollout, vmapped over
    seeds, never finish: every XLA worker idles while the caller waits for the
    result (reproduced by tests/test_xla_workaround.py). Turning that scheduler
    off costs PPO at small N ~17-22% of its steps/s on 2 cores (independent
    small ops no longer overlap; large-batch a2c is unchanged: RESULTS.md,
    "Cost of the XLA CPU workaround"); a hang is worse. XLA reads XLA_FLAGS when the
    backend starts (the first computation), so this must run before that; it
    is applied only for the jaxlib versions it was tested with (XLA aborts on
    unknown flags), only if the user has not set the flag, and never with
    PGJAX_KEEP_XLA_FLAGS=1.
    """
    flag = "--xla_cpu_enable_concurrency_optimized_scheduler"
    flags = os.environ.get("XLA_FLAGS", "")
    if os.environ.get("PGJAX_KEEP_XLA_FLAGS") == "1" or flag in flags:
        return
    try:
        from importlib.metadata import version

        jaxlib_version = version("jaxlib")
    except Exception:  # noqa: BLE001  (not installed as a distribution: leave flags alone)
        return
    if not jaxlib_version.startswith("0.10."):
        return
    try:
        from jax._src import xla_bridge

        started = bool(xla_bridge._backends)
    except Exception:  # noqa: BLE001  (private API moved: assume not started)
        started = False
    if started:
        import warnings

        warnings.warn(
            "pgjax was imported after the XLA backend started (importing gymnax starts it), "
            f"so its workaround for an XLA CPU hang is not in effect. Import pgjax first, or "
            f"set XLA_FLAGS='{flag}=false' before starting Python.",
            RuntimeWarning,
            stacklevel=3,
        )
        return
    os.environ["XLA_FLAGS"] = f"{flags} {flag}=false".strip()


_avoid_xla_cpu_hang()


def _cpu_devices() -> None:
    """``PGJAX_CPU_DEVICES=D`` gives the CPU backend D host devices (README, "Scaling out").

    XLA's CPU backend runs each device's program on its own thread, so splitting the env
    batch over D host devices (``--devices all``) keeps more cores busy than one device's
    intra-op parallelism: A2C at N=2048 on 2 cores, 824k env steps/s with 2 devices against
    634k with 1 (benchmarks/RESULTS.md). Like the flag above, this must be in XLA_FLAGS before
    the backend starts; a count already in XLA_FLAGS wins.
    """
    count = os.environ.get("PGJAX_CPU_DEVICES", "")
    flag = "--xla_force_host_platform_device_count"
    if not count or flag in os.environ.get("XLA_FLAGS", ""):
        return
    if not count.isdigit() or int(count) < 1:
        import warnings

        warnings.warn(f"PGJAX_CPU_DEVICES={count!r} ignored: must be a positive integer",
                      RuntimeWarning, stacklevel=3)
        return
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}={int(count)}".strip()


_cpu_devices()

from pgjax.losses import (  # noqa: E402
    actor_critic_loss,
    entropy_bonus,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)
from pgjax.returns import discounted_returns, gae, masked_mean, normalize  # noqa: E402

__version__ = "0.1.0"

# Public name -> module that defines it, imported lazily (PEP 562).
_LAZY = {
    "Categorical": "pgjax.distributions",
    "DiagGaussian": "pgjax.distributions",
    "Networks": "pgjax.networks",
    "make_networks": "pgjax.networks",
    "env_action": "pgjax.networks",
    "action_scale": "pgjax.networks",
    "Env": "pgjax.envs",
    "make_env": "pgjax.envs",
    "wrap_env": "pgjax.envs",
    "ObsStats": "pgjax.envs",
    "init_obs_stats": "pgjax.envs",
    "update_obs_stats": "pgjax.envs",
    "normalize_obs": "pgjax.envs",
    "uses_obs_normalization": "pgjax.envs",
    "EpisodeStats": "pgjax.rollout",
    "RolloutState": "pgjax.rollout",
    "make_rollout": "pgjax.rollout",
    "make_episodic_rollout": "pgjax.rollout",
    "HParams": "pgjax.train",
    "TrainState": "pgjax.train",
    "Trainer": "pgjax.train",
    "default_hparams": "pgjax.train",
    "episode_mean": "pgjax.acting",
    "make_policy": "pgjax.policy",
    "load_run": "pgjax.host.load",
    "make_train": "pgjax.train",
    "Config": "pgjax.config",
    "ConfigError": "pgjax.config",
    "load_config": "pgjax.config",
    "apply_overrides": "pgjax.config",
    "EnvSpec": "pgjax.types",
    "Transition": "pgjax.types",
}

__all__ = [
    # returns (layer 1)
    "discounted_returns",
    "gae",
    "masked_mean",
    "normalize",
    # losses (layer 2)
    "actor_critic_loss",
    "entropy_bonus",
    "policy_gradient_loss",
    "ppo_clip_loss",
    "value_loss",
    # policies, acting, training, config (layers 3-6), imported on first use
    *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'pgjax' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
