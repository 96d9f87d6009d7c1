"""The robot side of an exported biped policy, in NumPy only: what firmware computes
around `policy.onnx`, written from the model's metadata alone.

Every 20 ms the firmware reads the IMU (orientation quaternion, body-frame gyro) and the
joint encoders, builds the observation of `metadata["obs_terms"]` (each term times its
scale), runs the model and turns its action into position-servo targets by
`metadata["action_rule"]`. Nothing here imports JAX or reads the training code, so a
mismatch between the export and training shows up where this is used (`experiments.sim2sim`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from jaxtyping import Float

# Terms a robot measures or is given; `base_lin_vel` needs an estimator's value.
MEASURED_TERMS = ("base_ang_vel", "projected_gravity", "command", "joint_pos", "joint_vel", "last_action",
                  "base_lin_vel")


def projected_gravity(quat: Float[np.ndarray, "4"]) -> Float[np.ndarray, "3"]:
    """The unit gravity direction (0, 0, -1) in the body frame of orientation `quat` (w, x, y, z)."""
    w, x, y, z = quat / np.linalg.norm(quat)
    # Minus the third row of the body-to-world rotation matrix.
    return -np.array([2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)])


class Firmware:
    """Observation in, servo targets out, for one exported biped policy."""

    def __init__(self, metadata: dict[str, Any]):
        missing = [k for k in ("obs_terms", "default_joint_pos", "default_ctrl", "action_scale", "ctrl_range",
                               "joint_names", "control_dt") if k not in metadata]
        if missing:
            raise ValueError(f"the model's metadata lacks {missing}: not a biped policy export")
        self.terms = [(t["name"], int(t["size"]), float(t["scale"])) for t in metadata["obs_terms"]]
        unknown = [n for n, _, _ in self.terms if n not in MEASURED_TERMS]
        if unknown:
            raise ValueError(f"obs_terms {unknown} are not measurable on the robot")
        self.joint_names = list(metadata["joint_names"])
        self.default_joint_pos = np.asarray(metadata["default_joint_pos"], np.float64)
        self.default_ctrl = np.asarray(metadata["default_ctrl"], np.float64)
        self.action_scale = np.asarray(metadata["action_scale"], np.float64)
        self.ctrl_range = np.asarray(metadata["ctrl_range"], np.float64)
        self.control_dt = float(metadata["control_dt"])
        self.observation_size = sum(size for _, size, _ in self.terms)

    def observation(self, quat: Float[np.ndarray, "4"], gyro: Float[np.ndarray, "3"],
                    joint_pos: Float[np.ndarray, " joints"], joint_vel: Float[np.ndarray, " joints"],
                    command: Float[np.ndarray, "3"], last_action: Float[np.ndarray, " joints"],
                    base_lin_vel: Float[np.ndarray, "3"] | None = None) -> Float[np.ndarray, " obs"]:
        """The model's raw input from the sensors (gyro and `base_lin_vel` in the body frame)."""
        values = {
            "base_ang_vel": lambda: gyro,
            "projected_gravity": lambda: projected_gravity(quat),
            "command": lambda: command,
            "joint_pos": lambda: joint_pos - self.default_joint_pos,
            "joint_vel": lambda: joint_vel,
            "last_action": lambda: last_action,
            "base_lin_vel": lambda: _required(base_lin_vel, "base_lin_vel"),
        }
        parts = [np.asarray(values[name](), np.float64) * scale for name, _, scale in self.terms]
        return np.concatenate(parts).astype(np.float32)

    def targets(self, action: Float[np.ndarray, " joints"]) -> Float[np.ndarray, " joints"]:
        """Position-servo targets of an action in [-1, 1] (`metadata["action_rule"]`)."""
        target = self.default_ctrl + self.action_scale * np.asarray(action, np.float64)
        return np.clip(target, self.ctrl_range[:, 0], self.ctrl_range[:, 1])


class HeadingHold:
    """The command layer of `metadata["heading_hold"]`: a heading target integrates the
    commanded yaw rate; the yaw rate given to the policy is the commanded one plus
    gain x heading error, clipped to max_yaw_rate (biped_walk's `heading_hold`)."""

    def __init__(self, gain: float, max_yaw_rate: float, control_dt: float):
        self.gain, self.max_yaw_rate, self.control_dt = float(gain), float(max_yaw_rate), float(control_dt)
        self.target = 0.0

    def reset(self, heading: float) -> None:
        self.target = float(heading)

    def __call__(self, command: Float[np.ndarray, "3"], heading: float) -> Float[np.ndarray, "3"]:
        """The command the policy sees after one control step, at the robot's `heading`."""
        self.target += float(command[2]) * self.control_dt
        error = np.arctan2(np.sin(self.target - heading), np.cos(self.target - heading))
        out = np.array(command, np.float64)
        out[2] = np.clip(command[2] + self.gain * error, -self.max_yaw_rate, self.max_yaw_rate)
        return out


def heading(quat: Float[np.ndarray, "4"]) -> float:
    """The yaw of orientation `quat` (w, x, y, z): the body x axis on the ground plane."""
    w, x, y, z = quat
    return float(np.arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z)))


def _required(value, name: str):
    if value is None:
        raise ValueError(f"the policy observes {name}, which the robot must estimate; pass it")
    return value
