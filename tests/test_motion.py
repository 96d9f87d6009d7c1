"""AMP reference motions: .npz loading and resampling, derived velocities and contacts,
bad files, the GMR converter's pickle guard, and the built-in walking generator replayed
in MuJoCo C."""

import os
import pickle
import subprocess
import sys

import mujoco
import numpy as np
import pytest

from common import quaternion, robots
from ppo_amp import motion, motion_gen

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _yaw_quat(angle):
    return np.stack([np.cos(angle / 2), 0 * angle, 0 * angle, np.sin(angle / 2)], axis=-1)


def _write(path, **arrays):
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return str(path)


def _poses(fps=100.0, frames=101):
    t = np.arange(frames) / fps
    return dict(
        fps=fps,
        root_pos=np.stack([0.3 * t, -0.1 * t, 0.47 + 0.0 * t], axis=1),
        root_quat=_yaw_quat(0.8 * t),
        joint_pos=0.1 * np.sin(np.arange(12))[None] + 0.2 * t[:, None],
    )


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_path(robots.BIPED_XML)


@pytest.fixture(scope="module")
def clips():
    return motion_gen.generate_walking_clips()


def test_joint_names_follow_the_biped_actuators(model):
    names = tuple(model.joint(model.actuator_trnid[i, 0]).name for i in range(model.nu))
    assert motion.BIPED_JOINT_NAMES == names


def test_slerp_midpoint_is_the_half_rotation():
    q = quaternion.slerp(_yaw_quat(np.array([0.0])), _yaw_quat(np.array([np.pi / 2])), np.array([0.5]))
    np.testing.assert_allclose(q, _yaw_quat(np.array([np.pi / 4])), atol=1e-12)
    # The shorter arc is taken even when the end quaternion has the other sign.
    q = quaternion.slerp(_yaw_quat(np.array([0.0])), -_yaw_quat(np.array([np.pi / 2])), np.array([0.5]))
    np.testing.assert_allclose(q, _yaw_quat(np.array([np.pi / 4])), atol=1e-12)


def test_resampling_matches_the_analytic_motion(tmp_path):
    path = _write(tmp_path / "clip.npz", **_poses())
    for fps in (50.0, 30.0):  # every other frame, and times between frames
        clip = motion.load_npz(path, fps=fps)
        t = np.arange(clip.num_frames) / fps
        assert clip.fps == fps and clip.num_frames == int(1.0 * fps) + 1
        want = _poses(fps=fps, frames=clip.num_frames)
        np.testing.assert_allclose(clip.root_pos, want["root_pos"], atol=1e-12)
        np.testing.assert_allclose(clip.joint_pos, want["joint_pos"], atol=1e-12)
        # A constant-rate rotation about one axis is exactly what slerp traces.
        np.testing.assert_allclose(clip.root_quat, _yaw_quat(0.8 * t), atol=1e-12)
    assert motion.load_npz(path).fps == 100.0  # None keeps the file's rate


def test_velocities_by_finite_differences_in_the_world_frame(tmp_path):
    fps, t = 50.0, np.arange(60) / 50.0
    tilt = np.array([np.cos(0.2), np.sin(0.2), 0.0, 0.0])  # 0.4 rad about x
    quat = quaternion.mul(_yaw_quat(1.3 * t), np.broadcast_to(tilt, (len(t), 4)))
    # Yaw about the world z axis: the world-frame rate is (0, 0, 1.3) at every frame,
    # while the body-frame one would lean by the tilt.
    omega = motion.angular_velocity_world(quat, fps)
    np.testing.assert_allclose(omega, np.tile([0.0, 0.0, 1.3], (len(t), 1)), atol=1e-9)
    joints = np.tile(t[:, None] ** 2, (1, 12))
    clip = motion.clip_from_positions("q", fps, np.stack([0.5 * t, 0 * t, 0.47 + 0 * t], 1), quat, joints)
    np.testing.assert_allclose(clip.root_lin_vel, np.tile([0.5, 0.0, 0.0], (len(t), 1)), atol=1e-12)
    # Central differences are exact on a parabola inside; the ends are one-sided.
    np.testing.assert_allclose(clip.joint_vel[1:-1], 2 * joints[1:-1] ** 0.5, atol=1e-12)
    np.testing.assert_allclose(clip.joint_vel[0], (joints[1] - joints[0]) * fps, atol=1e-12)
    # Quaternion signs flipped in the file change nothing.
    flipped = quat * np.where(np.arange(len(t)) % 3 == 0, -1.0, 1.0)[:, None]
    np.testing.assert_allclose(motion.angular_velocity_world(flipped, fps), omega, atol=1e-9)


def test_save_load_round_trip_and_joint_reordering(tmp_path, clips):
    clip = clips[3]
    path = str(tmp_path / "walk.npz")
    motion.save_npz(clip, path)
    back = motion.load_npz(path)
    for field in ("root_pos", "root_quat", "joint_pos", "root_lin_vel", "root_ang_vel", "joint_vel", "foot_contact"):
        # Loading renormalises the quaternions, which may move them by an ulp.
        np.testing.assert_allclose(getattr(back, field), getattr(clip, field), rtol=0, atol=1e-12)
    assert back.name == "walk" and back.fps == clip.fps
    # Columns named in another order come back in the biped's order.
    order = np.random.default_rng(0).permutation(12)
    shuffled = _write(
        tmp_path / "shuffled.npz", fps=clip.fps, root_pos=clip.root_pos, root_quat=clip.root_quat,
        joint_pos=clip.joint_pos[:, order], joint_names=np.array(motion.BIPED_JOINT_NAMES)[order],
    )
    np.testing.assert_array_equal(motion.load_npz(shuffled).joint_pos, clip.joint_pos)
    assert [c.name for c in motion.load_clips([str(tmp_path)], fps=25.0)] == ["shuffled", "walk"]


def test_small_quaternion_errors_are_normalised(tmp_path):
    poses = _poses()
    poses["root_quat"] = poses["root_quat"] * 1.0005
    clip = motion.load_npz(_write(tmp_path / "c.npz", **poses))
    np.testing.assert_allclose(np.linalg.norm(clip.root_quat, axis=1), 1.0, atol=1e-12)


def _bad_files(tmp_path):
    good = _poses()
    cases = {}

    def case(name, problem, **change):
        arrays = {k: v for k, v in {**good, **change}.items() if v is not None}
        cases[name] = (_write(tmp_path / f"{name}.npz", **arrays), problem)

    case("missing", "missing key(s) ['root_quat']", root_quat=None)
    case("shape", "'joint_pos' has shape (101, 11), expected (T, 12)", joint_pos=good["joint_pos"][:, :11])
    nan = good["root_pos"].copy()
    nan[7, 1] = np.nan
    case("nan", "'root_pos' has non-finite values", root_pos=nan)
    objects = np.array(list(motion.BIPED_JOINT_NAMES), dtype=object)
    case("objects", "'joint_names' holds pickled Python objects", joint_names=objects)
    case("quat", "'root_quat' is not a unit quaternion", root_quat=good["root_quat"] * 1.01)
    case("short", "2 frame(s), at least 3", **{k: good[k][:2] for k in ("root_pos", "root_quat", "joint_pos")})
    case("fps", "'fps' must be a positive number", fps=0.0)
    case("names", "'joint_names' do not match", joint_names=np.array(["a"] * 12))
    with open(tmp_path / "text.npz", "w") as f:
        f.write("not an archive\n")
    cases["text"] = (str(tmp_path / "text.npz"), "not a readable .npz archive")
    cases["absent"] = (str(tmp_path / "absent.npz"), "no such file")
    return cases


def test_bad_files_give_one_line_naming_file_and_problem(tmp_path):
    for path, problem in _bad_files(tmp_path).values():
        with pytest.raises(motion.MotionError) as info:
            motion.load_npz(path)
        message = str(info.value)
        assert isinstance(info.value, motion.UserError)
        assert "\n" not in message and message.startswith(path) and problem in message, message


def _cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "experiments.motion", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


class _Trap:
    """Unpickling this creates a marker file: proof that the pickle was loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_gmr_pickle_is_refused_without_the_flag(tmp_path):
    marker, pkl = tmp_path / "marker", tmp_path / "evil.pkl"
    with open(pkl, "wb") as f:
        pickle.dump({"fps": _Trap(str(marker))}, f)
    for path in (str(pkl), str(tmp_path / "absent.pkl")):  # refused before even opening it
        with pytest.raises(motion.MotionError, match="arbitrary code.*allow_pickle") as info:
            motion.convert_gmr_pkl(path, str(tmp_path / "out.npz"))
        assert "\n" not in str(info.value) and str(info.value).startswith(path)
    assert not marker.exists() and not (tmp_path / "out.npz").exists()
    # The command line refuses the same way: one line on stderr, exit status 2.
    run = _cli("convert", f"--input={pkl}", f"--output={tmp_path / 'o.npz'}")
    assert run.returncode == 2 and "allow_pickle" in run.stderr and len(run.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_gmr_conversion_round_trip(tmp_path):
    poses = _poses(fps=30.0, frames=31)
    dof = np.random.default_rng(1).uniform(-0.3, 0.3, (31, 14))
    joint_map = [13, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 11]
    gmr = {
        "fps": 30,
        "root_pos": poses["root_pos"],
        "root_rot": poses["root_quat"][:, [1, 2, 3, 0]],  # GMR stores x-y-z-w
        "dof_pos": dof,
        "local_body_pos": None,
        "link_body_list": None,
    }
    pkl, out = tmp_path / "gmr.pkl", str(tmp_path / "gmr.npz")
    with open(pkl, "wb") as f:
        pickle.dump(gmr, f)
    with pytest.raises(motion.MotionError, match="14 columns; give joint_map"):
        motion.convert_gmr_pkl(str(pkl), out, allow_pickle=True)
    with pytest.raises(motion.MotionError, match="joint_map must list 12 column indices"):
        motion.convert_gmr_pkl(str(pkl), out, allow_pickle=True, joint_map=[14] * 12)
    columns = ",".join(map(str, joint_map))
    run = _cli("convert", f"--input={pkl}", f"--output={out}", "--allow_pickle", f"--joint_map={columns}")
    assert run.returncode == 0, run.stderr
    clip = motion.load_npz(out)
    assert clip.fps == 30.0 and clip.num_frames == 31
    np.testing.assert_allclose(clip.root_quat, poses["root_quat"], atol=1e-12)
    np.testing.assert_allclose(clip.root_pos, poses["root_pos"], atol=1e-12)
    np.testing.assert_allclose(clip.joint_pos, dof[:, joint_map], atol=1e-12)
    with open(pkl, "wb") as f:
        pickle.dump([1, 2], f)
    with pytest.raises(motion.MotionError, match="expected a GMR dict"):
        motion.convert_gmr_pkl(str(pkl), out, allow_pickle=True)


def _replay(model, clip):
    """Lowest sole corner and sole-site position of each foot per frame, in MuJoCo C."""
    data = mujoco.MjData(model)
    feet = [model.geom(name).id for name in ("left_foot", "right_foot")]
    corners = np.array([[x, y, -1.0] for x in (-1, 1) for y in (-1, 1)])
    lowest, sites = np.empty((clip.num_frames, 2)), np.empty((clip.num_frames, 2, 3))
    for t, q in enumerate(motion.robot_qpos(model, clip.root_pos, clip.root_quat, clip.joint_pos)):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        for side, geom in enumerate(feet):
            points = data.geom_xpos[geom] + (corners * model.geom_size[geom]) @ data.geom_xmat[geom].reshape(3, 3).T
            lowest[t, side] = points[:, 2].min()
        sites[t] = [data.site(name).xpos for name in motion.FOOT_SITES]
    return lowest, sites


def test_generated_clips_keep_stance_feet_planted(model, clips):
    assert [c.name for c in clips] == ["stand", "step_in_place", "walk_0.20", "walk_0.35", "walk_0.50", "walk_0.65"]
    for clip in clips:
        assert clip.fps == 50.0 and clip.num_frames == 201
        lowest, sites = _replay(model, clip)
        contact = clip.foot_contact > 0.5
        assert np.all(contact.any(axis=0)), clip.name
        # Penetration of the flagged feet, and of any foot at any time.
        assert -lowest[contact].min() < 0.01 and lowest.min() > -0.01, clip.name
        slip = np.linalg.norm(np.diff(sites[..., :2], axis=0), axis=-1)
        held = contact[1:] & contact[:-1]
        assert slip[held].max() < 0.02, clip.name
        if clip.name.startswith(("walk", "step")):
            # Each foot swings, clearing the floor, and alternates with the other.
            assert np.all((~contact).any(axis=0)) and lowest.max() > 0.02, clip.name
            assert not np.any(~contact[:, 0] & ~contact[:, 1]), clip.name
        else:
            assert contact.all()


def test_generated_clips_respect_joint_ranges_and_speed(model, clips):
    names = motion.BIPED_JOINT_NAMES
    lower = np.array([model.joint(n).range[0] for n in names])
    upper = np.array([model.joint(n).range[1] for n in names])
    for clip, speed in zip(clips, (0.0, 0.0, 0.2, 0.35, 0.5, 0.65)):
        assert np.all(clip.joint_pos >= lower + 0.03) and np.all(clip.joint_pos <= upper - 0.03), clip.name
        mean_speed = (clip.root_pos[-1, 0] - clip.root_pos[0, 0]) / clip.duration
        assert abs(mean_speed - speed) <= 0.05 * speed + 1e-9, clip.name
        assert np.allclose(clip.root_lin_vel[:, 0], speed) and np.all(np.isfinite(clip.joint_vel)), clip.name
        np.testing.assert_allclose(np.linalg.norm(clip.root_quat, axis=1), 1.0)


def test_infeasible_speeds_are_refused_not_clipped():
    with pytest.raises(motion.MotionError, match="walking at 1.0 m/s is infeasible"):
        motion_gen.walking_clip(1.0)
    with pytest.raises(motion.MotionError, match="_ankle_pitch reaches .* outside its range"):
        motion_gen.walking_clip(0.5, leg_height=0.33)


def test_cli_generate_writes_loadable_clips(tmp_path):
    run = _cli("generate", f"--output_dir={tmp_path}", "--speeds=0.3", "--seconds=1")
    assert run.returncode == 0, run.stderr
    clips = motion.load_clips([str(tmp_path)], fps=50.0)
    assert [c.name for c in clips] == ["stand", "step_in_place", "walk_0.30"]
    assert all(c.num_frames == 51 for c in clips)
    run = _cli("generate", f"--output_dir={tmp_path}", "--speeds=2.0")
    assert run.returncode == 2 and run.stderr.strip().splitlines() == [run.stderr.strip()] and "2.0 m/s" in run.stderr
