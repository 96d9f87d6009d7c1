"""The auto-reset training rollout: every env steps `length` times, finished episodes restart.

This is the on-policy form (PPO+AMP): each env of the batch keeps stepping across
episode ends, a finished episode is replaced by a fresh one from that step's reset key,
and the rollout returns the batch's state to continue from next time, with its running
episode return and length, and one record per step. What a step records besides the
common fields comes from the caller's `policy` (before the env step) and `record`
(after it, before the reset), which also carries its own per-env state across steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from common.envs.base import State
from common.rollout.episodes import select

# `policy(state, keys) -> (action, aux)` for the whole batch, from its `[N]` action keys;
# `aux` (log-probabilities, values, ...) goes into the step's record.
PolicyFn = Callable[[State, PRNGKeyArray], tuple[Float[Array, "N act"], PyTree]]
# `record(extra, state, new, fresh, done) -> (extra, out)`: what the caller keeps of a
# step, from the state before it, the state after it, the fresh episodes that replace
# the finished ones (`done`); `extra` is its own per-env carry.
RecordFn = Callable[[PyTree, State, State, State, Bool[Array, " N"]], tuple[PyTree, PyTree]]
ResetFn = Callable[[PRNGKeyArray], State]


class Running(eqx.Module):
    """What carries over between rollouts: the envs, the caller's carry and the episodes so far."""

    state: State
    extra: Any
    episode_return: Float[Array, " N"]
    episode_length: Int[Array, " N"]


class Step(eqx.Module):
    """One step of every env (the scan stacks a leading time axis)."""

    obs: Float[Array, "N obs"]
    reward: Float[Array, " N"]
    done: Bool[Array, " N"]
    # The return and length of the episodes that ended at this step (0 elsewhere).
    finished_return: Float[Array, " N"]
    finished_length: Float[Array, " N"]
    metrics: dict[str, Array]
    aux: Any
    out: Any


def auto_reset(
    step_fn: Callable[[State, Float[Array, " act"]], State],
    reset: ResetFn,
    policy: PolicyFn,
    record: RecordFn,
    running: Running,
    act_keys: PRNGKeyArray,
    reset_keys: PRNGKeyArray,
) -> tuple[Running, Step]:
    """Steps every env once per row of the `[T, N]` keys; returns the state to go on from and the T steps.

    `step_fn` and `reset` are one env's (vmapped here), e.g. `env.step` and a reset at
    the current curriculum level.
    """

    def one_step(r: Running, keys) -> tuple[Running, Step]:
        k_act, k_reset = keys
        action, aux = policy(r.state, k_act)
        new = jax.vmap(step_fn)(r.state, action)
        done = new.done
        fresh = jax.vmap(reset)(k_reset)
        extra, out = record(r.extra, r.state, new, fresh, done)
        episode_return = r.episode_return + new.reward
        episode_length = r.episode_length + 1
        step = Step(
            obs=r.state.obs, reward=new.reward, done=done,
            finished_return=jnp.where(done, episode_return, 0.0),
            finished_length=jnp.where(done, episode_length, 0).astype(jnp.float32),
            metrics=new.metrics, aux=aux, out=out,
        )
        kept = Running(state=select(done, fresh, new), extra=extra,
                       episode_return=jnp.where(done, 0.0, episode_return),
                       episode_length=jnp.where(done, 0, episode_length))
        return kept, step

    return jax.lax.scan(one_step, running, (act_keys, reset_keys))
