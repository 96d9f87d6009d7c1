"""Reference motion clips for AMP: the in-memory layout, the .npz format, and GMR import.

A clip file holds only what a motion source knows (frame rate, base pose, joint angles);
everything else is derived here the same way for every source, loaded or generated:
velocities by finite differences at the clip rate, foot contacts from MuJoCo forward
kinematics of the robot. Bad files stop with one `MotionError` line naming the file and
the problem, before anything compiles.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from collections.abc import Sequence

import mujoco
import numpy as np
from jaxtyping import ArrayLike, Float

from common import npz, quaternion, robots
from common.errors import UserError

# The biped's actuator order (left leg, then right leg), as in common/assets/biped.xml.
LEG_JOINTS = ("hip_yaw", "hip_roll", "hip_pitch", "knee", "ankle_pitch", "ankle_roll")
BIPED_JOINT_NAMES = tuple(f"{side}_{joint}" for side in ("left", "right") for joint in LEG_JOINTS)
FOOT_SITES = ("left_foot_site", "right_foot_site")
MIN_FRAMES = 3
# Quaternions further than this from unit norm are refused rather than renormalised:
# they point at a wrong layout (e.g. Euler angles or x-y-z-w in a w-x-y-z slot).
QUAT_NORM_TOLERANCE = 1e-3
# Foot-contact thresholds on the sole site: 1.5 cm covers flat-foot kinematic noise of
# retargeted data; 0.15 m/s (3 mm per frame at 50 Hz) separates a planted foot from the
# start of a swing.
CONTACT_HEIGHT = 0.015
CONTACT_SPEED = 0.15


class MotionError(UserError):
    """A motion file (or generator setting) that cannot give a valid clip."""


@dataclasses.dataclass(frozen=True)
class MotionClip:
    """One clip at a fixed frame rate; every array has T rows, one per frame.

    Attributes:
      name: where the clip came from (file name or generator setting).
      fps: frames per second.
      root_pos: (T, 3) base position in the world, metres.
      root_quat: (T, 4) base orientation, unit quaternion in MuJoCo's (w, x, y, z) order.
      joint_pos: (T, 12) joint angles in the robot's actuator order, radians.
      root_lin_vel: (T, 3) base linear velocity, world frame, m/s.
      root_ang_vel: (T, 3) base angular velocity, world frame, rad/s.
      joint_vel: (T, 12) joint velocities, rad/s.
      foot_contact: (T, 2) 1.0 where the (left, right) foot touches the ground, else 0.0.
    """

    name: str
    fps: float
    root_pos: np.ndarray
    root_quat: np.ndarray
    joint_pos: np.ndarray
    root_lin_vel: np.ndarray
    root_ang_vel: np.ndarray
    joint_vel: np.ndarray
    foot_contact: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.root_pos.shape[0])

    @property
    def duration(self) -> float:
        """Seconds from the first frame to the last."""
        return (self.num_frames - 1) / self.fps

    @property
    def qpos(self) -> Float[np.ndarray, "T 19"]:
        """MuJoCo qpos per frame (free joint, then the joints in actuator order)."""
        return np.concatenate([self.root_pos, self.root_quat, self.joint_pos], axis=1)



def finite_difference(x: Float[np.ndarray, "T *D"], fps: float) -> Float[np.ndarray, "T *D"]:
    """d/dt by central differences inside the clip and one-sided ones at its ends."""
    return np.gradient(x, 1.0 / fps, axis=0)


def angular_velocity_world(quat: Float[np.ndarray, "T 4"], fps: float) -> Float[np.ndarray, "T 3"]:
    """World-frame angular velocity from consecutive (w, x, y, z) orientations.

    q(t + h) = exp(w h / 2) * q(t) for a world-frame rate w, so the increment is
    q(t + h) * conj(q(t)); central over two frames inside, one-sided at the ends.
    """
    q = quaternion.continuous(quat)
    nxt = np.concatenate([q[1:2], q[2:], q[-1:]])
    prv = np.concatenate([q[:1], q[:-2], q[-2:-1]])
    steps = np.full(len(q), 2.0)
    steps[0] = steps[-1] = 1.0
    return quaternion.rotation_vector(quaternion.mul(nxt, quaternion.conj(prv))) * (fps / steps)[:, None]


def sole_positions(
    model: mujoco.MjModel, qpos: Float[np.ndarray, "T nq"], foot_sites: Sequence[str] = FOOT_SITES
) -> Float[np.ndarray, "T 2 3"]:
    """World positions of the sole sites per frame, by MuJoCo forward kinematics."""
    data = mujoco.MjData(model)
    site_ids = [model.site(name).id for name in foot_sites]
    out = np.empty((len(qpos), len(site_ids), 3))
    for t, q in enumerate(qpos):
        data.qpos[:] = q
        mujoco.mj_kinematics(model, data)
        out[t] = data.site_xpos[site_ids]
    return out


def robot_qpos(
    model: mujoco.MjModel,
    root_pos: Float[np.ndarray, "T 3"],
    root_quat: Float[np.ndarray, "T 4"],
    joint_pos: Float[np.ndarray, "T J"],
    joint_names: Sequence[str] = BIPED_JOINT_NAMES,
) -> Float[np.ndarray, "T nq"]:
    """Places named joint columns at their qpos addresses (free joint first)."""
    qpos = np.tile(model.qpos0, (len(root_pos), 1))
    qpos[:, :3], qpos[:, 3:7] = root_pos, root_quat
    for column, name in enumerate(joint_names):
        qpos[:, model.joint(name).qposadr[0]] = joint_pos[:, column]
    return qpos


def clip_from_positions(
    name: str,
    fps: float,
    root_pos: Float[np.ndarray, "T 3"],
    root_quat: Float[np.ndarray, "T 4"],
    joint_pos: Float[np.ndarray, "T 12"],
    *,
    joint_names: Sequence[str] = BIPED_JOINT_NAMES,
    contact_height: float = CONTACT_HEIGHT,
    contact_speed: float = CONTACT_SPEED,
    xml_path: str = robots.BIPED_XML,
) -> MotionClip:
    """Completes poses into a clip: velocities and foot contacts derived from the poses.

    A foot is in contact where its sole site is below `contact_height` (m) and moves
    horizontally slower than `contact_speed` (m/s).
    """
    root_pos, joint_pos = np.asarray(root_pos, np.float64), np.asarray(joint_pos, np.float64)
    root_quat = quaternion.continuous(np.asarray(root_quat, np.float64))
    model = mujoco.MjModel.from_xml_path(xml_path)
    soles = sole_positions(model, robot_qpos(model, root_pos, root_quat, joint_pos, joint_names))
    sole_speed = np.linalg.norm(finite_difference(soles[..., :2], fps), axis=-1)
    contact = (soles[..., 2] < contact_height) & (sole_speed < contact_speed)
    return MotionClip(
        name=name,
        fps=float(fps),
        root_pos=root_pos,
        root_quat=root_quat,
        joint_pos=joint_pos,
        root_lin_vel=finite_difference(root_pos, fps),
        root_ang_vel=angular_velocity_world(root_quat, fps),
        joint_vel=finite_difference(joint_pos, fps),
        foot_contact=contact.astype(np.float64),
    )


def resample(
    fps_in: float,
    fps_out: float,
    root_pos: Float[np.ndarray, "T 3"],
    root_quat: Float[np.ndarray, "T 4"],
    joint_pos: Float[np.ndarray, "T J"],
) -> tuple[Float[np.ndarray, "S 3"], Float[np.ndarray, "S 4"], Float[np.ndarray, "S J"]]:
    """Poses at `fps_out` over the same span: linear for positions and angles, slerp for
    orientations. The last frame is dropped where the new rate does not land on it."""
    n_out = int(np.floor((len(root_pos) - 1) * fps_out / fps_in + 1e-9)) + 1
    position = np.arange(n_out) * (fps_in / fps_out)  # in input frames
    i0 = np.minimum(np.floor(position).astype(int), len(root_pos) - 2)
    u = position - i0

    def lerp(x):
        return x[i0] * (1.0 - u[:, None]) + x[i0 + 1] * u[:, None]

    q = quaternion.continuous(root_quat)
    return lerp(root_pos), quaternion.continuous(quaternion.slerp(q[i0], q[i0 + 1], u)), lerp(joint_pos)


def _checked(source: str, key: str, value, shape: tuple[int | None, ...]) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise MotionError(f"{source}: '{key}' must be numeric, got dtype {array.dtype}")
    if array.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, array.shape)):
        want = "(" + ", ".join("T" if s is None else str(s) for s in shape) + ")"
        raise MotionError(f"{source}: '{key}' has shape {array.shape}, expected {want}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise MotionError(f"{source}: '{key}' has non-finite values (NaN or inf)")
    return array


def validate_poses(
    source: str, fps: ArrayLike, root_pos: ArrayLike, root_quat: ArrayLike, joint_pos: ArrayLike,
    num_joints: int = 12,
) -> tuple[float, Float[np.ndarray, "T 3"], Float[np.ndarray, "T 4"], Float[np.ndarray, "T J"]]:
    """Checks raw arrays (naming `source` in any error) and normalises the quaternions."""
    fps_array = np.asarray(fps)
    if fps_array.size != 1 or fps_array.dtype.kind not in "fiu":
        raise MotionError(f"{source}: 'fps' must be one number, got {fps_array.dtype} of shape {fps_array.shape}")
    fps = float(fps_array.reshape(()))
    if not np.isfinite(fps) or fps <= 0.0:
        raise MotionError(f"{source}: 'fps' must be a positive number, got {fps}")
    root_pos = _checked(source, "root_pos", root_pos, (None, 3))
    root_quat = _checked(source, "root_quat", root_quat, (None, 4))
    joint_pos = _checked(source, "joint_pos", joint_pos, (None, num_joints))
    lengths = {len(root_pos), len(root_quat), len(joint_pos)}
    if len(lengths) != 1:
        raise MotionError(f"{source}: root_pos, root_quat and joint_pos have different frame counts {sorted(lengths)}")
    if len(root_pos) < MIN_FRAMES:
        raise MotionError(f"{source}: {len(root_pos)} frame(s), at least {MIN_FRAMES} are needed")
    norm = np.linalg.norm(root_quat, axis=-1)
    worst = int(np.argmax(np.abs(norm - 1.0)))
    if abs(norm[worst] - 1.0) > QUAT_NORM_TOLERANCE:
        raise MotionError(
            f"{source}: 'root_quat' is not a unit quaternion (norm {norm[worst]:.4g} at frame {worst}); "
            "expected (w, x, y, z)"
        )
    return fps, root_pos, root_quat / norm[:, None], joint_pos


def _reorder(source: str, file_names, joint_names: Sequence[str]) -> np.ndarray:
    """Column indices that put the file's joints into `joint_names` order."""
    names = [str(n) for n in np.asarray(file_names).reshape(-1)]
    missing = [n for n in joint_names if n not in names]
    extra = [n for n in names if n not in joint_names]
    if missing or extra or len(names) != len(joint_names):
        raise MotionError(
            f"{source}: 'joint_names' do not match the robot's joints (missing {missing}, unknown {extra})"
        )
    return np.array([names.index(n) for n in joint_names])


_REQUIRED_KEYS = ("fps", "root_pos", "root_quat", "joint_pos")


def load_npz(
    path: str,
    *,
    fps: float | None = None,
    joint_names: Sequence[str] | None = None,
    contact_height: float = CONTACT_HEIGHT,
    contact_speed: float = CONTACT_SPEED,
    xml_path: str = robots.BIPED_XML,
) -> MotionClip:
    """Loads one clip, resampled to `fps` (None keeps the file's rate).

    `joint_names` is the order the clip is returned in (default: the biped's actuator
    order). A file that names its columns (`joint_names` key) is reordered to it; a file
    without names must already be in that order.
    """
    joint_names = tuple(BIPED_JOINT_NAMES if joint_names is None else joint_names)
    if fps is not None and not (np.isfinite(fps) and fps > 0):
        raise MotionError(f"{path}: the requested frame rate must be positive, got {fps}")
    arrays = npz.read(path, MotionError)
    missing = [k for k in _REQUIRED_KEYS if k not in arrays]
    if missing:
        raise MotionError(f"{path}: missing key(s) {missing}; expected {list(_REQUIRED_KEYS)} (+ optional 'joint_names')")
    columns = arrays["joint_pos"]
    if "joint_names" in arrays:
        if arrays["joint_names"].dtype.kind not in "US":
            raise MotionError(f"{path}: 'joint_names' must be strings, got dtype {arrays['joint_names'].dtype}")
        if np.ndim(columns) == 2 and np.shape(columns)[1] == len(joint_names):
            columns = np.asarray(columns)[:, _reorder(path, arrays["joint_names"], joint_names)]
    rate, root_pos, root_quat, joint_pos = validate_poses(
        path, arrays["fps"], arrays["root_pos"], arrays["root_quat"], columns, len(joint_names)
    )
    if fps is not None and fps != rate:
        root_pos, root_quat, joint_pos = resample(rate, fps, root_pos, root_quat, joint_pos)
        if len(root_pos) < MIN_FRAMES:
            raise MotionError(f"{path}: only {len(root_pos)} frame(s) at {fps} fps, at least {MIN_FRAMES} are needed")
        rate = float(fps)
    return clip_from_positions(
        os.path.splitext(os.path.basename(path))[0], rate, root_pos, root_quat, joint_pos,
        joint_names=joint_names, contact_height=contact_height, contact_speed=contact_speed, xml_path=xml_path,
    )


def _one_line(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


def save_npz(clip: MotionClip, path: str, *, joint_names: Sequence[str] = BIPED_JOINT_NAMES) -> None:
    """Writes the clip's source arrays (poses, rate, joint names); the rest is derived on load."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "wb") as f:  # a file object keeps numpy from appending ".npz"
        np.savez(f, fps=np.float64(clip.fps), root_pos=clip.root_pos, root_quat=clip.root_quat,
                 joint_pos=clip.joint_pos, joint_names=np.array(joint_names))


def load_clips(paths: Sequence[str], fps: float, **kwargs) -> list[MotionClip]:
    """Loads every clip at `fps`; a directory stands for all the .npz files in it."""
    files = []
    for path in paths:
        if os.path.isdir(path):
            found = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith(".npz"))
            if not found:
                raise MotionError(f"{path}: directory holds no .npz motion files")
            files.extend(found)
        else:
            files.append(path)
    if not files:
        raise MotionError("no motion files given")
    return [load_npz(f, fps=fps, **kwargs) for f in files]


_GMR_KEYS = ("fps", "root_pos", "root_rot", "dof_pos")


def convert_gmr_pkl(
    pkl_path: str,
    npz_path: str,
    *,
    allow_pickle: bool = False,
    joint_map: Sequence[int] | None = None,
) -> MotionClip:
    """Converts a GMR (General Motion Retargeting) pickle into this project's .npz.

    GMR pickles a dict with `fps`, `root_pos` (T, 3), `root_rot` (T, 4) in x-y-z-w
    order and `dof_pos` (T, D) in the retargeted robot's joint order. `joint_map[i]` is
    the `dof_pos` column of the biped's i-th joint; without it `dof_pos` must have
    exactly 12 columns, already in the biped's order.
    """
    if not allow_pickle:
        # Refuse before touching the file: unpickling a hostile file runs its code.
        raise MotionError(
            f"{pkl_path}: refusing to unpickle: loading a pickle can run arbitrary code; "
            "pass --allow_pickle (allow_pickle=True) only for files you trust"
        )
    try:
        with open(pkl_path, "rb") as f:
            data = pickle.load(f)
    except FileNotFoundError:
        raise MotionError(f"{pkl_path}: no such file") from None
    except Exception as e:  # noqa: BLE001 - unpickling can raise anything; report it in one line
        raise MotionError(f"{pkl_path}: could not unpickle ({_one_line(e)})") from None
    if not isinstance(data, dict):
        raise MotionError(f"{pkl_path}: expected a GMR dict, got {type(data).__name__}")
    missing = [k for k in _GMR_KEYS if k not in data]
    if missing:
        raise MotionError(f"{pkl_path}: missing GMR key(s) {missing}; expected {list(_GMR_KEYS)}")
    root_rot = _checked(pkl_path, "root_rot", data["root_rot"], (None, 4))
    dof = _checked(pkl_path, "dof_pos", data["dof_pos"], (None, None))
    if joint_map is None:
        if dof.shape[1] != len(BIPED_JOINT_NAMES):
            raise MotionError(
                f"{pkl_path}: 'dof_pos' has {dof.shape[1]} columns; "
                "give joint_map (the column of each of the biped's 12 joints)"
            )
        joint_map = range(len(BIPED_JOINT_NAMES))
    joint_map = list(joint_map)
    if len(joint_map) != len(BIPED_JOINT_NAMES) or not all(0 <= int(c) < dof.shape[1] for c in joint_map):
        raise MotionError(f"{pkl_path}: joint_map must list 12 column indices in [0, {dof.shape[1]}), got {joint_map}")
    fps, root_pos, root_quat, joint_pos = validate_poses(
        pkl_path, data["fps"], data["root_pos"], root_rot[:, [3, 0, 1, 2]], dof[:, [int(c) for c in joint_map]]
    )
    clip = clip_from_positions(os.path.splitext(os.path.basename(npz_path))[0], fps, root_pos, root_quat, joint_pos)
    save_npz(clip, npz_path)
    return clip
