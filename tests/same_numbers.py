"""Fixed-seed fingerprints of training runs, to check that a refactor keeps the numbers.

    python tests/same_numbers.py --write tests/same_numbers.json   # record (before a change)
    python tests/same_numbers.py --check tests/same_numbers.json   # compare (after it)

Each case trains a preset with a small budget from ``jax.random.key(0)`` through the public
``make_train(config).train`` and records a SHA-256 of the final parameters and optimiser
state, plus a few float summaries (parameter sums, per-update metric sums, an evaluation).
``--check`` reports, per case, whether the hash is identical (bit-identical numbers) and
the largest relative difference of the summaries. ``tests/test_same_numbers.py`` pins the
summaries to float32-rounding tolerance, which holds across CPUs; the hash is exact only on
the machine (and XLA version) that recorded it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (name, preset file, overrides): every algorithm, a continuous env, obs normalisation,
# recomputed advantages, a shared trunk, gradient slicing.
CASES = [
    ("reinforce", "cartpole_reinforce", ["training.num_envs=8", "training.total_env_steps=20000"]),
    ("reinforce_baseline", "cartpole_reinforce_baseline",
     ["training.num_envs=8", "training.total_env_steps=20000", "env.normalize_obs=true"]),
    # the preset as it was recorded (it has since turned normalisation on, actor lr 2e-4)
    ("a2c", "cartpole_a2c", ["training.total_env_steps=20000", "env.normalize_obs=false",
                             "optimizer.actor_lr=3e-4"]),
    ("a2c_shared_sliced", "acrobot_a2c",
     ["training.total_env_steps=16384", "network.shared_trunk=true",
      "training.num_envs=64", "training.grad_slice_samples=128"]),
    ("ppo", "cartpole_ppo", ["training.total_env_steps=20000", "algorithm.shuffle=sort"]),
    ("ppo_recompute_cont", "pendulum_ppo",
     ["training.total_env_steps=16384", "algorithm.recompute_advantages=true",
      "training.num_envs=16", "algorithm.shuffle=sort"]),
]


def fingerprint(preset: str, overrides: list[str]) -> dict:
    import jax
    import numpy as np

    import pgjax
    from pgjax.config import apply_overrides

    config = apply_overrides(pgjax.load_config(str(ROOT / "configs" / f"{preset}.yaml")),
                             overrides)
    trainer = pgjax.make_train(config)
    state, metrics = jax.jit(trainer.train)(jax.random.key(0))
    returns = jax.jit(trainer.evaluate_both)(state, jax.random.key(1))
    digest = hashlib.sha256()
    for leaf in jax.tree.leaves((state.params, state.opt_state)):
        digest.update(np.asarray(leaf).tobytes())
    summary = {
        "params_abs_sum": float(sum(np.abs(np.asarray(x, np.float64)).sum()
                                    for x in jax.tree.leaves(state.params))),
        "eval_greedy": float(np.mean(returns.greedy)),
        "eval_sampled": float(np.mean(returns.sampled)),
    }
    ran = int(state.update)  # an episodic algorithm's rows after its last update are padding
    for name in ("loss", "entropy", "grad_norm", "episode_count"):
        summary[f"{name}_sum"] = float(np.sum(np.asarray(metrics[name], np.float64)[:ran]))
    return {"hash": digest.hexdigest(), "summary": summary}


def short_fingerprint(preset: str, overrides: list[str], updates: int = 2) -> dict:
    """Float summaries after ``updates`` updates from ``jax.random.key(0)``: few enough that
    rounding differences between CPUs stay at float32 level (what the pinned test checks)."""
    import jax
    import numpy as np

    import pgjax
    from pgjax.config import apply_overrides

    config = apply_overrides(pgjax.load_config(str(ROOT / "configs" / f"{preset}.yaml")),
                             overrides)
    trainer = pgjax.make_train(config)
    state = jax.jit(trainer.init)(jax.random.key(0))
    update = jax.jit(trainer.update)
    losses = []
    for _ in range(updates):
        state, metrics = update(state)
        losses.append(float(metrics["loss"]))
    leaves = [np.asarray(x, np.float64) for x in jax.tree.leaves(state.params)]
    return {"params_sum": float(sum(x.sum() for x in leaves)),
            "params_abs_sum": float(sum(np.abs(x).sum() for x in leaves)),
            "params_sq_sum": float(sum((x * x).sum() for x in leaves)),
            "losses": losses}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", metavar="JSON")
    group.add_argument("--check", metavar="JSON")
    group.add_argument("--write-short", metavar="JSON",
                       help="record the short fingerprints tests/test_same_numbers.py pins")
    args = parser.parse_args(argv)
    if args.write_short:
        short = {name: short_fingerprint(preset, overrides) for name, preset, overrides in CASES}
        Path(args.write_short).write_text(json.dumps(short, indent=1) + "\n")
        print(f"wrote {args.write_short}")
        return 0
    results = {name: fingerprint(preset, overrides) for name, preset, overrides in CASES}
    if args.write:
        Path(args.write).write_text(json.dumps(results, indent=1) + "\n")
        print(f"wrote {args.write}")
        return 0
    recorded = json.loads(Path(args.check).read_text())
    worst = 0
    for name, got in results.items():
        want = recorded[name]
        rel = max(abs(got["summary"][k] - v) / max(abs(v), 1e-12)
                  for k, v in want["summary"].items())
        same = got["hash"] == want["hash"]
        worst = max(worst, 0 if same else 1)
        print(f"{name:20s} {'bit-identical' if same else 'DIFFERENT':14s} max rel diff {rel:.2e}")
    return worst


if __name__ == "__main__":
    sys.exit(main())
