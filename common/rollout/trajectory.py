"""Recorded play of one policy: every env of a batch steps `steps` times and keeps a record.

The form behind videos (`common.video`) and the export check (`experiments.export`):
like the training form, an episode that ends is replaced by a fresh one (its policy
carry restarts too), so a clip of any length shows the policy acting; unlike it, the
step records what a renderer or an exported policy needs: the generalized positions
shown, the observation and the policy's carry the action came from, the action, and
whether the episode ended there.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, PRNGKeyArray, PyTree

from common.envs.base import Env
from common.rollout.episodes import ActFn, InitCarryFn, Params, select


class Trajectory(eqx.Module):
    """`[steps, batch, ...]` records; step t's qpos, obs and carry are those before action t."""

    qpos: Float[Array, "steps batch nq"]
    obs: Float[Array, "steps batch obs"]
    carry: PyTree
    action: Float[Array, "steps batch act"]
    reward: Float[Array, "steps batch"]
    # The episode ended with this step; step t + 1 starts a fresh one.
    done: Bool[Array, "steps batch"]


def record(env: Env, act: ActFn, init_carry: InitCarryFn, params: Params, key: PRNGKeyArray,
           batch: int, steps: int) -> Trajectory:
    """Plays `batch` envs for `steps` steps from episodes drawn from `key`.

    `act` and `init_carry` are the episode form's (`common.rollout.rollout`): one member's
    `(params, carry, obs) -> (carry, action)` and `(params) -> carry`; here one `params`
    (any pytree, None included) serves the whole batch. Resets after step t draw from
    `fold_in(key, t + 1)`.
    """
    start_keys = jax.random.split(key, batch)
    state = jax.vmap(env.reset)(start_keys)
    in_axes = (None, 0, 0)
    init = jax.vmap(lambda _: init_carry(params))(start_keys)

    def one_step(c, t):
        state, carry = c
        new_carry, action = jax.vmap(act, in_axes=in_axes)(params, carry, state.obs)
        new = jax.vmap(env.step)(state, action)
        fresh = jax.vmap(env.reset)(jax.random.split(jax.random.fold_in(key, t + 1), batch))
        out = Trajectory(qpos=state.data.qpos, obs=state.obs, carry=carry, action=action, reward=new.reward,
                         done=new.done)
        kept = (select(new.done, fresh, new), select(new.done, init, new_carry))
        return kept, out

    _, trajectory = jax.lax.scan(one_step, (state, init), jnp.arange(steps))
    return trajectory
