"""Fixed-shape rollouts: time in `lax.scan`, populations in chunks, optional early exit.

Every shape (batch, horizon, chunk) is static. Members that finish are frozen (their
state is not advanced and they earn nothing), never cut out, so a batch keeps its
shape. With `block` set, time runs as a `lax.while_loop` over blocks of `block` steps
that stops once every member of the batch is done; since finished members are frozen,
the result equals the full scan.

A population of `population` candidates is evaluated as `population // chunk` chunks by
`lax.map`, so memory is O(chunk). Each candidate's parameters and reset key come from
`candidate_fn(theta, index, key)` inside its chunk, so the population's parameters are
never held whole. With a mesh, candidates are split contiguously across its devices and
each device runs its share in chunks of `chunk // n_devices`.
"""

from __future__ import annotations

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
    batch = keys.shape[0]
    state = jax.vmap(env.reset)(keys)
    carry = _Carry(
        state=state,
        policy_carry=jax.vmap(init_carry)(params),
        episode_return=jnp.zeros((batch,), state.reward.dtype),
        length=jnp.zeros((batch,), jnp.int32),
        diverged=jnp.zeros((batch,), bool),
        done=jnp.zeros((batch,), bool),
        obs_stats=normalizer.init(state.obs.shape[-1], state.obs.dtype),
    )

    def one_step(c: _Carry, _) -> tuple[_Carry, None]:
        alive = ~c.done
        policy_carry, action = jax.vmap(act)(params, c.policy_carry, c.state.obs)
        new = jax.vmap(env.step)(c.state, action)
        c = _Carry(
            state=select(alive, new, c.state),
            policy_carry=select(alive, policy_carry, c.policy_carry),
            episode_return=c.episode_return + jnp.where(alive, new.reward, 0.0),
            length=c.length + alive.astype(jnp.int32),
            diverged=c.diverged | (alive & (new.metrics["diverged"] > 0)),
            done=c.done | new.done,
            obs_stats=normalizer.merge(c.obs_stats, normalizer.from_batch(c.state.obs, alive)),
        )
        return c, None

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
    )


def _evaluate_local(
    env: Env,
    act: ActFn,
    init_carry: InitCarryFn,
    candidate_fn: CandidateFn,
    theta: PyTree,
    key: PRNGKeyArray,
    indices: Int[Array, "n_chunks chunk"],
    horizon: int,
    block: int | None,
) -> Outcome:
    def eval_chunk(idx: Int[Array, " chunk"]) -> Outcome:
        params, keys = jax.vmap(candidate_fn, in_axes=(None, 0, None))(theta, idx, key)
        return rollout(env, act, init_carry, params, keys, horizon, block)

    per_chunk = jax.lax.map(eval_chunk, indices)
    return Outcome(
        episode_return=per_chunk.episode_return.reshape(-1),
        length=per_chunk.length.reshape(-1),
        diverged=per_chunk.diverged.reshape(-1),
        obs_stats=normalizer.merge_stacked(per_chunk.obs_stats),
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
) -> Outcome:
    """Evaluates candidates `0..population-1` in chunks; results in candidate order.

    `theta` and `key` are shared by all candidates; `candidate_fn(theta, i, key)` makes
    candidate i's parameters and reset key. With `mesh` (one axis), the population is
    sharded across its devices.
    """
    if population % chunk:
        raise ValueError(f"population {population} is not divisible by chunk {chunk}")
    n_chunks = population // chunk
    if mesh is None or mesh.size == 1:
        indices = jnp.arange(population, dtype=jnp.int32).reshape(n_chunks, chunk)
        return _evaluate_local(env, act, init_carry, candidate_fn, theta, key, indices, horizon, block)

    n_dev = mesh.size
    if chunk % n_dev:
        raise ValueError(f"chunk {chunk} is not divisible by the {n_dev} devices of the mesh")
    (axis,) = mesh.axis_names
    local_chunk = chunk // n_dev
    # Device d evaluates candidates [d * population / n_dev, (d + 1) * population / n_dev).
    indices = jnp.arange(population, dtype=jnp.int32).reshape(n_dev, n_chunks, local_chunk)

    def per_device(theta, key, idx):
        out = _evaluate_local(env, act, init_carry, candidate_fn, theta, key, idx[0], horizon, block)
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
    )
