"""PPO: the clipped surrogate over ``epochs`` passes of ``minibatches`` shuffled minibatches
of each n-step rollout, GAE advantages, optionally recomputed with the current critic before
each epoch (``algorithm.recompute_advantages``)."""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from pgjax.algos.a2c import NStep
from pgjax.algos.base import Batch, Learner, config_error
from pgjax.losses import actor_critic_loss
from pgjax.returns import gae
from pgjax.shuffle import permutation


class PPO(NStep):
    """Proximal policy optimisation with the clipped surrogate (and optional clipped values)."""

    name = "ppo"
    minibatched = True

    def validate(self, config: Any) -> None:
        a, t = config.algorithm, config.training
        batch = t.num_envs * a.n_steps
        if batch % a.minibatches:
            raise config_error("algorithm.minibatches", a.minibatches,
                               f"must divide training.num_envs * algorithm.n_steps = {batch}")

    def minibatches(self, config: Any) -> int:
        return config.algorithm.minibatches

    def epochs(self, config: Any) -> int:
        return config.algorithm.epochs

    def slicing(self, config: Any) -> str:
        return "rows"

    def loss(self, dist, value, batch: Batch, hp, config):
        return actor_critic_loss(
            dist.log_prob(batch.action), value, batch.advantage, batch.target, dist.entropy(),
            value_coef=hp.value_coef, entropy_coef=hp.entropy_coef, mask=batch.mask,
            old_log_probs=batch.old_log_prob, clip_eps=hp.clip_eps,
            old_values=batch.old_value, value_clip_eps=config.algorithm.value_clip_eps)

    def update(self, learner: Learner, params, opt_state, batch: Batch, hp, lr_scale, key,
               traj, last_obs):
        a = learner.config.algorithm
        size = learner.derived.batch_size

        def epoch(carry, epoch_key):
            epoch_batch = batch
            if a.recompute_advantages:
                value, next_value = learner.values(carry[0], traj, last_obs)
                advantage, target = gae(traj.reward, value, next_value, traj.terminated,
                                        traj.done, hp.gamma, hp.gae_lambda)
                epoch_batch = batch._replace(advantage=advantage, target=target)
            if learner.recurrent:  # shuffle envs, keep each [T] sequence whole
                envs = traj.reward.shape[1]
                perm = permutation(epoch_key, envs, a.shuffle)
                shuffled = jax.tree.map(lambda x: jnp.moveaxis(x[:, perm].reshape(
                    (x.shape[0], a.minibatches, -1, *x.shape[2:])), 1, 0), epoch_batch)
                shuffled = learner.shard_rows(shuffled, axis=2)  # [minibatches, T, n, ...]
            else:
                flat = jax.tree.map(lambda x: x.reshape((-1, *x.shape[2:])), epoch_batch)
                perm = permutation(epoch_key, size, a.shuffle)
                shuffled = jax.tree.map(
                    lambda x: x[perm].reshape((a.minibatches, -1, *x.shape[1:])), flat)
                # Each device takes its share of every minibatch's rows (else the
                # partitioner gathers the batch and every device does all the work).
                shuffled = learner.shard_rows(shuffled)

            def minibatch(carry, mb):
                params, opt_state = carry
                params, opt_state, metrics = learner.gradient_step(
                    params, opt_state, mb, hp, lr_scale, strided=True)
                return (params, opt_state), metrics

            return jax.lax.scan(minibatch, carry, shuffled)

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (params, opt_state), jax.random.split(key, a.epochs))
        return params, opt_state, jax.tree.map(jnp.mean, metrics)

    def scale(self, rule: Any) -> None:
        a, o = rule.config.algorithm, rule.config.optimizer
        rule.put("env.normalize_obs", True, "running statistics of N x T observations per update")
        steps = rule.shrink_n_steps()
        batch0, batch = rule.batch0, rule.num_envs * steps
        minibatches = rule.get("algorithm.minibatches")
        mb0 = batch0 // a.minibatches
        if not rule.explicit_has("algorithm.minibatches"):
            mb = rule.divisor_near(batch, mb0 * math.sqrt(batch / batch0))
            why = f"minibatch {mb0} -> {mb} samples = {mb0} * sqrt({batch}/{batch0})"
            if rule.recurrent:  # minibatches of whole env sequences: a divisor of N
                envs = rule.divisor_near(rule.num_envs, mb / steps)
                mb, why = steps * envs, f"{why}, as whole sequences of {envs} envs"
            minibatches = batch // mb
            rule.put("algorithm.minibatches", minibatches, why)
        mb = max(batch // minibatches, 1)
        if not rule.get("network.shared_trunk") and mb > mb0:
            rule.put("optimizer.critic_lr", rule.round(o.critic_lr * math.sqrt(mb / mb0)),
                     f"x sqrt({mb}/{mb0})")
        if steps < a.n_steps and not rule.recurrent:  # (not with a GRU yet: pgjax.train)
            rule.put("algorithm.recompute_advantages", True,
                     f"n_steps {a.n_steps} -> {steps}: recompute before each epoch")
