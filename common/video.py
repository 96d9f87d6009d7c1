"""Videos of a policy: MJX plays it (`rollout.record`), MuJoCo C renders, ffmpeg encodes H.264.

A pipeline hands over what a clip needs as a `Playback` (env, policy, parameters, the
MuJoCo C model, control step, caption); `record_clip` plays, renders and writes it.
Rendering is headless: `common` sets `MUJOCO_GL=egl` before MuJoCo is first imported
(where the user has not set it), and a machine without a working EGL gets one line
saying so and what to try, rather than a traceback from the GL context. The camera
tracks the robot's root body from its side; a caption (the command a walker follows)
is drawn in the top-left corner of every frame.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import time
import warnings
from collections.abc import Sequence
from typing import Any

import equinox as eqx
import imageio.v2 as imageio
import jax
import mujoco
import numpy as np
from jaxtyping import Float, PRNGKeyArray, PyTree, UInt8
from PIL import Image, ImageDraw

from common import rollout
from common.envs.base import Env
from common.errors import UserError

WIDTH, HEIGHT = 640, 480
# The frame rate aimed at: the control rate divided by the whole number that comes
# nearest this (66.7 Hz humanoid -> 33.3 fps, 50 Hz biped -> 25 fps).
TARGET_FPS = 30.0


def frame_stride(control_dt: float, target_fps: float = TARGET_FPS) -> int:
    """Control steps per frame: the rate nearest `target_fps` that divides the control rate."""
    return max(1, round(1.0 / (control_dt * target_fps)))


def _renderer(model: mujoco.MjModel, width: int, height: int) -> mujoco.Renderer:
    try:
        return mujoco.Renderer(model, height, width)
    except Exception as e:  # noqa: BLE001  (the GL backends raise many types; all mean the same)
        backend = os.environ.get("MUJOCO_GL", "(unset)")
        raise UserError(f"offscreen rendering failed with MUJOCO_GL={backend} ({type(e).__name__}: {e}); "
                        "install EGL (Debian: libegl1) or run with MUJOCO_GL=osmesa (libosmesa6)") from None


def _caption(frame: np.ndarray, text: str) -> np.ndarray:
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = draw.textbbox((8, 8), text)
    draw.rectangle((left - 4, top - 4, right + 4, bottom + 4), fill=(0, 0, 0))
    draw.text((8, 8), text, fill=(255, 255, 255))
    return np.asarray(image)


def _floor_reaching(model: mujoco.MjModel, qpos: Float[np.ndarray, "steps nq"]) -> mujoco.MjModel:
    """`model`, or a copy whose finite planes are drawn out past where the root goes: a
    plane's size is only how far it is drawn (it collides everywhere), and a 15 s walk
    leaves the humanoid's 20 m floor for the black void beyond it."""
    planes = np.flatnonzero(model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE)
    if model.nq < 7 or planes.size == 0:
        return model
    reach = float(np.max(np.abs(qpos[:, :2]))) + 10.0  # the tracking camera sees ~10 m around the robot
    short = [g for g in planes if 0 < model.geom_size[g, :2].min() < reach]
    if not short:
        return model
    model = copy.deepcopy(model)
    for g in short:
        model.geom_size[g, :2] = np.maximum(model.geom_size[g, :2], reach)
    return model


def render(model: mujoco.MjModel, qpos: Float[np.ndarray, "steps nq"], *, stride: int = 1,
           captions: Sequence[str] | None = None, width: int = WIDTH,
           height: int = HEIGHT) -> UInt8[np.ndarray, "frames height width 3"]:
    """Frames of every `stride`-th position of `qpos`, seen by a camera that follows the root body."""
    if width > model.vis.global_.offwidth or height > model.vis.global_.offheight:
        raise UserError(f"video: {width}x{height} exceeds the model's offscreen buffer "
                        f"{model.vis.global_.offwidth}x{model.vis.global_.offheight}")
    model = _floor_reaching(model, qpos)
    data = mujoco.MjData(model)
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = 1
    # A side view, a little from above, at 3x the root's height in the first frame (the
    # model's extent counts the floor plane, so it cannot size the view).
    camera.distance = 3.0 * max(float(qpos[0, 2]), 0.3) if model.nq >= 7 else 3.0
    camera.azimuth, camera.elevation = 90.0, -15.0
    frames = []
    with _renderer(model, width, height) as renderer:
        for t in range(0, qpos.shape[0], stride):
            data.qpos[:] = qpos[t]
            mujoco.mj_forward(model, data)
            renderer.update_scene(data, camera=camera)
            frame = renderer.render()
            frames.append(_caption(frame, captions[t]) if captions else frame.copy())
    return np.stack(frames)


def write_mp4(path: str, frames: UInt8[np.ndarray, "frames height width 3"], fps: float) -> str:
    """Encodes `frames` as H.264 (yuv420p, playable everywhere) into `path`, atomically."""
    if not math.isfinite(fps) or fps <= 0:
        raise ValueError(f"video: fps must be positive, got {fps}")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.mp4"
    with warnings.catch_warnings():
        # JAX warns on any fork; imageio's fork is the ffmpeg subprocess, which execs at once.
        warnings.filterwarnings("ignore", message="os.fork", category=RuntimeWarning)
        with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264", pixelformat="yuv420p",
                                macro_block_size=16, ffmpeg_log_level="error") as writer:
            for frame in frames:
                writer.append_data(frame)
    os.replace(tmp, path)
    return path


@dataclasses.dataclass(frozen=True)
class Playback:
    """What a clip of a policy needs, from the pipeline that trained it."""

    env: Env
    # The episode form's `act`/`init_carry` with `params` shared by the batch.
    act: rollout.ActFn
    init_carry: rollout.InitCarryFn
    params: PyTree
    # MuJoCo C's copy of `env`'s model, to render with.
    mj_model: mujoco.MjModel
    control_dt: float
    # The clip's length in control steps.
    steps: int
    # Drawn on every frame ("" for none).
    caption: str = ""


_record = eqx.filter_jit(rollout.record)


def record_playback(playback: Playback, key: PRNGKeyArray, batch: int = 1) -> rollout.Trajectory:
    """`playback.steps` steps of `batch` envs with the policy (`rollout.record`), jitted on
    one device: a trainer's state may lie replicated over its mesh, so the env and policy
    come to the host first (they are small) and go where the key is."""
    env, params = jax.device_get((playback.env, playback.params))
    return _record(env, playback.act, playback.init_carry, params, key, batch, playback.steps)


def clip_steps(seconds: float, control_dt: float) -> int:
    """Control steps of a clip of `seconds` (at least one)."""
    return max(1, round(seconds / control_dt))


def record_clip(playback: Playback, key: PRNGKeyArray, path: str, stride: int | None = None) -> dict[str, Any]:
    """Plays the policy for `playback.steps` steps of one env (episodes restart) into `path` as mp4.

    Returns the clip's figures, with the seconds spent playing (compile included),
    rendering and encoding.
    """
    steps = playback.steps
    stride = stride or frame_stride(playback.control_dt)
    start = time.perf_counter()
    trajectory = jax.device_get(record_playback(playback, key))
    rendering = time.perf_counter()
    frames = render(playback.mj_model, np.asarray(trajectory.qpos)[:, 0], stride=stride,
                    captions=[playback.caption] * steps if playback.caption else None)
    encoding = time.perf_counter()
    fps = 1.0 / (playback.control_dt * stride)
    write_mp4(path, frames, fps)
    done = time.perf_counter()
    return {"path": path, "frames": int(frames.shape[0]), "fps": fps, "seconds": steps * playback.control_dt,
            "episodes_ended": int(np.asarray(trajectory.done)[:, 0].sum()),
            "return": float(np.asarray(trajectory.reward).sum()), "play_seconds": rendering - start,
            "render_seconds": encoding - rendering, "encode_seconds": done - encoding}
