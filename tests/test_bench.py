"""pgjax.bench: FLOP counts by hand, the learn phase against the trainer, smoke runs."""

import json

import jax
import numpy as np
import pytest

from pgjax import bench
from pgjax.config import Config, apply_overrides
from pgjax.envs import make_env
from pgjax.memory import network_shape
from pgjax.rollout import make_episodic_rollout, make_rollout
from pgjax.train import make_train


def _config(*overrides):
    return apply_overrides(Config(), ["training.total_env_steps=100000", *overrides])


def test_model_flops_match_a_hand_count():
    # obs 2 -> hidden 3 -> 2 logits (actor), 2 -> 3 -> 1 value (critic).
    config = _config("network.hidden_sizes=[3]")
    f = bench.model_flops(config, network_shape(config, (2,), 2))
    actor, critic = 2 * 3 + 3 * 2, 2 * 3 + 3 * 1  # MACs: 12 and 9
    assert f.forward == 2 * (actor + critic) == 42
    assert f.rollout == f.forward
    # Backward: weight gradients of every layer (21 MACs) and input gradients of all layers
    # but the first (3*2 + 3*1 = 9 MACs), at 2 FLOPs per MAC.
    assert f.train == f.forward + 2 * (21 + 9) == 102
    assert f.total == 144

    ppo = _config("network.hidden_sizes=[3]", "algorithm.name=ppo", "algorithm.epochs=4",
                  "algorithm.minibatches=1")
    assert bench.model_flops(ppo, network_shape(ppo, (2,), 2)).train == 4 * 102

    shared = _config("network.hidden_sizes=[3]", "network.shared_trunk=true")
    f = bench.model_flops(shared, network_shape(shared, (2,), 2))
    assert f.forward == 2 * (6 + 6 + 3)  # trunk, policy head, value head
    assert f.train == f.forward + 2 * (15 + 9)

    reinforce = _config("network.hidden_sizes=[3]", "algorithm.name=reinforce")
    assert bench.model_flops(reinforce, network_shape(reinforce, (2,), 2)).forward == 2 * actor


def test_model_flops_cartpole_default():
    # 2x64 tanh actor and critic on CartPole's 4 observations and 2 actions.
    f = bench.model_flops(Config(), network_shape(Config(), (4,), 2))
    fwd_macs = (4 * 64 + 64 * 64 + 64 * 2) + (4 * 64 + 64 * 64 + 64 * 1)
    assert f.forward == 2 * fwd_macs
    assert f.total == 2 * fwd_macs + 2 * fwd_macs + 2 * (2 * fwd_macs - 2 * 4 * 64)


@pytest.mark.parametrize("algorithm, extra", [
    ("a2c", []),
    ("ppo", ["algorithm.epochs=2", "algorithm.minibatches=2", "optimizer.anneal_lr=true"]),
    ("reinforce_baseline", ["env.params.max_steps_in_episode=20"]),
])
def test_learn_matches_the_trainers_update(algorithm, extra):
    """(c) times exactly the learning the trainer does after its rollout."""
    config = _config(f"algorithm.name={algorithm}", "training.num_envs=4", "algorithm.n_steps=8",
                     "network.hidden_sizes=[8]", *extra)
    trainer = make_train(config)
    state = jax.jit(trainer.init)(jax.random.key(0))
    expected = jax.jit(trainer.update)(state)[0].params
    env = trainer.env
    if config.algorithm.name == "reinforce_baseline":
        key, rollout_key = jax.random.split(state.key)
        rollout = make_episodic_rollout(env, trainer.networks.apply, num_envs=4)
        traj, mask, _, _ = jax.jit(rollout)(state.params, rollout_key, state.obs_stats)
        shuffle_key = key
    else:
        _, rollout_key, shuffle_key = jax.random.split(state.key, 3)
        fns = make_rollout(env, trainer.networks.apply, num_envs=4, num_steps=8)
        _, traj, _, _ = jax.jit(fns.rollout)(state.params, state.rollout, rollout_key,
                                             state.obs_stats)
        mask = None
    params, _ = jax.jit(bench.make_learn(trainer))(state, traj, mask, shuffle_key)
    for got, want in zip(jax.tree.leaves(params), jax.tree.leaves(expected)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_bench_phases_episodic():
    env = make_env("CartPole-v1", max_steps_in_episode=8)
    config = _config("algorithm.name=reinforce", "network.hidden_sizes=[8]")
    r = bench.bench_phases(config, env, num_envs=4, num_steps=None, repeats=1, steps_per_call=32,
                           phases=("rollout", "learn"))
    assert r["num_steps"] == 8 and set(r["steps_per_s"]) == {"rollout", "learn"}


def test_bench_counts_the_env_steps_an_episodic_algorithm_takes():
    # Issue 14, finding 8: CartPole's first episodes last ~10-40 steps of a 500-step padded
    # rollout; steps/s counts the steps taken (the episodes'), not the 500 per env.
    env = make_env("CartPole-v1")
    config = _config("algorithm.name=reinforce", "network.hidden_sizes=[8]")
    r = bench.bench_phases(config, env, num_envs=4, num_steps=None, repeats=2,
                           steps_per_call=2000, phases=("rollout", "learn", "train"))
    assert r["env_steps_per_call"] == 2000  # U = 1 padded rollout of 4 x 500
    for phase in ("rollout", "learn", "train"):
        taken = r["steps_per_s"][phase] / r["computed_steps_per_s"][phase]
        assert 0.005 < taken < 0.3, (phase, taken)  # a fraction of the padded steps


def test_matmul_flops_positive():
    m = bench.matmul_flops(64, repeats=2)
    assert m["flops_per_s"] > 0 and m["best_flops_per_s"] >= m["flops_per_s"]


def test_main_writes_json_and_plot(tmp_path, capsys):
    out, fig = tmp_path / "bench.json", tmp_path / "bench.png"
    code = bench.main(["--quick", "--num-envs", "8", "--steps", "4", "--repeats", "1",
                       "--set", "network.hidden_sizes=[8]", "--matmul-size", "64",
                       "--json", str(out), "--plot", str(fig)])
    assert code == 0
    text = capsys.readouterr().out
    assert "command: python -m pgjax.bench --quick" in text and "FLOP util." in text
    data = json.loads(out.read_text())
    assert data["machine"]["jax"] == jax.__version__
    assert data["model_flops"]["total"] > 0
    (r,) = data["results"]
    assert r["matmul"]["size"] == 64 and r["matmul"]["flops_per_s"] > 0
    assert r["num_envs"] == 8 and r["num_steps"] == 4
    assert set(r["steps_per_s"]) == set(bench.PHASES) == set(r["compile_s"])
    assert all(v > 0 and np.isfinite(v) for v in r["steps_per_s"].values())
    assert r["env_steps_per_call"] == r["calls_per_timing"] * 8 * 4
    assert fig.stat().st_size > 0


def test_bad_input_exits_2(capsys):
    assert bench.main(["--phases", "nope"]) == 2
    assert bench.main(["--algorithm", "a2c", "--set", "algorithm.gamma=2"]) == 2
    assert "algorithm.gamma=2" in capsys.readouterr().err


def test_single_env_loop_backprop_matches_finite_differences():
    """benchmarks/single_env_loop.py's hand-written backprop is the gradient of its loss."""
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "single_env_loop.py"
    spec = importlib.util.spec_from_file_location("single_env_loop", path)
    loop = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loop)
    rng = np.random.default_rng(0)
    params = loop.init_params(rng)
    params[4] = rng.standard_normal(params[4].shape)  # a head large enough for visible gradients
    obs, actions, adv = rng.standard_normal((5, 4)), rng.integers(0, 2, 5), rng.standard_normal(5)
    _, grads = loop.loss_and_grads(params, obs, actions, adv)
    for p, g in zip(params, grads):
        numeric = np.zeros_like(p)
        for idx in np.ndindex(p.shape):
            old = p[idx]
            p[idx] = old + 1e-6
            up = loop.loss_and_grads(params, obs, actions, adv)[0]
            p[idx] = old - 1e-6
            down = loop.loss_and_grads(params, obs, actions, adv)[0]
            p[idx] = old
            numeric[idx] = (up - down) / 2e-6
        np.testing.assert_allclose(g, numeric, atol=1e-7)
    # Reward-to-go: G = [1 + .5 + .25, 1 + .5, 1] = [1.75, 1.5, 1], then normalised.
    g = np.array([1.75, 1.5, 1.0])
    np.testing.assert_allclose(loop.reward_to_go(np.ones(3), 0.5), (g - g.mean()) / g.std(), rtol=1e-6)


# A benchmark script end to end (20-25 s): make test-slow runs it, CI's fast suite not.
@pytest.mark.slow
def test_time_to_solve_script_runs_the_product_programs(tmp_path):
    """benchmarks/time_to_solve.py end to end: one seed and a batch of 2, through --set."""
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    out = tmp_path / "tts.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/time_to_solve.py", "--configs", "a2c", "--seeds", "1",
         "--batch-seeds", "2", "--chunks", "5", "--set", "training.eval_episodes=8",
         "--json", str(out)],
        cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(out.read_text())["results"][0]
    single, batched = r["singles"][0], r["batched"]
    assert single["seeds"] == 1 and batched["seeds"] == 2
    assert single["compile_s"] > 0 and single["chunks_run"] >= 1
    # 100k env steps a chunk: the a2c preset solves CartPole within the budget.
    assert single["solved"] == [True] and all(batched["solved"])


# A benchmark script end to end (20-25 s): make test-slow runs it, CI's fast suite not.
@pytest.mark.slow
def test_large_batch_script_counts_updates_and_env_steps_to_target(tmp_path):
    """benchmarks/large_batch.py end to end on a tiny budget: the rule's changes are recorded,
    and steps to target are the update count at the reaching evaluation times the batch."""
    import pathlib
    import subprocess
    import sys

    root = pathlib.Path(__file__).resolve().parents[1]
    out = tmp_path / "lb.json"
    proc = subprocess.run(
        [sys.executable, "benchmarks/large_batch.py", "--cases", "cartpole_ppo",
         "--num-envs", "16,64", "--seeds", "2", "--budget-scale", "0.05", "--evals", "3",
         "--eval-episodes", "2", "--json", str(out)],
        cwd=root, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    small, large = json.loads(out.read_text())["results"]
    assert small["scaling"] == [] and large["scaling"][0] == "training.num_envs 16 -> 64"
    assert (large["n_steps"], large["steps_per_update"]) == (8, 64 * 8)
    for r in (small, large):
        assert len(r["curve"]) == r["num_updates"] // r["eval_every"]
        assert len(r["final_greedy"]) == len(r["final_sampled"]) == 2
        if r["reached"]:
            assert r["env_steps_to_target"]["max"] == (
                r["updates_to_target"]["max"] * r["steps_per_update"])
            assert r["updates_to_target"]["max"] % r["eval_every"] == 0
