"""Deterministic evaluation of a walking policy at a fixed command under nominal physics.

Each episode starts standing (default pose, random heading) and runs `steps` policy
steps with the command held (`common.rollout`'s episode form); an episode that falls is
frozen from then on and counted in `falls`. Figures (all means over the episodes' steps before any fall):

  tracking_mae       |planar base velocity - commanded (vx, vy)| in m/s, base frame, with
                     the velocity averaged over the last `window_steps` steps (0.5 s
                     covers a gait cycle, so the figure measures how fast the robot
                     walks rather than the sway inside each step), after the first
                     `warmup_steps` (1 s to get going from a standstill)
  tracking_mae_instant  the same with the instantaneous velocity, every step
  mean_speed         forward base velocity (base frame x), m/s
  heading_drift      per episode |mean base angular velocity about its z axis| (the
                     sway of a gait cancels, a turn does not), averaged, rad/s: a walker
                     told to go straight that drifts walks in circles
  mean_abs_torque    |actuator force| over joints, N m
  energy_per_meter   sum of |torque x joint velocity| dt over all episodes divided by the
                     planar distance the base travelled, J/m
  eval_return, eval_length   the task return (no style reward) and the episode length
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from common import normalizer, quaternion, rollout
from common.envs.base import State
from common.envs.biped.walk import BipedWalk
from ppo_amp.networks import Actor


def step_figures(
    velocity_ring: Float[Array, "episodes window 2"],
    state: State,
    next_state: State,
    alive: Bool[Array, " episodes"],
    lived: Int[Array, " episodes"],
    *,
    command: Float[Array, " 3"],
    dt: float,
    warmup: int,
) -> tuple[Float[Array, "episodes window 2"], dict[str, Float[Array, " episodes"]]]:
    """One step's increments of `episode_sums`' sums, and the updated velocity ring.

    The `common.rollout` measure of `episode_sums`: `state` is the batch before the
    step, `next_state` after it (not yet frozen), `alive` the members the step counts
    for and `lived` how many steps each had lived before it. Reads only `data.qpos`,
    `data.qvel`, `data.actuator_force` and `info["terminated"]`.
    """
    nxt = next_state
    rot = jax.vmap(quaternion.to_matrix)(nxt.data.qpos[:, 3:7])
    v_base = jnp.einsum("nji,nj->ni", rot, nxt.data.qvel[:, :3])
    ring = jnp.concatenate([velocity_ring[:, 1:], v_base[:, None, :2]], axis=1)
    v_avg = jnp.mean(ring, axis=1)
    # A live member has lived exactly as many steps as the episode has run.
    counted = alive & (lived >= warmup)
    power = jnp.sum(jnp.abs(nxt.data.actuator_force * nxt.data.qvel[:, 6:]), axis=-1)
    planar = jnp.linalg.norm(nxt.data.qpos[:, :2] - state.data.qpos[:, :2], axis=-1)
    f = lambda m, x: jnp.where(m, x, 0.0)
    add = {
        "counted_steps": f(counted, 1.0),
        "tracking": f(counted, jnp.linalg.norm(v_avg - command[:2], axis=-1)),
        "tracking_instant": f(alive, jnp.linalg.norm(v_base[:, :2] - command[:2], axis=-1)),
        "speed": f(alive, v_base[:, 0]),
        "yaw_rate": f(alive, nxt.data.qvel[:, 5]),
        "torque": f(alive, jnp.mean(jnp.abs(nxt.data.actuator_force), axis=-1)),
        "energy": f(alive, power * dt),
        "distance": f(alive, planar),
        # At most once per episode: the member is frozen after its last step.
        "fell": f(alive & nxt.info["terminated"], 1.0),
    }
    # A frozen member's ring stays as it was at its last live step.
    return jnp.where(alive[:, None, None], ring, velocity_ring), add


def episode_sums(
    env: BipedWalk,
    actor: Actor,
    obs_stats: normalizer.RunningStats,
    keys: PRNGKeyArray,
    *,
    steps: int,
    obs_clip: float,
    warmup_steps: int = 50,
    window_steps: int = 25,
    extra: Callable[[State, State, Bool[Array, " episodes"]], dict[str, Array]] | None = None,
) -> dict[str, Float[Array, " episodes"]]:
    """Rolls `len(keys)` episodes of the deterministic policy; per-episode sums for `summarize`.

    `env` must be built with `fixed_command` set and (for nominal physics)
    `randomize=False`. Episodes are independent, so a batch may be split over devices
    and the sums concatenated. `extra(state, next_state, alive)` adds per-step figures of
    the caller's (masked by the caller) to the sums.
    """
    if env.config.fixed_command is None:
        raise ValueError("evaluate: build the env with fixed_command=(vx, vy, yaw rate)")
    n = keys.shape[0]
    command = jnp.asarray(env.config.fixed_command, jnp.float32)
    dt = env.dt
    warmup = min(warmup_steps, max(steps - 1, 0))

    def act(_, carry, obs):
        return carry, actor.deterministic(normalizer.normalize(obs_stats, obs, clip=obs_clip))

    def measure(velocity_ring, s: State, nxt: State, alive, lived):
        ring, add = step_figures(velocity_ring, s, nxt, alive, lived, command=command, dt=dt, warmup=warmup)
        if extra is not None:
            add.update(extra(s, nxt, alive))
        return ring, add

    out = rollout.rollout(env, act, lambda _: (), None, keys, steps, measure=measure,
                          measure_carry=jnp.zeros((n, window_steps, 2)))
    return {**out.measure_sums, "alive_steps": out.length.astype(jnp.float32), "return": out.episode_return}


def summarize(sums: dict[str, Float[Array, " episodes"]]) -> dict[str, Float[Array, ""]]:
    """The figures of the module docstring from `episode_sums`' per-episode sums."""
    n = sums["fell"].shape[0]
    total = {k: jnp.sum(v) for k, v in sums.items()}
    per_step = lambda k, d: total[k] / jnp.maximum(total[d], 1.0)
    return {
        "episodes": jnp.asarray(n, jnp.float32),
        "falls": total["fell"],
        "tracking_mae": per_step("tracking", "counted_steps"),
        "tracking_mae_instant": per_step("tracking_instant", "alive_steps"),
        "mean_speed": per_step("speed", "alive_steps"),
        "heading_drift": jnp.mean(jnp.abs(sums["yaw_rate"]) / jnp.maximum(sums["alive_steps"], 1.0)),
        "mean_abs_torque": per_step("torque", "alive_steps"),
        "energy_per_meter": total["energy"] / jnp.maximum(total["distance"], 1e-6),
        "eval_return": total["return"] / n,
        "eval_length": total["alive_steps"] / n,
    }
