"""Dumps the compiled update program of a2c, ppo and reinforce_baseline at N=2048 (T=128)
as sorted, name-normalised HLO lines, so two versions of pgjax can be diffed:

    PYTHONPATH=OLD_CHECKOUT python benchmarks/compare_hlo.py before
    python benchmarks/compare_hlo.py after     # then diff /tmp/tp/before_*.hlo /tmp/tp/after_*.hlo

Used for issue 13 (the redesign compiles to the same program; benchmarks/RESULTS.md).
"""
import os
os.makedirs("/tmp/tp", exist_ok=True)
import re, sys, hashlib
import jax
import pgjax
from pgjax.config import apply_overrides, Config
name = sys.argv[1]
for algo in ["a2c", "ppo", "reinforce_baseline"]:
    c = apply_overrides(Config(), [f"algorithm.name={algo}", "training.num_envs=2048", "algorithm.n_steps=128", "algorithm.minibatches=4"] + (["env.params.max_steps_in_episode=100"] if algo.startswith("reinforce") else []))
    t = pgjax.make_train(c)
    s = jax.eval_shape(t.init, jax.random.key(0))
    text = jax.jit(t.update).lower(s).compile().as_text()
    text = re.sub(r", metadata=\{[^}]*\}", "", text)
    text = re.sub(r"%[\w.\-]+", "%x", text)
    text = re.sub(r"(?m)^HloModule.*$", "", text)
    lines = sorted(l.strip() for l in text.splitlines() if l.strip())
    open(f"/tmp/tp/{name}_{algo}.hlo", "w").write("\n".join(lines))
    print(algo, len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16])
