"""Built-in walking reference clips for AMP, so a default run needs no motion data.

A periodic flat-footed gait is written down in the world (footprints, swing-foot paths,
a base moving at constant speed with a small sway, and a pelvis that twists, rolls and
pitches with the steps) and turned into joint angles by analytic leg inverse
kinematics; velocities and contacts are then derived by the same code as for loaded
clips (`motion.clip_from_positions`).

The biped's +-20 deg ankle pitch shapes the gait. A flat stance foot needs the shank
within that angle of vertical, which keeps the stance foot within a few centimetres of
the hip and the knees fairly straight; long strides are out of reach, so speed comes
from cadence (5.4 steps/s at 0.65 m/s). Lifting a foot that is still behind the hip
bends the knee past that angle too: there the swing foot pitches toe-down just enough to
keep the ankle inside its range (a heel rise), and is flat again before touchdown.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import mujoco
import numpy as np
from jaxtyping import Float

from common import quaternion, robots
from ppo_amp import motion

_GRAVITY = 9.81
_SIDES = ("left", "right")


@dataclasses.dataclass(frozen=True)
class LegGeometry:
    """What the analytic IK needs, read from the MJCF.

    Attributes:
      hip: (2, 3) where the hip roll and pitch axes meet, per leg (left, right), base frame.
      thigh, shank: link lengths, m.
      ankle_height: height of the ankle axes above a flat sole, m.
      lower, upper: (12,) joint ranges in actuator order.
      home: (19,) qpos of the `home` keyframe.
      com_height: CoM height of the home pose, m.
    """

    hip: np.ndarray
    thigh: float
    shank: float
    ankle_height: float
    lower: np.ndarray
    upper: np.ndarray
    home: np.ndarray
    com_height: float


def leg_geometry(xml_path: str = robots.BIPED_XML) -> LegGeometry:
    model = mujoco.MjModel.from_xml_path(xml_path)
    data = mujoco.MjData(model)
    data.qpos[:] = 0.0
    data.qpos[3] = 1.0  # base at the origin, upright, legs straight
    mujoco.mj_kinematics(model, data)

    def anchor(joint):
        return data.xanchor[model.joint(joint).id].copy()

    hip = np.stack([anchor(f"{side}_hip_pitch") for side in _SIDES])
    if not np.allclose(hip, np.stack([anchor(f"{side}_hip_roll") for side in _SIDES])):
        raise motion.MotionError(f"{xml_path}: the analytic leg IK needs hip roll and pitch axes that meet")
    knee, ankle = anchor("left_knee"), anchor("left_ankle_pitch")
    ankle_height = float(ankle[2] - data.site(motion.FOOT_SITES[0]).xpos[2])
    joints = [model.joint(name) for name in motion.BIPED_JOINT_NAMES]
    mujoco.mj_resetDataKeyframe(model, data, model.key("home").id)
    mujoco.mj_kinematics(model, data)
    mujoco.mj_comPos(model, data)
    return LegGeometry(
        hip=hip,
        thigh=float(np.linalg.norm(knee - hip[0])),
        shank=float(np.linalg.norm(ankle - knee)),
        ankle_height=ankle_height,
        lower=np.array([j.range[0] for j in joints]),
        upper=np.array([j.range[1] for j in joints]),
        home=data.qpos.copy(),
        com_height=float(data.subtree_com[model.body("base").id][2]),
    )


def leg_ik(
    geometry: LegGeometry,
    hip: Float[np.ndarray, "T 3"],
    ankle: Float[np.ndarray, "T 3"],
    foot_pitch: Float[np.ndarray, " T"],
) -> tuple[Float[np.ndarray, "T 6"], Float[np.ndarray, " T"]]:
    """Joint angles (hip yaw, hip roll, hip pitch, knee, ankle pitch, ankle roll) that put
    the ankle axes at `ankle` with the sole pitched by `foot_pitch` (0: flat), for an
    upright base with zero yaw. Also returns hip-ankle distance over full leg length.

    Hip roll turns the leg's plane towards the ankle and ankle roll turns the foot back;
    hip pitch and knee solve the two-link triangle in that plane; ankle pitch cancels the
    leg's pitch. Pitch is positive when the distal link swings back (the MJCF's sign).
    """
    d = ankle - hip
    roll = np.arctan2(d[:, 1], -d[:, 2])
    depth = np.hypot(d[:, 1], d[:, 2])
    reach = np.hypot(d[:, 0], depth)
    l1, l2 = geometry.thigh, geometry.shank
    cos_knee = np.clip((reach**2 - l1**2 - l2**2) / (2 * l1 * l2), -1.0, 1.0)
    knee = np.arccos(cos_knee)
    # Angle between the thigh and the hip-ankle line, and that line's forward lean.
    inner = np.arctan2(l2 * np.sin(knee), l1 + l2 * cos_knee)
    lean = np.arctan2(d[:, 0], depth)
    hip_pitch = -lean - inner
    ankle_pitch = foot_pitch - (hip_pitch + knee)
    angles = np.stack([np.zeros_like(roll), roll, hip_pitch, knee, ankle_pitch, -roll], axis=1)
    return angles, reach / (l1 + l2)


def gait_period(speed: float, *, period_at_rest: float = 0.66, period_per_speed: float = 0.45) -> float:
    """Seconds per gait cycle (two steps): cadence rises with speed, since the ankle
    range caps the stride (2 / period steps per second)."""
    return period_at_rest - period_per_speed * abs(speed)


def walking_clip(
    speed: float,
    *,
    seconds: float = 4.0,
    fps: float = 50.0,
    period_at_rest: float = 0.66,
    period_per_speed: float = 0.45,
    duty: float = 0.55,
    leg_height: float = 0.355,
    bob: float = 0.002,
    apex: float = 0.04,
    swing_ankle_margin: float = 0.05,
    joint_margin: float = 0.03,
    min_swing_time: float = 0.15,
    pelvis_yaw_per_speed: float = 0.15,
    pelvis_roll: float = 0.05,
    pelvis_pitch: float = 0.03,
    xml_path: str = robots.BIPED_XML,
) -> motion.MotionClip:
    """A straight walk along +x at `speed` m/s (0: stepping in place).

    Args:
      period_at_rest, period_per_speed: gait cycle = period_at_rest - period_per_speed *
        speed seconds (0.66 s at rest, 0.37 s at 0.65 m/s).
      duty: fraction of the cycle each foot is on the ground (> 0.5: double support).
      leg_height: mean vertical hip-to-ankle distance, m. 0.355 (the home pose's 0.354)
        leaves the widest joint margins: lower bends the knees and tips the stance shank
        past the ankle range, higher over-stretches the rear leg.
      bob: vertical base sway, m; highest over each mid-stance (a vaulting gait).
      apex: ankle lift at mid-swing, m.
      swing_ankle_margin: the swing foot pitches so that its ankle stays this far inside
        the range.
      joint_margin: every joint must stay this far inside its range, or the speed is
        refused with `MotionError` (never clipped).
      min_swing_time: shortest swing accepted, s. The cadence schedule keeps the stride
        in reach at any speed, so this is what bounds the speed: a faster swing asks for
        knee speeds (over 17 rad/s) that the position servos cannot follow.
      pelvis_yaw_per_speed: amplitude of the pelvis twist per m/s, rad: the swing side's
        hip travels forward with its foot, and the hip yaw joints turn the legs back so
        the feet keep facing +x.
      pelvis_roll: amplitude of the pelvis roll, rad: the swing side drops.
      pelvis_pitch: amplitude of the pelvis pitch, rad, twice per cycle with the bob:
        nose down at mid-stance.
        A legged robot's base never holds still while it steps; with a rigid pelvis the
        discriminator tells any policy from the clips by its base rotation alone
        (measured: the policy's base turns at 1-2 rad/s, the clips' at exactly 0).
    """
    g = leg_geometry(xml_path)
    period = gait_period(speed, period_at_rest=period_at_rest, period_per_speed=period_per_speed)
    t = _times(seconds, fps)
    if not (period > 0.0 and 0.5 < duty < 1.0):
        raise motion.MotionError(
            f"walking at {speed} m/s: needs a positive gait period (got {period:.3f} s) and 0.5 < duty < 1 (got {duty})"
        )
    if (1.0 - duty) * period < min_swing_time:
        raise motion.MotionError(
            f"walking at {speed} m/s is infeasible: its swing would last {(1.0 - duty) * period:.3f} s, "
            f"under min_swing_time={min_swing_time} s; lower the speed"
        )
    cycle = t / period - duty / 2  # 0 at the left foot's mid-stance
    # Lateral sway of a linear inverted pendulum stepping at +-hip width: the base leans
    # towards the stance foot by w (1 - sech(omega * step_time / 2)).
    omega = np.sqrt(_GRAVITY / g.com_height)
    sway = g.hip[0, 1] * (1.0 - 1.0 / np.cosh(omega * period / 4.0))
    base = np.stack(
        [
            speed * t,
            sway * np.cos(2 * np.pi * cycle),
            leg_height + g.ankle_height - g.hip[0, 2] + bob * np.cos(4 * np.pi * cycle),
        ],
        axis=1,
    )
    # Left swing is centred on cycle 0.5: the pelvis turns its left hip forward then
    # (yaw rate < 0 moves a +y point towards +x) and drops the left side (roll < 0).
    yaw = pelvis_yaw_per_speed * speed * np.sin(2 * np.pi * cycle)
    roll = pelvis_roll * np.cos(2 * np.pi * cycle)
    pitch = pelvis_pitch * np.cos(4 * np.pi * cycle)
    # The stance legs are near full stretch, so the base sinks by as much as the roll
    # raises the stance hip: that hip keeps its height and the swing hip drops twice that.
    base[:, 2] -= abs(g.hip[0, 1]) * np.abs(np.sin(roll))
    root_quat = quaternion.mul(quaternion.mul(quaternion.about_axis(2, yaw), quaternion.about_axis(0, roll)),
                                quaternion.about_axis(1, pitch))
    rotation = quaternion.to_matrix(root_quat)
    joint_pos = np.empty((len(t), 12))
    for side, offset in enumerate((0.0, 0.5)):
        phase = t / period - offset
        k = np.floor(phase)
        tau = phase - k
        stance = tau < duty
        u = np.clip((tau - duty) / (1.0 - duty), 0.0, 1.0)
        # The stance ankle sits under the hip at mid-stance; the swing leaves the footprint
        # and reaches the next one with zero velocity at both ends (raised cosines).
        footprint = speed * period * (k + offset + duty / 2)
        ankle = np.stack(
            [
                footprint + speed * period * (1.0 - np.cos(np.pi * u)) / 2.0,
                np.full_like(t, g.hip[side, 1]),
                g.ankle_height + apex * (1.0 - np.cos(2.0 * np.pi * u)) / 2.0,
            ],
            axis=1,
        )
        hip = base + rotation @ g.hip[side]
        flat, reach = leg_ik(g, hip, ankle, np.zeros_like(t))
        lo, hi = g.lower[6 * side + 4], g.upper[6 * side + 4]
        leg_pitch = flat[:, 2] + flat[:, 3]  # shank pitch in the world
        if np.max(reach) > 1.0 - 1e-6:
            raise motion.MotionError(
                f"walking at {speed} m/s is infeasible: the {_SIDES[side]} leg would need {np.max(reach):.3f} of its "
                "full length; lower leg_height or the stride (a shorter gait period)"
            )
        # Flat unless the swing ankle would leave its range: then pitch the foot just enough.
        pitch_range = (leg_pitch + lo + swing_ankle_margin, leg_pitch + hi - swing_ankle_margin)
        foot_pitch = np.where(stance, 0.0, np.clip(0.0, *pitch_range))
        leg, _ = leg_ik(g, hip, ankle, foot_pitch)
        # `leg_ik` solves for an unturned base. The yaw axis passes through the hip's
        # roll-pitch point, so turning the leg back by -yaw restores that frame, and the
        # base roll and pitch come off the hip roll and pitch. Exact up to the products
        # of the small angles (the rotations commute to second order): replayed, the
        # stance feet stay within 3 mm of the floor and slip under 3 mm per frame.
        leg[:, 0] = -yaw
        leg[:, 1] = leg[:, 1] - roll
        leg[:, 2] = leg[:, 2] - pitch
        joint_pos[:, 6 * side : 6 * side + 6] = leg
    _check_ranges(speed, joint_pos, g, joint_margin)
    name = "step_in_place" if speed == 0.0 else f"walk_{speed:.2f}"
    return motion.clip_from_positions(name, fps, base, root_quat, joint_pos, xml_path=xml_path)


def _times(seconds: float, fps: float) -> np.ndarray:
    if not (seconds > 0.0 and fps > 0.0 and seconds * fps >= motion.MIN_FRAMES - 1):
        raise motion.MotionError(
            f"generated clips need positive seconds and fps and {motion.MIN_FRAMES} frames, "
            f"got {seconds} s at {fps} fps"
        )
    return np.arange(int(round(seconds * fps)) + 1) / fps


def _check_ranges(speed: float, joint_pos: np.ndarray, g: LegGeometry, margin: float) -> None:
    low = joint_pos - (g.lower + margin)
    high = (g.upper - margin) - joint_pos
    worst = np.minimum(low, high)
    frame, joint = np.unravel_index(np.argmin(worst), worst.shape)
    if worst[frame, joint] < 0.0:
        raise motion.MotionError(
            f"walking at {speed} m/s is infeasible: {motion.BIPED_JOINT_NAMES[joint]} reaches "
            f"{joint_pos[frame, joint]:.3f} rad, outside its range [{g.lower[joint]:.3f}, {g.upper[joint]:.3f}] "
            f"less the {margin} rad margin; lower the speed or change the gait period"
        )


def standing_clip(*, seconds: float = 4.0, fps: float = 50.0, xml_path: str = robots.BIPED_XML) -> motion.MotionClip:
    """The `home` keyframe held still: the reference for a zero command."""
    g = leg_geometry(xml_path)
    qpos = np.tile(g.home, (len(_times(seconds, fps)), 1))
    return motion.clip_from_positions("stand", fps, qpos[:, :3], qpos[:, 3:7], qpos[:, 7:], xml_path=xml_path)


def generate_walking_clips(
    speeds: Sequence[float] = (0.2, 0.35, 0.5, 0.65),
    seconds: float = 4.0,
    fps: float = 50.0,
    *,
    standing: bool = True,
    stepping_in_place: bool = True,
    **gait,
) -> list[motion.MotionClip]:
    """Walking clips at each speed, plus a standing and a stepping-in-place clip.

    `gait` goes to `walking_clip` (period, duty, heights, margins).
    """
    xml_path = gait.get("xml_path", robots.BIPED_XML)
    clips = [standing_clip(seconds=seconds, fps=fps, xml_path=xml_path)] if standing else []
    walk_speeds = ([0.0] if stepping_in_place else []) + [float(v) for v in speeds]
    return clips + [walking_clip(v, seconds=seconds, fps=fps, **gait) for v in walk_speeds]
