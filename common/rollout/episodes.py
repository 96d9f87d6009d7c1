"""Episodes of a batch in fixed shapes: time in `lax.scan`, finished members frozen.

Members that finish are frozen (their state is not advanced and they earn nothing),
never cut out, so a batch keeps its shape. With `block` set, time runs as a
`lax.while_loop` over blocks of `block` steps that stops once every member of the batch
is done; since finished members are frozen, the result equals the full scan. This is
the evaluation form of both pipelines (ES's noise-free policy, PPO+AMP's deterministic
walker, whose per-step figures come through `measure`) and the chunk of a population.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from common import normalizer
from common.envs.base import Env

Params = PyTree
Carry = PyTree
ActFn = Callable[[Params, Carry, Float[Array, " obs"]], tuple[Carry, Float[Array, " act"]]]
InitCarryFn = Callable[[Params], Carry]
# `measure(extra, state, new, alive, lived) -> (extra, increments)`: per-step figures of a
# batch from the state before a step, the state after it (not yet frozen), which members
# were alive for it and how many steps each had lived before it. The increments, a dict of
# [batch] arrays that the measure masks itself, are summed over the episode; `extra` is
# its own per-member carry.
MeasureFn = Callable[..., tuple[PyTree, dict[str, Float[Array, " batch"]]]]


class Outcome(eqx.Module):
    """Per-member results of a batch of episodes, and statistics of what they observed."""

    episode_return: Float[Array, " batch"]
    length: Int[Array, " batch"]
    diverged: Bool[Array, " batch"]
    obs_stats: normalizer.RunningStats
    # Per member, each of the env's scalar metrics summed over the steps it lived (the
    # reward terms, `reward/<name>`, sum to `episode_return`).
    metric_sums: dict[str, Float[Array, " batch"]]
    # Per member, the sums of a `measure`'s increments (empty without one).
    measure_sums: dict[str, Float[Array, " batch"]]


def select(mask: Bool[Array, " batch"], on_true: PyTree, on_false: PyTree) -> PyTree:
    """Per-member `where` over two batched pytrees (mask broadcast over trailing axes)."""

    def pick(a, b):
        m = mask.reshape(mask.shape + (1,) * (a.ndim - mask.ndim))
        return jnp.where(m, a, b)

    return jax.tree.map(pick, on_true, on_false)


class EpisodeBatch(eqx.Module):
    """The running state of a batch of episodes (`population` refills it slot by slot)."""

    state: Any
    policy_carry: Any
    episode_return: Float[Array, " batch"]
    length: Int[Array, " batch"]
    diverged: Bool[Array, " batch"]
    done: Bool[Array, " batch"]
    obs_stats: normalizer.RunningStats | None
    metric_sums: dict[str, Float[Array, " batch"]]
    measure_carry: Any = ()
    measure_sums: dict[str, Float[Array, " batch"]] | None = None


def start(env: Env, init_carry: InitCarryFn, params: Params | None, keys: PRNGKeyArray,
          measure: MeasureFn | None = None, measure_carry: PyTree = ()) -> EpisodeBatch:
    """Fresh episodes for a batch, with empty observation statistics and sums."""
    batch = keys.shape[0]
    state = jax.vmap(env.reset)(keys)
    policy_carry = (jax.vmap(lambda _: init_carry(None))(keys) if params is None
                    else jax.vmap(init_carry)(params))
    sums = {}
    if measure is not None:
        alive = jnp.ones((batch,), bool)
        shapes = jax.eval_shape(measure, measure_carry, state, state, alive, jnp.zeros((batch,), jnp.int32))[1]
        sums = {k: jnp.zeros(v.shape, v.dtype) for k, v in shapes.items()}
    return EpisodeBatch(
        state=state,
        policy_carry=policy_carry,
        episode_return=jnp.zeros((batch,), state.reward.dtype),
        length=jnp.zeros((batch,), jnp.int32),
        diverged=jnp.zeros((batch,), bool),
        done=jnp.zeros((batch,), bool),
        obs_stats=normalizer.init(state.obs.shape[-1], state.obs.dtype),
        metric_sums={k: jnp.zeros((batch,), state.reward.dtype) for k in state.metrics},
        measure_carry=measure_carry,
        measure_sums=sums,
    )


def advance(env: Env, act: ActFn, params: Params | None, c: EpisodeBatch, measure: MeasureFn | None = None) -> EpisodeBatch:
    """One step of every live member; finished members are frozen and earn nothing."""
    alive = ~c.done
    in_axes = (None if params is None else 0, 0, 0)
    policy_carry, action = jax.vmap(act, in_axes=in_axes)(params, c.policy_carry, c.state.obs)
    new = jax.vmap(env.step)(c.state, action)
    measure_carry, measure_sums = c.measure_carry, c.measure_sums
    if measure is not None:
        measure_carry, add = measure(c.measure_carry, c.state, new, alive, c.length)
        measure_sums = {k: v + add[k] for k, v in c.measure_sums.items()}
    return EpisodeBatch(
        state=select(alive, new, c.state),
        policy_carry=select(alive, policy_carry, c.policy_carry),
        episode_return=c.episode_return + jnp.where(alive, new.reward, 0.0),
        length=c.length + alive.astype(jnp.int32),
        diverged=c.diverged | (alive & (new.metrics["diverged"] > 0)),
        done=c.done | new.done,
        obs_stats=normalizer.merge(c.obs_stats, normalizer.from_batch(c.state.obs, alive)),
        metric_sums={k: v + jnp.where(alive, new.metrics[k], 0.0) for k, v in c.metric_sums.items()},
        measure_carry=measure_carry,
        measure_sums=measure_sums,
    )


def rollout(
    env: Env,
    act: ActFn,
    init_carry: InitCarryFn,
    params: Params | None,
    keys: PRNGKeyArray,
    horizon: int,
    block: int | None = None,
    measure: MeasureFn | None = None,
    measure_carry: PyTree = (),
) -> Outcome:
    """Runs one episode per member of a batch of `keys`, each frozen once it ends.

    Args:
      env: the task.
      act: `(params, carry, obs) -> (carry, action)` for one member; vmapped here.
      init_carry: the policy's carry at episode start, `(params) -> carry`.
      params: policy parameters batched on axis 0, or None for one policy that `act`
        closes over (it then gets None).
      keys: `[batch]` reset keys.
      horizon: steps per episode (static).
      block: if set, stop early once all members are done, checking every `block`
        steps; must divide `horizon`.
      measure, measure_carry: per-step figures to sum (`MeasureFn`) and their carry.
    """
    if block is not None and (block < 1 or horizon % block):
        raise ValueError(f"early-exit block {block} must be >= 1 and divide horizon {horizon}")
    carry = start(env, init_carry, params, keys, measure, measure_carry)

    def one_step(c: EpisodeBatch, _) -> tuple[EpisodeBatch, None]:
        return advance(env, act, params, c, measure), None

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
    return outcome(carry)


def outcome(c: EpisodeBatch) -> Outcome:
    return Outcome(episode_return=c.episode_return, length=c.length, diverged=c.diverged, obs_stats=c.obs_stats,
                   metric_sums=c.metric_sums, measure_sums=c.measure_sums)
