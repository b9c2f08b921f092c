"""Regression test for the XLA CPU hang that pgjax/__init__.py works around.

Training and a greedy evaluation compiled into one program, vmapped over
seeds, on Acrobot-v1: with jaxlib 0.10's concurrency-optimised CPU scheduler
this never returned (all XLA workers idle). It runs in a subprocess so that a
hang becomes a timeout, not a stuck test session.
"""

import os
import subprocess
import sys

import pytest

PROGRAM = """
import jax
import pgjax
from pgjax.config import Config, apply_overrides
trainer = pgjax.make_train(apply_overrides(
    Config(), ["env.name=Acrobot-v1", "training.total_env_steps=20000"]))
def run(key):
    train_key, eval_key = jax.random.split(key)
    state, _ = trainer.train(train_key)
    return trainer.evaluate(state, eval_key).mean()
returns = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(0), 4))
print(jax.device_get(returns).shape)  # device_get waits for the values; .shape alone would not
"""


def test_train_and_evaluate_in_one_vmapped_program_finishes():
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "PGJAX_KEEP_XLA_FLAGS")}
    try:
        out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True,
                             text=True, timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("train + evaluate under vmap hung: the XLA CPU workaround is not in effect")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("(4,)")
