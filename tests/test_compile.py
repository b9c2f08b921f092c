"""How `pgjax train` compiles: compiler options, the one-seed path, the pipelined compile."""

import gc

import chex
import pgjax  # noqa: F401  (first: its XLA CPU workaround must precede gymnax)
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from pgjax.config import Config, TrainingConfig, apply_overrides
from pgjax.host.programs import (compile_programs, compiler_options, gc_paused, over_seeds,
                                 seed_keys)
from pgjax.train import make_train

TINY = ["training.num_envs=4", "algorithm.n_steps=8", "training.total_env_steps=1024",
        "training.num_chunks=4", "training.eval_episodes=4", "network.hidden_sizes=[16]"]


def _trainer(*overrides):
    return make_train(apply_overrides(Config(training=TrainingConfig()), [*TINY, *overrides]))


def test_compiler_options_on_cpu(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "")
    assert jax.default_backend() == "cpu"
    assert compiler_options() == {"xla_backend_optimization_level": 1}
    assert compiler_options(runs_once=True) == {"xla_backend_optimization_level": 0}
    # A level the user set in XLA_FLAGS wins: pgjax passes nothing.
    monkeypatch.setenv("XLA_FLAGS", "--xla_backend_optimization_level=3")
    assert compiler_options() is None


def test_compiler_options_compile_the_same_numbers():
    """-O1 / -O0 change how LLVM optimises, not what the program computes."""
    trainer = _trainer()
    state = jax.jit(trainer.init)(jax.random.key(0))
    lowered = jax.jit(trainer.update).lower(state)
    expected = lowered.compile()(state)
    for level in (0, 1):
        got = lowered.compile({"xla_backend_optimization_level": level})(state)
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
            if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_gc_paused_restores_the_collector():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()  # was off before: stays off
    finally:
        gc.enable()
    with pytest.raises(ValueError), gc_paused():
        raise ValueError
    assert gc.isenabled()


def test_over_seeds_one_seed_matches_vmap():
    def f(x, y):
        return {"sum": x + y, "prod": jnp.outer(x, x)}

    x, y = jnp.arange(3.0)[None], jnp.float32(2.0)
    one = over_seeds(f, 1, in_axes=(0, None))(x, y)
    vmapped = jax.vmap(f, in_axes=(0, None))(x, y)
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(vmapped)):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("algorithm,extra", [
    ("a2c", []), ("ppo", []),
    ("reinforce", ["env.params.max_steps_in_episode=16", "training.total_env_steps=2048"])])
def test_one_seed_programs_match_the_vmapped_ones(algorithm, extra):
    """With one seed, compile_programs skips vmap; the chunk gives what vmap over 1 gives."""
    trainer = _trainer(f"algorithm.name={algorithm}", *extra)
    programs = compile_programs(trainer, 1)
    state = programs.init(programs.keys)
    d = trainer.derived
    # Episodic: the chunk runs updates until the chunk's target of env steps taken.
    bound = d.chunk_target(1) if d.episodic else d.updates_per_chunk
    got, metrics, finite = programs.chunk(state, bound)
    assert bool(np.all(finite))

    def chunk(s):
        if d.episodic:
            return trainer.run_until(s, bound, d.updates_per_chunk)[:2]
        return jax.lax.scan(lambda c, _: trainer.update(c), s, None, length=d.updates_per_chunk)

    keys = seed_keys(trainer.config, 1)
    reference = jax.jit(jax.vmap(lambda k: trainer.init(jax.random.split(k)[0])))(keys)
    want, want_metrics = jax.jit(jax.vmap(chunk))(reference)
    for a, b in zip(jax.tree.leaves(got.params), jax.tree.leaves(want.params)):
        assert a.shape == b.shape and a.shape[0] == 1
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(metrics["loss"], want_metrics["loss"], rtol=1e-4, atol=1e-6)
    returns = programs.evaluate(got, programs.keys)
    assert returns.greedy.shape == returns.sampled.shape == (1, 4)


def test_pipelined_and_sequential_compiles_agree():
    trainer = _trainer()
    piped = compile_programs(trainer, 2)
    serial = compile_programs(trainer, 2, pipeline=False)
    assert 0 < serial.lower_s < serial.compile_s and 0 < piped.lower_s < piped.compile_s
    a = piped.chunk(piped.init(piped.keys), 8)[0]
    b = serial.chunk(serial.init(serial.keys), 8)[0]
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_array_equal(x, y)


def test_uneven_chunks_run_every_update_with_one_trace():
    """34 updates in 4 chunks (9, 9, 8, 8): one compiled chunk, the update traced once, and
    the run ends where one lax.scan of all 34 updates (trainer.train) ends."""
    trainer = _trainer("training.total_env_steps=1100")  # 1100 // 32 = 34 updates
    d = trainer.derived
    assert (d.num_updates, d.updates_per_chunk, d.even) == (34, 9, False)
    chex.clear_trace_counter()
    traced = trainer._replace(update=chex.assert_max_traces(trainer.update, n=1))
    programs = compile_programs(traced, 2)
    state = programs.init(programs.keys)
    for c in range(1, d.num_chunks + 1):
        state, metrics, finite = programs.chunk(state, d.chunk_updates(c))
        assert bool(np.all(finite)) and metrics["loss"].shape == (2, 9)
        assert np.all(metrics["entropy"][:, :d.chunk_updates(c)] > 0)
        assert np.all(np.asarray(metrics["entropy"][:, d.chunk_updates(c):]) == 0)
    assert np.asarray(state.update).tolist() == [34, 34]

    def train(key):
        return trainer.train(jax.random.split(key)[0])[0]

    want = jax.jit(jax.vmap(train))(seed_keys(trainer.config, 2))
    for a, b in zip(jax.tree.leaves(state.params), jax.tree.leaves(want.params)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
