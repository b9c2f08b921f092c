"""pgjax: high-throughput policy-gradient reinforcement learning in JAX.

Every algorithm here is the same gradient, grad log pi(a|s) * A, with a
different advantage estimate A. The estimators (:mod:`pgjax.returns`) and
losses (:mod:`pgjax.losses`) are pure functions that other JAX code can call,
jit, vmap and differentiate.
"""

from pgjax.losses import (
    actor_critic_loss,
    entropy_bonus,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)
from pgjax.returns import discounted_returns, gae, masked_mean, normalize

__version__ = "0.1.0"

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
]
