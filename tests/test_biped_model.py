"""The bundled 12-DOF biped MJCF (issue 4's robot) in MuJoCo C: layout, limits, standing."""

import mujoco
import numpy as np
import pytest

from common import robots

LEG = ("hip_yaw", "hip_roll", "hip_pitch", "knee", "ankle_pitch", "ankle_roll")


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_path(robots.BIPED_XML)


def test_joints_actuators_and_hip_width(model):
    assert (model.nq, model.nv, model.nu) == (19, 18, 12)
    names = [f"{side}_{j}" for side in ("left", "right") for j in LEG]
    assert [model.joint(i).name for i in range(1, model.njnt)] == names
    # Each actuator drives the joint of the same name, in the same order.
    assert [model.joint(model.actuator_trnid[i, 0]).name for i in range(model.nu)] == names
    d = mujoco.MjData(model)
    mujoco.mj_forward(model, d)
    left, right = (d.xanchor[model.joint(f"{s}_hip_yaw").id] for s in ("left", "right"))
    assert abs(np.linalg.norm(left - right) - 0.113) < 1e-6
    np.testing.assert_allclose(model.jnt_range[model.joint("left_ankle_pitch").id], np.deg2rad([-20, 20]), atol=1e-5)
    np.testing.assert_allclose(model.jnt_range[model.joint("right_ankle_roll").id], np.deg2rad([-15, 15]), atol=1e-5)
    assert np.all(model.actuator_forcelimited) and np.all(model.actuator_forcerange[:, 1] > 0)


def test_home_keyframe_leaves_ankle_room_and_rests_on_the_soles(model):
    key = model.key("home")
    np.testing.assert_allclose(key.ctrl, key.qpos[7:])
    d = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, d, key.id)
    mujoco.mj_kinematics(model, d)
    mujoco.mj_comPos(model, d)
    # The ankle servos are too soft to hold a CoM far ahead of or behind the ankle axes.
    ankle_x = d.xanchor[model.joint("left_ankle_pitch").id][0]
    assert abs(d.subtree_com[model.body("base").id][0] - ankle_x) < 0.01
    for side in ("left", "right"):
        ankle = model.joint(f"{side}_ankle_pitch")
        angle = d.qpos[ankle.qposadr[0]]
        # A walking gait keeps the stance foot flat only with room on both sides.
        assert min(angle - ankle.range[0], ankle.range[1] - angle) > 0.15
        # Flat feet: pitch angles sum to zero, so the sole is level.
        pitch = sum(d.qpos[model.joint(f"{side}_{j}").qposadr[0]] for j in ("hip_pitch", "knee", "ankle_pitch"))
        assert abs(pitch) < 1e-9
        assert abs(d.site(f"{side}_foot_site").xpos[2]) < 1e-6


def test_home_keyframe_stands_under_position_control(model):
    d = mujoco.MjData(model)
    mujoco.mj_resetDataKeyframe(model, d, model.key("home").id)
    z0 = d.qpos[2]
    assert d.qpos[7 + LEG.index("knee")] > 0.3  # knees bent
    for _ in range(int(2.0 / model.opt.timestep)):
        mujoco.mj_step(model, d)
    assert abs(d.qpos[2] - z0) < 0.01
    # Upright: the base z axis stays within 5 degrees of vertical.
    up = np.zeros(9)
    mujoco.mju_quat2Mat(up, d.qpos[3:7])
    assert up[8] > np.cos(np.deg2rad(5))
    # Only the feet touch the floor, without sinking into it.
    feet = {model.geom("left_foot").id, model.geom("right_foot").id}
    contacts = d.contact[: d.ncon]
    assert d.ncon > 0 and all({int(c.geom1), int(c.geom2)} & feet for c in contacts)
    assert min(c.dist for c in contacts) > -0.005
