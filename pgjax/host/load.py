"""``load_run``: a run directory written by ``pgjax train`` back in Python."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pgjax.config import apply_overrides
from pgjax.host.checks import build_trainer
from pgjax.host.commands import restore
from pgjax.host.config_io import run_config


def load_run(run_dir: str | os.PathLike, checkpoint: str = "latest",
             devices: int | str = 1) -> tuple[Any, Any]:
    """The trainer and the trained state of a run directory.

    Args:
      run_dir: a directory ``pgjax train`` wrote (config.yaml and checkpoints/).
      checkpoint: ``"latest"`` or ``"best"`` (by the chunk's mean training return).
      devices: ``training.devices`` to build the trainer with (default 1: loads anywhere).

    Returns:
      ``(trainer, state)``: the :class:`~pgjax.train.Trainer` of the run's config and its
      :class:`~pgjax.train.TrainState` vmapped over the run's seeds (leaves ``[S, ...]``).
      :func:`pgjax.make_policy` turns them into an ``act(obs, key)`` function;
      ``jax.vmap(trainer.evaluate)(state, keys)`` evaluates every seed.

    Raises:
      pgjax.host.rundir.RunError: not a run directory, no checkpoint yet, none that can be
        read, or a config.yaml edited since the checkpoint (the keys are named).

    A run that is still training may be loaded: its checkpoints appear whole or not at all,
    and a damaged one is reported and an older one used.
      ValueError: ``checkpoint`` is neither ``"latest"`` nor ``"best"``.
    """
    if checkpoint not in ("latest", "best"):
        raise ValueError(f"checkpoint={checkpoint!r}: must be 'latest' or 'best'")
    directory = Path(run_dir)
    saved = run_config(directory)
    trainer = build_trainer(apply_overrides(saved, [f"training.devices={devices}"]))
    state, _ = restore(directory, trainer, checkpoint, saved)
    return trainer, state
