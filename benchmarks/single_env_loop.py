"""The textbook REINFORCE loop: one gymnasium CartPole-v1, stepped in Python, a NumPy policy.

This is how the tutorials train a policy gradient, and the baseline pgjax's speed-up is
measured against on the same machine:

* one ``gymnasium.make("CartPole-v1")`` environment, stepped from Python;
* a NumPy policy: the same 2x64 tanh MLP as pgjax's actor (orthogonal init, gains sqrt 2 and
  0.01) with a softmax over the two actions, evaluated on one observation per step;
* one update per episode: discounted reward-to-go (gamma 0.99) normalised over the episode,
  loss ``-mean_t log pi(a_t|s_t) G_t``, gradients by hand-written backprop over the episode's
  steps in one batch, Adam;
* stop when the mean of the last 25 episode returns reaches 475 (or at ``--max-episodes``).

NumPy runs with one BLAS thread (the script sets ``OPENBLAS_NUM_THREADS=1`` unless set): with
threads, the per-episode update on this 2-core machine made the loop 3.5x slower.

NumPy was chosen over a per-step-jitted JAX policy because it is faster here: a jitted call on
one observation costs tens of microseconds of dispatch, the NumPy forward a few. ``--policy
jax`` times that alternative (a per-step ``jax.jit`` forward and a per-episode ``jax.jit``
update) so the choice can be checked.

``--with-pgjax`` runs, in the same process and on the same seeds, pgjax's time to solve
(``benchmarks/time_to_solve.py``: compile and train with greedy evaluation every 1/50 of the
budget) for the given configs and prints the ratios.

Usage (from the repository root):
  .venv/bin/python benchmarks/single_env_loop.py                    # 5 seeds
  .venv/bin/python benchmarks/single_env_loop.py --seeds 3 --with-pgjax reinforce,a2c
  .venv/bin/python benchmarks/single_env_loop.py --policy jax --seeds 1 --max-episodes 50
  .venv/bin/python benchmarks/single_env_loop.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

# One BLAS thread: the loop's matrices are tiny, and a threaded BLAS made it 3.5x slower on
# this 2-core machine (11k vs 37k env steps/s). Set before numpy is first imported.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede any computation)

import numpy as np

from pgjax.bench import load_average, machine_info, time_to_solve

HIDDEN = (64, 64)
THRESHOLD, WINDOW = 475.0, 25


def orthogonal(rng: np.random.Generator, shape: tuple[int, int], gain: float) -> np.ndarray:
    """An orthogonal matrix of ``shape`` times ``gain`` (as flax's orthogonal initializer)."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return gain * (q if rows >= cols else q.T)


def init_params(rng: np.random.Generator, obs_size: int = 4, actions: int = 2) -> list[np.ndarray]:
    sizes = (obs_size, *HIDDEN, actions)
    params = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        gain = 0.01 if i == len(sizes) - 2 else np.sqrt(2.0)
        params += [orthogonal(rng, (n_in, n_out), gain), np.zeros(n_out)]
    return params


def forward(params: list[np.ndarray], obs: np.ndarray):
    """``obs [B, 4] -> (hidden activations, logits [B, 2])``."""
    w1, b1, w2, b2, w3, b3 = params
    h1 = np.tanh(obs @ w1 + b1)
    h2 = np.tanh(h1 @ w2 + b2)
    return (h1, h2), h2 @ w3 + b3


def log_softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def loss_and_grads(params, obs: np.ndarray, actions: np.ndarray, advantages: np.ndarray):
    """``L = -mean_t log pi(a_t|s_t) A_t`` and its gradients, by backprop over the batch."""
    w1, b1, w2, b2, w3, b3 = params
    (h1, h2), logits = forward(params, obs)
    logp = log_softmax(logits)
    batch = len(actions)
    loss = -np.mean(logp[np.arange(batch), actions] * advantages)
    # dL/dlogits = (softmax - onehot(a)) * A / B
    d_logits = np.exp(logp)
    d_logits[np.arange(batch), actions] -= 1.0
    d_logits *= (advantages / batch)[:, None]
    d_h2 = (d_logits @ w3.T) * (1.0 - h2**2)
    d_h1 = (d_h2 @ w2.T) * (1.0 - h1**2)
    grads = [obs.T @ d_h1, d_h1.sum(0), h1.T @ d_h2, d_h2.sum(0), h2.T @ d_logits, d_logits.sum(0)]
    return loss, grads


class Adam:
    def __init__(self, params, lr: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps, self.t = lr, b1, b2, eps, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, params, grads):
        self.t += 1
        c1, c2 = 1 - self.b1**self.t, 1 - self.b2**self.t
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= self.lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


def reward_to_go(rewards: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_t + gamma G_{t+1}``, normalised to zero mean and unit std over the episode."""
    returns = np.empty(len(rewards))
    g = 0.0
    for t in range(len(rewards) - 1, -1, -1):
        g = rewards[t] + gamma * g
        returns[t] = g
    return (returns - returns.mean()) / (returns.std() + 1e-8)


def _numpy_policy(seed: int, lr: float):
    rng = np.random.default_rng(seed)
    params = init_params(rng)
    adam = Adam(params, lr)

    def act(obs):
        _, logits = forward(params, obs[None])
        p = np.exp(log_softmax(logits[0]))
        return int(np.searchsorted(np.cumsum(p), rng.random() * p.sum()))

    def update(obs, actions, advantages):
        _, grads = loss_and_grads(params, obs, actions, advantages)
        adam.step(params, grads)

    return act, update


def _jax_policy(seed: int, lr: float):
    """The alternative: a per-step jitted forward and a per-episode jitted update (optax Adam)."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415
    import optax  # noqa: PLC0415

    params = [jnp.asarray(p, jnp.float32) for p in init_params(np.random.default_rng(seed))]
    tx = optax.adam(lr)
    opt_state = tx.init(params)
    key = jax.random.key(seed)

    def logits_of(params, obs):
        w1, b1, w2, b2, w3, b3 = params
        return jnp.tanh(jnp.tanh(obs @ w1 + b1) @ w2 + b2) @ w3 + b3

    @jax.jit
    def sample(params, obs, key):
        key, sub = jax.random.split(key)
        return jax.random.categorical(sub, logits_of(params, obs)), key

    @jax.jit
    def learn(params, opt_state, obs, actions, advantages):
        def loss(params):
            logp = jax.nn.log_softmax(logits_of(params, obs))
            return -jnp.mean(jnp.take_along_axis(logp, actions[:, None], 1)[:, 0] * advantages)

        updates, opt_state = tx.update(jax.grad(loss)(params), opt_state)
        return optax.apply_updates(params, updates), opt_state

    def act(obs):
        nonlocal key
        action, key = sample(params, jnp.asarray(obs, jnp.float32), key)
        return int(action)

    def update(obs, actions, advantages):
        nonlocal params, opt_state
        # Pad to a power of two so the update compiles for a few lengths only.
        size = 1 << (len(actions) - 1).bit_length()
        pad = size - len(actions)
        obs = np.pad(obs, ((0, pad), (0, 0)))
        actions = np.pad(actions, (0, pad))
        advantages = np.pad(advantages, (0, pad)) * size / len(advantages[: size - pad])
        params, opt_state = learn(params, opt_state, jnp.asarray(obs, jnp.float32),
                                  jnp.asarray(actions), jnp.asarray(advantages, jnp.float32))

    return act, update


def train(seed: int, *, lr: float, gamma: float, max_episodes: int, policy: str = "numpy") -> dict:
    """Runs the loop until the mean of the last 25 returns reaches 475; returns the record."""
    import gymnasium as gym  # noqa: PLC0415

    env = gym.make("CartPole-v1")
    act, update = (_numpy_policy if policy == "numpy" else _jax_policy)(seed, lr)
    returns: list[float] = []
    steps = 0
    start = time.perf_counter()
    obs, _ = env.reset(seed=seed)
    for episode in range(max_episodes):
        if episode:
            obs, _ = env.reset()
        observations, actions, rewards = [], [], []
        done = False
        while not done:
            action = act(obs)
            observations.append(obs)
            actions.append(action)
            obs, reward, terminated, truncated, _ = env.step(action)
            rewards.append(reward)
            done = terminated or truncated
        steps += len(rewards)
        returns.append(float(sum(rewards)))
        update(np.asarray(observations), np.asarray(actions), reward_to_go(np.asarray(rewards), gamma))
        if len(returns) >= WINDOW and np.mean(returns[-WINDOW:]) >= THRESHOLD:
            break
    wall = time.perf_counter() - start
    solved = len(returns) >= WINDOW and np.mean(returns[-WINDOW:]) >= THRESHOLD
    return {"seed": seed, "policy": policy, "solved": bool(solved), "episodes": len(returns),
            "env_steps": steps, "wall_s": wall, "env_steps_per_s": steps / wall,
            "last_25_mean": float(np.mean(returns[-WINDOW:])), "load_average": load_average()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5, help="seeds 0 .. S-1 (default 5)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam step size (default 3e-3)")
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--max-episodes", type=int, default=5000, help="cap per seed (default 5000)")
    parser.add_argument("--policy", choices=("numpy", "jax"), default="numpy",
                        help="NumPy forward and backprop (default), or per-step-jitted JAX")
    parser.add_argument("--with-pgjax", metavar="NAMES", default="",
                        help="also time pgjax's configs/cartpole_<name>.yaml to 475 on the same seeds "
                             "(comma-separated, e.g. reinforce,a2c) and print the ratios")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = parser.parse_args(argv)
    machine = machine_info()
    import gymnasium  # noqa: PLC0415

    command = " ".join([".venv/bin/python", os.path.relpath(__file__)] + list(argv or sys.argv[1:]))
    print("# The textbook REINFORCE loop on CartPole-v1 (one gymnasium env, a NumPy policy)")
    print(f"date: {machine['date']}")
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
          f"gymnasium {gymnasium.__version__}, NumPy {np.__version__}; JAX {machine['jax']}")
    print(f"load average at start: {machine['load_average']}")
    print(f"command: {command}")
    print(f"policy {args.policy}: 4-64-64-2 tanh MLP, softmax; Adam lr {args.lr}; gamma {args.gamma}; "
          f"one update per episode; stop at mean of last {WINDOW} returns >= {THRESHOLD:.0f}\n", flush=True)
    runs = []
    for seed in range(args.seeds):
        r = train(seed, lr=args.lr, gamma=args.gamma, max_episodes=args.max_episodes, policy=args.policy)
        runs.append(r)
        print(f"seed {seed}: {'solved' if r['solved'] else 'NOT solved'} after {r['episodes']} episodes, "
              f"{r['env_steps']} env steps, {r['wall_s']:.1f}s, {r['env_steps_per_s']:.0f} env steps/s, "
              f"load {r['load_average'][0]}", flush=True)
    ok = [r for r in runs if r["solved"]]

    def med(key, rs=ok):
        values = [r[key] for r in rs]
        return (f"{statistics.median(values):.4g} [{min(values):.4g}, {max(values):.4g}]"
                if values else "-")

    print("\n| loop | solved | episodes to 475 | env steps to 475 | env steps/s | wall s to 475 | load |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    loads = [r["load_average"][0] for r in runs]
    print(f"| single env, {args.policy} policy | {len(ok)}/{len(runs)} | {med('episodes')} | "
          f"{med('env_steps')} | {med('env_steps_per_s', runs)} | {med('wall_s')} | "
          f"{min(loads)}-{max(loads)} |")
    pgjax_rows = []
    if args.with_pgjax:
        loop_median = statistics.median(r["wall_s"] for r in ok) if ok else None
        for name in [n for n in args.with_pgjax.split(",") if n]:
            config = pgjax.apply_overrides(pgjax.load_config(f"cartpole_{name}"),  # a preset
                                           ["training.num_chunks=50"])
            rs = [time_to_solve(config, seed, None, threshold=THRESHOLD) for seed in range(args.seeds)]
            done = [r for r in rs if r["solved"][0]]
            total = [r["compile_s"] + r["solve_train_s"][0] for r in done]
            train_only = [r["solve_train_s"][0] for r in done]
            rate = statistics.median(r["env_steps_per_s"] for r in rs)  # env steps taken
            row = {"config": name, "runs": rs, "solved": len(done), "env_steps_per_s": rate,
                   "compile_plus_train_median": statistics.median(total) if total else None,
                   "train_median": statistics.median(train_only) if train_only else None}
            pgjax_rows.append(row)
            if total and loop_median:
                print(f"| pgjax `configs/cartpole_{name}.yaml` (compile + train; greedy eval "
                      f"every {rs[0]['steps_per_chunk']:,} steps) | {len(done)}/{len(rs)} | - | "
                      f"{statistics.median(r['solve_env_steps'][0] for r in done):.4g} | {rate:.4g} | "
                      f"{row['compile_plus_train_median']:.3g} (train {row['train_median']:.3g}) | "
                      f"{min(r['load_average'][0] for r in rs)}-{max(r['load_average'][0] for r in rs)} |")
        loop_rate = statistics.median(r["env_steps_per_s"] for r in runs)
        for row in pgjax_rows:
            if row["compile_plus_train_median"] and loop_median:
                total, train_only = row["compile_plus_train_median"], row["train_median"]
                print(f"\npgjax {row['config']} vs the single-env loop (medians over seeds): "
                      f"time to 475 {total:.2f}s vs {loop_median:.2f}s with compilation "
                      f"(loop/pgjax = {loop_median / total:.2f}x), {train_only:.2f}s vs {loop_median:.2f}s "
                      f"training only ({loop_median / train_only:.1f}x); env steps/s "
                      f"{row['env_steps_per_s']:.0f} vs {loop_rate:.0f} ({row['env_steps_per_s'] / loop_rate:.1f}x)")
    print(f"\nload average at end: {load_average()}")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(
            {"machine": machine, "command": command, "runs": runs, "pgjax": pgjax_rows}, indent=2))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
