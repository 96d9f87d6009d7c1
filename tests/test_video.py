"""Videos: frames rendered headless from MuJoCo C states, encoded to H.264 and decoded back."""

import imageio.v3 as iio
import mujoco
import numpy as np
import pytest

from common import envs, video
from common.errors import UserError


@pytest.fixture(scope="module")
def falling(fast_env):
    """40 steps of the humanoid falling under zero control, stepped by MuJoCo C."""
    model = fast_env.config.load_mj_model()
    data = mujoco.MjData(model)
    mujoco.mj_resetData(model, data)
    qpos = []
    for _ in range(40):
        qpos.append(data.qpos.copy())
        mujoco.mj_step(model, data, fast_env.config.frame_skip)
    return model, np.stack(qpos)


@pytest.mark.filterwarnings("ignore:os.fork")  # the ffmpeg decoder subprocess
def test_clip_renders_and_decodes_with_the_asked_frames(falling, tmp_path):
    model, qpos = falling
    stride = video.frame_stride(model.opt.timestep * 5)
    assert stride == 2  # 66.7 Hz control -> 33.3 fps
    frames = video.render(model, qpos, stride=stride)
    path = video.write_mp4(str(tmp_path / "clip.mp4"), frames, fps=1.0 / (model.opt.timestep * 5 * stride))
    decoded = iio.imread(path)
    assert decoded.shape == (20, video.HEIGHT, video.WIDTH, 3) and decoded.dtype == np.uint8
    # The humanoid falls: the first and last frames differ well beyond the codec's noise.
    assert np.abs(decoded[0].astype(int) - decoded[-1].astype(int)).mean() > 1.0
    assert np.abs(decoded.astype(int) - frames.astype(int)).mean() < 3.0
    assert not (tmp_path / "clip.mp4.tmp.mp4").exists()


def test_caption_is_drawn_top_left(falling):
    model, qpos = falling
    plain = video.render(model, qpos[:1]).astype(int)
    captioned = video.render(model, qpos[:1], captions=["command: vx +0.50 m/s"]).astype(int)
    changed = np.abs(plain - captioned).sum(axis=-1) > 0
    rows, cols = np.nonzero(changed[0])
    assert rows.size > 0 and rows.max() < 40 and cols.max() < 320


def test_biped_frame_rate_divides_its_control_rate():
    env = envs.make("biped_walk")
    assert env.dt == pytest.approx(0.02)
    assert video.frame_stride(env.dt) == 2  # 50 Hz control -> 25 fps


def test_failed_gl_context_is_one_clear_error(falling, monkeypatch):
    model, qpos = falling

    def broken(*args, **kwargs):
        raise RuntimeError("eglInitialize failed")

    monkeypatch.setattr(mujoco, "Renderer", broken)
    with pytest.raises(UserError, match="offscreen rendering failed with MUJOCO_GL=.*MUJOCO_GL=osmesa"):
        video.render(model, qpos[:1])


def test_bad_fps_and_oversized_frames_are_refused(falling, tmp_path):
    model, qpos = falling
    with pytest.raises(UserError, match="exceeds the model's offscreen buffer"):
        video.render(model, qpos[:1], width=4096)
    with pytest.raises(ValueError, match="fps must be positive"):
        video.write_mp4(str(tmp_path / "x.mp4"), np.zeros((1, 16, 16, 3), np.uint8), fps=0.0)


def test_the_floor_is_drawn_wherever_the_walk_goes():
    """The humanoid's floor is drawn 20 m out; a 15 s walk at 1.6 m/s goes 24 m. Past its
    edge the lower half of a frame was black (98.6%, measured); drawn out, none of it is."""
    model = envs.make("humanoid", physics="gym").config.load_mj_model()
    qpos = np.tile(model.qpos0, (2, 1))
    qpos[:, 0] = (0.0, 30.0)
    frames = video.render(model, qpos, width=160, height=120)
    assert (frames[:, 60:].max(axis=-1) < 10).mean() == 0
    assert model.geom_size[0, 0] == 20.0  # the model handed in is left as it was
