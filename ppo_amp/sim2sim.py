"""Episodes of an exported biped policy in MuJoCo C, as the robot would run it.

The MJCF is loaded as written (all its contacts, its own integrator and solver), not
under a training profile. Every control step `firmware.Firmware` builds the observation
from `MjData` (IMU quaternion and gyro, joint encoders), onnxruntime runs `policy.onnx`,
and the servo targets are held for the physics steps of one control step, optionally
`latency_steps` control steps late. The figures follow `ppo_amp.evaluate`: a fall is the
base below `min_base_height` or tilted past `max_tilt` after `grace_steps`; tracking
error uses the base velocity averaged over the last 0.5 s, after the first second.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import mujoco
import numpy as np

from common import onnx_export
from ppo_amp.firmware import Firmware, HeadingHold, heading, projected_gravity

WARMUP_STEPS = 50
WINDOW_STEPS = 25


@dataclasses.dataclass(frozen=True)
class Termination:
    """The run's fall rule and standing start (its `task` config)."""

    min_base_height: float
    max_tilt: float
    grace_steps: int
    reset_joint_noise: float
    keyframe: str = "home"


class Robot:
    """The MJCF in MuJoCo C with the sensor reads and servo writes of the policy's joints."""

    def __init__(self, xml_path: str, firmware: Firmware, physics_dt: float):
        self.model = mujoco.MjModel.from_xml_path(xml_path)
        self.data = mujoco.MjData(self.model)
        m = self.model
        if not math.isclose(m.opt.timestep, physics_dt, rel_tol=1e-9):
            raise ValueError(f"{xml_path}: timestep {m.opt.timestep} differs from the export's physics_dt {physics_dt}")
        self.frame_skip = round(firmware.control_dt / m.opt.timestep)
        joints = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_JOINT, n) for n in firmware.joint_names]
        if min(joints) < 0:
            raise ValueError(f"{xml_path} lacks joints {[n for n, j in zip(firmware.joint_names, joints) if j < 0]}")
        self.qpos_adr = m.jnt_qposadr[joints]
        self.dof_adr = m.jnt_dofadr[joints]
        self.joint_range = m.jnt_range[joints]
        # The servo of each joint, in the export's order.
        by_joint = {int(j): i for i, j in enumerate(m.actuator_trnid[:, 0])}
        self.actuators = np.array([by_joint[int(j)] for j in joints])

    def sensors(self) -> dict[str, np.ndarray]:
        d = self.data
        return {"quat": d.qpos[3:7].copy(), "gyro": d.qvel[3:6].copy(), "joint_pos": d.qpos[self.qpos_adr].copy(),
                "joint_vel": d.qvel[self.dof_adr].copy()}

    def reset(self, rng: np.random.Generator, t: Termination, firmware: Firmware) -> None:
        m, d = self.model, self.data
        mujoco.mj_resetDataKeyframe(m, d, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, t.keyframe))
        noise = rng.uniform(-1.0, 1.0, len(self.qpos_adr)) * t.reset_joint_noise
        d.qpos[self.qpos_adr] = np.clip(firmware.default_joint_pos + noise, self.joint_range[:, 0], self.joint_range[:, 1])
        yaw = rng.uniform(-np.pi, np.pi)
        d.qpos[3:7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        d.qvel[:] = 0.0
        d.ctrl[self.actuators] = firmware.targets(np.zeros(len(self.actuators)))
        mujoco.mj_forward(m, d)

    def step(self, targets: np.ndarray) -> None:
        self.data.ctrl[self.actuators] = targets
        mujoco.mj_step(self.model, self.data, self.frame_skip)


def episode(robot: Robot, firmware: Firmware, policy, t: Termination, command: np.ndarray, steps: int,
            rng: np.random.Generator, latency_steps: int = 0, hold: HeadingHold | None = None) -> dict[str, float]:
    """One episode of `steps` control steps; its sums (the same as `ppo_amp.evaluate`'s).
    With `hold`, the policy is commanded through that heading hold."""
    robot.reset(rng, t, firmware)
    d = robot.data
    given = command
    if hold is not None:
        hold.reset(heading(d.qpos[3:7]))
    n = len(robot.actuators)
    last_action = np.zeros(n, np.float32)
    queue = [np.zeros(n)] * latency_steps
    ring = np.zeros((WINDOW_STEPS, 2))
    start_xy = d.qpos[:2].copy()
    sums = dict(counted_steps=0.0, tracking=0.0, tracking_instant=0.0, speed=0.0, alive_steps=0.0, fell=0.0,
                power=0.0, yaw_rate=0.0, path=0.0)
    xy = start_xy
    warmup = min(WARMUP_STEPS, max(steps - 1, 0))
    for step in range(steps):
        s = robot.sensors()
        obs = firmware.observation(s["quat"], s["gyro"], s["joint_pos"], s["joint_vel"], command, last_action)
        (action,) = policy.run(["action"], {"obs": obs[None]})
        action = action[0]
        queue.append(action)
        robot.step(firmware.targets(queue.pop(0)))
        last_action = action
        v_base = _rotation(d.qpos[3:7]).T @ d.qvel[:3]
        ring = np.concatenate([ring[1:], v_base[None, :2]])
        sums["alive_steps"] += 1
        if step >= warmup:
            sums["counted_steps"] += 1
            sums["tracking"] += np.linalg.norm(ring.mean(axis=0) - command[:2])
        sums["tracking_instant"] += np.linalg.norm(v_base[:2] - command[:2])
        sums["speed"] += v_base[0]
        sums["yaw_rate"] += d.qvel[5]
        sums["path"] += np.linalg.norm(d.qpos[:2] - xy)
        xy = d.qpos[:2].copy()
        sums["power"] += np.abs(d.actuator_force[robot.actuators] * d.qvel[robot.dof_adr]).sum()
        if hold is not None:
            command = hold(given, heading(d.qpos[3:7]))
        gravity = projected_gravity(d.qpos[3:7])
        fallen = d.qpos[2] < t.min_base_height or gravity[2] > -math.cos(t.max_tilt)
        if step + 1 > t.grace_steps and fallen:
            sums["fell"] = 1.0
            break
    sums["distance"] = float(np.linalg.norm(d.qpos[:2] - start_xy))
    return sums


def _rotation(quat: np.ndarray) -> np.ndarray:
    out = np.zeros(9)
    mujoco.mju_quat2Mat(out, quat)
    return out.reshape(3, 3)


def run(onnx_path: str, xml_path: str, t: Termination, command: tuple[float, float, float], *, episodes: int,
        seconds: float, seed: int = 0, latency_steps: int = 0, heading_hold: float | None = None) -> dict[str, Any]:
    """`episodes` episodes of `seconds`; the figures of `experiments.sim2sim`'s line.
    `heading_hold` (1/s) overrides the export's command layer (None: as trained)."""
    meta = onnx_export.read_metadata(onnx_path)
    firmware = Firmware(meta)
    robot = Robot(xml_path, firmware, float(meta["physics_dt"]))
    policy = onnx_export.session(onnx_path, threads=1)
    steps = max(1, round(seconds / firmware.control_dt))
    rng = np.random.default_rng(seed)
    cmd = np.asarray(command, np.float64)
    layer = meta.get("heading_hold", {"gain": 0.0, "max_yaw_rate": 0.0})
    gain = float(layer["gain"]) if heading_hold is None else heading_hold
    hold = HeadingHold(gain, layer["max_yaw_rate"], firmware.control_dt) if gain > 0 else None
    per = [episode(robot, firmware, policy, t, cmd, steps, rng, latency_steps, hold) for _ in range(episodes)]
    total = {k: sum(e[k] for e in per) for k in per[0]}
    falls = int(total["fell"])
    return {
        "episodes": episodes, "falls": falls, "success_rate": 1.0 - falls / episodes,
        "distance_m": total["distance"] / episodes, "distance_min_m": min(e["distance"] for e in per),
        "path_m": total["path"] / episodes, "heading_drift": float(np.mean([abs(e["yaw_rate"]) / max(e["alive_steps"], 1.0) for e in per])),
        "tracking_mae": total["tracking"] / max(total["counted_steps"], 1.0),
        "tracking_mae_instant": total["tracking_instant"] / max(total["alive_steps"], 1.0),
        "mean_speed": total["speed"] / max(total["alive_steps"], 1.0),
        "mean_power_w": total["power"] / max(total["alive_steps"], 1.0),
        "seconds": steps * firmware.control_dt, "command": list(command), "latency_steps": latency_steps,
        "heading_hold": gain,
        "iteration": meta.get("iteration"), "run_name": meta.get("run_name"),
    }
