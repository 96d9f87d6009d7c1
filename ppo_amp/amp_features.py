"""AMP observation features of the biped, from a simulator state or a reference clip.

One frame is 33 numbers, in this order:
  joint positions (12), joint velocities (12),
  root linear velocity in the heading frame (3), root angular velocity in the heading
  frame (3), root height (1), foot contacts (left, right) (2).

The heading frame is the world frame turned about z by the base's yaw, so a motion and
the same motion turned to face another direction give the same features; root x/y
position is left out for the same reason. The two entry points take the angular
velocity in different frames (MuJoCo's free joint stores it in the base's local frame,
`MotionClip` in the world frame) and must agree on the same physical state; the tests
check that they do.

The discriminator sees `k` consecutive frames flattened, oldest first (`windows`).
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from common import quaternion

from ppo_amp.motion import MotionClip

NUM_JOINTS = 12
FEATURE_SIZE = 2 * NUM_JOINTS + 3 + 3 + 1 + 2


def world_to_heading(yaw: Float[Array, " *b"], vec: Float[Array, "*b 3"]) -> Float[Array, "*b 3"]:
    """Expresses a world-frame vector in the frame turned by `yaw` about z."""
    c, s = jnp.cos(yaw), jnp.sin(yaw)
    vx, vy, vz = vec[..., 0], vec[..., 1], vec[..., 2]
    return jnp.stack([c * vx + s * vy, -s * vx + c * vy, vz], axis=-1)


def _features(
    joint_pos: Float[Array, "*b 12"],
    joint_vel: Float[Array, "*b 12"],
    root_quat: Float[Array, "*b 4"],
    lin_vel_world: Float[Array, "*b 3"],
    ang_vel_world: Float[Array, "*b 3"],
    root_height: Float[Array, " *b"],
    foot_contact: Float[Array, "*b 2"],
) -> Float[Array, "*b 33"]:
    yaw = quaternion.yaw(root_quat)
    return jnp.concatenate(
        [
            joint_pos,
            joint_vel,
            world_to_heading(yaw, lin_vel_world),
            world_to_heading(yaw, ang_vel_world),
            root_height[..., None],
            foot_contact,
        ],
        axis=-1,
    )


def frame_features_from_state(
    qpos: Float[Array, "*b 19"], qvel: Float[Array, "*b 18"], foot_contact: Float[Array, "*b 2"]
) -> Float[Array, "*b 33"]:
    """Features of a simulator state; qvel[3:6] is MuJoCo's local-frame angular velocity."""
    qpos = jnp.asarray(qpos)
    qvel = jnp.asarray(qvel)
    quat = qpos[..., 3:7]
    return _features(
        joint_pos=qpos[..., 7:],
        joint_vel=qvel[..., 6:],
        root_quat=quat,
        lin_vel_world=qvel[..., 0:3],
        ang_vel_world=quaternion.rotate(quat, qvel[..., 3:6]),
        root_height=qpos[..., 2],
        foot_contact=jnp.asarray(foot_contact, qpos.dtype),
    )


def clip_features(clip: MotionClip) -> Float[Array, "T 33"]:
    """Features of every frame of a reference clip (angular velocity already in world)."""
    a = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return _features(
        joint_pos=a(clip.joint_pos),
        joint_vel=a(clip.joint_vel),
        root_quat=a(clip.root_quat),
        lin_vel_world=a(clip.root_lin_vel),
        ang_vel_world=a(clip.root_ang_vel),
        root_height=a(clip.root_pos[:, 2]),
        foot_contact=a(clip.foot_contact),
    )


def windows(features: Float[Array, "T F"], k: int) -> Float[Array, "T-k+1 k*F"]:
    """All runs of `k` consecutive frames, each flattened oldest frame first.

    Works on numpy and jax arrays alike; `k` must be a Python int (it fixes the shape).
    """
    num = features.shape[0] - k + 1
    if num < 1:
        raise ValueError(f"need at least k={k} frames for one window, got {features.shape[0]}")
    index = np.arange(num)[:, None] + np.arange(k)[None, :]
    return features[index].reshape(num, k * features.shape[1])


def reference_windows(clips: Sequence[MotionClip], k: int) -> Float[Array, "M k*33"]:
    """Windows of every clip, concatenated; a window never spans two clips.

    A clip shorter than `k` frames raises, rather than silently vanishing from the data.
    """
    if not clips:
        raise ValueError("no reference clips")
    return jnp.concatenate([windows(clip_features(c), k) for c in clips], axis=0)
