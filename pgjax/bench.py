"""pgjax bench: env steps per second against N, phase by phase, beside the machine's ceiling.

For an environment and algorithm (default CartPole-v1, a2c) and each number of parallel
environments N, over T steps per rollout, four phases are compiled and then timed
alternately (so all see the same background load), each call ended by
``block_until_ready``:

  (a) env      env only: a ``lax.scan`` of ``vmap(env.step)`` under uniformly random actions;
  (b) rollout  the policy acting, no learning: ``pgjax.rollout.make_rollout`` (or the episodic
               rollout for REINFORCE) with the trainer's networks, full Transition out;
  (c) learn    the update without its rollout, on a stored batch: advantages, then forward,
               backward and the optimiser (PPO: epochs x minibatches, with the shuffles);
  (d) train    the trainer's ``update`` (rollout and learning), ``lax.scan``-ed over updates.

Each call covers U rollouts or updates (U chosen so a call holds about 2^20 env steps), the
median of the repeats is reported, and compilation is timed separately. In every row a large
float32 matrix product is timed alternately with the phases, for the machine's achievable
FLOP/s under the same load, and the FLOP utilisation of (d) is printed: model FLOPs per env
step (the rollout's actor and critic forward, plus forward and backward of the loss, ~3x
forward, times PPO's epochs) times (d)'s steps/s over the matmul's FLOP/s.

``--compile-cache`` instead measures the compile time of the default a2c training program in
two fresh processes sharing a new persistent compilation cache (first run vs cached).

Usage:
  pgjax bench                                  # CartPole-v1 a2c, N = 64 .. 16384, T = 128
  pgjax bench --quick                          # a smoke run (seconds)
  pgjax bench --algorithm ppo --num-envs 2048 --json out.json --plot out.png
  pgjax bench --config configs/cartpole_ppo.yaml --steps 32
  pgjax bench --compile-cache
  python -m pgjax.bench ...                    # the same without the pgjax command
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable, NamedTuple

import pgjax  # first: its XLA CPU workaround must precede any computation
from pgjax.config import EPISODIC_ALGORITHMS, Config, ConfigError, apply_overrides, derive, load_config
from pgjax.memory import NetworkShape, env_sizes, network_shape

DEFAULT_NUM_ENVS = (64, 256, 1024, 4096, 16384)
QUICK_NUM_ENVS = (16, 64)
PHASES = ("env", "rollout", "learn", "train")
PHASE_TITLES = {"env": "(a) env only", "rollout": "(b) rollout", "learn": "(c) learn only",
                "train": "(d) full training"}
STEPS_PER_CALL = 2**20  # env steps one timed call aims at


# ------------------------------------------------------------------ machine
def load_average() -> list[float] | None:
    """1, 5 and 15 minute load averages: other work on the machine skews timings."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def write_section(path, begin: str, end: str, text: str) -> None:
    """Replaces the text between the ``begin`` and ``end`` marker lines of ``path`` (a results
    file such as benchmarks/RESULTS.md) with ``text``; appends the marked section if absent."""
    from pathlib import Path  # noqa: PLC0415

    path = Path(path)
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    section = f"{begin}\n{text.rstrip(chr(10))}\n{end}"
    if begin in current and end in current:
        head, rest = current.split(begin, 1)
        current = head + section + rest.split(end, 1)[1]
    else:
        current = current.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(current)


def machine_info() -> dict[str, Any]:
    """Date, CPU, cores, memory, accelerator and software: the header of every result."""
    import jax  # noqa: PLC0415

    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gib = None
    try:
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal"))
        mem_gib = round(kib / 2**20, 1)
    except (OSError, StopIteration):
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": mem_gib,
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "jax": jax.__version__,
        "pgjax": pgjax.__version__,
        "python": platform.python_version(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "compilation_cache": (jax.config.jax_compilation_cache_dir
                              if jax.config.jax_enable_compilation_cache else None),
        "load_average": load_average(),
    }


def header(title: str, machine: dict[str, Any], command: str) -> str:
    """The lines every benchmark prints first: what ran, where, when, how."""
    return "\n".join([
        f"# {title}",
        f"date: {machine['date']}",
        f"machine: {machine['cpu']}, {machine['cores']} cores ({machine['usable_cores']} usable), "
        f"{machine['memory_gib']} GiB; backend {machine['backend']} {machine['devices']}",
        f"software: JAX {machine['jax']}, pgjax {machine['pgjax']}, Python {machine['python']}; "
        f"XLA_FLAGS={machine['xla_flags'] or '(none)'}",
        f"persistent compilation cache: {machine['compilation_cache'] or 'off'}"
        + (" (compile times are cache reads once it is warm)" if machine["compilation_cache"] else ""),
        f"load average at start: {machine['load_average']}",
        f"command: {command}",
    ])


def _fmt_rate(x: float) -> str:
    if x >= 1e9:
        return f"{x / 1e9:.2f}G"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    return f"{x / 1e3:.1f}k"


# ------------------------------------------------------------------ FLOP counting
class ModelFlops(NamedTuple):
    """Model FLOPs per env step (a multiply-add counts 2).

    Attributes:
      forward: one forward pass of every network the loss uses (actor and critic), per sample.
      rollout: acting, per env step: the actor and critic forward.
      train: the loss's forward and backward per env step: ``epochs x (forward + backward)``,
        the backward being the weight gradients of every layer plus the input gradients of
        every layer but the first (about 2x forward).
      total: ``rollout + train``.
    """

    forward: int
    rollout: int
    train: int
    total: int


def _layer_macs(shape: NetworkShape) -> tuple[int, int]:
    """(forward MACs, input-gradient MACs) per sample, over all networks.

    Every layer's input needs a gradient except the first layer's (the observation); the heads
    both read the trunk's output, so they count as ordinary layers.
    """
    forward = grad_input = 0
    for name in shape.dense:
        layers = [9 * c_in * c_out * positions for c_in, c_out, positions in shape.convs[name]]
        layers += [i * o for i, o in shape.dense[name]]
        forward += sum(layers)
        grad_input += sum(layers) - layers[0]
    return forward, grad_input


def model_flops(config: Config, shape: NetworkShape) -> ModelFlops:
    """Counts the model FLOPs of one env step of training ``config`` with networks ``shape``.

    Examples:
      >>> from pgjax.config import Config
      >>> from pgjax.memory import network_shape
      >>> f = model_flops(Config(), network_shape(Config(), (4,), 2))  # CartPole 2x64 a2c
      >>> f.forward  # 2 * (4*64 + 64*64 + 64*2 + 4*64 + 64*64 + 64*1)
      17792
      >>> f.rollout, f.train, f.total
      (17792, 52352, 70144)
    """
    forward_macs, grad_input_macs = _layer_macs(shape)
    epochs = config.algorithm.epochs if config.algorithm.name == "ppo" else 1
    forward = 2 * forward_macs
    backward = 2 * (forward_macs + grad_input_macs)
    train = epochs * (forward + backward)
    return ModelFlops(forward, forward, train, forward + train)


def make_matmul(size: int) -> tuple[Callable[[], None], float]:
    """A compiled, warmed-up ``[size, size] @ [size, size]`` float32 call and its FLOPs."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (size, size), jnp.float32)
    b = jax.random.normal(kb, (size, size), jnp.float32)
    product = jax.jit(lambda x, y: x @ y).lower(a, b).compile()
    jax.block_until_ready(product(a, b))
    return (lambda: jax.block_until_ready(product(a, b))), 2.0 * size**3


def matmul_flops(size: int = 4096, repeats: int = 5) -> dict[str, float]:
    """The machine's achievable float32 FLOP/s: a jitted ``[size, size] @ [size, size]``.

    Returns the median and best FLOP/s over ``repeats`` timed products (after a compile and
    warm-up call), counting ``2 size^3`` FLOPs each.
    """
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (size, size), jnp.float32)
    b = jax.random.normal(kb, (size, size), jnp.float32)
    product = jax.jit(lambda x, y: x @ y)
    jax.block_until_ready(product(a, b))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(product(a, b))
        times.append(time.perf_counter() - start)
    flops = 2.0 * size**3
    return {"size": size, "repeats": repeats, "flops_per_s": flops / statistics.median(times),
            "best_flops_per_s": flops / min(times), "times_s": times}


# ------------------------------------------------------------------ the four phases
def _env_only(env, num_envs: int, num_steps: int):
    """(a): reset, and a scan of vmapped ``env.step`` under uniformly random actions."""
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


def bench_config(config: Config, num_envs: int, num_steps: int | None) -> Config:
    """``config`` with N envs and T steps (a2c/ppo), and a budget so large that annealed
    learning rates stay at their start for the whole benchmark."""
    overrides = [f"training.num_envs={num_envs}", "training.total_env_steps=1000000000000",
                 "training.num_chunks=1"]
    if num_steps is not None and config.algorithm.name not in EPISODIC_ALGORITHMS:
        overrides.append(f"algorithm.n_steps={num_steps}")
    return apply_overrides(config, overrides)


def calls_of(num_envs: int, num_steps: int, steps_per_call: int = STEPS_PER_CALL, cap: int = 64) -> int:
    """U, the rollouts or updates per timed call: about ``steps_per_call`` env steps."""
    return max(1, min(cap, steps_per_call // (num_envs * num_steps)))


def bench_phases(config: Config, env, *, num_envs: int, num_steps: int | None, repeats: int,
                 phases: tuple[str, ...] = PHASES, steps_per_call: int = STEPS_PER_CALL,
                 matmul_size: int | None = None) -> dict:
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
    """
    import jax  # noqa: PLC0415

    from pgjax.rollout import make_episodic_rollout, make_rollout  # noqa: PLC0415
    from pgjax.host.programs import compiler_options  # noqa: PLC0415
    from pgjax.train import make_train  # noqa: PLC0415

    probe = bench_config(config, num_envs, num_steps)
    T = derive(probe, env.spec.max_steps_in_episode).rollout_length
    U = calls_of(num_envs, T, steps_per_call)
    trainer = make_train(probe, env=env)
    config, derived = trainer.config, trainer.derived
    episodic = config.algorithm.name in EPISODIC_ALGORITHMS
    steps_per_call = U * derived.steps_per_update
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
        reset, run = _env_only(env, num_envs, T * U)
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
                    traj, mask, stats, _ = episode(params, k, state.obs_stats)
                    return c, (traj, mask, stats)

                return jax.lax.scan(body, rollout_state, jax.random.split(key, U))
            carry["rollout"] = jax.numpy.zeros(())
        else:
            fns = make_rollout(env, apply, num_envs=num_envs, num_steps=T, normalize_obs=normalize_obs)

            def rollouts(params, rollout_state, key):
                def body(c, k):
                    c, traj, stats, _ = fns.rollout(params, c, k, state.obs_stats)
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

        def call_learn(key):
            carry["learn"] = learn_run(carry["learn"], stored, stored_mask, key)
            jax.block_until_ready(carry["learn"])

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

        programs["train"] = call_train

    names = [p for p in PHASES if p in programs]
    if matmul_size:
        product, matmul_flop = make_matmul(matmul_size)
        programs["matmul"] = lambda key: product()
        names.append("matmul")
    for name in names:  # warm-up call, untimed
        programs[name](next(keys))
    times: dict[str, list[float]] = {name: [] for name in names}
    loads = [load_average()]
    for _ in range(repeats):
        for name in names:
            key = next(keys)
            start = time.perf_counter()
            programs[name](key)
            times[name].append(time.perf_counter() - start)
    loads.append(load_average())
    phase_names = [n for n in names if n != "matmul"]
    result = {
        "num_envs": num_envs,
        "num_steps": T,
        "calls_per_timing": U,
        "env_steps_per_call": steps_per_call,
        "steps_per_s": {n: steps_per_call / statistics.median(times[n]) for n in phase_names},
        "best_steps_per_s": {n: steps_per_call / min(times[n]) for n in phase_names},
        "times_s": times,
        "compile_s": compile_s,
        "load_average": loads,
    }
    if matmul_size:
        result["matmul"] = {"size": matmul_size,
                            "flops_per_s": matmul_flop / statistics.median(times["matmul"]),
                            "best_flops_per_s": matmul_flop / min(times["matmul"])}
    return result


# ------------------------------------------------------------------ compile cache
_COMPILE_CHILD = """
import json, sys, time
start = time.perf_counter()
import pgjax
from pgjax.bench import compile_training_program
result = compile_training_program(sys.argv[1], json.loads(sys.argv[2]))
result["process_s"] = time.perf_counter() - start
print(json.dumps(result))
"""


def compile_training_program(cache_dir: str | None, overrides: list[str]) -> dict[str, float]:
    """Compiles what ``pgjax train`` compiles (:func:`pgjax.host.programs.compile_programs`:
    init, a chunk of updates and evaluation) for the default config with ``overrides``, using
    the persistent compilation cache in ``cache_dir`` (None: no cache). Returns trace+lower
    and compile seconds."""
    from pgjax.host.cache import use_compilation_cache  # noqa: PLC0415
    from pgjax.host.programs import compile_programs  # noqa: PLC0415
    from pgjax.train import make_train  # noqa: PLC0415

    if cache_dir is not None:
        use_compilation_cache(cache_dir)
    start = time.perf_counter()
    config = apply_overrides(Config(), overrides)
    trainer = make_train(config)
    built = time.perf_counter()
    # Not pipelined: every program is lowered before any compiles, so the two times split.
    programs = compile_programs(trainer, config.training.num_seeds, pipeline=False)
    done = time.perf_counter()
    return {"make_train_s": built - start, "trace_and_lower_s": programs.lower_s,
            "compile_s": programs.compile_s - programs.lower_s, "total_s": done - start}


def compile_cache_times(overrides: list[str] = (), runs: int = 2) -> dict[str, Any]:
    """Compile time of the default a2c training program in ``runs`` fresh processes that share
    a new, empty persistent compilation cache: the first fills it, the others read it."""
    results = []
    with tempfile.TemporaryDirectory(prefix="pgjax-bench-cache-") as cache:
        for _ in range(runs):
            proc = subprocess.run([sys.executable, "-c", _COMPILE_CHILD, cache, json.dumps(list(overrides))],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"compile child failed:\n{proc.stderr[-3000:]}")
            results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        entries = len(os.listdir(cache))
    first, cached = results[0], results[1:]
    compile_ratio = statistics.median(r["compile_s"] for r in cached) / first["compile_s"]
    ratio = statistics.median(r["trace_and_lower_s"] + r["compile_s"] for r in cached) / (
        first["trace_and_lower_s"] + first["compile_s"])
    return {"overrides": list(overrides), "runs": results, "cache_entries": entries,
            "compile_cached_over_first": compile_ratio, "cached_over_first": ratio,
            "load_average": load_average()}


# ------------------------------------------------------------------ output
def results_table(results: list[dict], flops: ModelFlops) -> str:
    """A markdown table: steps/s per phase and N, compile seconds, (d)'s FLOP utilisation
    against the matmul timed in the same row."""
    names = [p for p in PHASES if p in results[0]["steps_per_s"]]
    head = "| N | T | U | " + " | ".join(f"{PHASE_TITLES[p]}, steps/s" for p in names)
    rule = "| ---: | ---: | ---: | " + " | ".join("---:" for _ in names)
    matmul = "matmul" in results[0]
    if "train" in names:
        head += " | (d) ms/update | (d) model GFLOP/s"
        rule += " | ---: | ---:"
    if matmul:
        head += " | matmul GFLOP/s" + (" | (d) FLOP util." if "train" in names else "")
        rule += " | ---:" + (" | ---:" if "train" in names else "")
    head += " | compile s (" + ", ".join(p for p in names) + ") | load |"
    rule += " | --- | --- |"
    lines = [head, rule]
    for r in results:
        sps = r["steps_per_s"]
        cells = [str(r["num_envs"]), str(r["num_steps"]), str(r["calls_per_timing"])]
        cells += [_fmt_rate(sps[p]) for p in names]
        if "train" in names:
            per_update = r["env_steps_per_call"] / r["calls_per_timing"]
            model = flops.total * sps["train"]
            cells += [f"{1e3 * per_update / sps['train']:.1f}", f"{model / 1e9:.1f}"]
        if matmul:
            cells.append(f"{r['matmul']['flops_per_s'] / 1e9:.0f}")
            if "train" in names:
                cells.append(f"{100 * model / r['matmul']['flops_per_s']:.1f}%")
        cells.append(", ".join(f"{r['compile_s'][p]:.1f}" for p in names))
        cells.append(f"{r['load_average'][0][0]}-{r['load_average'][-1][0]}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(results: list[dict], path: str, title: str) -> None:
    """Log-log plot of env steps/s against N, one line per phase."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ns = [r["num_envs"] for r in results]
    for p in PHASES:
        if p in results[0]["steps_per_s"]:
            ax.plot(ns, [r["steps_per_s"][p] for r in results], marker="o", label=PHASE_TITLES[p])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("parallel environments N")
    ax.set_ylabel("env steps / s")
    ax.set_title(title, fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ------------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``pgjax bench`` (also ``python -m pgjax.bench``)."""
    parser.add_argument("--config", metavar="PATH",
                        help="YAML config to benchmark (default: pgjax's defaults)")
    parser.add_argument("--env", metavar="NAME", help="gymnax env (default CartPole-v1, or the config's)")
    parser.add_argument("--algorithm", choices=("a2c", "ppo", "reinforce", "reinforce_baseline"),
                        help="algorithm (default a2c, or the config's)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field (repeatable)")
    parser.add_argument("--num-envs", metavar="N,N,...",
                        help="comma-separated N (default " + ",".join(map(str, DEFAULT_NUM_ENVS)) + ")")
    parser.add_argument("--steps", type=int, metavar="T",
                        help="rollout length T (default 128, or the config's n_steps with --config)")
    parser.add_argument("--phases", default=",".join(PHASES),
                        help="comma-separated subset of " + ",".join(PHASES))
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per phase (median reported)")
    parser.add_argument("--matmul-size", type=int,
                        help="size of the float32 matmul (default 4096; 1024 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: N in 16,64, T=16, 2 repeats, a 1024 matmul")
    parser.add_argument("--compile-cache", action="store_true",
                        help="measure first vs cached compile of the default a2c training program "
                             "(two fresh processes sharing a new cache) instead")
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON")
    parser.add_argument("--plot", metavar="PATH", help="write a log-log plot of steps/s against N")


def resolve_config(args: argparse.Namespace) -> tuple[Config, int | None]:
    """The config to benchmark and T (None: the config's own n_steps)."""
    config = load_config(args.config) if args.config else Config()
    overrides = []
    if args.env:
        overrides.append(f"env.name={args.env}")
    if args.algorithm:
        overrides.append(f"algorithm.name={args.algorithm}")
    config = apply_overrides(config, overrides + list(args.set))
    steps = args.steps if args.steps is not None else (None if args.config else 128)
    if args.quick and args.steps is None:
        steps = 16
    if steps is not None and steps < 1:
        raise ConfigError(f"--steps={steps}: must be >= 1")
    return config, steps


def _command(argv: list[str] | None, prog: str = "pgjax bench") -> str:
    """The command line as typed: ``prog`` and the options (``sys.argv`` after the
    subcommand when ``argv`` is None, as under ``pgjax bench``)."""
    if argv is None:
        argv = sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:]
    return " ".join([prog, *(shlex.quote(a) for a in argv)])


def run(args: argparse.Namespace, *, command: str | None = None) -> int:
    """Runs the benchmark ``args`` describe, prints its tables; returns an exit status."""
    from pgjax.envs import make_env  # noqa: PLC0415

    command = command or _command(None)
    machine = machine_info()
    if args.compile_cache:
        print(header("pgjax bench --compile-cache: first vs cached compile", machine, command), flush=True)
        result = compile_cache_times(list(args.set))
        print(f"program: the default a2c config ({', '.join(result['overrides']) or 'as is'}): "
              "init, a vmapped chunk of updates, greedy evaluation; "
              f"{result['cache_entries']} cache entries")
        print("| process | make_train s | trace+lower s | compile s | whole process s |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for i, r in enumerate(result["runs"]):
            print(f"| {'first (empty cache)' if i == 0 else 'cached'} | {r['make_train_s']:.2f} | "
                  f"{r['trace_and_lower_s']:.2f} | {r['compile_s']:.2f} | {r['process_s']:.2f} |")
        print(f"cached / first: XLA compile {result['compile_cached_over_first']:.1%} (target <= 10%); "
              f"trace+lower+compile {result['cached_over_first']:.1%} (tracing is not cached); "
              f"load average {result['load_average']}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"machine": machine, "command": command, "compile_cache": result}, f, indent=2)
        return 0

    try:
        config, steps = resolve_config(args)
        env = make_env(config.env.name, **dict(config.env.params))
        text = args.num_envs or ",".join(map(str, QUICK_NUM_ENVS if args.quick else DEFAULT_NUM_ENVS))
        num_envs = [int(n) for n in text.split(",") if n]
        phases = tuple(p for p in args.phases.split(",") if p)
    except (ConfigError, ValueError) as error:
        print(f"pgjax bench: error: {error}", file=sys.stderr)
        return 2
    bad = [p for p in phases if p not in PHASES]
    if bad or not phases or any(n < 1 for n in num_envs) or not num_envs or args.repeats < 1:
        print(f"pgjax bench: error: --phases from {','.join(PHASES)}, positive --num-envs and "
              "--repeats", file=sys.stderr)
        return 2
    repeats = min(2, args.repeats) if args.quick else args.repeats
    per_call = STEPS_PER_CALL // 64 if args.quick else STEPS_PER_CALL
    matmul_size = args.matmul_size or (1024 if args.quick else 4096)
    a = config.algorithm
    print(header("pgjax bench: env steps/s against N", machine, command))
    T = "max_steps_in_episode (whole episodes)" if a.name in EPISODIC_ALGORITHMS else (steps or a.n_steps)
    net = config.network
    print(f"{config.env.name}, {a.name}, T={T}, networks "
          f"{'x'.join(map(str, net.hidden_sizes))} {net.activation}"
          f"{' shared trunk' if net.shared_trunk else ''}"
          f"{f', {a.epochs} epochs x {a.minibatches} minibatches' if a.name == 'ppo' else ''}; "
          f"median of {repeats} calls, each of U rollouts/updates (~{per_call} env steps)",
          flush=True)
    print(f"the {matmul_size}x{matmul_size} float32 matmul is timed in every row, alternately with "
          "the phases", flush=True)
    _, _, action_size = env_sizes(env)
    flops = model_flops(config, network_shape(config, env.spec.obs_shape, action_size,
                                              discrete=env.spec.discrete,
                                              obs_num_values=env.spec.obs_num_values))
    print(f"model FLOPs per env step: {flops.total:,} (rollout forward {flops.rollout:,}, "
          f"training forward+backward {flops.train:,})", flush=True)
    results = []
    for n in num_envs:
        r = bench_phases(config, env, num_envs=n, num_steps=steps, repeats=repeats, phases=phases,
                         steps_per_call=per_call, matmul_size=matmul_size)
        results.append(r)
        print(f"N={n:<6d} " + "  ".join(f"{p} {_fmt_rate(r['steps_per_s'][p]):>7s}"
                                         for p in PHASES if p in r["steps_per_s"])
              + f"  matmul {r['matmul']['flops_per_s'] / 1e9:.0f} GFLOP/s"
              + f"  (compile {sum(r['compile_s'].values()):.1f}s, load {r['load_average'][-1][0]})",
              flush=True)
    print()
    print(results_table(results, flops))
    print(f"\nFLOP utilisation: (d)'s model FLOP/s over the row's matmul FLOP/s (median of its "
          f"calls). load average at end: {load_average()}")
    if args.plot:
        plot(results, args.plot, f"{config.env.name} {a.name}, {machine['cpu']}, {machine['date']}")
        print(f"wrote {args.plot}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "command": command, "config": str(config),
                       "model_flops": flops._asdict(),
                       "results": results}, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def main(argv: list[str] | None = None, *, prog: str = "python -m pgjax.bench") -> int:
    """``python -m pgjax.bench [options]``: the same as ``pgjax bench``."""
    parser = argparse.ArgumentParser(prog="pgjax bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args, command=_command(argv, prog))


if __name__ == "__main__":
    sys.exit(main())
