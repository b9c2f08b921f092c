"""REINFORCE and REINFORCE with a learned baseline: Monte-Carlo returns of whole episodes.

``reinforce``: ``A_t = G_t`` (the reward-to-go of complete episodes, normalised over each
batch with ``algorithm.normalize_returns``), no critic. ``reinforce_baseline``:
``A_t = G_t - V(s_t)`` with V regressed on ``G_t``. Each update rolls out one whole episode
per env (padded to the episode cap, masked), so no return is bootstrapped: a time limit ends
an episode like a terminal state.
"""

from __future__ import annotations

from typing import Any

from pgjax.algos.base import Algorithm, Batch, config_error
from pgjax.returns import discounted_returns, normalize


class Reinforce(Algorithm):
    """REINFORCE with reward-to-go (and per-batch return normalisation)."""

    name = "reinforce"
    episodic = True
    critic = False

    def validate(self, config: Any) -> None:
        if config.network.shared_trunk and not self.critic:
            raise config_error("network.shared_trunk", True,
                               "plain reinforce has no critic to share a trunk with; use false, "
                               "or algorithm.name=reinforce_baseline")

    def batch(self, traj: Any, mask: Any, hp: Any, config: Any) -> Batch:
        # Complete episodes only: the time limit ends an episode, no bootstrap.
        returns = discounted_returns(traj.reward, traj.done, hp.gamma)
        if config.algorithm.normalize_returns:
            returns = normalize(returns, mask)
        advantage = returns - traj.value if self.critic else returns
        return Batch(traj.obs, traj.action, advantage, returns, traj.log_prob, traj.value, mask,
                     traj.carry)


class ReinforceBaseline(Reinforce):
    """REINFORCE with a learned state-value baseline."""

    name = "reinforce_baseline"
    critic = True
