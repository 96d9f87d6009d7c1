"""Several JAX processes in one run (one per GPU under Slurm's `srun`, or local CPU
processes started by hand): joining them, and the host-side decisions they must share.

Every process runs the same host loop on its share of one global mesh. What differs is
decided on process 0 and handed to the others (`agree`): a stop signal can reach the
processes at different iterations, and a save or a collective that only some of them
enter never returns. Only process 0 writes the run's records, plots, video and log;
checkpoints are written by all (orbax's multi-process save: each process its shards).

Outside Slurm, processes join through `JAX_COORDINATOR_ADDRESS` (host:port of process
0), `JAX_NUM_PROCESSES` and `JAX_PROCESS_ID`; under `srun` JAX reads Slurm's variables.
On CPU the processes exchange through gloo.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jaxtyping import Int

from common.errors import UserError

_ENV = ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID")


def _explicit() -> tuple[str, int, int] | None:
    given = [name for name in _ENV if os.environ.get(name)]
    if not given:
        return None
    if len(given) != len(_ENV):
        raise UserError(f"several processes need all of {list(_ENV)}; only {given} are set")
    try:
        count, index = int(os.environ["JAX_NUM_PROCESSES"]), int(os.environ["JAX_PROCESS_ID"])
    except ValueError:
        raise UserError("JAX_NUM_PROCESSES and JAX_PROCESS_ID must be integers, got "
                        f"{os.environ['JAX_NUM_PROCESSES']!r} and {os.environ['JAX_PROCESS_ID']!r}") from None
    if not 0 <= index < count:
        raise UserError(f"JAX_PROCESS_ID={index} is not in [0, JAX_NUM_PROCESSES={count})")
    return os.environ["JAX_COORDINATOR_ADDRESS"], count, index


def _slurm_tasks() -> int:
    # Set in each task of an `srun` step, not in the batch script itself: python started
    # directly in a multi-task allocation runs alone rather than wait for partners.
    return int(os.environ.get("SLURM_STEP_NUM_TASKS", "1"))


def initialize() -> None:
    """Joins the other processes of this run, where there are several. Must run before
    anything touches a JAX backend (even `jax.devices()`)."""
    explicit = _explicit()
    # A second run in the same process (ES starts) joins nothing anew.
    if (explicit is None and _slurm_tasks() <= 1) or jax.distributed.is_initialized():
        return
    # CPU collectives between processes (GPUs use NCCL whatever this says).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if explicit is not None:
        address, count, index = explicit
        jax.distributed.initialize(coordinator_address=address, num_processes=count, process_id=index)
    else:
        jax.distributed.initialize()


def is_main() -> bool:
    """Whether this process writes the run's files (process 0)."""
    return jax.process_index() == 0


def agree(values: Sequence[int]) -> Int[np.ndarray, " n"]:
    """Process 0's `values` (small integers), on every process."""
    mine = np.asarray(values, np.int32)
    if jax.process_count() == 1:
        return mine
    return np.asarray(multihost_utils.broadcast_one_to_all(mine))


def to_host(tree: Any) -> Any:
    """A pytree of (possibly sharded) arrays whole on this process: as it is with one
    process; else gathered to host arrays, a collective that all processes must call."""
    if jax.process_count() == 1:
        return tree
    return multihost_utils.process_allgather(tree, tiled=True)
