"""A population's episodes in chunks, or as a work queue, optionally sharded by candidate.

A population of `population` candidates is evaluated as `population // chunk` chunks by
`lax.map`, so memory is O(chunk). Each candidate's parameters and reset key come from
`candidate_fn(theta, item, key)` inside its chunk, where `item` is the candidate's index
(perturbative ES regenerates its noise from it, so the population's parameters are never
held whole) or, for a population that exists as an array (an evosax strategy's ask), the
candidate's slice of the per-candidate inputs. With a mesh, candidates are split
contiguously across its devices and each device runs its share in chunks of
`chunk // n_devices`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from common import normalizer, sharding
from common.envs.base import Env
from common.rollout.episodes import ActFn, EpisodeBatch, InitCarryFn, Outcome, Params, advance, rollout, select, start

CandidateFn = Callable[[PyTree, Int[Array, ""], PRNGKeyArray], tuple[Params, PRNGKeyArray]]


class _Queue(eqx.Module):
    slots: EpisodeBatch
    params: Any
    # Position in the queue of the candidate each slot runs; n marks an idle slot.
    position: Int[Array, " slots"]
    next_position: Int[Array, ""]
    episode_return: Float[Array, " n"]
    length: Int[Array, " n"]
    diverged: Bool[Array, " n"]
    metric_sums: dict[str, Float[Array, " n"]]


def _take(tree: PyTree, index: Int[Array, "..."]) -> PyTree:
    return jax.tree.map(lambda x: x[index], tree)


def _length(tree: PyTree) -> int:
    return jax.tree.leaves(tree)[0].shape[0]


def rollout_queue(
    env: Env,
    act: ActFn,
    init_carry: InitCarryFn,
    candidate_fn: CandidateFn,
    theta: PyTree,
    key: PRNGKeyArray,
    indices: PyTree,
    slots: int,
    horizon: int,
    block: int,
) -> Outcome:
    """One episode per candidate of `indices` (leading axis n), run on `slots` members as a work queue.

    A batch of `rollout` lasts as long as its longest-lived member. Here a slot whose
    episode has ended takes the next waiting candidate at the next block boundary (its
    parameters and reset key made by `candidate_fn`), so slots stay busy until the
    queue is empty. Every candidate still lives one episode of at most `horizon` steps
    from its own reset key, so per-candidate results equal `rollout`'s; only the order
    in which observation statistics merge differs (float rounding).
    """
    if block < 1 or horizon % block:
        raise ValueError(f"early-exit block {block} must be >= 1 and divide horizon {horizon}")
    n = _length(indices)
    if n < slots:
        raise ValueError(f"{n} candidates cannot fill {slots} slots")
    make = jax.vmap(candidate_fn, in_axes=(None, 0, None))
    params, keys = make(theta, _take(indices, slice(0, slots)), key)
    first = start(env, init_carry, params, keys)
    queue = _Queue(
        slots=first,
        params=params,
        position=jnp.arange(slots, dtype=jnp.int32),
        next_position=jnp.asarray(slots, jnp.int32),
        episode_return=jnp.zeros((n,), first.episode_return.dtype),
        length=jnp.zeros((n,), jnp.int32),
        diverged=jnp.zeros((n,), bool),
        metric_sums={k: jnp.zeros((n,), v.dtype) for k, v in first.metric_sums.items()},
    )

    def one_step(c: EpisodeBatch, params) -> tuple[EpisodeBatch, None]:
        c = advance(env, act, params, c)
        # The time limit of a slot counts from its own reset.
        return eqx.tree_at(lambda x: x.done, c, c.done | (c.length >= horizon)), None

    def run_block(q: _Queue) -> _Queue:
        c, _ = jax.lax.scan(lambda c, _: one_step(c, q.params), q.slots, length=block)
        finished = (q.position < n) & c.done
        # Finished episodes go to their candidates' places; other slots write nowhere.
        target = jnp.where(finished, q.position, n)
        episode_return = q.episode_return.at[target].set(c.episode_return, mode="drop")
        length = q.length.at[target].set(c.length, mode="drop")
        diverged = q.diverged.at[target].set(c.diverged, mode="drop")
        metric_sums = {k: v.at[target].set(c.metric_sums[k], mode="drop") for k, v in q.metric_sums.items()}
        # Finished slots take the next candidates in order; past the end they go idle
        # (and stay done, so they are never stepped again).
        wanted = q.next_position + jnp.cumsum(finished.astype(jnp.int32)) - 1
        refill = finished & (wanted < n)
        position = jnp.where(finished, jnp.where(refill, wanted, n), q.position)
        new_params, new_keys = make(theta, _take(indices, jnp.clip(wanted, 0, n - 1)), key)
        fresh = start(env, init_carry, new_params, new_keys)
        # Per-slot fields switch to the fresh episode; the statistics gathered so far
        # are shared by all slots and carried on.
        per_slot = lambda x: dataclasses.replace(x, obs_stats=None)
        slots_carry = dataclasses.replace(select(refill, per_slot(fresh), per_slot(c)), obs_stats=c.obs_stats)
        return _Queue(
            slots=slots_carry,
            params=select(refill, new_params, q.params),
            position=position,
            next_position=jnp.minimum(q.next_position + jnp.sum(finished.astype(jnp.int32)), n),
            episode_return=episode_return,
            length=length,
            diverged=diverged,
            metric_sums=metric_sums,
        )

    queue = jax.lax.while_loop(lambda q: jnp.any(q.position < n), run_block, queue)
    return Outcome(
        episode_return=queue.episode_return,
        length=queue.length,
        diverged=queue.diverged,
        obs_stats=queue.slots.obs_stats,
        metric_sums=queue.metric_sums,
        measure_sums={},
    )


def evaluate_population(
    env: Env,
    act: ActFn,
    init_carry: InitCarryFn,
    candidate_fn: CandidateFn,
    theta: PyTree,
    key: PRNGKeyArray,
    *,
    population: int,
    chunk: int,
    horizon: int,
    block: int | None = None,
    mesh: Mesh | None = None,
    queue: bool = False,
    candidates: PyTree | None = None,
) -> Outcome:
    """Evaluates candidates `0..population-1` in chunks; results in candidate order.

    `theta` and `key` are shared by all candidates; `candidate_fn(theta, item, key)` makes
    a candidate's parameters and reset key from its item: its index, or with
    `candidates` (a pytree of arrays whose leading axis is the population) its slice of
    them. With `mesh` (one axis), the population is sharded across its devices, and so
    are `candidates`: each device receives only its own candidates' rows. With `queue`
    (which needs `block`), each device runs its candidates as a work queue on
    `chunk / n_devices` slots (`rollout_queue`) instead of chunk after chunk.
    """
    if queue and block is None:
        raise ValueError("queue: the work queue refills slots at block boundaries and needs a block")
    if population % chunk:
        raise ValueError(f"population {population} is not divisible by chunk {chunk}")
    n_chunks = population // chunk
    if candidates is None:
        candidates = jnp.arange(population, dtype=jnp.int32)
    elif _length(candidates) != population:
        raise ValueError(f"candidates have {_length(candidates)} rows for a population of {population}")

    def local(theta: PyTree, key: PRNGKeyArray, indices: PyTree) -> Outcome:
        """One device's candidates; `indices` has leading axes [n_chunks, chunk]."""
        if queue:
            slots = jax.tree.leaves(indices)[0].shape[1]
            flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), indices)
            return rollout_queue(env, act, init_carry, candidate_fn, theta, key, flat, slots, horizon, block)

        def eval_chunk(idx: PyTree) -> Outcome:
            params, keys = jax.vmap(candidate_fn, in_axes=(None, 0, None))(theta, idx, key)
            return rollout(env, act, init_carry, params, keys, horizon, block)

        return _flatten(jax.lax.map(eval_chunk, indices))

    if mesh is None or mesh.size == 1:
        return local(theta, key, jax.tree.map(lambda x: x.reshape(n_chunks, chunk, *x.shape[1:]), candidates))

    n_dev = mesh.size
    if chunk % n_dev:
        raise ValueError(f"chunk {chunk} is not divisible by the {n_dev} devices of the mesh")
    local_chunk = chunk // n_dev
    # Device d evaluates candidates [d * population / n_dev, (d + 1) * population / n_dev).
    indices = jax.tree.map(lambda x: x.reshape(n_dev, n_chunks, local_chunk, *x.shape[1:]), candidates)

    def per_device(theta, key, idx):
        out = local(theta, key, jax.tree.map(lambda x: x[0], idx))
        return jax.tree.map(lambda x: x[None], out)

    sharded = sharding.per_device(per_device, mesh, (sharding.REPLICATED, sharding.REPLICATED, sharding.SPLIT),
                                  sharding.SPLIT)(theta, key, indices)
    return _flatten(sharded)


def _flatten(stacked: Outcome) -> Outcome:
    """One outcome from per-chunk (or per-device) outcomes stacked on a leading axis."""
    return Outcome(
        episode_return=stacked.episode_return.reshape(-1),
        length=stacked.length.reshape(-1),
        diverged=stacked.diverged.reshape(-1),
        obs_stats=normalizer.merge_stacked(stacked.obs_stats),
        metric_sums={k: v.reshape(-1) for k, v in stacked.metric_sums.items()},
        measure_sums={},
    )
