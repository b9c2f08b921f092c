"""Peak memory of a training run, predicted before anything compiles.

:func:`estimate_memory` adds up what one training chunk holds at its peak, from the sizes
:func:`pgjax.config.derive` and the network config give (no compilation, only a trace of
``env.reset`` for the state's shape):

* ``runtime``: the process before training (Python, jax, flax, optax, gymnax, the
  trainer built); a measured constant on the CPU, a small device reserve on accelerators.
* ``compilation``: what XLA holds after compiling the chunk and evaluation programs.
* ``activations``: the loss's forward and backward over one (mini)batch of ``B`` samples.
  Measured on the CPU, the peak holds every hidden layer's output (saved for the backward
  pass, ``B x width`` floats each, actor and critic) plus a working set of about twice the
  largest network's activations while it is differentiated.
* ``rollout_buffers``: the ``[T, N]`` Transition (observation, action, reward, flags,
  log-prob, value, next value), advantages and targets; PPO's flattened and shuffled
  copies; REINFORCE's mask and returns (``T = max_steps_in_episode``).
* ``env_states``: the env states and observations carried between updates.
* ``params_and_optimizer``: parameters, gradients, updates and Adam's two moments.
* ``evaluation``: the evaluation rollout, ``eval_episodes`` whole greedy episodes and as
  many sampled ones.
* ``metrics``: the per-update scalars a chunk returns.

Everything but ``runtime`` and ``compilation`` scales with ``seeds``. Calibrated against the
peak resident memory (``VmHWM``) of a fresh process training CartPole-v1 on this project's CPU
machine (``benchmarks/memory.py`` measures it and prints the ratio): a2c at N = 64 .. 16384,
T = 128; ppo; reinforce; wider and deeper networks; several seeds.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

from pgjax import algos
from pgjax.config import Config, derive

MiB = 2**20
_F32 = 4
# Measured on the CPU (jaxlib 0.10.2): resident memory after importing pgjax, jax, flax,
# optax and gymnax and building a trainer (~450 MiB), and what compiling the training chunk
# and the evaluation program adds (~150 MiB).
_CPU_RUNTIME = 450 * MiB
_CPU_COMPILATION = 150 * MiB
# On an accelerator the device holds only buffers; keep a reserve for the runtime's workspaces.
_DEVICE_RUNTIME = 256 * MiB
_METRICS_PER_UPDATE = 32  # scalars per update a chunk returns (losses, norms, episode stats)


class MemoryEstimate(NamedTuple):
    """Predicted peak memory of training a config.

    Attributes:
      total_bytes: the predicted peak: resident memory of the whole process on the CPU,
        device memory on an accelerator. Compare with :func:`available_memory`.
      parts: bytes by part (see the module docstring); they sum to ``total_bytes``.
    """

    total_bytes: int
    parts: dict[str, int]

    def describe(self) -> str:
        """One line: the total, then the largest parts.

        Examples:
          >>> MemoryEstimate(3 * 2**30, {"runtime": 2**30, "activations": 2 * 2**30}).describe()
          '~3.0 GiB (activations 2.0 GiB, runtime 1.0 GiB)'
        """
        largest = sorted(self.parts.items(), key=lambda kv: -kv[1])
        shown = [f"{name.replace('_', ' ')} {format_bytes(b)}" for name, b in largest[:4] if b >= MiB]
        return f"~{format_bytes(self.total_bytes)} ({', '.join(shown)})"


def format_bytes(n: float) -> str:
    """``n`` bytes in KiB, MiB or GiB with one decimal (two digits for small GiB).

    Examples:
      >>> format_bytes(1536 * 2**20), format_bytes(900 * 2**20), format_bytes(2048)
      ('1.5 GiB', '900 MiB', '2.0 KiB')
    """
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}" if unit != "MiB" else f"{n / size:.0f} {unit}"
    return f"{int(n)} B"


class NetworkShape(NamedTuple):
    """Layer sizes of the networks a config builds, for memory and FLOP counts.

    Attributes:
      input_size: floats in one observation (flattened).
      convs: per network (``"actor"``, ``"critic"`` or ``"shared"``), the conv layers as
        ``(in_channels, out_channels, out_positions)`` (3x3 kernels, VALID padding).
      dense: per network, the dense layers as ``(in_features, out_features)``, heads last.
      hidden: per network, the floats each sample's hidden layers produce (conv maps and
        dense hidden layers, not heads).
      extra_params: parameters outside the layers (a Gaussian policy's log-std).
    """

    input_size: int
    convs: dict[str, list[tuple[int, int, int]]]
    dense: dict[str, list[tuple[int, int]]]
    hidden: dict[str, int]
    extra_params: int = 0

    @property
    def num_params(self) -> int:
        n = self.extra_params
        for layers in self.convs.values():
            n += sum(9 * c_in * c_out + c_out for c_in, c_out, _ in layers)
        for layers in self.dense.values():
            n += sum(i * o + o for i, o in layers)
        return n


def network_shape(config: Config, obs_shape: tuple[int, ...], action_size: int,
                  *, discrete: bool = True, cnn_channels: tuple[int, ...] = (16,),
                  obs_num_values: int | None = None) -> NetworkShape:
    """The layers :func:`pgjax.networks.make_networks` builds for ``config.network``.

    Args:
      config: the run's config (its network section and algorithm name).
      obs_shape: one observation's shape.
      action_size: number of actions (discrete) or action dimensions (box).
      discrete: a categorical policy (else a Gaussian with a ``[D]`` log-std parameter).
      cnn_channels: conv output channels when ``config.network.cnn`` (make_networks' default).
      obs_num_values: ``EnvSpec.obs_num_values``: discrete observations, one-hot encoded to
        this many inputs per observation element.

    Examples:
      >>> from pgjax.config import Config
      >>> shape = network_shape(Config(), (4,), 2)  # CartPole: 2x64 actor and critic
      >>> shape.dense["actor"], shape.dense["critic"][-1], shape.num_params
      ([(4, 64), (64, 64), (64, 2)], (64, 1), 9155)
      >>> network_shape(Config(), (), 4, obs_num_values=16).input_size  # FrozenLake: one-hot
      16
    """
    net = config.network
    input_size = math.prod(obs_shape) * (obs_num_values or 1)
    convs: list[tuple[int, int, int]] = []
    features = input_size
    if net.cnn:
        h, w, c = obs_shape
        for channels in cnn_channels:
            h, w = h - 2, w - 2
            convs.append((c, channels, h * w))
            c = channels
        features = h * w * c
    trunk, width = [], features
    for size in net.hidden_sizes:
        trunk.append((width, size))
        width = size
    hidden = sum(o * p for _, o, p in convs) + sum(net.hidden_sizes)
    policy_head = [(width, action_size)]
    value_head = [(width, 1)]
    extra = 0 if discrete else action_size  # log_std
    if net.shared_trunk:
        dense = {"shared": trunk + policy_head + value_head}
        conv_layers = {"shared": convs}
        hidden_of = {"shared": hidden}
    else:
        dense = {"actor": trunk + policy_head}
        conv_layers = {"actor": convs}
        hidden_of = {"actor": hidden}
        if algos.get(config.algorithm.name).critic:
            dense["critic"] = trunk + value_head
            conv_layers["critic"] = list(convs)
            hidden_of["critic"] = hidden
    return NetworkShape(input_size, conv_layers, dense, hidden_of, extra)


def env_sizes(env) -> tuple[int, int, int]:
    """(observation bytes as stored, env state bytes, action size) of one env, from a trace.

    Examples:
      >>> from pgjax.envs import make_env
      >>> env_sizes(make_env("CartPole-v1"))  # 4 float32; x, x_dot, theta, theta_dot, time
      (16, 20, 2)
    """
    import jax  # noqa: PLC0415

    obs, state = jax.eval_shape(env.reset, jax.random.key(0))
    state_bytes = sum(math.prod(x.shape) * x.dtype.itemsize for x in jax.tree.leaves(state))
    space = env.spec.action_space
    action_size = space.n if env.spec.discrete else math.prod(space.shape)
    return math.prod(obs.shape) * obs.dtype.itemsize, state_bytes, action_size


def estimate_memory(config: Config, *, seeds: int = 1, env=None, backend: str | None = None) -> MemoryEstimate:
    """Predicts the peak memory of training ``config`` (one chunk plus an evaluation).

    Fast (no compilation): sizes come from :func:`pgjax.config.derive` and the network
    config; the env's state shape from a trace of ``env.reset``.

    Args:
      config: the run's config (validated by ``derive``).
      seeds: seeds trained in one vmapped program; every part but ``runtime`` and
        ``compilation`` scales with it.
      env: the :class:`~pgjax.envs.Env` to train on; default ``make_env`` of the config's.
      backend: ``"cpu"``, ``"gpu"`` or ``"tpu"``; default jax's default backend. On the CPU the
        total is the process's resident memory; elsewhere, device memory.

    Returns:
      A :class:`MemoryEstimate`.

    Raises:
      ConfigError: if ``config`` is invalid.

    Examples:
      >>> from pgjax.config import Config, TrainingConfig
      >>> small = estimate_memory(Config(training=TrainingConfig(num_envs=64)), backend="cpu")
      >>> large = estimate_memory(Config(training=TrainingConfig(num_envs=4096)), backend="cpu")
      >>> small.total_bytes < large.total_bytes, sum(large.parts.values()) == large.total_bytes
      (True, True)
    """
    if env is None:
        from pgjax.envs import make_env  # noqa: PLC0415

        env = make_env(config.env.name, **dict(config.env.params))
    if backend is None:
        import jax  # noqa: PLC0415

        backend = jax.default_backend()
    if seeds < 1:
        raise ValueError(f"seeds={seeds}: must be >= 1")
    from pgjax.envs import uses_obs_normalization  # noqa: PLC0415  (as make_env: jax is deferred)

    derived = derive(config, max_steps_in_episode=env.spec.max_steps_in_episode)
    a, t = config.algorithm, config.training
    algorithm = algos.get(a.name)
    episodic = algorithm.episodic
    obs_bytes, state_bytes, action_size = env_sizes(env)
    if uses_obs_normalization(env.spec, config.env.normalize_obs):
        obs_bytes = math.prod(env.spec.obs_shape) * _F32  # the Transition holds float32 ones
    shape = network_shape(config, env.spec.obs_shape, action_size, discrete=env.spec.discrete,
                          obs_num_values=env.spec.obs_num_values)
    action_bytes = _F32 * (1 if env.spec.discrete else action_size)
    batch = derived.batch_size  # T x N samples per update

    # Per sample: Transition (obs, action, reward, log_prob, value, next_value, 2 flags), the
    # scan's final value, advantage and target; episodic adds mask and returns; PPO a
    # flattened and a shuffled copy of what the loss reads.
    per_sample = obs_bytes + action_bytes + 7 * _F32 + 2
    if episodic:
        per_sample += _F32 + 1
    if algorithm.minibatched:
        per_sample += 2 * (obs_bytes + action_bytes + 4 * _F32)
    rollout = batch * per_sample

    # The loss over one (mini)batch: every hidden output saved for the backward pass, the
    # input cast to float32 (unless stored so), the heads' outputs, and the backward working
    # set (about twice the activations of the largest network).
    # a2c and PPO sum their gradients over slices (pgjax.learner.loss_slices): one at a time.
    from pgjax.learner import loss_slices  # noqa: PLC0415

    devices = t.devices if isinstance(t.devices, int) else 1
    loss_batch = derived.minibatch_size // loss_slices(config, num_devices=devices,
                                                       platform=backend)
    heads = action_size + 8  # logits or means, value, log-probs, entropy
    cast = 0 if obs_bytes == shape.input_size * _F32 else shape.input_size
    per_loss_sample = cast + sum(shape.hidden.values()) + 2 * max(shape.hidden.values())
    activations = loss_batch * _F32 * (per_loss_sample + heads)

    env_states = 3 * t.num_envs * (state_bytes + obs_bytes + 2 * _F32)  # carry in, out, step
    params = 5 * shape.num_params * _F32  # params, grads, updates, Adam's two moments

    evaluation = 0
    if t.eval_episodes:
        episodes = 2 * t.eval_episodes  # greedy and sampled (Trainer.evaluate_both)
        steps = episodes * env.spec.max_steps_in_episode
        widest = max(max(o for _, o in layers) for layers in shape.dense.values())
        evaluation = steps * (obs_bytes + action_bytes + 6 * _F32 + 3) + \
            3 * episodes * (state_bytes + obs_bytes + widest * _F32)
    metrics = derived.updates_per_chunk * _METRICS_PER_UPDATE * _F32

    host = backend == "cpu"
    parts = {
        "runtime": _CPU_RUNTIME if host else _DEVICE_RUNTIME,
        "compilation": _CPU_COMPILATION if host else 0,
        "activations": seeds * activations,
        "rollout_buffers": seeds * rollout,
        "env_states": seeds * env_states,
        "params_and_optimizer": seeds * params,
        "evaluation": seeds * evaluation,
        "metrics": seeds * metrics,
    }
    parts = {k: int(v) for k, v in parts.items()}
    return MemoryEstimate(sum(parts.values()), parts)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            text = f.read().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # "max" (cgroup v2): no limit


def _cgroup_limit() -> int | None:
    """This process's cgroup memory limit (v2 ``memory.max`` or v1 ``limit_in_bytes``)."""
    candidates = ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"]
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                if controllers == "":
                    candidates.insert(0, f"/sys/fs/cgroup{path}/memory.max")
                elif "memory" in controllers.split(","):
                    candidates.insert(0, f"/sys/fs/cgroup/memory{path}/memory.limit_in_bytes")
    except (OSError, ValueError):
        pass
    limits = [v for v in map(_read_int, candidates) if v is not None and v < 2**60]
    return min(limits) if limits else None


def available_memory() -> int:
    """Bytes a training run can use.

    On a GPU or TPU (jax's default backend), the device's allocator limit
    (``memory_stats()['bytes_limit']``); otherwise host memory: ``MemAvailable`` from
    ``/proc/meminfo``, capped by the cgroup's memory limit when one is set. Falls back to
    ``os.sysconf`` physical memory where neither can be read.

    Examples:
      >>> available_memory() > 0
      True
    """
    import jax  # noqa: PLC0415

    if jax.default_backend() in ("gpu", "tpu", "cuda", "rocm"):
        try:
            stats = jax.devices()[0].memory_stats() or {}
        except Exception:  # noqa: BLE001  (no stats on this platform: fall through to the host)
            stats = {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"])
    host = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    host = int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    if host is None:
        host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    limit = _cgroup_limit()
    return min(host, limit) if limit is not None else host
