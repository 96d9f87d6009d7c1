"""Devices and sharding: the one place a mesh is made, a state placed and a function run per device.

Every run uses one mesh axis, `AXIS`, over all devices of all processes: ES splits its
candidates along it, PPO+AMP its envs, the benchmarks their batches. Specs are
`PartitionSpec`s over that axis: `REPLICATED`, `SPLIT` (the leading axis split) and
`SPLIT_TIME` (a [time, batch] array split along batch); a spec tree may be a prefix of
the pytree it describes, as in `jax.shard_map`.

`per_device` runs a function on each device's share with `shard_map` and no traffic
between devices inside it. MJX's solver loops test convergence over the whole batch;
under automatic sharding that test becomes a collective inside every loop (and on the
2-core CPU split into 2 devices such a program never returned at 128 envs per device),
so every batched rollout runs through here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
from jaxtyping import PyTree

AXIS = "batch"
REPLICATED = P()
SPLIT = P(AXIS)
SPLIT_TIME = P(None, AXIS)

Specs = PyTree  # a PartitionSpec, or a pytree (prefix) of them


def make_mesh() -> Mesh | None:
    """A one-axis mesh over every device of every process, or None on a single device."""
    if jax.device_count() == 1:
        return None
    return jax.make_mesh((jax.device_count(),), (AXIS,), axis_types=(AxisType.Auto,))


def per_device(fn: Callable[..., Any], mesh: Mesh | None, in_specs: Specs, out_specs: Specs) -> Callable[..., Any]:
    """`fn` on each device's share of its inputs (`fn` itself without a mesh)."""
    if mesh is None:
        return fn
    # MJX's solver uses `lax.cond` on values the varying-axis check cannot follow.
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_vma=False)


def _is_spec(x: Any) -> bool:
    return isinstance(x, P)


def _shardings(mesh: Mesh, arrays: PyTree, specs: Specs) -> PyTree:
    """A NamedSharding per array leaf, from a spec tree that is a prefix of `arrays`."""
    if _is_spec(specs):
        return jax.tree.map(lambda _: NamedSharding(mesh, specs), arrays)
    return jax.tree.map(lambda spec, sub: jax.tree.map(lambda _: NamedSharding(mesh, spec), sub),
                        specs, arrays, is_leaf=_is_spec)


def named(mesh: Mesh | None, spec: P = REPLICATED) -> NamedSharding | None:
    """The sharding `spec` on `mesh` (None without a mesh), e.g. for `jax.jit(out_shardings=...)`."""
    return None if mesh is None else NamedSharding(mesh, spec)


def place(tree: PyTree, mesh: Mesh | None, specs: Specs = REPLICATED) -> PyTree:
    """Puts a host-side pytree on the mesh as `specs` say (non-array leaves kept as they are)."""
    if mesh is None:
        return tree
    arrays, static = eqx.partition(tree, eqx.is_array)
    shardings = _shardings(mesh, arrays, specs)
    if jax.process_count() == 1:
        return eqx.combine(jax.device_put(arrays, shardings), static)
    # Several processes, each holding the same whole tree: each builds its own shards.
    def build(x, sharding):
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
    return eqx.combine(jax.tree.map(build, arrays, shardings), static)


def constrain(tree: PyTree, mesh: Mesh | None, specs: Specs = REPLICATED) -> PyTree:
    """Inside a jitted function: `tree` laid out as `specs` say (a no-op without a mesh)."""
    if mesh is None:
        return tree
    arrays, static = eqx.partition(tree, eqx.is_array)
    arrays = jax.tree.map(jax.lax.with_sharding_constraint, arrays, _shardings(mesh, arrays, specs))
    return eqx.combine(arrays, static)
