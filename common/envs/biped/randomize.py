"""Domain randomisation of the biped task, drawn per episode inside the jitted step.

Physics parameters (floor friction, link masses, joint damping) live in the episode's `Randomization` and are written into the MJX model on every step,
so a vmapped batch simulates a different robot per member without rebuilding anything.
Action latency is a ring of recent actions; pushes are a timed external force on the
base. An evaluation may add a `Stress` (weaker motors, more sensor noise, other pushes)
per episode, so every scenario of `ppo_amp.robustness` runs in one program.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray
from mujoco import mjx

from common.envs.biped.config import BipedWalkConfig


class Randomization(eqx.Module):
    """One episode's draw; the nominal robot is all ones, zero latency."""

    friction: Float[Array, ""]
    mass_scale: Float[Array, " nbody"]
    damping_scale: Float[Array, " nv"]
    latency: Int[Array, ""]


class Stress(eqx.Module):
    """Multipliers an evaluation sets per episode (`ppo_amp.robustness`): of the actuators'
    effort limits, of the config's observation noise levels and of its push force.
    Training states carry none, so their checkpoints keep their layout."""

    effort_scale: Float[Array, ""]
    noise_scale: Float[Array, ""]
    push_scale: Float[Array, ""]


def _uniform(key: PRNGKeyArray, bounds: tuple[float, float], shape=()) -> Array:
    return jax.random.uniform(key, shape, minval=bounds[0], maxval=bounds[1])


def draw(key: PRNGKeyArray, c: BipedWalkConfig, nbody: int, nv: int, nominal_friction: float) -> Randomization:
    """Draws an episode's physics; with `c.randomize` off, the MJCF's own values."""
    if not c.randomize:
        return Randomization(
            friction=jnp.asarray(nominal_friction, jnp.float32),
            mass_scale=jnp.ones((nbody,)),
            damping_scale=jnp.ones((nv,)),
            latency=jnp.zeros((), jnp.int32),
        )
    k_f, k_m, k_d, k_l = jax.random.split(key, 4)
    # The free joint's six dofs have no damping to scale; their entries are harmless.
    return Randomization(
        friction=_uniform(k_f, c.friction_range),
        mass_scale=_uniform(k_m, c.mass_scale_range, (nbody,)),
        damping_scale=_uniform(k_d, c.damping_scale_range, (nv,)),
        latency=jax.random.randint(k_l, (), c.latency_steps[0], c.latency_steps[1] + 1),
    )


def apply(model: mjx.Model, r: Randomization, stress: Stress | None = None) -> mjx.Model:
    """The nominal `model` with this episode's friction, masses and damping (and effort
    limits, under `stress`).

    Inertias scale with their body's mass (a uniformly denser link). Friction replaces
    the sliding coefficient of every explicit contact pair and of every geom, which
    covers both contact modes (pairs, or the feet and floor colliding implicitly).
    """
    pair_friction = model.pair_friction.at[:, :2].set(r.friction) if model.npair else model.pair_friction
    if stress is not None:
        model = model.replace(actuator_forcerange=model.actuator_forcerange * stress.effort_scale)
    return model.replace(
        body_mass=model.body_mass * r.mass_scale,
        body_inertia=model.body_inertia * r.mass_scale[:, None],
        dof_damping=model.dof_damping * r.damping_scale,
        geom_friction=model.geom_friction.at[:, 0].set(r.friction),
        pair_friction=pair_friction,
    )


def delay(
    buffer: Float[Array, "slots act"], action: Float[Array, " act"], latency: Int[Array, ""]
) -> tuple[Float[Array, "slots act"], Float[Array, " act"]]:
    """Pushes `action` into the ring of recent actions; returns it and the one `latency` steps old.

    The ring starts filled with zeros (the default pose), so a delayed action at the
    start of an episode holds the default pose.
    """
    buffer = jnp.concatenate([action[None], buffer[:-1]], axis=0)
    return buffer, buffer[latency]


class Push(eqx.Module):
    """A push: `force` (world frame, N) on the base while `remaining` > 0 steps."""

    countdown: Int[Array, ""]
    remaining: Int[Array, ""]
    force: Float[Array, "3"]


def push_init(key: PRNGKeyArray, c: BipedWalkConfig) -> Push:
    lo, hi = c.push_interval_steps
    return Push(
        countdown=jax.random.randint(key, (), lo, hi + 1),
        remaining=jnp.zeros((), jnp.int32),
        force=jnp.zeros((3,)),
    )


def push_advance(key: PRNGKeyArray, c: BipedWalkConfig, p: Push, scale: Float[Array, ""] | float = 1.0,
                 heading: Float[Array, ""] | float = 0.0) -> Push:
    """One policy step of the push schedule: wait `countdown` steps, then push for a while.

    The magnitude is `scale` x uniform in `push_force_range`; the direction is uniform
    in the horizontal plane (`push_direction="any"`), or to the left or right of the
    base's `heading` (yaw, rad) at the push's start (`"lateral"`). A new wait is drawn
    when a push starts.
    """
    if not c.randomize or c.push_duration_steps == 0 or c.push_force_range[1] <= 0.0:
        return p
    k_mag, k_dir, k_wait = jax.random.split(key, 3)
    countdown = p.countdown - 1
    start = countdown <= 0
    if c.push_direction == "lateral":
        angle = heading + jnp.where(jax.random.bernoulli(k_dir), 0.5, -0.5) * jnp.pi
    else:
        angle = jax.random.uniform(k_dir, (), minval=-jnp.pi, maxval=jnp.pi)
    magnitude = scale * _uniform(k_mag, c.push_force_range)
    new_force = magnitude * jnp.stack([jnp.cos(angle), jnp.sin(angle), 0.0])
    lo, hi = c.push_interval_steps
    remaining = jnp.where(start, c.push_duration_steps, jnp.maximum(p.remaining - 1, 0))
    force = jnp.where(start, new_force, jnp.where(remaining > 0, p.force, 0.0))
    countdown = jnp.where(start, jax.random.randint(k_wait, (), lo, hi + 1), countdown)
    return Push(countdown=countdown, remaining=remaining, force=force)


def obs_noise_levels(c: BipedWalkConfig) -> dict[str, float]:
    """Uniform noise half-widths per observation term, in the observation's own scale
    (times the episode's `Stress.noise_scale` where it has one)."""
    if not c.randomize:
        return {}
    s = c.obs_noise_scale
    return {
        "base_ang_vel": s * c.noise_ang_vel * c.ang_vel_scale,
        "projected_gravity": s * c.noise_gravity,
        "joint_pos": s * c.noise_joint_pos,
        "joint_vel": s * c.noise_joint_vel * c.joint_vel_scale,
    }
