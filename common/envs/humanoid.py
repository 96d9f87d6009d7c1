"""Gym-style humanoid locomotion task (`"humanoid"`), defined as Gymnasium Humanoid-v4.

Observation (376 values for the bundled model): qpos[2:], qvel, cinert, cvel,
qfrc_actuator and cfrc_ext of every body (world included), in that order, read after the
step as Gymnasium reads them. Reward: 1.25 x centre-of-mass x-velocity + 5 (healthy)
- 0.1 x sum(action^2). The episode ends when the torso height qpos[2] leaves
(1.0, 2.0), when the physics guard rejects a step (that step earns nothing), or after
`episode_length` steps.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import mujoco
from jaxtyping import Array, Float, Int, PRNGKeyArray
from mujoco import mjx

from common import contact, physics, robots
from common.envs.base import Env, State


_LEG = ("thigh1", "shin1", "foot")


@dataclasses.dataclass(frozen=True)
class HumanoidConfig:
    """Every field can be overridden through `common.envs.make("humanoid", **overrides)`."""

    xml_path: str = robots.HUMANOID_XML
    physics: str = "fast"
    impl: str = "jax"
    solver_iterations: int | None = None
    ls_iterations: int | None = None
    # Override the profile's integrator ("euler", "rk4", "implicitfast") and contacts
    # ("all"; "pairs": contact_geoms x floor and self_pairs; "feet": contact_geoms x floor;
    # "floor": every geom x floor and self_pairs; "self": contact_geoms x floor and every
    # robot pair the MJCF's own filter collides); None keeps it.
    integrator: str | None = None
    contacts: str | None = None
    # MJX keeps at most this many contacts of each contact dimension (condim), the
    # deepest (None: all); the feet's floor contacts are in a group of their own for the
    # bundled humanoid (condim 3, 2 rows), so a cap below their rows would drop some. The
    # `self` mode's 109 pairs cost ~4x the env step; 8 kept every touching pair of 64
    # random poses at ~0.6x the `pairs` speed (BENCHMARKS.md, "The arms passed through the
    # chest"). The JAX implementation's cap: MuJoCo C ignores it.
    max_contact_points: int | None = None
    contact_geoms: tuple[str, ...] = ("right_foot", "left_foot")
    floor_geom: str = "floor"
    # Where a gait's legs meet each other or the butt. Without them a policy learns to
    # swing a leg through the other or a foot through the butt (measured: a walk worth
    # 730 under feet-only contacts scores 411 under Gymnasium's every-geom contacts).
    self_pairs: tuple[tuple[str, str], ...] = (
        *((f"left_{a}", f"right_{b}") for a in _LEG for b in _LEG),
        *(("butt", f"{side}_{part}") for side in ("left", "right") for part in ("shin1", "foot")),
    )
    frame_skip: int = 5
    episode_length: int = 1000
    forward_reward_weight: float = 1.25
    healthy_reward: float = 5.0
    ctrl_cost_weight: float = 0.1
    healthy_z_min: float = 1.0
    healthy_z_max: float = 2.0
    reset_noise_scale: float = 1e-2
    # Speeds (m/s or rad/s) no humanoid reaches without a numerical blow-up.
    max_qvel: float = 100.0

    def load_mj_model(self) -> mujoco.MjModel:
        """The MuJoCo C model this config simulates (profile and overrides applied)."""
        return robots.load_model(
            self.xml_path,
            self.physics,
            contact_geoms=self.contact_geoms,
            floor_geom=self.floor_geom,
            self_pairs=self.self_pairs,
            solver_iterations=self.solver_iterations,
            ls_iterations=self.ls_iterations,
            integrator=self.integrator,
            contacts=self.contacts,
            max_contact_points=self.max_contact_points,
            sensors=contact.add_wrench_sensors,
        )


class Assist(eqx.Module):
    """A training curriculum's hand on the torso (Yu, Turk & Liu 2018, "Learning symmetric and
    low-energy locomotion"): a spring-damper, applied at the torso's centre of mass, that
    lifts it back to a height (the env's `stand_height`: standing on straight legs, feet
    on the floor) and turns it back upright, while episodes end after `horizon` steps, so that
    held-up episodes do not spend the env-step budget.

    At `strength` 1 a torso 0.1 m below that height is lifted by the body's weight (a body
    standing tall carries itself), and a tilt of angle a meets a torque of sin(a) x the
    body's weight at 1 m (gravity's toppling torque on the whole body standing). The
    lift's damper is critical for the body's mass, the turn's for the body's mass at 0.3
    m; the damper reads the previous substep's angular velocity, stable up to strength ~1.3
    (measured in MuJoCo C), so configs keep it at most 1.
    """

    strength: Float[Array, ""]
    horizon: Int[Array, ""]

    def wrenches(self, model: mjx.Model, data: mjx.Data, body: int, height: float) -> Float[Array, "nbody 6"]:
        """`xfrc_applied`: the force and torque (world frame) on `body`, held toward `height`
        and upright; none elsewhere."""
        mass = jnp.sum(model.body_mass)
        weight = -mass * model.opt.gravity[2]
        lift_k = weight / 0.1
        lift = lift_k * (height - data.qpos[2]) - 2.0 * jnp.sqrt(lift_k * mass) * data.qvel[2]
        up = data.xmat[body][:, 2]
        # |up x z| = sin(tilt), along the axis that turns up back onto z; yaw is left free.
        turn_k = weight * 1.0
        spin = data.cvel[body, :3] * jnp.array([1.0, 1.0, 0.0])
        torque = turn_k * jnp.cross(up, jnp.array([0.0, 0.0, 1.0])) - 2.0 * jnp.sqrt(turn_k * mass * 0.09) * spin
        force = jnp.array([0.0, 0.0, 1.0]) * jnp.clip(lift, -2.0 * weight, 2.0 * weight)
        wrench = self.strength * jnp.concatenate([force, torque])
        return jnp.zeros_like(data.xfrc_applied).at[body].set(wrench)


def _mass_center_x(model: mjx.Model, data: mjx.Data) -> Float[Array, ""]:
    mass = model.body_mass
    return jnp.sum(mass * data.xipos[:, 0]) / jnp.sum(mass)


def torso_tilt(qpos: Float[Array, " nq"]) -> Float[Array, ""]:
    """1 - the z component of the torso's up axis: 0 upright, 1 lying, 2 upside down."""
    w, x, y, z = qpos[3], qpos[4], qpos[5], qpos[6]
    return 2.0 * (x * x + y * y) / (w * w + x * x + y * y + z * z)


def observe(model: mjx.Model, data: mjx.Data, wrenches: contact.WrenchSensors) -> Float[Array, " obs"]:
    """Gymnasium Humanoid-v4's observation, from public fields and contact sensors only, so
    that every MJX implementation builds it (MJX's step leaves `cfrc_ext` empty, and
    `mjx.rne_postconstraint`, which fills it, runs on JAX alone)."""
    return jnp.concatenate([
        data.qpos[2:],
        data.qvel,
        contact.com_inertia(model, data).ravel(),
        data.cvel.ravel(),
        data.qfrc_actuator,
        wrenches.external_wrenches(model, data).ravel(),
    ])


class Humanoid(Env):
    """The `"humanoid"` task. Build it with `common.envs.make("humanoid", ...)`."""

    model: mjx.Model
    config: HumanoidConfig = eqx.field(static=True)
    # Where the contact sensors that `observe` reads sit in `sensordata`.
    wrenches: contact.WrenchSensors = eqx.field(static=True)
    # The body the free root joint moves: where the assist pushes.
    root_body: int = eqx.field(static=True)
    # The root's height with the model's default pose lowered onto the floor (its feet
    # touching): where the assist holds the torso.
    stand_height: float = eqx.field(static=True)
    # A training curriculum's torso height below which an episode ends, in place of
    # `config.healthy_z_min` (an array, so it may change between iterations without a
    # compile); evaluation envs leave it None and end episodes where Humanoid-v4 does.
    fall_height: Float[Array, ""] | None = None
    # A training curriculum's hand on the torso; evaluation envs leave it None.
    assist: Assist | None = None

    def with_fall_height(self, height: Float[Array, ""]) -> Humanoid:
        """This env, its episodes ending where the torso sinks below `height`."""
        return eqx.tree_at(lambda e: e.fall_height, self, jnp.asarray(height, jnp.float32),
                           is_leaf=lambda x: x is None)

    def with_assist(self, strength: Float[Array, ""], horizon: Int[Array, ""]) -> Humanoid:
        """This env with the torso held at `strength` and episodes capped at `horizon` steps."""
        assist = Assist(jnp.asarray(strength, jnp.float32), jnp.asarray(horizon, jnp.int32))
        return eqx.tree_at(lambda e: e.assist, self, assist, is_leaf=lambda x: x is None)

    @property
    def observation_size(self) -> int:
        nbody = self.model.nbody
        return (self.model.nq - 2) + 2 * self.model.nv + nbody * (10 + 6 + 6)

    @property
    def action_size(self) -> int:
        return self.model.nu

    def reset(self, key: PRNGKeyArray) -> State:
        c = self.config
        key_qpos, key_qvel = jax.random.split(key)
        qpos = self.model.qpos0 + jax.random.uniform(
            key_qpos, (self.model.nq,), minval=-c.reset_noise_scale, maxval=c.reset_noise_scale
        )
        qvel = jax.random.uniform(
            key_qvel, (self.model.nv,), minval=-c.reset_noise_scale, maxval=c.reset_noise_scale
        )
        data = physics.make_data(self.model, c.impl).replace(qpos=qpos, qvel=qvel)
        data = mjx.forward(self.model, data)
        zero = jnp.zeros(())
        metrics = {
            "reward/forward": zero,
            "reward/healthy": zero,
            "reward/ctrl": zero,
            "x_velocity": zero,
            "torso_tilt": torso_tilt(data.qpos),
            "diverged": zero,
        }
        info = {"steps": jnp.zeros((), jnp.int32), "truncated": jnp.zeros((), bool)}
        return State(
            data=data,
            obs=observe(self.model, data, self.wrenches),
            reward=zero,
            done=jnp.zeros((), bool),
            metrics=metrics,
            info=info,
        )

    def step(self, state: State, action: Float[Array, " act"]) -> State:
        c = self.config
        horizon = c.episode_length
        push = None
        if self.assist is not None:
            push = lambda d: self.assist.wrenches(self.model, d, self.root_body, self.stand_height)
            horizon = jnp.minimum(horizon, self.assist.horizon)
        step_fn = physics.make_step_fn(c.frame_skip, push)
        data, ok = physics.guarded_step(step_fn, self.model, state.data, action, c.max_qvel)
        if self.assist is not None:
            # The hand is training's secret: the observation's external forces (cfrc_ext)
            # include xfrc_applied, and the policy must see what an unheld body sees.
            data = data.replace(xfrc_applied=jnp.zeros_like(data.xfrc_applied))

        dt = self.model.opt.timestep * c.frame_skip
        x_velocity = (_mass_center_x(self.model, data) - _mass_center_x(self.model, state.data)) / dt
        forward = c.forward_reward_weight * x_velocity
        # Humanoid-v4 pays the healthy bonus on every step it terminates episodes on,
        # the terminating step included.
        healthy = jnp.asarray(c.healthy_reward, forward.dtype)
        ctrl = -c.ctrl_cost_weight * jnp.sum(jnp.square(action))
        reward = jnp.where(ok, forward + healthy + ctrl, 0.0)

        z = data.qpos[2]
        z_min = c.healthy_z_min if self.fall_height is None else self.fall_height
        healthy_now = (z > z_min) & (z < c.healthy_z_max)
        steps = state.info["steps"] + 1
        truncated = steps >= horizon
        done = ~ok | ~healthy_now | truncated

        metrics = {
            "reward/forward": jnp.where(ok, forward, 0.0),
            "reward/healthy": jnp.where(ok, healthy, 0.0),
            "reward/ctrl": jnp.where(ok, ctrl, 0.0),
            "x_velocity": jnp.where(ok, x_velocity, 0.0),
            # A posture measure, not a reward term: ES's training-only `tilt_cost` reads it.
            "torso_tilt": jnp.where(ok, torso_tilt(data.qpos), 0.0),
            "diverged": (~ok).astype(forward.dtype),
        }
        info = {"steps": steps, "truncated": truncated & ok & healthy_now}
        return State(
            data=data,
            obs=observe(self.model, data, self.wrenches),
            reward=reward,
            done=done,
            metrics=metrics,
            info=info,
        )
