"""Named reward terms of the biped walk, each a small pure function of one step.

The env weighs each term by `reward_scales[name] x dt` (weights are per second of
simulated time, so they keep their meaning if the control rate changes) and logs the
weighted value as `reward/<name>`. Penalties are positive here and get negative weights.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


class StepQuantities(eqx.Module):
    """What the reward terms read from one policy step (base-frame velocities)."""

    command: Float[Array, "3"]
    base_lin_vel: Float[Array, "3"]
    base_ang_vel: Float[Array, "3"]
    projected_gravity: Float[Array, "3"]
    base_height: Float[Array, ""]
    joint_pos: Float[Array, " joints"]
    joint_vel: Float[Array, " joints"]
    joint_lower: Float[Array, " joints"]
    joint_upper: Float[Array, " joints"]
    torque: Float[Array, " joints"]
    action: Float[Array, " joints"]
    last_action: Float[Array, " joints"]
    contact_force: Float[Array, "2"]
    first_contact: Bool[Array, "2"]
    air_time: Float[Array, "2"]
    terminated: Bool[Array, ""]


def tracking_lin_vel(q: StepQuantities, sigma: float) -> Float[Array, ""]:
    error = jnp.sum(jnp.square(q.command[:2] - q.base_lin_vel[:2]))
    return jnp.exp(-error / sigma)


def tracking_ang_vel(q: StepQuantities, sigma: float) -> Float[Array, ""]:
    return jnp.exp(-jnp.square(q.command[2] - q.base_ang_vel[2]) / sigma)


def torque(q: StepQuantities) -> Float[Array, ""]:
    return jnp.sum(jnp.square(q.torque))


def action_rate(q: StepQuantities) -> Float[Array, ""]:
    return jnp.sum(jnp.square(q.action - q.last_action))


def joint_limit(q: StepQuantities, soft: float) -> Float[Array, ""]:
    """How far joints are past the central `soft` fraction of their range (rad)."""
    mid = 0.5 * (q.joint_lower + q.joint_upper)
    half = 0.5 * soft * (q.joint_upper - q.joint_lower)
    over = jnp.maximum(q.joint_pos - (mid + half), 0.0) + jnp.maximum((mid - half) - q.joint_pos, 0.0)
    return jnp.sum(over)


def base_height(q: StepQuantities, target: float) -> Float[Array, ""]:
    return jnp.square(q.base_height - target)


def orientation(q: StepQuantities) -> Float[Array, ""]:
    return jnp.sum(jnp.square(q.projected_gravity[:2]))


def feet_air_time(q: StepQuantities, target: float, deadband: float) -> Float[Array, ""]:
    """Paid at touch-down: air time beyond `target` earns, shorter steps cost.

    Nothing is paid while the command asks to stand still, so standing is not punished.
    """
    paid = jnp.sum(jnp.where(q.first_contact, q.air_time - target, 0.0))
    moving = jnp.linalg.norm(q.command[:2]) > deadband
    return jnp.where(moving, paid, 0.0)


def foot_contact_force(q: StepQuantities, max_force: float) -> Float[Array, ""]:
    """Normal force beyond `max_force` (N): stamping costs, standing does not."""
    return jnp.sum(jnp.maximum(q.contact_force - max_force, 0.0))


def joint_velocity(q: StepQuantities) -> Float[Array, ""]:
    return jnp.sum(jnp.square(q.joint_vel))


def power(q: StepQuantities) -> Float[Array, ""]:
    """Mechanical power of the motors (W): the sum of |torque x joint velocity|."""
    return jnp.sum(jnp.abs(q.torque * q.joint_vel))


def termination(q: StepQuantities) -> Float[Array, ""]:
    """1 on the step that falls (time-outs are not terminations)."""
    return q.terminated.astype(jnp.float32)
