"""Observation and reward of the `gym` humanoid against MuJoCo C on the same states."""

import equinox as eqx
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

DT = 0.015


def _c_obs(m, d):
    mujoco.mj_rnePostConstraint(m, d)
    return np.concatenate([d.qpos[2:], d.qvel, d.cinert.ravel(), d.cvel.ravel(), d.qfrc_actuator, d.cfrc_ext.ravel()])


def _c_mass_center_x(m, d):
    return m.body_mass @ d.xipos[:, 0] / m.body_mass.sum()


@pytest.fixture(scope="module")
def gym_fns(gym_env):
    return eqx.filter_jit(gym_env.reset), eqx.filter_jit(gym_env.step)


def test_observation_layout(gym_env):
    assert gym_env.observation_size == 376
    assert gym_env.action_size == 17
    m = gym_env.config.load_mj_model()
    assert (m.nq, m.nv, m.nbody, m.ntendon) == (24, 23, 14, 2)
    assert m.opt.solver == mujoco.mjtSolver.mjSOL_CG
    assert m.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
    assert m.opt.timestep == pytest.approx(0.003)


@pytest.mark.parametrize("seed", [0, 1])
def test_step_parity_with_mujoco_c(gym_env, gym_fns, seed):
    reset, step = gym_fns
    m = gym_env.config.load_mj_model()
    d = mujoco.MjData(m)
    state = reset(jax.random.PRNGKey(seed))
    d.qpos[:], d.qvel[:] = np.asarray(state.data.qpos), np.asarray(state.data.qvel)
    mujoco.mj_forward(m, d)
    np.testing.assert_allclose(np.asarray(state.obs), _c_obs(m, d), atol=1e-4, rtol=1e-4)

    rng = np.random.default_rng(seed)
    n_compared = 0
    for _ in range(12):
        action = rng.uniform(-0.4, 0.4, 17).astype(np.float32)
        # Both sides start each step from MJX's state, so errors cannot compound.
        d.qpos[:], d.qvel[:] = np.asarray(state.data.qpos), np.asarray(state.data.qvel)
        d.qacc_warmstart[:] = np.asarray(state.data.qacc_warmstart)
        mujoco.mj_forward(m, d)
        x_before = _c_mass_center_x(m, d)
        d.ctrl[:] = action
        for _ in range(5):
            mujoco.mj_step(m, d)
        reward_c = 1.25 * (_c_mass_center_x(m, d) - x_before) / DT + 5.0 - 0.1 * np.sum(np.square(action.astype(np.float64)))
        state = step(state, jnp.asarray(action))
        obs_c, obs_j = _c_obs(m, d), np.asarray(state.obs)
        # Kinematics, velocities and actuator forces: tight. cfrc_ext holds contact
        # forces from an iterative solver in float32 vs float64: looser.
        split = 376 - 14 * 6
        scale = 1.0 + np.abs(obs_c)
        assert np.max(np.abs(obs_j - obs_c)[:split] / scale[:split]) < 2e-3
        assert np.max(np.abs(obs_j - obs_c)[split:] / scale[split:]) < 5e-2
        assert abs(float(state.reward) - reward_c) < 1e-3
        # Torso tilt: 1 - the z component of the torso's up axis (its xmat's last entry).
        assert abs(float(state.metrics["torso_tilt"]) - (1.0 - d.xmat[1][8])) < 1e-4
        assert bool(state.done) == (not (1.0 < d.qpos[2] < 2.0))
        n_compared += 1
        if bool(state.done):
            break
    assert n_compared >= 5
