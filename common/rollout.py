"""Fixed-shape rollouts: time in `lax.scan`, populations in chunks, optional early exit.

Every shape (batch, horizon, chunk) is static. Members that finish are frozen (their
state is not advanced and they earn nothing), never cut out, so a batch keeps its
shape. With `block` set, time runs as a `lax.while_loop` over blocks of `block` steps
that stops once every member of the batch is done; since finished members are frozen,
the result equals the full scan.

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
from jax.sharding import Mesh, PartitionSpec as P
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from common import normalizer
from common.envs.base import Env

Params = PyTree
Carry = PyTree
ActFn = Callable[[Params, Carry, Float[Array, " obs"]], tuple[Carry, Float[Array, " act"]]]
InitCarryFn = Callable[[Params], Carry]
CandidateFn = Callable[[PyTree, Int[Array, ""], PRNGKeyArray], tuple[Params, PRNGKeyArray]]


class Outcome(eqx.Module):
    """Per-member results of a batch of episodes, and statistics of what they observed."""

    episode_return: Float[Array, " batch"]
    length: Int[Array, " batch"]
    diverged: Bool[Array, " batch"]
    obs_stats: normalizer.RunningStats
    # Per member, each of the env's scalar metrics summed over the steps it lived (the
    # reward terms, `reward/<name>`, sum to `episode_return`).
    metric_sums: dict[str, Float[Array, " batch"]]


def select(mask: Bool[Array, " batch"], on_true: PyTree, on_false: PyTree) -> PyTree:
    """Per-member `where` over two batched pytrees (mask broadcast over trailing axes)."""

    def pick(a, b):
        m = mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim))
        return jnp.where(m, a, b)

    return jax.tree.map(pick, on_true, on_false)


class _Carry(eqx.Module):
    state: Any
    policy_carry: Any
    episode_return: Float[Array, " batch"]
    length: Int[Array, " batch"]
    diverged: Bool[Array, " batch"]
    done: Bool[Array, " batch"]
    obs_stats: normalizer.RunningStats
    metric_sums: dict[str, Float[Array, " batch"]]


def _start(env: Env, init_carry: InitCarryFn, params: Params, keys: PRNGKeyArray) -> _Carry:
    """Fresh episodes for a batch, with empty observation statistics."""
    batch = keys.shape[0]
    state = jax.vmap(env.reset)(keys)
    return _Carry(
        state=state,
        policy_carry=jax.vmap(init_carry)(params),
        episode_return=jnp.zeros((batch,), state.reward.dtype),
        length=jnp.zeros((batch,), jnp.int32),
        diverged=jnp.zeros((batch,), bool),
        done=jnp.zeros((batch,), bool),
        obs_stats=normalizer.init(state.obs.shape[-1], state.obs.dtype),
        metric_sums={k: jnp.zeros((batch,), state.reward.dtype) for k in state.metrics},
    )


def _advance(env: Env, act: ActFn, params: Params, c: _Carry) -> _Carry:
    """One step of every live member; finished members are frozen and earn nothing."""
    alive = ~c.done
    policy_carry, action = jax.vmap(act)(params, c.policy_carry, c.state.obs)
    new = jax.vmap(env.step)(c.state, action)
    return _Carry(
        state=select(alive, new, c.state),
        policy_carry=select(alive, policy_carry, c.policy_carry),
        episode_return=c.episode_return + jnp.where(alive, new.reward, 0.0),
        length=c.length + alive.astype(jnp.int32),
        diverged=c.diverged | (alive & (new.metrics["diverged"] > 0)),
        done=c.done | new.done,
        obs_stats=normalizer.merge(c.obs_stats, normalizer.from_batch(c.state.obs, alive)),
        metric_sums={k: v + jnp.where(alive, new.metrics[k], 0.0) for k, v in c.metric_sums.items()},
    )


def rollout(
    env: Env,
    act: ActFn,
    init_carry: InitCarryFn,
    params: Params,
    keys: PRNGKeyArray,
    horizon: int,
    block: int | None = None,
) -> Outcome:
    """Runs one episode per member of a batch (`params` and `keys` batched on axis 0).

    Args:
      env: the task.
      act: `(params, carry, obs) -> (carry, action)` for one member; vmapped here.
      init_carry: the policy's carry at episode start, `(params) -> carry`.
      params: batched policy parameters.
      keys: `[batch]` reset keys.
      horizon: steps per episode (static).
      block: if set, stop early once all members are done, checking every `block`
        steps; must divide `horizon`.
    """
    if block is not None and (block < 1 or horizon % block):
        raise ValueError(f"early-exit block {block} must be >= 1 and divide horizon {horizon}")
    carry = _start(env, init_carry, params, keys)

    def one_step(c: _Carry, _) -> tuple[_Carry, None]:
        return _advance(env, act, params, c), None

    if block is None:
        carry, _ = jax.lax.scan(one_step, carry, length=horizon)
    else:
        def run_block(tc):
            t, c = tc
            c, _ = jax.lax.scan(one_step, c, length=block)
            return t + block, c

        def keep_going(tc):
            t, c = tc
            return (t < horizon) & ~jnp.all(c.done)

        _, carry = jax.lax.while_loop(keep_going, run_block, (jnp.zeros((), jnp.int32), carry))
    return Outcome(
        episode_return=carry.episode_return,
        length=carry.length,
        diverged=carry.diverged,
        obs_stats=carry.obs_stats,
        metric_sums=carry.metric_sums,
    )


class _Queue(eqx.Module):
    slots: _Carry
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
    first = _start(env, init_carry, params, keys)
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

    def one_step(c: _Carry, params) -> tuple[_Carry, None]:
        c = _advance(env, act, params, c)
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
        fresh = _start(env, init_carry, new_params, new_keys)
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
    )


def _evaluate_local(
    env: Env,
    act: ActFn,
    init_carry: InitCarryFn,
    candidate_fn: CandidateFn,
    theta: PyTree,
    key: PRNGKeyArray,
    indices: PyTree,
    horizon: int,
    block: int | None,
    queue: bool = False,
) -> Outcome:
    """`indices`: per-candidate inputs with leading axes [n_chunks, chunk]."""
    if queue:
        slots = jax.tree.leaves(indices)[0].shape[1]
        flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), indices)
        return rollout_queue(env, act, init_carry, candidate_fn, theta, key, flat, slots, horizon, block)

    def eval_chunk(idx: PyTree) -> Outcome:
        params, keys = jax.vmap(candidate_fn, in_axes=(None, 0, None))(theta, idx, key)
        return rollout(env, act, init_carry, params, keys, horizon, block)

    per_chunk = jax.lax.map(eval_chunk, indices)
    return Outcome(
        episode_return=per_chunk.episode_return.reshape(-1),
        length=per_chunk.length.reshape(-1),
        diverged=per_chunk.diverged.reshape(-1),
        obs_stats=normalizer.merge_stacked(per_chunk.obs_stats),
        metric_sums={k: v.reshape(-1) for k, v in per_chunk.metric_sums.items()},
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
    (which needs `block`), each device runs its candidates as a work queue on `chunk / n_devices` slots (`rollout_queue`)
    instead of chunk after chunk.
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
    if mesh is None or mesh.size == 1:
        indices = jax.tree.map(lambda x: x.reshape(n_chunks, chunk, *x.shape[1:]), candidates)
        return _evaluate_local(env, act, init_carry, candidate_fn, theta, key, indices, horizon, block, queue)

    n_dev = mesh.size
    if chunk % n_dev:
        raise ValueError(f"chunk {chunk} is not divisible by the {n_dev} devices of the mesh")
    (axis,) = mesh.axis_names
    local_chunk = chunk // n_dev
    # Device d evaluates candidates [d * population / n_dev, (d + 1) * population / n_dev).
    indices = jax.tree.map(lambda x: x.reshape(n_dev, n_chunks, local_chunk, *x.shape[1:]), candidates)

    def per_device(theta, key, idx):
        local = jax.tree.map(lambda x: x[0], idx)
        out = _evaluate_local(env, act, init_carry, candidate_fn, theta, key, local, horizon, block, queue)
        return jax.tree.map(lambda x: x[None], out)

    sharded = jax.shard_map(
        per_device,
        mesh=mesh,
        in_specs=(P(), P(), P(axis)),
        out_specs=P(axis),
        # MJX's solver uses `lax.cond` on values the varying-axis check cannot follow.
        check_vma=False,
    )(theta, key, indices)
    return Outcome(
        episode_return=sharded.episode_return.reshape(-1),
        length=sharded.length.reshape(-1),
        diverged=sharded.diverged.reshape(-1),
        obs_stats=normalizer.merge_stacked(sharded.obs_stats),
        metric_sums={k: v.reshape(-1) for k, v in sharded.metric_sums.items()},
    )
