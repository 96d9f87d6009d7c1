"""Wall-clock timing shared by the benchmarks."""

import time
from collections.abc import Callable
from typing import Any

import jax
from jax.sharding import PartitionSpec as P


def best_seconds(fn: Callable[..., Any], *args: Any, repeats: int) -> float:
    """The fastest of `repeats` calls of `fn(*args)`, each waited for to the end."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def per_device(fn: Callable[..., Any], mesh: jax.sharding.Mesh | None) -> Callable[..., Any]:
    """`fn` over a batch split along its first axis across `mesh` (itself without one).

    With several devices the baselines split the batch as the trainers split theirs, so
    the ratios compare like with like.
    """
    if mesh is None:
        return fn
    (axis,) = mesh.axis_names
    return jax.shard_map(fn, mesh=mesh, in_specs=P(axis), out_specs=P(axis), check_vma=False)
