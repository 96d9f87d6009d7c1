"""Named reward terms of the biped walk, each a small pure function of one step: `TERMS`.

`TERMS` is the one registry: name -> (function of the step and the task's settings,
default weight); the names a config may weigh and the default weights derive from it.
The env weighs each term by `reward_scales[name] x dt` (weights are per second of
simulated time, so they keep their meaning if the control rate changes) and logs the
weighted value as `reward/<name>`. Penalties are positive here and get negative weights.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Protocol

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float


class Settings(Protocol):
    """The task's settings the terms read (`BipedWalkConfig` has them)."""

    tracking_sigma: float
    soft_joint_limit: float
    base_height_target: float
    feet_air_time_target: float
    command_deadband: float
    max_contact_force: float


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


def tracking_lin_vel(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    error = jnp.sum(jnp.square(q.command[:2] - q.base_lin_vel[:2]))
    return jnp.exp(-error / c.tracking_sigma)


def tracking_ang_vel(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    return jnp.exp(-jnp.square(q.command[2] - q.base_ang_vel[2]) / c.tracking_sigma)


def torque(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    return jnp.sum(jnp.square(q.torque))


def action_rate(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    return jnp.sum(jnp.square(q.action - q.last_action))


def joint_limit(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    """How far joints are past the central `soft_joint_limit` fraction of their range (rad)."""
    mid = 0.5 * (q.joint_lower + q.joint_upper)
    half = 0.5 * c.soft_joint_limit * (q.joint_upper - q.joint_lower)
    over = jnp.maximum(q.joint_pos - (mid + half), 0.0) + jnp.maximum((mid - half) - q.joint_pos, 0.0)
    return jnp.sum(over)


def base_height(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    return jnp.square(q.base_height - c.base_height_target)


def orientation(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    return jnp.sum(jnp.square(q.projected_gravity[:2]))


def feet_air_time(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    """Paid at touch-down: air time beyond `feet_air_time_target` earns, shorter steps cost.

    Nothing is paid while the command asks to stand still, so standing is not punished.
    """
    paid = jnp.sum(jnp.where(q.first_contact, q.air_time - c.feet_air_time_target, 0.0))
    moving = jnp.linalg.norm(q.command[:2]) > c.command_deadband
    return jnp.where(moving, paid, 0.0)


def foot_contact_force(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    """Normal force beyond `max_contact_force` (N): stamping costs, standing does not."""
    return jnp.sum(jnp.maximum(q.contact_force - c.max_contact_force, 0.0))


def joint_velocity(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    return jnp.sum(jnp.square(q.joint_vel))


def power(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    """Mechanical power of the motors (W): the sum of |torque x joint velocity|."""
    return jnp.sum(jnp.abs(q.torque * q.joint_vel))


def termination(q: StepQuantities, c: Settings) -> Float[Array, ""]:
    """1 on the step that falls (time-outs are not terminations)."""
    return q.terminated.astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class Term:
    """A reward term: its function of one step and the task's settings, and its default
    weight per second of simulated time (0: off, not computed or logged)."""

    fn: Callable[[StepQuantities, Settings], Float[Array, ""]]
    weight: float


# The registry, in the order the terms are summed and logged; the AMP style reward is
# added by the trainer.
TERMS: dict[str, Term] = {
    "tracking_lin_vel": Term(tracking_lin_vel, 1.5),
    "tracking_ang_vel": Term(tracking_ang_vel, 0.75),
    "torque": Term(torque, -1e-4),
    "action_rate": Term(action_rate, -0.01),
    "joint_limit": Term(joint_limit, -2.0),
    "base_height": Term(base_height, -20.0),
    "orientation": Term(orientation, -2.0),
    "feet_air_time": Term(feet_air_time, 1.0),
    "foot_contact_force": Term(foot_contact_force, -0.01),
    "joint_velocity": Term(joint_velocity, -1e-4),
    # Off by default; -2e-3 costs 0.33 per second at the 167 W of configs/ppo_amp_cpu.py's
    # walk (BENCHMARKS.md, the robustness suite).
    "power": Term(power, 0.0),
    "termination": Term(termination, -50.0),
}
