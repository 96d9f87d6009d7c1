"""A bench rig simulated in MuJoCo C: one biped joint driven by a servo model with what
real servos have and the ideal position actuator lacks, logged as a real rig would be.

The rig: a rotor (the reflected rotor inertia, with Coulomb and viscous friction) drives
the link (the biped joint's own inertia at the home pose, gravity off) through a stiff
gearbox with backlash (a tendon spring with a dead band). The servo firmware runs at `firmware_hz`: it reads the encoder
(on the rotor side, as the robot reports the joint; quantised, with noise), differences
it for a velocity, and applies a PD torque toward the latest command it has received,
saturated at the effort limit and by a torque-speed line that reaches zero at
`top_speed`. Commands reach it 1-2 ticks after the host sends them (request-response
latency, drawn per tick). The host sends a new command every `command_hold` ticks (50 Hz).

Each firmware tick logs what the host sees (common/actuator/log.py): the command it sent,
the encoder position and velocity, the motor current, and the motor torque it stands for
(current x torque constant, with sensor noise): what an actuator net learns. The rotor
inertia and friction are the joint's mechanics, which a simulator keeps
(common/actuator/net.py); `joint_mechanics` gives them.
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np
from jaxtyping import Float

from common import robots
from common.actuator import log as log_lib
from common.actuator import net as net_lib

# The biped's joint kinds, in the order of a leg's actuators (common/assets/biped.xml).
KINDS = ("hip_yaw", "hip_roll", "hip_pitch", "knee", "ankle_pitch", "ankle_roll")


@dataclasses.dataclass(frozen=True)
class ServoModel:
    """The rig's servo; defaults are the issue's floor (none gentler)."""

    firmware_hz: float = 200.0
    command_hold: int = 4  # firmware ticks per host command (50 Hz)
    latency_ticks: tuple[int, int] = (1, 2)  # a command takes effect this many ticks late
    kd: float = 0.8  # firmware D gain (N m s/rad); kp is the biped's, per joint kind
    top_speed: float = 20.0  # rad/s where the available torque reaches zero
    coulomb_fraction: float = 0.05  # Coulomb friction, fraction of the effort limit
    viscous_fraction: float = 0.05  # viscous friction at top speed, fraction of the effort limit
    backlash: float = 0.01  # rad, total play of the gearbox
    gear_stiffness: float = 2000.0  # N m/rad once the play is taken up
    gear_damping: float = 2.0  # N m s/rad, while engaged
    rotor_inertia: float = 0.015  # kg m^2, reflected to the joint
    encoder_bits: int = 14  # counts per turn = 2**bits
    position_noise: float = 0.001  # rad, std of the encoder noise
    torque_noise: float = 0.02  # fraction of the effort limit, std of the torque sensor
    torque_constant: float = 1.5  # N m/A, for the logged motor current
    substeps: int = 10  # physics steps per firmware tick, at least (see `substeps`)

    def validate(self) -> None:
        lo, hi = self.latency_ticks
        checks = (
            ("firmware_hz", self.firmware_hz > 0), ("command_hold", self.command_hold >= 1),
            ("latency_ticks", 0 <= lo <= hi), ("kd", self.kd >= 0), ("top_speed", self.top_speed > 0),
            ("coulomb_fraction", self.coulomb_fraction >= 0), ("viscous_fraction", self.viscous_fraction >= 0),
            ("backlash", self.backlash >= 0), ("gear_stiffness", self.gear_stiffness > 0),
            ("gear_damping", self.gear_damping >= 0), ("rotor_inertia", self.rotor_inertia > 0),
            ("encoder_bits", 4 <= self.encoder_bits <= 32), ("position_noise", self.position_noise >= 0),
            ("torque_noise", self.torque_noise >= 0), ("torque_constant", self.torque_constant > 0),
            ("substeps", self.substeps >= 1),
        )
        for name, ok in checks:
            if not ok:
                raise log_lib.LogError(f"rig.{name}: out of range, got {getattr(self, name)!r}")


@dataclasses.dataclass(frozen=True)
class JointSpec:
    """One joint kind of the biped: its link inertia, PD gain, effort limit and range."""

    kind: str
    inertia: float
    kp: float
    effort: float
    low: float
    high: float


def joint_specs(xml_path: str = robots.BIPED_XML) -> dict[str, JointSpec]:
    """Each kind's figures from the left leg of the MJCF at its home keyframe: the link
    inertia is the joint's diagonal of the mass matrix less its armature."""
    m = mujoco.MjModel.from_xml_path(xml_path)
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, "home"))
    mujoco.mj_forward(m, d)
    full = np.zeros((m.nv, m.nv))
    mujoco.mj_fullM(m, d, full)
    specs = {}
    for kind in KINDS:
        a = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_ACTUATOR, f"left_{kind}")
        j = m.actuator_trnid[a, 0]
        dof = m.jnt_dofadr[j]
        specs[kind] = JointSpec(kind=kind, inertia=float(full[dof, dof] - m.dof_armature[dof]),
                                kp=float(m.actuator_gainprm[a, 0]), effort=float(np.abs(m.actuator_forcerange[a]).max()),
                                low=float(m.jnt_range[j, 0]), high=float(m.jnt_range[j, 1]))
    return specs


def joint_mechanics(specs: dict[str, JointSpec], servo: ServoModel) -> dict[str, tuple[float, ...]]:
    """Per kind (in `specs` order), the mechanics a simulator keeps under an actuator net
    fitted to this rig: Coulomb friction (N m) and viscous friction (N m s/rad)."""
    return {"coulomb": tuple(servo.coulomb_fraction * s.effort for s in specs.values()),
            "viscous": tuple(servo.viscous_fraction * s.effort / servo.top_speed for s in specs.values())}


def substeps(spec: JointSpec, servo: ServoModel) -> int:
    """Physics steps per firmware tick: at least `servo.substeps`, and enough that the
    gearbox's spring mode (rotor against link) takes 12 steps a cycle or more."""
    omega = np.sqrt(servo.gear_stiffness * (1.0 / spec.inertia + 1.0 / servo.rotor_inertia))
    return max(servo.substeps, int(np.ceil(omega / servo.firmware_hz / 0.5)))


def _rig_xml(spec: JointSpec, servo: ServoModel) -> str:
    dt = 1.0 / (servo.firmware_hz * substeps(spec, servo))
    coulomb = servo.coulomb_fraction * spec.effort
    viscous = servo.viscous_fraction * spec.effort / servo.top_speed
    play = servo.backlash / 2.0
    # Both hinges turn about z with gravity off; only the joints' inertia matters. The
    # gearbox is a tendon spring with a dead band (the backlash), integrated by MuJoCo.
    return f"""<mujoco model="rig_{spec.kind}">
  <option timestep="{dt}" gravity="0 0 0" integrator="implicitfast"/>
  <worldbody>
    <body name="rotor"><joint name="rotor" type="hinge" axis="0 0 1" armature="{servo.rotor_inertia}"
      damping="{viscous}" frictionloss="{coulomb}"/><inertial pos="0 0 0" mass="1e-3" diaginertia="1e-7 1e-7 1e-7"/></body>
    <body name="link"><joint name="link" type="hinge" axis="0 0 1"/>
      <inertial pos="0 0 0" mass="1" diaginertia="{spec.inertia} {spec.inertia} {spec.inertia}"/></body>
  </worldbody>
  <tendon>
    <fixed name="gearbox" stiffness="{servo.gear_stiffness}" damping="{servo.gear_damping}" springlength="{-play} {play}">
      <joint joint="rotor" coef="1"/><joint joint="link" coef="-1"/>
    </fixed>
  </tendon>
</mujoco>"""


def run(spec: JointSpec, servo: ServoModel, commands: Float[np.ndarray, " T"], rng: np.random.Generator,
        *, start: float | None = None, t0: float = 0.0) -> log_lib.JointTrace:
    """Drives the rig through host `commands` (one per firmware tick, already held at the
    host rate) from rest at `start` (default: the first command); returns the log."""
    servo.validate()
    m = mujoco.MjModel.from_xml_string(_rig_xml(spec, servo))
    d = mujoco.MjData(m)
    n_sub = substeps(spec, servo)
    q0 = float(commands[0] if start is None else start)
    d.qpos[:] = q0
    tick = 1.0 / servo.firmware_hz
    count = 2.0 * np.pi / 2**servo.encoder_bits
    lo, hi = servo.latency_ticks
    n = len(commands)
    out = {k: np.zeros(n) for k in ("command", "position", "velocity", "torque", "current")}
    # arrival[k]: the tick at which command k reaches the servo.
    arrival = np.arange(n) + rng.integers(lo, hi + 1, size=n)
    active, newest = q0, -1
    prev_reading = None
    for k in range(n):
        # The newest command that has arrived by now (late ones never overtake newer ones).
        arrived = [j for j in range(max(0, k - hi), k + 1) if arrival[j] <= k]
        if arrived and arrived[-1] > newest:
            newest = arrived[-1]
            active = float(commands[newest])
        reading = np.round((d.qpos[0] + rng.normal(0.0, servo.position_noise)) / count) * count
        velocity = 0.0 if prev_reading is None else (reading - prev_reading) / tick
        prev_reading = reading
        motor = spec.kp * (active - reading) - servo.kd * velocity
        motor = float(np.clip(motor, -spec.effort, spec.effort))
        speed = d.qvel[0]
        if motor * speed > 0:  # driving with the motion: the torque-speed line
            available = spec.effort * max(0.0, 1.0 - abs(speed) / servo.top_speed)
            motor = float(np.clip(motor, -available, available))
        d.qfrc_applied[0] = motor
        mujoco.mj_step(m, d, n_sub)
        out["command"][k] = commands[k]
        out["position"][k] = reading
        out["velocity"][k] = velocity
        out["torque"][k] = motor + rng.normal(0.0, servo.torque_noise * spec.effort)
        out["current"][k] = out["torque"][k] / servo.torque_constant
    return log_lib.JointTrace(time=t0 + tick * np.arange(n), **out)


# -- command families -------------------------------------------------------------

TRAIN_FAMILIES = ("steps", "chirps", "random_walks")


def host_commands(family: str, spec: JointSpec, seconds: float, host_hz: float, rng: np.random.Generator,
                  *, margin: float = 0.1) -> Float[np.ndarray, " N"]:
    """One segment of host commands (at `host_hz`) of a training family, inside the
    joint's range less `margin` of it at each end."""
    n = max(2, int(round(seconds * host_hz)))
    span = spec.high - spec.low
    lo, hi = spec.low + margin * span, spec.high - margin * span
    t = np.arange(n) / host_hz
    if family == "steps":
        out, k = np.empty(n), 0
        while k < n:
            hold = int(rng.uniform(0.15, 1.0) * host_hz)
            out[k:k + hold] = rng.uniform(lo, hi)
            k += hold
        return out
    if family == "chirps":
        # Frequency sweeps 0.2 -> 6 Hz (exponentially), amplitude up to a third of the range.
        f0, f1 = 0.2, rng.uniform(3.0, 6.0)
        phase = 2 * np.pi * f0 * seconds / np.log(f1 / f0) * ((f1 / f0) ** (t / seconds) - 1.0)
        amp = rng.uniform(0.1, 0.33) * (hi - lo) / 2
        center = rng.uniform(lo + amp, hi - amp)
        return center + amp * np.sin(phase)
    if family == "random_walks":
        steps = rng.normal(0.0, rng.uniform(0.01, 0.06) * span, size=n)
        out = np.empty(n)
        q = rng.uniform(lo, hi)
        for i, s in enumerate(steps):
            q = q + s
            q = 2 * hi - q if q > hi else (2 * lo - q if q < lo else q)
            out[i] = q
        return out
    raise ValueError(f"unknown command family {family!r}; known: {TRAIN_FAMILIES}")


def held(commands: Float[np.ndarray, " N"], hold: int) -> Float[np.ndarray, " T"]:
    """Host commands repeated for `hold` firmware ticks each."""
    return np.repeat(np.asarray(commands, np.float64), hold)


def gait_targets(kind: str, speeds: tuple[float, ...], host_hz: float) -> Float[np.ndarray, " N"]:
    """The joint angles of the built-in walking clips at `speeds` (left leg, then right),
    one after the other at the host rate: the held-out command family."""
    from ppo_amp import motion, motion_gen  # the clip generator needs MuJoCo forward kinematics

    parts = []
    for speed in speeds:
        clip = motion_gen.walking_clip(speed, fps=host_hz)
        for side in ("left", "right"):
            parts.append(clip.joint_pos[:, motion.BIPED_JOINT_NAMES.index(f"{side}_{kind}")])
    return np.concatenate(parts)


def record(servo: ServoModel, specs: dict[str, JointSpec], rng: np.random.Generator, *, train_seconds: float,
           heldout_seconds: float, segment_seconds: float, gait_speeds: tuple[float, ...]
           ) -> tuple[dict[str, log_lib.JointTrace], dict[str, log_lib.JointTrace]]:
    """Training and held-out logs of every joint kind (joint `left_<kind>`), each one
    continuous run of the rig."""
    host_hz = servo.firmware_hz / servo.command_hold
    train, heldout = {}, {}
    for kind, spec in specs.items():
        segments, total = [], 0.0
        while total < train_seconds:
            family = TRAIN_FAMILIES[len(segments) % len(TRAIN_FAMILIES)]
            seconds = min(segment_seconds, train_seconds - total)
            segments.append(host_commands(family, spec, seconds, host_hz, rng))
            total += seconds
        train[f"left_{kind}"] = run(spec, servo, held(np.concatenate(segments), servo.command_hold), rng)
        gait = gait_targets(kind, gait_speeds, host_hz)
        reps = int(np.ceil(heldout_seconds * host_hz / len(gait)))
        gait = np.tile(gait, reps)[: int(round(heldout_seconds * host_hz))]
        heldout[f"left_{kind}"] = run(spec, servo, held(gait, servo.command_hold), rng)
    return train, heldout


class ServoLaw:
    """The rig's own firmware law as a stand-in for a net (same call and spec): the
    reference a net's replay is measured against. It takes every command
    `latency_ticks[0]` ticks late (the law cannot know a tick's drawn latency) and reads
    the velocity and error histories as the logs give them."""

    def __init__(self, servo: ServoModel, specs: dict[str, JointSpec], spec: net_lib.NetSpec):
        if spec.history < servo.latency_ticks[0] + 1:
            raise log_lib.LogError(f"the servo law needs a history of {servo.latency_ticks[0] + 1} ticks")
        self.spec = spec
        self.servo = servo
        self.kp = np.array([specs[k].kp for k in spec.kinds])
        self.effort = np.array([specs[k].effort for k in spec.kinds])

    def __call__(self, errors, velocities, kind):
        import jax.numpy as jnp

        lag = self.servo.latency_ticks[0]
        dt = 1.0 / self.servo.firmware_hz
        # command[k - lag] - position[k] = error[k - lag] - (position[k] - position[k - lag]).
        error = errors[..., lag] - dt * jnp.sum(velocities[..., :lag], axis=-1)
        speed = velocities[..., 0]
        kp, effort = jnp.asarray(self.kp)[kind], jnp.asarray(self.effort)[kind]
        motor = jnp.clip(kp * error - self.servo.kd * speed, -effort, effort)
        available = effort * jnp.maximum(0.0, 1.0 - jnp.abs(speed) / self.servo.top_speed)
        return jnp.where(motor * speed > 0, jnp.clip(motor, -available, available), motor)
