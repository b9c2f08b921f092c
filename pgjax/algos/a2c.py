"""A2C: n-step auto-reset rollouts, GAE(lambda) advantages (lambda = 1: the n-step
bootstrapped return), one gradient step per update on the whole ``[T, N]`` batch."""

from __future__ import annotations

import math
from typing import Any

from pgjax.algos.base import Algorithm, Batch
from pgjax.returns import gae

# Largest factor the batch rule raises a2c's actor step size by (pgjax.scaling). 6, not 4:
# at N=1024 (factor 8) CartPole a2c with normalised observations needs x6 to reach 490 in
# 4 of 4 seeds (x4: 0 of 4), and Acrobot a2c stays at 4 of 4 (benchmarks/RESULTS.md).
MAX_LR_FACTOR = 6.0


class NStep(Algorithm):
    """What a2c and ppo share: n-step rollouts and GAE advantages with bootstrapping."""

    def batch(self, traj: Any, mask: Any, hp: Any, config: Any) -> Batch:
        advantage, target = gae(traj.reward, traj.value, traj.next_value, traj.terminated,
                                traj.done, hp.gamma, hp.gae_lambda)
        # Every n-step transition is valid: no mask (None), so losses take plain means.
        return Batch(traj.obs, traj.action, advantage, target, traj.log_prob, traj.value, None,
                     traj.carry)


class A2C(NStep):
    """Advantage actor-critic with value loss and entropy bonus."""

    name = "a2c"

    def slicing(self, config: Any) -> str:
        return "time"

    def scale(self, rule: Any) -> None:
        steps = rule.shrink_n_steps()
        factor = math.sqrt(rule.num_envs * steps / rule.batch0)
        if not rule.get("network.shared_trunk") and factor > 1:
            rule.put("optimizer.actor_lr",
                     rule.round(rule.config.optimizer.actor_lr * min(factor, MAX_LR_FACTOR)),
                     f"x min(sqrt({rule.num_envs * steps}/{rule.batch0}), {MAX_LR_FACTOR:g})")
            rule.put("optimizer.critic_lr", rule.round(rule.config.optimizer.critic_lr * factor),
                     f"x sqrt({rule.num_envs * steps}/{rule.batch0})")
            rule.put("optimizer.anneal_lr", True, "larger steps end small")
        if factor > 1:
            rule.put("algorithm.normalize_advantages", True,
                     "a large batch fits the critic well and its advantages shrink; "
                     "unnormalised, the entropy bonus then outweighs them")
