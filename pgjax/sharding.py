"""Many devices, same code: the environment batch split over a 1-D device mesh.

``training.devices`` picks the devices (``1``, a count ``D``, or ``"all"`` of
``jax.devices()``, every host's included). :func:`make_sharding` builds a
``jax.sharding.Mesh`` of them with one axis, ``"envs"``. The trainer then
constrains every per-environment array (env states, observations, leaves
``[N, ...]``) to be split along N over that axis and the parameters to be
replicated; XLA's SPMD partitioner does the rest inside the one compiled
program: each device steps ``N / D`` environments and runs its share of the
forward and backward passes (PPO's shuffled minibatches are split by row as
well), and the mean losses (hence the gradients and the metrics) are
all-reduced across devices. One device is the same code path with a mesh of
one, on which the constraints are skipped (there is nothing to split).

The collectives per n-step update, as compiled: one all-reduce of the
gradients (per minibatch for PPO, plus an all-gather of the shuffled batch per
epoch), one of the episode statistics, and one boolean per rollout step for the
rollout's "any episode truncated?" branch.

The constraints are ``jax.lax.with_sharding_constraint``, which ``vmap``
batches by leaving the vmapped axis unsplit, so ``jax.vmap(trainer.train)``
over S seeds runs S agents whose env batches are each split over the D
devices.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from pgjax.config import ConfigError
from pgjax.rollout import PER_ENV_FIELDS

AXIS = "envs"


def resolve_devices(devices: int | str, num_envs: int, *, split: str = "envs",
                    num_seeds: int = 1) -> list[jax.Device]:
    """The devices that ``training.devices`` names, checked against what they split.

    Raises:
      ConfigError: more devices than JAX sees, or ``num_envs`` (``num_seeds`` with
        ``split="seeds"``) not divisible by their number.

    Examples:
      >>> [d.platform for d in resolve_devices(1, num_envs=8)]
      ['cpu']
    """
    available = jax.devices()
    if devices == "all":
        chosen = available
    elif isinstance(devices, int) and not isinstance(devices, bool) and devices >= 1:
        if devices > len(available):
            raise ConfigError(
                f"training.devices={devices}: only {len(available)} {available[0].platform} "
                f"device(s) available (jax.devices()); use at most {len(available)} or 'all'")
        chosen = available[:devices]
    else:
        raise ConfigError(f"training.devices={devices!r}: must be an int >= 1 or 'all'")
    if split == "seeds":
        if num_seeds % len(chosen):
            raise ConfigError(
                f"training.num_seeds={num_seeds}: must be divisible by the {len(chosen)} devices "
                f"of training.devices={devices!r} with training.split='seeds', so each device "
                "trains the same number of seeds")
    elif num_envs % len(chosen):
        raise ConfigError(
            f"training.num_envs={num_envs}: must be divisible by the {len(chosen)} devices of "
            f"training.devices={devices!r}, so each device steps the same number of envs")
    return chosen


class Sharding(NamedTuple):
    """The mesh of a run and the constraints the trainer applies with it.

    ``split`` is ``"envs"`` (each seed's env batch is split over the devices; the
    trainer's constraints do it) or ``"seeds"`` (whole seeds go to devices: the
    trainer constrains nothing, and the leading seed axis of a vmapped run is
    split instead, from keys placed with :attr:`seeds`).
    """

    mesh: Mesh
    split: str = "envs"

    @property
    def num_devices(self) -> int:
        return self.mesh.size

    @property
    def _constrains(self) -> bool:
        """Whether the trainer's constraints do anything: not on one device (nothing to split),
        nor with ``split="seeds"`` (the seed axis is split outside the trainer)."""
        return self.num_devices > 1 and self.split == "envs"

    @property
    def replicate(self) -> NamedSharding:
        """The sharding of an array held whole by every device."""
        return NamedSharding(self.mesh, PartitionSpec())

    def envs(self, tree: Any, axis: int = 0) -> Any:
        """Splits axis ``axis`` (the env or batch-row axis) of every array leaf over the devices.

        Leaves with no such axis (scalars) are left as they are.
        """
        if not self._constrains:
            return tree
        spec = NamedSharding(self.mesh, PartitionSpec(*(None,) * axis, AXIS))
        return jax.tree.map(
            lambda x: jax.lax.with_sharding_constraint(x, spec) if np.ndim(x) > axis else x, tree)

    def replicated(self, tree: Any) -> Any:
        """Keeps a full copy of every leaf on every device (parameters, optimiser states)."""
        if not self._constrains:
            return tree
        return jax.tree.map(lambda x: jax.lax.with_sharding_constraint(x, self.replicate), tree)

    @property
    def seeds(self) -> NamedSharding:
        """Where to put the ``[S]`` seed keys of a vmapped run: split over the devices with
        ``split="seeds"``, else whole on every device.

        :meth:`put_seeds` places keys so.
        """
        spec = PartitionSpec(AXIS) if self.split == "seeds" else PartitionSpec()
        return NamedSharding(self.mesh, spec)

    def put_seeds(self, keys: jax.Array) -> jax.Array:
        """The ``[S]`` PRNG keys laid out by :attr:`seeds`, from every process of a multi-host run.

        ``jax.jit(jax.vmap(trainer.train))(trainer.sharding.put_seeds(keys))`` then trains
        ``S / D`` seeds on each device with ``split="seeds"`` (every seed on every device
        otherwise). Unlike ``jax.device_put``, this works when the mesh spans devices of other
        processes; each process must pass the same keys.
        """
        data = np.asarray(jax.random.key_data(keys))
        placed = jax.make_array_from_callback(data.shape, self.seeds, lambda index: data[index])
        return jax.random.wrap_key_data(placed, impl=jax.random.key_impl(keys))

    def state(self, state: Any) -> Any:
        """The sharding of every leaf of a ``TrainState`` (arrays or abstract shapes).

        The per-environment leaves of the rollout state (env states, observations,
        running episode returns and lengths) are split along their env axis, which
        follows any leading vmapped axes (seeds, hyperparameters); everything else
        (parameters, optimiser states, keys, counters, statistics) is replicated.
        Compiled programs take and return states laid out like this, and
        checkpoints are restored straight into it.
        """
        batch = len(np.shape(state.update))  # leading vmapped axes
        if self.split == "seeds":
            if batch == 0:
                raise ValueError("split='seeds' lays out states vmapped over seeds; this one "
                                 "has no seed axis")
            return jax.tree.map(lambda _: self.seeds, state)
        replicated = self.replicate
        split = NamedSharding(self.mesh, PartitionSpec(*(None,) * batch, AXIS))
        shardings = jax.tree.map(lambda _: replicated, state)
        rollout = state.rollout
        if rollout is not None:
            shardings = shardings._replace(rollout=shardings.rollout._replace(**{
                name: jax.tree.map(lambda _: split, getattr(rollout, name))
                for name in PER_ENV_FIELDS}))
        return shardings


def make_sharding(devices: int | str = 1, *, num_envs: int, split: str = "envs",
                  num_seeds: int = 1) -> Sharding:
    """A :class:`Sharding` over the devices of ``training.devices``."""
    chosen = resolve_devices(devices, num_envs, split=split, num_seeds=num_seeds)
    return Sharding(Mesh(np.asarray(chosen), (AXIS,)), split)
