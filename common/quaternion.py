"""Unit quaternions in MuJoCo's (w, x, y, z) order, for NumPy and JAX arrays alike.

Every function works on either kind of array (jitted code passes `jax.Array`s; the
offline motion tools pass float64 NumPy arrays and keep their precision) and on any
leading batch shape.
"""

from __future__ import annotations

from types import ModuleType

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

Quat = Float[Array, "*b 4"] | Float[np.ndarray, "*b 4"]
Vec = Float[Array, "*b 3"] | Float[np.ndarray, "*b 3"]


def _xp(*arrays) -> ModuleType:
    return jnp if any(isinstance(a, jax.Array) for a in arrays) else np


def mul(a: Quat, b: Quat) -> Quat:
    """Hamilton product a * b (apply b, then a)."""
    xp = _xp(a, b)
    aw, av = a[..., :1], a[..., 1:]
    bw, bv = b[..., :1], b[..., 1:]
    w = aw * bw - xp.sum(av * bv, axis=-1, keepdims=True)
    return xp.concatenate([w, aw * bv + bw * av + xp.cross(av, bv)], axis=-1)


def conj(q: Quat) -> Quat:
    """The inverse of a unit quaternion."""
    return q * _xp(q).asarray([1.0, -1.0, -1.0, -1.0], dtype=q.dtype)


def rotate(q: Quat, v: Vec) -> Vec:
    """`v` rotated by `q`: body -> world for a body's orientation."""
    xp = _xp(q, v)
    w, u = q[..., :1], q[..., 1:]
    t = 2.0 * xp.cross(u, v)
    return v + w * t + xp.cross(u, t)


def to_matrix(q: Quat) -> Float[Array, "*b 3 3"] | Float[np.ndarray, "*b 3 3"]:
    """The rotation matrix (body -> world) of `q`."""
    xp = _xp(q)
    w, x, y, z = (q[..., i] for i in range(4))
    # Built as one nested array, as the envs always built it: XLA compiles a stack of
    # stacks with other rounding in the last bit, which changed evaluation trajectories.
    m = xp.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])
    return m if q.ndim == 1 else xp.moveaxis(m, (0, 1), (-2, -1))


def about_axis(axis: int, angle: Float[Array, " *b"] | Float[np.ndarray, " *b"]) -> Quat:
    """Rotations by `angle` (rad) about world axis 0 (x), 1 (y) or 2 (z)."""
    xp = _xp(angle)
    half = xp.asarray(angle) / 2
    zero = xp.zeros_like(half)
    parts = [xp.cos(half), zero, zero, zero]
    parts[1 + axis] = xp.sin(half)
    return xp.stack(parts, axis=-1)


def yaw(q: Quat) -> Float[Array, " *b"] | Float[np.ndarray, " *b"]:
    """Heading: the angle of the body's x axis projected on the ground plane."""
    w, x, y, z = (q[..., i] for i in range(4))
    # The body x axis in world coordinates is the rotation matrix's first column.
    return _xp(q).arctan2(2.0 * (w * z + x * y), 1.0 - 2.0 * (y * y + z * z))


def wrap(angle: Float[Array, " *b"] | Float[np.ndarray, " *b"]) -> Float[Array, " *b"] | Float[np.ndarray, " *b"]:
    """Angles (rad) taken into [-pi, pi]."""
    xp = _xp(angle)
    return xp.arctan2(xp.sin(angle), xp.cos(angle))


def continuous(q: Float[np.ndarray, "T 4"]) -> Float[np.ndarray, "T 4"]:
    """Signs flipped so that consecutive quaternions lie in one hemisphere (q and -q agree)."""
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    flips = np.concatenate([[1.0], np.cumprod(np.where(dots < 0.0, -1.0, 1.0))])
    return q * flips[:, None]


def slerp(q0: Float[np.ndarray, "N 4"], q1: Float[np.ndarray, "N 4"], u: Float[np.ndarray, " N"]
          ) -> Float[np.ndarray, "N 4"]:
    """Spherical interpolation along the shorter arc; u in [0, 1]."""
    dot = np.sum(q0 * q1, axis=-1)
    q1 = np.where(dot[:, None] < 0.0, -q1, q1)
    theta = np.arccos(np.clip(np.abs(dot), -1.0, 1.0))
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-8
    # Nearly equal quaternions: the slerp weights tend to the linear ones.
    w0 = np.where(near, 1.0 - u, np.sin((1.0 - u) * theta) / np.where(near, 1.0, sin_theta))
    w1 = np.where(near, u, np.sin(u * theta) / np.where(near, 1.0, sin_theta))
    q = w0[:, None] * q0 + w1[:, None] * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def rotation_vector(dq: Float[np.ndarray, "N 4"]) -> Float[np.ndarray, "N 3"]:
    """Axis times angle of each rotation, taking the shorter way round."""
    dq = np.where(dq[:, :1] < 0.0, -dq, dq)
    w, v = dq[:, 0], dq[:, 1:]
    n = np.linalg.norm(v, axis=-1)
    # angle / |v| -> 2 / w as the rotation vanishes.
    scale = np.where(n > 1e-12, 2.0 * np.arctan2(n, w) / np.maximum(n, 1e-12), 2.0 / np.maximum(w, 1e-12))
    return v * scale[:, None]
