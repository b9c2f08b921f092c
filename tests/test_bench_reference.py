"""pgjax.bench.reference: the plain-JAX A2C and PPO computes pgjax's mathematics; ``pgjax
bench --reference`` (and ``--busy-core``) run, print the ratio and leave no process behind."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax import bench
from pgjax.bench.reference import Batch, gae as reference_gae, make_reference
from pgjax.config import Config, ConfigError, apply_overrides
from pgjax.losses import actor_critic_loss
from pgjax.returns import gae, normalize
from pgjax.rollout import make_rollout
from pgjax.train import make_train

# The reference shuffles with jax.random.permutation, as a user's script does: pgjax's
# algorithm.shuffle=sort is the same permutation (its default, "feistel", is another one).
PPO = ["algorithm.name=ppo", "algorithm.epochs=2", "algorithm.minibatches=4",
       "algorithm.shuffle=sort"]


def _trainer(*overrides):
    config = apply_overrides(Config(), ["training.total_env_steps=100000", "training.num_envs=4",
                                        "algorithm.n_steps=8", "network.hidden_sizes=[8, 8]",
                                        *overrides])
    trainer = make_train(config)
    state = jax.jit(trainer.init)(jax.random.key(0))
    ref = make_reference(trainer.config, trainer.env, num_envs=4)
    return trainer, state, ref


def _rollout(trainer, state, key):
    fns = make_rollout(trainer.env, trainer.networks.apply, num_envs=4, num_steps=8)
    return jax.jit(fns.rollout)(state.params, state.rollout, key)[1]


def _close(got, want, **tol):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, **(tol or dict(rtol=2e-5, atol=1e-6)))


def _as_pgjax(ref_params, like):
    """The reference's (kernel, bias) lists in pgjax's parameter dicts."""
    out = {}
    for group, head in (("actor", "policy"), ("critic", "value")):
        names = sorted(k for k in like[group] if k.startswith("hidden_")) + [head]
        out[group] = {k: {"kernel": w, "bias": b} for k, (w, b) in zip(names, ref_params[group])}
    return out


def test_gae_matches_pgjax():
    k = iter(jax.random.split(jax.random.key(0), 5))
    reward, value, next_value = (jax.random.normal(next(k), (16, 3)) for _ in range(3))
    terminated = jax.random.bernoulli(next(k), 0.15, (16, 3))
    done = terminated | jax.random.bernoulli(next(k), 0.15, (16, 3))
    want = gae(reward, value, next_value, terminated, done, 0.97, 0.9)
    got = reference_gae(reward, value, next_value, terminated.astype(jnp.float32),
                        done.astype(jnp.float32), 0.97, 0.9)
    _close(got, want)


@pytest.fixture(scope="module")
def a2c_rollout():
    """An a2c trainer, its initial state and one rollout of it (the networks and the data
    every loss test uses)."""
    trainer, state, _ = _trainer()
    return trainer, state, _rollout(trainer, state, jax.random.key(1))


@pytest.mark.parametrize("overrides", [[], PPO, ["algorithm.normalize_advantages=true"]],
                         ids=["a2c", "ppo", "a2c-normalized"])
def test_loss_and_gradients_match_pgjax(overrides, a2c_rollout):
    """One batch of rollout data, the same parameters: the reference's loss and its gradient
    are pgjax's actor_critic_loss (through pgjax's networks) to float tolerance."""
    trainer, state, traj = a2c_rollout
    config = apply_overrides(trainer.config, overrides)
    ref = make_reference(config, trainer.env, num_envs=4)
    # Parameters moved off their init, so that PPO's ratio to the behaviour log-probs is
    # clipped for some samples.
    params = jax.tree.map(lambda x: x + 0.3 * jax.random.normal(jax.random.key(2), x.shape),
                          state.params)
    ref_params = ref.from_pgjax(state._replace(params=params)).params
    adv, target = gae(traj.reward, traj.value, traj.next_value, traj.terminated, traj.done,
                      0.99, 1.0)
    a, hp = config.algorithm, trainer.hparams
    ppo = a.name == "ppo"

    def pgjax_loss(params):
        dist, value = trainer.networks.apply(params, traj.obs)
        advantage = normalize(adv) if a.normalize_advantages else adv
        return actor_critic_loss(
            dist.log_prob(traj.action), value, advantage, target, dist.entropy(),
            value_coef=hp.value_coef, entropy_coef=hp.entropy_coef,
            old_log_probs=traj.log_prob if ppo else None, clip_eps=hp.clip_eps if ppo else None)

    (want, want_m), want_g = jax.value_and_grad(pgjax_loss, has_aux=True)(params)
    batch = Batch(traj.obs, traj.action, adv, target, traj.log_prob)
    (got, got_m), got_g = jax.value_and_grad(ref.loss, has_aux=True)(ref_params, batch)
    _close(got, want)
    _close([got_m[k] for k in ("policy_loss", "value_loss", "entropy")],
           [want_m[k] for k in ("policy_loss", "value_loss", "entropy")])
    _close(_as_pgjax(got_g, params), want_g)
    if ppo:
        assert 0 < float(want_m["clip_fraction"]) < 1


@pytest.mark.parametrize("overrides", [[], PPO], ids=["a2c", "ppo"])
def test_update_matches_the_trainers(overrides):
    """The reference's whole update (rollout, GAE, the gradient steps with clipping and one
    Adam per network, PPO's shuffled minibatches) from pgjax's initial state gives pgjax's
    parameters after two updates."""
    trainer, state, ref = _trainer(*overrides)
    ref_state = ref.from_pgjax(state)
    for _ in range(2):
        state, _ = jax.jit(trainer.update)(state)
        ref_state, metrics = jax.jit(ref.update)(ref_state)
    _close(_as_pgjax(ref_state.params, state.params), state.params, rtol=1e-4, atol=1e-6)
    assert np.isfinite(float(metrics["loss"]))


def test_reference_refuses_what_it_does_not_implement():
    config = apply_overrides(Config(), ["algorithm.name=reinforce"])
    trainer = make_train(config)
    with pytest.raises(ConfigError, match="a2c and ppo only"):
        make_reference(config, trainer.env, num_envs=4)
    assert bench.main(["--reference", "--algorithm", "reinforce", "--quick"]) == 2
    assert bench.main(["--reference", "--phases", "env", "--quick"]) == 2


def test_reference_own_init(a2c_rollout):
    """Its own init: pgjax's layer shapes, orthogonal weights of pgjax's gains, zero biases."""
    trainer, _, traj = a2c_rollout
    ref = make_reference(trainer.config, trainer.env, num_envs=4)
    state = ref.init(jax.random.key(0))
    assert [w.shape for w, _ in state.params["actor"]] == [(4, 8), (8, 8), (8, 2)]
    assert [w.shape for w, _ in state.params["critic"]] == [(4, 8), (8, 8), (8, 1)]
    w, b = state.params["actor"][1]
    np.testing.assert_allclose(w.T @ w, 2.0 * np.eye(8), atol=1e-5)  # gain sqrt(2)
    assert not np.any(b) and state.obs.shape == (4, 4) and int(state.update) == 0
    loss, _ = ref.loss(state.params, Batch(traj.obs, traj.action, traj.reward, traj.reward,
                                           traj.log_prob))
    assert np.isfinite(float(loss))


def test_cli_reference_prints_the_ratio(tmp_path, capsys):
    """A tiny ppo run (a2c's update is the same harness; test_update_matches_the_trainers
    covers its mathematics): the ratio line and table, the busy core on, and gone after."""
    out = tmp_path / "ref.json"
    code = bench.main(["--reference", "--busy-core", "--algorithm", "ppo", "--quick",
                       "--num-envs", "8", "--steps", "4", "--repeats", "2",
                       "--set", "network.hidden_sizes=[8]", "--json", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "busy core: on" in text and "pgjax/reference" in text and "load average" in text
    assert "| ppo 4 epochs x 4 minibatches | 8 | 4 |" in text
    data = json.loads(out.read_text())
    (r,) = data["results"]
    ratio = r["reference"]
    assert len(ratio["ratios"]) == 2 and ratio["min"] <= ratio["median"] <= ratio["max"]
    assert set(r["steps_per_s"]) == {"train", "reference"}
    pid = data["busy_core"]["pid"]
    with pytest.raises(ProcessLookupError):  # the spinning process is gone (and reaped)
        os.kill(pid, 0)


def test_busy_core_stops_on_error():
    with pytest.raises(RuntimeError):
        with bench.busy_core() as proc:
            pid = proc.pid
            os.kill(pid, 0)  # running
            raise RuntimeError("a failed measurement")
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_busy_core_with_the_phases(tmp_path, capsys):
    """--busy-core without --reference: the phase table, measured beside the busy core."""
    out = tmp_path / "bench.json"
    assert bench.main(["--busy-core", "--quick", "--num-envs", "8", "--steps", "4",
                       "--repeats", "1", "--phases", "env", "--matmul-size", "64",
                       "--json", str(out)]) == 0
    assert "busy core: on" in capsys.readouterr().out
    pid = json.loads(out.read_text())["busy_core"]["pid"]
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert bench.main(["--compile-cache", "--busy-core"]) == 2
