"""common.quaternion against MuJoCo's own quaternion functions, in NumPy and JAX."""

import jax.numpy as jnp
import mujoco
import numpy as np

from common import quaternion


def _unit(n, seed=0):
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def test_matches_mujoco_in_numpy_and_jax():
    q, r = _unit(16), _unit(16, seed=1)
    v = np.random.default_rng(2).normal(size=(16, 3))
    mat, prod, rot = np.zeros((16, 9)), np.zeros((16, 4)), np.zeros((16, 3))
    for i in range(16):
        mujoco.mju_quat2Mat(mat[i], q[i])
        mujoco.mju_mulQuat(prod[i], q[i], r[i])
        mujoco.mju_rotVecQuat(rot[i], v[i], q[i])
    for xp, tol in ((np, 1e-12), (jnp, 1e-5)):
        qx, rx, vx = xp.asarray(q), xp.asarray(r), xp.asarray(v)
        np.testing.assert_allclose(quaternion.to_matrix(qx), mat.reshape(16, 3, 3), atol=tol)
        np.testing.assert_allclose(quaternion.to_matrix(qx[3]), mat[3].reshape(3, 3), atol=tol)
        np.testing.assert_allclose(quaternion.mul(qx, rx), prod, atol=tol)
        np.testing.assert_allclose(quaternion.rotate(qx, vx), rot, atol=tol)
        np.testing.assert_allclose(quaternion.mul(qx, quaternion.conj(qx)), np.tile([1.0, 0, 0, 0], (16, 1)), atol=tol)
    yaw = np.linspace(-3, 3, 7)
    turned = quaternion.about_axis(2, yaw)
    np.testing.assert_allclose(quaternion.yaw(turned), yaw, atol=1e-12)
    # The rotation vector of a turn about z by a is (0, 0, a).
    np.testing.assert_allclose(quaternion.rotation_vector(turned), np.stack([0 * yaw, 0 * yaw, yaw], 1), atol=1e-12)
