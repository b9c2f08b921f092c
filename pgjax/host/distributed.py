"""Multi-host runs: one training program over the devices of several processes.

A run with ``training.num_processes`` other than 1 starts with
``jax.distributed.initialize`` (:func:`initialize`), before anything touches the
XLA backend. After it, ``jax.devices()`` lists every process's devices, so
``training.devices: all`` splits each seed's environments over all of them;
the compiled program (:mod:`pgjax.sharding`) is the same one a single process
runs. Every process runs the same command; process 0 alone writes the run
directory (metrics, summary, figure), and all of them take part in saving and
restoring checkpoints, which must therefore live on a filesystem every host
sees.

Where the settings come from, first found wins:

* coordinator: ``training.coordinator_address`` (``host:port`` of process 0),
  then ``$JAX_COORDINATOR_ADDRESS``, then the cluster (SLURM, Open MPI, ...);
* number of processes: ``training.num_processes`` (0 = ask the cluster);
* this process's index: ``--process-id``, then ``$PGJAX_PROCESS_ID``, then the
  cluster.

CPU processes exchange data with gloo (``jax_cpu_collectives_implementation``),
which GPU and TPU runs ignore.
"""

from __future__ import annotations

import os
import sys
import threading

from pgjax.config import Config
from pgjax.host.errors import RunError


_primary = True  # this process is process 0 (set by initialize; no JAX call needed to ask)


def wanted(config: Config) -> bool:
    """Whether ``config`` describes a multi-host run."""
    return config.training.num_processes != 1


def initialize(config: Config, process_id: int | None = None) -> bool:
    """Joins the multi-host job ``config`` describes; False (and nothing done) for one process.

    Raises:
      RunError: JAX could not set the job up (no coordinator or process count was
        given and no cluster was detected, the coordinator is unreachable, ...).
    """
    if not wanted(config):
        return False
    import jax  # noqa: PLC0415

    global _primary
    if jax.distributed.is_initialized():  # joined already (e.g. by the caller's own code)
        _primary = jax.process_index() == 0
        return True
    t = config.training
    address = t.coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS") or None
    if process_id is None and os.environ.get("PGJAX_PROCESS_ID", "") != "":
        process_id = int(os.environ["PGJAX_PROCESS_ID"])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    say(f"waiting for {t.num_processes or 'all the cluster'} processes to join"
        + (f" at {address}" if address else "") + f" (training.join_timeout_s={t.join_timeout_s:g})")
    # JAX waits for missing peers for minutes, then aborts the process (SIGABRT): a
    # watchdog ends the wait first, with one line and exit code 2.
    watchdog = threading.Timer(t.join_timeout_s, _join_timed_out, args=(t,))
    watchdog.daemon = True
    watchdog.start()
    try:
        jax.distributed.initialize(coordinator_address=address,
                                   num_processes=t.num_processes or None, process_id=process_id,
                                   initialization_timeout=int(t.join_timeout_s) + 60)
    except (ValueError, RuntimeError) as error:
        watchdog.cancel()
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise RunError(
            f"training.num_processes={t.num_processes}: jax.distributed.initialize failed: "
            f"{first} (set training.coordinator_address or $JAX_COORDINATOR_ADDRESS, and "
            "--process-id or $PGJAX_PROCESS_ID, unless a SLURM or Open MPI cluster provides "
            "them)") from error
    watchdog.cancel()
    _primary = jax.process_index() == 0
    return True


def _join_timed_out(t) -> None:
    sys.stderr.write(
        f"pgjax: error: training.join_timeout_s={t.join_timeout_s:g}: not all "
        f"{t.num_processes or 'the cluster'} processes joined in time; start them all with the "
        "same config (and --process-id), or raise training.join_timeout_s\n")
    sys.stderr.flush()
    os._exit(2)  # JAX's join holds the main thread in C++: no exception can reach it


def say(*parts) -> None:
    """Prints a line (process 0 only, in a multi-host run)."""
    if is_primary():
        print(*parts, flush=True)


def is_primary() -> bool:
    """True in process 0 (the only writer of a run directory), and in any single-process run."""
    return _primary


def barrier(name: str) -> None:
    """Waits until every process reaches ``name``; nothing in a single-process run."""
    import jax  # noqa: PLC0415

    if jax.process_count() > 1:
        from jax.experimental import multihost_utils  # noqa: PLC0415

        multihost_utils.sync_global_devices(name)
