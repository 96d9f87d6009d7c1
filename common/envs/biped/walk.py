"""Velocity-tracking walk of the 12-DOF biped (`"biped_walk"`), the PPO+AMP task.

The policy acts at 50 Hz over the 200 Hz physics (the action is held for
`frame_skip` substeps): joint target = default pose + `action_scale` x effort limit /
stiffness x action, clipped to the actuator range. The observation is the terms
`config.obs_terms` in that order (default 45 values: base angular velocity x 0.25,
projected gravity, command, joint positions relative to default, joint velocities
x 0.05, previous action), with per-episode noise; `info["critic_obs"]` holds the same
terms without noise followed by privileged terms (true base velocity, foot contacts,
base height, push force, friction) for an asymmetric critic.

Commands (vx, vy, yaw rate in the base frame) are redrawn every few seconds from ranges
that widen with `info["command_level"]` in [0, 1] (the trainer's curriculum). The
episode ends on a fall (base too low or too tilted, checked after a grace period), on a
physics divergence (that step earns nothing), or at `episode_length` (a time-out, which
`info["truncated"]` tells apart from a fall in `info["terminated"]`).

With `actuator="learned"` the position servos become torque motors driven by an actuator
net (common/actuator/net.py) at every physics step; its per-joint history of position
error and velocity lives in `info["actuator_history"]` and restarts with each episode.
With `heading_hold` > 0, `info["heading"]` holds the heading target and the drawn yaw rate.
Both keys exist only when switched on, so a state's layout (and old checkpoints) is
unchanged otherwise.

`reset` does not run forward kinematics: the observation needs only qpos and qvel, and
the first step computes everything else. That keeps auto-resets cheap in training.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray
from mujoco import mjx

from common import contact, physics, quaternion, robots
from common.actuator import net as actuator_net
from common.actuator.net import ActuatorNet
from common.envs.base import Env, State
from common.envs.biped import randomize, rewards
from common.envs.biped.config import PRIVILEGED_TERMS, BipedWalkConfig, validate

GRAVITY_DIR = np.array([0.0, 0.0, -1.0], np.float32)


class Statics(eqx.Module):
    """Constants read from the MJCF once (arrays, so the env stays a pytree)."""

    default_qpos: Float[Array, " nq"]
    default_ctrl: Float[Array, " nu"]
    action_scale: Float[Array, " nu"]
    ctrl_low: Float[Array, " nu"]
    ctrl_high: Float[Array, " nu"]
    joint_low: Float[Array, " nu"]
    joint_high: Float[Array, " nu"]


class BipedWalk(Env):
    """The `"biped_walk"` task. Build it with `common.envs.make("biped_walk", ...)`."""

    model: mjx.Model
    statics: Statics
    config: BipedWalkConfig = eqx.field(static=True)
    base_body: int = eqx.field(static=True)
    # Where the feet's contact-force sensors sit in `sensordata` (see `_foot_forces`).
    foot_sensors: contact.ForceSensors = eqx.field(static=True)
    nominal_friction: float = eqx.field(static=True)
    # Seconds per policy step (timestep x frame_skip), a Python float even under jit.
    dt: float = eqx.field(static=True)
    # `config.actuator == "learned"`: the net, and each actuator's joint kind in its spec.
    actuator_net: ActuatorNet | None = None
    joint_kind: Int[Array, " nu"] | None = None

    @property
    def observation_size(self) -> int:
        return self.config.observation_size

    @property
    def critic_observation_size(self) -> int:
        return self.config.critic_observation_size

    @property
    def action_size(self) -> int:
        return self.model.nu

    # -- commands -------------------------------------------------------------------

    def draw_command(self, key: PRNGKeyArray, level: Float[Array, ""]) -> Float[Array, "3"]:
        """A command from the ranges at curriculum `level`; zero with `command_zero_prob`."""
        c = self.config
        if c.fixed_command is not None:
            return jnp.asarray(c.fixed_command, jnp.float32)
        k_v, k_zero = jax.random.split(key)
        lerp = lambda a, b: (1.0 - level) * jnp.asarray(a) + level * jnp.asarray(b)
        low = jnp.stack([lerp(c.command_vx_start[0], c.command_vx[0]), lerp(c.command_vy_start[0], c.command_vy[0]),
                         lerp(c.command_yaw_start[0], c.command_yaw[0])])
        high = jnp.stack([lerp(c.command_vx_start[1], c.command_vx[1]), lerp(c.command_vy_start[1], c.command_vy[1]),
                          lerp(c.command_yaw_start[1], c.command_yaw[1])])
        command = jax.random.uniform(k_v, (3,), minval=low, maxval=high)
        return jnp.where(jax.random.uniform(k_zero) < c.command_zero_prob, 0.0, command)

    def _command_timer(self, key: PRNGKeyArray) -> Array:
        lo, hi = self.config.command_resample_steps
        return jax.random.randint(key, (), lo, hi + 1)

    # -- observation ----------------------------------------------------------------

    def _hold_heading(self, heading: Float[Array, "2"], command: Float[Array, "3"], redraw: Array,
                      quat: Float[Array, "4"]) -> tuple[Float[Array, "3"], Float[Array, "2"]]:
        """`config.heading_hold`: the command with its yaw rate steered toward the heading
        target, and the new (target, drawn yaw rate)."""
        c = self.config
        drawn = jnp.where(redraw, command[2], heading[1])
        target = heading[0] + drawn * self.dt
        error = quaternion.wrap(target - quaternion.yaw(quat))
        limit = c.heading_hold_max_rate
        rate = jnp.clip(drawn + c.heading_hold * error, -limit, limit)
        return command.at[2].set(rate), jnp.stack([quaternion.wrap(target), drawn])

    def _net_torque(self, data: mjx.Data, target: Float[Array, " nu"],
                    history: tuple[Array, Array]) -> tuple[Float[Array, " nu"], tuple[Array, Array]]:
        """One physics step's joint torques from the actuator net, and its new history
        (per joint, newest first, of target - position and velocity)."""
        errors, velocities = history
        errors = jnp.concatenate([(target - data.qpos[7:])[:, None], errors[:, :-1]], axis=1)
        velocities = jnp.concatenate([data.qvel[6:, None], velocities[:, :-1]], axis=1)
        return self.actuator_net(errors, velocities, self.joint_kind), (errors, velocities)

    def _terms(self, qpos, qvel, command, last_action) -> dict[str, Array]:
        c = self.config
        rot = quaternion.to_matrix(qpos[3:7])
        return {
            "base_ang_vel": qvel[3:6] * c.obs_scale("base_ang_vel"),  # MuJoCo's free joint: already in the base frame
            "projected_gravity": rot.T @ GRAVITY_DIR,
            "command": command,
            "joint_pos": qpos[7:] - self.statics.default_qpos[7:],
            "joint_vel": qvel[6:] * c.obs_scale("joint_vel"),
            "last_action": last_action,
            "base_lin_vel": (rot.T @ qvel[:3]) * c.obs_scale("base_lin_vel"),
        }

    def _observe(self, key, qpos, qvel, info) -> tuple[Float[Array, " obs"], Float[Array, " critic"]]:
        c = self.config
        terms = self._terms(qpos, qvel, info["command"], info["last_action"])
        levels = randomize.obs_noise_levels(c)
        noise_scale = info["stress"].noise_scale if "stress" in info else 1.0
        keys = jax.random.split(key, len(c.obs_terms))
        noisy = [
            terms[t] + (jax.random.uniform(k, terms[t].shape, minval=-1.0, maxval=1.0) * levels[t] * noise_scale
                        if t in levels else 0.0)
            for k, t in zip(keys, c.obs_terms)
        ]
        privileged = {
            "base_lin_vel": terms["base_lin_vel"],
            "foot_contact": info["foot_contact"].astype(jnp.float32),
            "base_height": qpos[2:3],
            "push_force": info["push"].force / 50.0,
            "friction": info["randomization"].friction[None],
        }
        critic = [terms[t] for t in c.obs_terms] + [privileged[t] for t in PRIVILEGED_TERMS if t not in c.obs_terms]
        return jnp.concatenate(noisy), jnp.concatenate(critic)

    # -- reset and step -------------------------------------------------------------

    def reset(self, key: PRNGKeyArray, command_level: float | Float[Array, ""] = 1.0,
              randomization: randomize.Randomization | None = None,
              stress: randomize.Stress | None = None) -> State:
        """A standing start; the episode's physics drawn from the config's ranges, or
        `randomization` as given, and `stress` if any (both take effect only where
        `config.randomize` is on)."""
        c = self.config
        k_joint, k_yaw, k_rand, k_cmd, k_timer, k_push, k_obs, k_rng = jax.random.split(key, 8)
        qpos = self.statics.default_qpos
        noise = jax.random.uniform(k_joint, (self.model.nu,), minval=-1.0, maxval=1.0) * c.reset_joint_noise
        joints = jnp.clip(qpos[7:] + noise, self.statics.joint_low, self.statics.joint_high)
        yaw = jax.random.uniform(k_yaw, (), minval=-jnp.pi, maxval=jnp.pi) if c.reset_random_yaw else 0.0
        quat = quaternion.about_axis(2, yaw)
        qpos = jnp.concatenate([qpos[:3], quat, joints])
        qvel = jnp.zeros((self.model.nv,))
        data = physics.make_data(self.model, c.impl).replace(qpos=qpos, qvel=qvel, ctrl=self.statics.default_ctrl)
        level = jnp.asarray(command_level, jnp.float32)
        slots = c.latency_steps[1] + 1
        info = {
            "rng": k_rng,
            "steps": jnp.zeros((), jnp.int32),
            "command": self.draw_command(k_cmd, level),
            "command_level": level,
            "command_timer": self._command_timer(k_timer),
            "last_action": jnp.zeros((self.model.nu,)),
            "action_buffer": jnp.zeros((slots, self.model.nu)),
            "randomization": (randomize.draw(k_rand, c, self.model.nbody, self.model.nv, self.nominal_friction)
                              if randomization is None else randomization),
            "push": randomize.push_init(k_push, c),
            "feet_air_time": jnp.zeros((2,)),
            "last_contact": jnp.zeros((2,), bool),
            "foot_contact": jnp.zeros((2,), bool),
            "terminated": jnp.zeros((), bool),
            "truncated": jnp.zeros((), bool),
        }
        if stress is not None:
            info["stress"] = stress
        if self.actuator_net is not None:
            h = self.actuator_net.spec.history
            error = self.statics.default_ctrl - joints
            info["actuator_history"] = (jnp.repeat(error[:, None], h, axis=1), jnp.zeros((self.model.nu, h)))
        if c.heading_hold > 0:
            info["heading"] = jnp.stack([jnp.asarray(yaw, jnp.float32), info["command"][2]])
        obs, critic_obs = self._observe(k_obs, qpos, qvel, info)
        info["critic_obs"] = critic_obs
        return State(data=data, obs=obs, reward=jnp.zeros(()), done=jnp.zeros((), bool),
                     metrics=self._zero_metrics(), info=info)

    def _zero_metrics(self) -> dict[str, Array]:
        names = [f"reward/{n}" for n, w in self.config.reward_scales if w != 0]
        names += ["tracking_error", "forward_velocity", "diverged", "pushed"]
        return {n: jnp.zeros(()) for n in names}

    def _foot_forces(self, data: mjx.Data) -> Float[Array, "2"]:
        """Normal contact force on each foot (N) from the floor, summed over its contact points
        (read from contact sensors, so every MJX implementation gives it)."""
        return self.foot_sensors.normal_forces(data)

    def step(self, state: State, action: Float[Array, " act"]) -> State:
        c = self.config
        info = state.info
        rng, k_push, k_cmd, k_timer, k_obs = jax.random.split(info["rng"], 5)
        r = info["randomization"]

        buffer, delayed = randomize.delay(info["action_buffer"], action, r.latency)
        target = self.statics.default_ctrl + self.statics.action_scale * delayed
        ctrl = jnp.clip(target, self.statics.ctrl_low, self.statics.ctrl_high)
        stress = info.get("stress")
        heading = quaternion.yaw(state.data.qpos[3:7])
        push = randomize.push_advance(k_push, c, info["push"], 1.0 if stress is None else stress.push_scale, heading)
        force = jnp.where(push.remaining > 0, push.force, 0.0)
        data = state.data.replace(xfrc_applied=state.data.xfrc_applied.at[self.base_body, :3].set(force))
        model = randomize.apply(self.model, r, stress) if c.randomize else self.model
        new_info = dict(info)
        if self.actuator_net is None:
            data, ok = physics.guarded_step(physics.make_step_fn(c.frame_skip), model, data, ctrl, c.max_qvel)
        else:
            step_fn = physics.make_controlled_step_fn(c.frame_skip, self._net_torque)
            data, new_info["actuator_history"], ok = physics.guarded_controlled_step(
                step_fn, model, data, ctrl, info["actuator_history"], c.max_qvel)

        qpos, qvel = data.qpos, data.qvel
        rot = quaternion.to_matrix(qpos[3:7])
        base_lin_vel = rot.T @ qvel[:3]
        gravity = rot.T @ GRAVITY_DIR
        forces = self._foot_forces(data)
        contact = forces > 1.0
        # A touch-down is the first step in contact after time in the air; the previous
        # step's contact also counts, which filters one-step bounces.
        settled = contact | info["last_contact"]
        air_time = info["feet_air_time"] + self.dt
        first_contact = (info["feet_air_time"] > 0.0) & settled
        air_time_next = jnp.where(settled, 0.0, air_time)

        steps = info["steps"] + 1
        fallen = (qpos[2] < c.min_base_height) | (gravity[2] > -jnp.cos(c.max_tilt))
        terminated = ((steps > c.grace_steps) & fallen) | ~ok
        truncated = (steps >= c.episode_length) & ~terminated

        q = rewards.StepQuantities(
            command=info["command"], base_lin_vel=base_lin_vel, base_ang_vel=qvel[3:6],
            projected_gravity=gravity, base_height=qpos[2], joint_pos=qpos[7:], joint_vel=qvel[6:],
            joint_lower=self.statics.joint_low, joint_upper=self.statics.joint_high,
            torque=data.actuator_force, action=action, last_action=info["last_action"],
            contact_force=forces, first_contact=first_contact, air_time=air_time, terminated=terminated,
        )
        # A zero weight turns a term off: not computed, not logged (and a state's layout,
        # hence its checkpoints, stays that of the code before the term existed).
        weighted = {name: jnp.where(ok, w * self.dt * rewards.TERMS[name].fn(q, c), 0.0)
                    for name, w in c.reward_scales if w != 0}
        reward = sum(weighted.values(), jnp.zeros(()))

        timer = info["command_timer"] - 1
        redraw = timer <= 0
        command = jnp.where(redraw, self.draw_command(k_cmd, info["command_level"]), info["command"])
        timer = jnp.where(redraw, self._command_timer(k_timer), timer)

        if c.heading_hold > 0:
            command, new_info["heading"] = self._hold_heading(info["heading"], command, redraw, qpos[3:7])
        new_info.update(
            rng=rng, steps=steps, command=command, command_timer=timer, last_action=action,
            action_buffer=buffer, push=push, feet_air_time=air_time_next, last_contact=contact,
            foot_contact=contact, terminated=terminated, truncated=truncated,
        )
        obs, critic_obs = self._observe(k_obs, qpos, qvel, new_info)
        new_info["critic_obs"] = critic_obs
        metrics = {f"reward/{k}": v for k, v in weighted.items()}
        metrics.update(
            tracking_error=jnp.linalg.norm(info["command"][:2] - base_lin_vel[:2]),
            forward_velocity=base_lin_vel[0],
            diverged=(~ok).astype(jnp.float32),
            pushed=(push.remaining > 0).astype(jnp.float32),
        )
        return State(data=data, obs=obs, reward=reward, done=terminated | truncated, metrics=metrics, info=new_info)


def make(config: BipedWalkConfig) -> BipedWalk:
    """Builds the env: loads the MJCF under the profile and reads its constants."""
    try:
        validate(config)
    except ValueError as e:
        raise robots.ModelError(f"biped_walk: {e}") from None
    m = config.load_mj_model()
    _check_model(m, config)
    key_id = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, config.keyframe)
    default_qpos = np.array(m.key_qpos[key_id], np.float32)
    default_ctrl = np.array(m.key_ctrl[key_id], np.float32)
    kp = m.actuator_gainprm[:, 0]
    effort = np.abs(m.actuator_forcerange).max(axis=1)
    joint_ids = m.actuator_trnid[:, 0]
    statics = Statics(
        default_qpos=jnp.asarray(default_qpos),
        default_ctrl=jnp.asarray(default_ctrl),
        action_scale=jnp.asarray(config.action_scale * effort / kp, jnp.float32),
        ctrl_low=jnp.asarray(m.actuator_ctrlrange[:, 0], jnp.float32),
        ctrl_high=jnp.asarray(m.actuator_ctrlrange[:, 1], jnp.float32),
        joint_low=jnp.asarray(m.jnt_range[joint_ids, 0], jnp.float32),
        joint_high=jnp.asarray(m.jnt_range[joint_ids, 1], jnp.float32),
    )
    net, kinds = None, None
    if config.actuator == "learned":
        net, kinds = _load_net(config, m)
        actuator_net.as_torque_motors(m, net.spec, np.asarray(kinds))
    model = physics.put_model(m, config.impl)
    floor = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, config.floor_geom)
    return BipedWalk(
        model=model,
        statics=statics,
        config=config,
        base_body=mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, config.base_body),
        foot_sensors=contact.ForceSensors.of(m, config.contact_geoms),
        nominal_friction=float(m.geom_friction[floor, 0]),
        dt=float(m.opt.timestep) * config.frame_skip,
        actuator_net=net,
        joint_kind=kinds,
    )


def _load_net(config: BipedWalkConfig, m: mujoco.MjModel) -> tuple[ActuatorNet, Array]:
    """The actuator net of `config`, checked against the model: its rate is the physics
    rate, and it knows every actuator's joint kind."""
    try:
        net = actuator_net.load(config.actuator_net)
        rate = 1.0 / float(m.opt.timestep)
        if abs(net.spec.rate_hz - rate) > 1e-6 * rate:
            raise actuator_net.NetFileError(
                f"actuator_net: {config.actuator_net} was fitted at {net.spec.rate_hz:g} Hz, the physics runs "
                f"at {rate:g} Hz (its history must be spaced at the physics step)")
        names = [mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in range(m.nu)]
        kinds = net.spec.kind_index(names)
    except actuator_net.NetFileError as e:
        raise robots.ModelError(str(e)) from None
    return net, jnp.asarray(kinds)


def _check_model(m: mujoco.MjModel, config: BipedWalkConfig) -> None:
    where = f"xml_path: {config.xml_path!r}"
    if m.nq < 7 or m.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE:
        raise robots.ModelError(f"{where} must have a free root joint first")
    if m.nu != 12 or m.nq != 19:
        raise robots.ModelError(f"{where} must have 12 hinge joints and 12 actuators (nq={m.nq}, nu={m.nu})")
    if np.any(m.actuator_gainprm[:, 0] <= 0) or not np.all(m.actuator_forcelimited):
        raise robots.ModelError(f"{where}: every actuator must be a position servo with a force limit")
    for kind, names in ((mujoco.mjtObj.mjOBJ_GEOM, (*config.contact_geoms, config.floor_geom)),
                        (mujoco.mjtObj.mjOBJ_BODY, (config.base_body,)),
                        (mujoco.mjtObj.mjOBJ_KEY, (config.keyframe,))):
        for name in names:
            if mujoco.mj_name2id(m, kind, name) < 0:
                raise robots.ModelError(f"{where} has no {kind.name[6:].lower()} named {name!r}")
    if len(config.contact_geoms) != 2:
        raise robots.ModelError(f"contact_geoms: the biped needs two feet (left, right), got {config.contact_geoms!r}")
