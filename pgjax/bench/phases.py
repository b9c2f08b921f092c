"""The four timed phases of ``pgjax bench``, compiled and timed alternately for one N.

  (a) env      env only: a ``lax.scan`` of ``vmap(env.step)`` under uniformly random actions;
  (b) rollout  the policy acting, no learning: ``pgjax.rollout.make_rollout`` (or the episodic
               rollout for REINFORCE) with the trainer's networks, full Transition out;
  (c) learn    the update without its rollout, on a stored batch: advantages, then forward,
               backward and the optimiser (PPO: epochs x minibatches, with the shuffles);
  (d) train    the trainer's ``update`` (rollout and learning), ``lax.scan``-ed over updates.

With ``reference=True`` the plain-JAX A2C or PPO of :mod:`pgjax.bench.reference` (its
``update`` ``lax.scan``-ed over the same U updates, from the same initial state) is timed
alternately with them too, and the per-round ratio of (d) to it reported.

Each timed call covers U rollouts or updates (:func:`calls_of`) and ends in
``block_until_ready``; compilation is timed separately.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from pgjax.bench.algorithms import is_episodic
from pgjax.bench.flops import make_matmul
from pgjax.bench.machine import load_average
from pgjax.config import Config, apply_overrides, derive
from pgjax.schema import MAX_EPISODIC_STEPS

PHASES = ("env", "rollout", "learn", "train")
PHASE_TITLES = {"env": "(a) env only", "rollout": "(b) rollout", "learn": "(c) learn only",
                "train": "(d) full training"}
STEPS_PER_CALL = 2**20  # env steps one timed call aims at


def make_env_only(env, num_envs: int, num_steps: int):
    """Phase (a): ``reset(key) -> carry`` and ``run(carry, key) -> (carry, reward_sum)``.

    ``reset`` resets ``num_envs`` copies of ``env`` (a :class:`pgjax.envs.Env`); ``run`` scans
    ``num_steps`` steps of the vmapped ``env.step`` under uniformly random actions, and returns
    the summed reward so the steps cannot be optimised away. Jit both.
    """
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    spec, step = env.spec, jax.vmap(env.step)

    def random_action(key):
        if spec.discrete:
            return jax.random.randint(key, (num_envs,), 0, spec.action_space.n)
        space = spec.action_space
        shape = (num_envs,) + tuple(space.shape)
        low = jnp.broadcast_to(jnp.asarray(space.low, jnp.float32), shape)
        high = jnp.broadcast_to(jnp.asarray(space.high, jnp.float32), shape)
        return jax.random.uniform(key, shape, minval=low, maxval=high)

    def reset(key):
        obs, state = jax.vmap(env.reset)(jax.random.split(key, num_envs))
        return jax.tree.map(lambda x: jnp.asarray(x, x.dtype), (state, obs))  # strong types

    def run(carry, key):
        def body(carry, step_key):
            state, _, reward_sum = carry
            act_key, env_key = jax.random.split(step_key)
            obs, state, reward, _, _, _ = step(
                jax.random.split(env_key, num_envs), state, random_action(act_key))
            return (state, obs, reward_sum + jnp.sum(reward)), None

        state, obs = carry
        (state, obs, reward_sum), _ = jax.lax.scan(
            body, (state, obs, jnp.zeros((), jnp.float32)), jax.random.split(key, num_steps))
        return (state, obs), reward_sum

    return reset, run


def make_learn(trainer) -> Callable:
    """The update without its rollout: ``learn(state, traj, mask, key) -> (params, opt_state)``.

    ``trainer.learn`` (what :func:`pgjax.train.make_train`'s update does after its rollout:
    advantages and targets, then one gradient step, or PPO's epochs x shuffled minibatches)
    without its metrics. ``key`` is the update's shuffle key. tests/test_bench.py checks that
    it gives the parameters ``trainer.update`` gives.
    """

    def learn(state, traj, mask, key):
        params, opt_state, _ = trainer.learn(state, traj, mask, key)
        return params, opt_state

    return learn


def bench_config(config: Config, num_envs: int, num_steps: int | None,
                 max_steps_in_episode: int = 1000) -> Config:
    """``config`` with N envs and T steps (a2c/ppo), and a budget so large that annealed
    learning rates stay at their start for the whole benchmark (episodic algorithms: the
    most their int32 count of env steps taken allows, given the env's episode cap)."""
    steps = num_steps or config.algorithm.n_steps
    budget = max(10**12, num_envs * steps * 10**3)  # whatever N: a budget it cannot exhaust
    if is_episodic(config):
        budget = max(MAX_EPISODIC_STEPS - num_envs * max_steps_in_episode, num_envs)
    overrides = [f"training.num_envs={num_envs}", f"training.total_env_steps={budget}",
                 "training.num_chunks=1"]
    if num_steps is not None and not is_episodic(config):
        overrides.append(f"algorithm.n_steps={num_steps}")
    return apply_overrides(config, overrides)


def calls_of(num_envs: int, num_steps: int, steps_per_call: int = STEPS_PER_CALL, cap: int = 64) -> int:
    """U, the rollouts or updates per timed call: about ``steps_per_call`` env steps."""
    return max(1, min(cap, steps_per_call // (num_envs * num_steps)))


def bench_phases(config: Config, env, *, num_envs: int, num_steps: int | None, repeats: int,
                 phases: tuple[str, ...] = PHASES, steps_per_call: int = STEPS_PER_CALL,
                 matmul_size: int | None = None, reference: bool = False) -> dict:
    """Compiles and times the phases for one N; returns steps/s, times and compile seconds.

    Args:
      config: the training config (its N, T and budget are replaced).
      env: the :class:`~pgjax.envs.Env` to run.
      num_envs: N.
      num_steps: T for a2c/ppo (None: the config's n_steps); REINFORCE runs whole episodes.
      repeats: timed calls per phase; the median is reported.
      phases: a subset of :data:`PHASES`.
      steps_per_call: env steps one timed call aims at (sets U).
      matmul_size: also time a ``[size, size]`` float32 matmul alternately with the phases
        (same background load), for the FLOP utilisation; None skips it.
      reference: also time the plain-JAX reference (:mod:`pgjax.bench.reference`) alternately,
        compiled with ``jax.jit``'s defaults as a user's script is; with ``"train"`` in
        ``phases``, ``result["reference"]`` holds the per-round ratios of (d)'s steps/s to
        the reference's, their median, min and max.

    Raises:
      ConfigError: ``reference`` with a config the reference does not implement.
    """
    import jax  # noqa: PLC0415

    from pgjax.rollout import make_episodic_rollout, make_rollout  # noqa: PLC0415
    from pgjax.host.programs import compiler_options  # noqa: PLC0415
    from pgjax.train import make_train, observation_stats  # noqa: PLC0415

    probe = bench_config(config, num_envs, num_steps, env.spec.max_steps_in_episode)
    T = derive(probe, env.spec.max_steps_in_episode).rollout_length
    U = calls_of(num_envs, T, steps_per_call)
    trainer = make_train(probe, env=env)
    config, derived = trainer.config, trainer.derived
    episodic = is_episodic(config)
    steps_per_call = U * derived.steps_per_update
    if reference:  # before anything compiles: refuses a config it does not implement
        from pgjax.bench.reference import make_reference  # noqa: PLC0415

        ref = make_reference(config, env, num_envs=num_envs)
    state = jax.jit(trainer.init)(jax.random.key(0))

    programs: dict[str, tuple[Callable, Callable[[Any], None]]] = {}
    compile_s: dict[str, float] = {}
    carry: dict[str, Any] = {}
    keys = iter(jax.random.split(jax.random.key(1), 8 * (repeats + 2)))

    def compile_phase(name, fn, *example, donate=()):
        start = time.perf_counter()
        # With the options pgjax train compiles its programs with (LLVM -O1 on CPU).
        compiled = jax.jit(fn, donate_argnums=donate).lower(*example).compile(compiler_options())
        compile_s[name] = time.perf_counter() - start
        return compiled

    if "env" in phases:
        reset, run = make_env_only(env, num_envs, T * U)
        carry["env"] = jax.jit(reset)(jax.random.key(2))
        env_run = compile_phase("env", run, carry["env"], next(keys))

        def call_env(key):
            carry["env"], total = env_run(carry["env"], key)
            jax.block_until_ready((carry["env"], total))

        programs["env"] = call_env

    if "rollout" in phases or "learn" in phases:
        apply = trainer.networks.apply
        normalize_obs = config.env.normalize_obs
        if episodic:
            episode = make_episodic_rollout(env, apply, num_envs=num_envs, normalize_obs=normalize_obs)

            def rollouts(params, rollout_state, key):
                def body(c, k):
                    traj, mask, stats, _ = episode(params, k, observation_stats(state))
                    return c, (traj, mask, stats)

                return jax.lax.scan(body, rollout_state, jax.random.split(key, U))
            carry["rollout"] = jax.numpy.zeros(())
        else:
            fns = make_rollout(env, apply, num_envs=num_envs, num_steps=T, normalize_obs=normalize_obs)

            def rollouts(params, rollout_state, key):
                def body(c, k):
                    c, traj, stats, _ = fns.rollout(params, c, k, observation_stats(state))
                    return c, (traj, None, stats)

                return jax.lax.scan(body, rollout_state, jax.random.split(key, U))
            carry["rollout"] = state.rollout
        rollout_run = compile_phase("rollout", rollouts, state.params, carry["rollout"], next(keys))
        # One stored batch for (c), from a single rollout of the initial policy.
        _, (stored, stored_mask, _) = rollout_run(state.params, carry["rollout"], next(keys))
        stored = jax.tree.map(lambda x: x[0], stored)
        stored_mask = None if stored_mask is None else stored_mask[0]

        def call_rollout(key):
            out = rollout_run(state.params, carry["rollout"], key)
            jax.block_until_ready(out)
            carry["rollout"] = out[0]
            # Episodic: the env steps of the episodes, not the padded rollout.
            return int(out[1][1].sum()) if episodic else None

        if "rollout" in phases:
            programs["rollout"] = call_rollout

    if "learn" in phases:
        learn = make_learn(trainer)

        def learns(learn_state, traj, mask, key):
            def body(s, k):
                params, opt_state = learn(s, traj, mask, k)
                return s._replace(params=params, opt_state=opt_state, update=s.update + 1), None

            return jax.lax.scan(body, learn_state, jax.random.split(key, U))[0]

        carry["learn"] = state
        learn_run = compile_phase("learn", learns, state, stored, stored_mask, next(keys))

        learned = None if stored_mask is None else U * int(stored_mask.sum())

        def call_learn(key):
            carry["learn"] = learn_run(carry["learn"], stored, stored_mask, key)
            jax.block_until_ready(carry["learn"])
            return learned  # episodic: the stored batch's env steps, U times

        programs["learn"] = call_learn

    if "train" in phases:
        def updates(train_state):
            return jax.lax.scan(lambda s, _: trainer.update(s), train_state, None, length=U)

        carry["train"] = jax.jit(trainer.init)(jax.random.key(3))
        train_run = compile_phase("train", updates, carry["train"], donate=(0,))

        def call_train(key):
            del key
            carry["train"], metrics = train_run(carry["train"])
            jax.block_until_ready((carry["train"], metrics))
            return int(metrics["env_steps_taken"].sum()) if episodic else None

        programs["train"] = call_train

    if reference:
        def ref_updates(ref_state):
            return jax.lax.scan(lambda s, _: ref.update(s), ref_state, None, length=U)

        # From pgjax's initial state (its parameters, envs and key): both programs train alike.
        carry["reference"] = ref.from_pgjax(jax.jit(trainer.init)(jax.random.key(3)))
        start = time.perf_counter()
        ref_run = jax.jit(ref_updates, donate_argnums=0).lower(carry["reference"]).compile()
        compile_s["reference"] = time.perf_counter() - start

        def call_reference(key):
            del key
            carry["reference"], metrics = ref_run(carry["reference"])
            jax.block_until_ready((carry["reference"], metrics))

        programs["reference"] = call_reference

    names = [p for p in PHASES if p in programs] + (["reference"] if reference else [])
    if matmul_size:
        product, matmul_flop = make_matmul(matmul_size)
        programs["matmul"] = lambda key: product()
        names.append("matmul")
    for name in names:  # warm-up call, untimed
        programs[name](next(keys))
    times: dict[str, list[float]] = {name: [] for name in names}
    taken: dict[str, list[int]] = {name: [] for name in names}  # env steps of each call
    loads = [load_average()]
    for _ in range(repeats):
        for name in names:
            key = next(keys)
            start = time.perf_counter()
            steps = programs[name](key)
            times[name].append(time.perf_counter() - start)
            taken[name].append(steps_per_call if steps is None else steps)
    loads.append(load_average())
    phase_names = [n for n in names if n != "matmul"]
    # Env steps actually taken per second: an episodic algorithm's calls take as many as their
    # episodes last (its padded rollout steps no env after an episode ends).
    rates = {n: [k / t for k, t in zip(taken[n], times[n])] for n in phase_names}
    result = {
        "num_envs": num_envs,
        "num_steps": T,
        "calls_per_timing": U,
        "env_steps_per_call": steps_per_call,  # at most, for episodic algorithms
        "steps_per_s": {n: (statistics.median(rates[n]) if episodic else
                            steps_per_call / statistics.median(times[n])) for n in phase_names},
        "best_steps_per_s": {n: max(rates[n]) for n in phase_names},
        # The work per second: rollout steps computed (episodic: padded too) per second, for
        # the FLOP utilisation; ms per update from the calls' median time.
        "computed_steps_per_s": {n: steps_per_call / statistics.median(times[n])
                                 for n in phase_names},
        "ms_per_update": {n: 1e3 * statistics.median(times[n]) / U for n in phase_names},
        "times_s": times,
        "compile_s": compile_s,
        "load_average": loads,
    }
    if reference and "train" in times:
        ratios = [r / t for t, r in zip(times["train"], times["reference"])]
        result["reference"] = {"ratios": ratios, "median": statistics.median(ratios),
                               "min": min(ratios), "max": max(ratios)}
    if matmul_size:
        result["matmul"] = {"size": matmul_size,
                            "flops_per_s": matmul_flop / statistics.median(times["matmul"]),
                            "best_flops_per_s": matmul_flop / min(times["matmul"])}
    return result
