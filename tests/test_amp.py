"""AMP features, discriminator losses, style reward, replay buffer and update (CPU, small)."""

import os

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from common import normalizer
from ppo_amp import amp, amp_features, replay
from ppo_amp.amp_features import FEATURE_SIZE
from ppo_amp.motion import MotionClip

BIPED_XML = os.path.join(os.path.dirname(os.path.dirname(__file__)), "common", "assets", "biped.xml")


# --- synthetic motion --------------------------------------------------------------


def _quat_mul(a, b):
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def _axis_quat(axis, angle):
    angle = np.asarray(angle, np.float64)
    q = np.zeros(angle.shape + (4,))
    q[..., 0] = np.cos(angle / 2)
    q[..., 1 + axis] = np.sin(angle / 2)
    return q


def _rotate(q, v):
    """q v q* in float64, through the quaternion product (independent of the code under test)."""
    pure = np.concatenate([np.zeros(v.shape[:-1] + (1,)), v], axis=-1)
    return _quat_mul(_quat_mul(q, pure), q * np.array([1.0, -1, -1, -1]))[..., 1:]


def _rot_z(angle, v):
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c * v[..., 0] - s * v[..., 1], s * v[..., 0] + c * v[..., 1], v[..., 2]], axis=-1)


PITCH = 0.1  # constant forward lean


def _motion(t):
    """Base turning at a varying yaw rate while rocking in roll; quat = Rz(yaw) Ry(pitch) Rx(roll).

    With this order the heading is exactly `yaw`, and the world angular velocity is
    yaw_rate * z + roll_rate * (Rz Ry x), known in closed form.
    """
    yaw, yaw_rate = 0.4 + 0.8 * t + 0.3 * t**2, 0.8 + 0.6 * t
    roll, roll_rate = 0.15 * np.sin(3 * t), 0.45 * np.cos(3 * t)
    yaw_pitch = _quat_mul(_axis_quat(2, yaw), _axis_quat(1, np.full_like(t, PITCH)))
    quat = _quat_mul(yaw_pitch, _axis_quat(0, roll))
    roll_axis = _rotate(yaw_pitch, np.tile([1.0, 0, 0], (len(t), 1)))
    ang_world = yaw_rate[:, None] * np.array([0.0, 0, 1]) + roll_rate[:, None] * roll_axis
    speed = 0.6
    lin_world = np.stack([speed * np.cos(yaw), speed * np.sin(yaw), 0.02 * np.cos(t)], axis=-1)
    pos = np.stack([np.cos(t), np.sin(t), 0.45 + 0.02 * np.sin(t)], axis=-1)  # x/y unused by features
    phases = np.linspace(0, np.pi, 12)
    joint_pos = 0.3 * np.sin(2 * t[:, None] + phases)
    joint_vel = 0.6 * np.cos(2 * t[:, None] + phases)
    contact = np.stack([np.sin(4 * t) > 0, np.sin(4 * t) <= 0], axis=-1).astype(np.float64)
    return dict(
        quat=quat, ang_world=ang_world, lin_world=lin_world, pos=pos, joint_pos=joint_pos,
        joint_vel=joint_vel, contact=contact, yaw_rate=yaw_rate, roll_rate=roll_rate,
    )  # fmt: skip


def _clip(m, name="synthetic"):
    return MotionClip(
        name=name, fps=50.0, root_pos=m["pos"], root_quat=m["quat"], joint_pos=m["joint_pos"],
        root_lin_vel=m["lin_world"], root_ang_vel=m["ang_world"], joint_vel=m["joint_vel"],
        foot_contact=m["contact"],
    )  # fmt: skip


def _state(m):
    quat_conj = m["quat"] * np.array([1.0, -1, -1, -1])
    ang_local = _rotate(quat_conj, m["ang_world"])
    qpos = np.concatenate([m["pos"], m["quat"], m["joint_pos"]], axis=-1)
    qvel = np.concatenate([m["lin_world"], ang_local, m["joint_vel"]], axis=-1)
    return qpos, qvel


T = np.arange(30) * 0.02


def test_synthetic_state_uses_mujoco_velocity_convention():
    # Guards the test itself: qvel from MuJoCo's own finite difference of qpos must match
    # the analytic local angular velocity built by `_state` (and the height rate; the
    # synthetic x/y path is not the integral of its velocity, features never see it).
    model = mujoco.MjModel.from_xml_path(BIPED_XML)
    h = 1e-6
    qpos, qvel = _state(_motion(T))
    qpos_next, _ = _state(_motion(T + h))
    for i in range(0, len(T), 7):
        fd = np.zeros(model.nv)
        mujoco.mj_differentiatePos(model, fd, h, qpos[i], qpos_next[i])
        np.testing.assert_allclose(fd[3:6], qvel[i, 3:6], atol=1e-4)
        np.testing.assert_allclose(fd[2], qvel[i, 2], atol=1e-4)


def test_state_and_clip_features_agree_with_known_values():
    m = _motion(T)
    qpos, qvel = _state(m)
    from_clip = amp_features.clip_features(_clip(m))
    from_state = jax.vmap(amp_features.frame_features_from_state)(qpos, qvel, m["contact"])
    chex.assert_shape([from_clip, from_state], (len(T), FEATURE_SIZE))
    np.testing.assert_allclose(from_state, from_clip, atol=1e-5)
    # Heading frame: the base moves straight ahead, rolls about its heading x axis
    # tilted by the lean, and turns about z.
    expected_lin = np.stack([0.6 + 0 * T, 0 * T, m["lin_world"][:, 2]], axis=-1)
    np.testing.assert_allclose(from_clip[:, 24:27], expected_lin, atol=1e-5)
    expected_ang = np.stack(
        [m["roll_rate"] * np.cos(PITCH), 0 * T, m["yaw_rate"] - m["roll_rate"] * np.sin(PITCH)], axis=-1
    )
    np.testing.assert_allclose(from_clip[:, 27:30], expected_ang, atol=1e-5)
    np.testing.assert_allclose(from_clip[:, :12], m["joint_pos"], atol=1e-6)
    np.testing.assert_allclose(from_clip[:, 12:24], m["joint_vel"], atol=1e-6)
    np.testing.assert_allclose(from_clip[:, 30], m["pos"][:, 2], atol=1e-6)
    np.testing.assert_allclose(from_clip[:, 31:], m["contact"])


@pytest.mark.parametrize("alpha", [0.7, -2.5, np.pi])
def test_features_invariant_to_heading(alpha):
    m = _motion(T)
    turned = dict(m)
    turned["quat"] = _quat_mul(_axis_quat(2, np.full_like(T, alpha)), m["quat"])
    for name in ("pos", "lin_world", "ang_world"):
        turned[name] = _rot_z(alpha, m[name])
    base = amp_features.clip_features(_clip(m))
    np.testing.assert_allclose(amp_features.clip_features(_clip(turned)), base, atol=1e-5)
    qpos, qvel = _state(turned)
    from_state = jax.vmap(amp_features.frame_features_from_state)(qpos, qvel, m["contact"])
    np.testing.assert_allclose(from_state, base, atol=1e-5)


# --- windows -----------------------------------------------------------------------


def test_windows_shape_and_contents():
    f = np.arange(5 * 3, dtype=np.float32).reshape(5, 3)
    w = amp_features.windows(f, 2)
    assert w.shape == (4, 6)
    np.testing.assert_array_equal(w[1], np.concatenate([f[1], f[2]]))
    w3 = amp_features.windows(jnp.asarray(f), 3)
    assert w3.shape == (3, 9)
    np.testing.assert_array_equal(w3[-1], f[2:].reshape(-1))
    with pytest.raises(ValueError):
        amp_features.windows(f, 6)


def test_reference_windows_never_span_clips():
    a, b = _motion(T[:6]), _motion(T[10:14] + 5.0)
    w = amp_features.reference_windows([_clip(a), _clip(b)], 3)
    assert w.shape == (4 + 2, 3 * FEATURE_SIZE)
    fa, fb = amp_features.clip_features(_clip(a)), amp_features.clip_features(_clip(b))
    np.testing.assert_array_equal(w[:4], amp_features.windows(fa, 3))
    np.testing.assert_array_equal(w[4:], amp_features.windows(fb, 3))
    # Every window is three consecutive frames of one clip.
    frames = np.concatenate([fa, fb])
    for row in np.asarray(w):
        parts = row.reshape(3, FEATURE_SIZE)
        hits = [int(np.flatnonzero((frames == p).all(axis=1))[0]) for p in parts]
        assert hits[1] == hits[0] + 1 and hits[2] == hits[0] + 2
        assert (hits[0] < 6) == (hits[2] < 6)


# --- losses and reward -------------------------------------------------------------


def _linear_disc(weight, mean=None, std=None, bias=0.0):
    """A discriminator with no hidden layer: logit = w . (x - mean) / std + bias."""
    weight = jnp.asarray(weight, jnp.float32)
    d = amp.init(jax.random.key(0), weight.shape[0], hidden=(), norm_mean=mean, norm_std=std)
    return eqx.tree_at(lambda d: (d.output.weight, d.output.bias), d, (weight[None], jnp.array([bias])))


def test_gradient_penalty_of_linear_logit_is_exact():
    w, std = np.array([0.5, -2.0, 1.5]), np.array([0.5, 2.0, 4.0])
    disc = _linear_disc(w, mean=np.array([1.0, -1.0, 3.0]), std=std)
    ref = jax.random.normal(jax.random.key(1), (8, 3))
    pol = jax.random.normal(jax.random.key(2), (8, 3))
    kw = dict(loss_type="least_squares")
    plain, m0 = amp.disc_loss(disc, ref, pol, gp_weight=0.0, **kw)
    loss, m = amp.disc_loss(disc, ref, pol, gp_weight=3.0, **kw)
    # The penalty is taken in normalised units, where the logit's gradient is w itself.
    expected_gp = np.sum(w**2)
    np.testing.assert_allclose(m["disc/gp"], expected_gp, rtol=1e-6)
    np.testing.assert_allclose(loss, plain + 1.5 * expected_gp, rtol=1e-6)
    np.testing.assert_allclose(plain, m0["disc/loss_plain"], rtol=1e-6)
    assert m0["disc/loss"] == m0["disc/loss_plain"]


def test_losses_on_known_logits():
    disc = _linear_disc([1.0])  # logit = x
    ref, pol = jnp.array([[2.0], [0.0]]), jnp.array([[-1.0], [1.0]])
    loss, m = amp.disc_loss(disc, ref, pol, loss_type="least_squares", gp_weight=0.0)
    np.testing.assert_allclose(loss, (1 + 1) / 2 + (0 + 4) / 2)
    sp = lambda x: np.log1p(np.exp(x))  # noqa: E731
    loss, m = amp.disc_loss(disc, ref, pol, loss_type="logistic", gp_weight=2.0, logit_reg=0.5)
    expected = (sp(-2) + sp(0)) / 2 + (sp(-1) + sp(1)) / 2
    np.testing.assert_allclose(m["disc/loss_plain"], expected, rtol=1e-6)
    np.testing.assert_allclose(loss, expected + 1.0 * 1.0 + 0.5 * 1.0, rtol=1e-6)
    assert m["disc/accuracy_reference"] == 0.5 and m["disc/accuracy_policy"] == 0.5
    np.testing.assert_allclose([m["disc/logit_reference"], m["disc/logit_policy"]], [1.0, 0.0])


def test_fixed_arrays_get_no_gradient():
    disc = _linear_disc([1.0, 2.0], mean=np.array([0.3, 0.1]), std=np.array([2.0, 3.0]))
    x = jnp.ones((4, 2))
    def loss(d):
        return amp.disc_loss(d, x, -x, loss_type="logistic", gp_weight=1.0)[0]

    grads = eqx.filter_grad(loss)(disc)
    np.testing.assert_array_equal(grads.norm_mean, 0.0)
    np.testing.assert_array_equal(grads.norm_std, 0.0)
    assert np.any(grads.output.weight != 0)


def test_style_reward_values():
    disc = _linear_disc([1.0])
    d = jnp.array([-1.0, 0.0, 1.0, 3.0, 5.0, -30.0, 30.0])[:, None]
    ls = amp.style_reward(disc, d, "least_squares")
    np.testing.assert_allclose(ls, [0.0, 0.75, 1.0, 0.0, 0.0, 0.0, 0.0], atol=1e-7)
    lg = amp.style_reward(disc, d, "logistic")
    naive = -np.log(np.maximum(1 - 1 / (1 + np.exp(-np.float64(d[:, 0]))), 1e-4))
    np.testing.assert_allclose(lg, naive, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(lg[-1], -np.log(1e-4), rtol=1e-6)
    def total(w):
        return amp.style_reward(eqx.tree_at(lambda m: m.output.weight, disc, w), d, "logistic").sum()

    np.testing.assert_array_equal(jax.grad(total)(disc.output.weight), 0.0)


# --- replay buffer -----------------------------------------------------------------


def test_replay_ring_semantics():
    add = jax.jit(replay.add)
    buf = replay.init(5, 2)
    rows = np.arange(14, dtype=np.float32).reshape(7, 2)
    buf = add(buf, rows[:3])
    assert int(buf.size) == 3 and int(buf.insert_index) == 3
    sample = replay.sample(jax.random.key(0), buf, 500)
    chex.assert_shape(sample, (500, 2))
    seen = {tuple(r) for r in np.asarray(sample)}
    assert seen == {tuple(r) for r in rows[:3]}  # only the filled part, all of it
    buf = add(buf, rows[3:7])  # wraps: rows 3, 4 go to the end, rows 5, 6 overwrite 0, 1
    assert int(buf.size) == 5 and int(buf.insert_index) == 2
    np.testing.assert_array_equal(buf.data, rows[[5, 6, 2, 3, 4]])
    buf = add(buf, rows[:5])
    assert int(buf.size) == 5 and int(buf.insert_index) == 2
    np.testing.assert_array_equal(buf.data, rows[[3, 4, 0, 1, 2]])
    with pytest.raises(ValueError):
        replay.add(buf, np.zeros((6, 2), np.float32))


# --- update ------------------------------------------------------------------------


_update = eqx.filter_jit(amp.update)
_loss = eqx.filter_jit(amp.disc_loss)
_FROZEN = amp.make_optimizer(0.0)  # one object, so both replay cases share a compilation


def _toy_data(dim=6):
    kr, kp = jax.random.split(jax.random.key(3))
    ref = 1.0 + 0.5 * jax.random.normal(kr, (256, dim))
    pol = -1.0 + 0.5 * jax.random.normal(kp, (256, dim))
    return ref, pol


def test_update_lowers_loss_on_separable_data():
    ref, pol = _toy_data()
    mean, std = amp.input_stats(ref)
    disc = amp.init(jax.random.key(4), ref.shape[1], hidden=(32, 32), norm_mean=mean, norm_std=std)
    opt = amp.make_optimizer(1e-3, weight_decay=1e-4, max_grad_norm=1.0)
    opt_state = opt.init(amp.trainable(disc))
    buf = replay.add(replay.init(128, ref.shape[1]), pol[:64])
    kw = dict(batch_size=64, loss_type="least_squares", gp_weight=0.5, replay_fraction=0.25)
    before, _ = _loss(disc, ref, pol, loss_type="least_squares", gp_weight=0.5)
    disc, opt_state, metrics = _update(
        jax.random.key(5), disc, opt_state, opt, ref, pol, buf, num_steps=50, **kw
    )
    after, m = _loss(disc, ref, pol, loss_type="least_squares", gp_weight=0.5)
    assert set(metrics) >= {"disc/loss", "disc/gp", "disc/accuracy_reference", "disc/accuracy_policy"}
    assert all(np.isfinite(v) for v in jax.tree.leaves(metrics))
    assert after < 0.5 * before, (before, after)
    assert m["disc/accuracy_reference"] >= 0.99 and m["disc/accuracy_policy"] >= 0.99
    np.testing.assert_array_equal(disc.norm_mean, mean)  # fixed arrays untouched by AdamW's decay
    np.testing.assert_array_equal(disc.norm_std, std)


@pytest.mark.parametrize("filled", [False, True])
def test_update_replay_mix(filled):
    # lr = 0 keeps the discriminator fixed, so the mean policy logit shows where the
    # policy batch came from: all replay (replay_fraction=1), or the rollout while the
    # buffer is still empty.
    dim = 3
    disc = amp.init(jax.random.key(6), dim, hidden=(8,))
    opt = _FROZEN
    rollout, old = jnp.full((4, dim), 2.0), jnp.full((4, dim), -3.0)
    buf = replay.init(16, dim)
    if filled:
        buf = replay.add(buf, old)
    _, _, m = _update(
        jax.random.key(7), disc, opt.init(amp.trainable(disc)), opt, rollout, rollout, buf,
        batch_size=8, num_steps=1, loss_type="logistic", gp_weight=0.0, replay_fraction=1.0,
    )  # fmt: skip
    expected = disc(old[0] if filled else rollout[0])
    np.testing.assert_allclose(m["disc/logit_policy"], expected, rtol=1e-5)


def test_spectral_norm_keeps_unit_top_singular_value():
    ref, pol = _toy_data(dim=8)
    disc = amp.init(jax.random.key(8), 8, hidden=(64, 32), spectral_norm=True)
    opt = amp.make_optimizer(3e-3)
    opt_state = opt.init(amp.trainable(disc))
    # The power-iteration vectors are not parameters.
    assert jax.tree.leaves(amp.trainable(disc).spectral_u) == []
    kw = dict(batch_size=32, loss_type="least_squares", gp_weight=0.1, replay_fraction=0.0)
    disc, opt_state, _ = _update(
        jax.random.key(9), disc, opt_state, opt, ref, pol, replay.init(4, 8), num_steps=5, **kw
    )
    for w in disc.weights():
        top = np.linalg.svd(np.asarray(w), compute_uv=False)[0]
        assert abs(top - 1.0) < 0.02, top
    # Pure and batch-friendly: jit of a vmapped call matches the per-sample call.
    batched = eqx.filter_jit(amp.logits)(disc, ref[:4])
    np.testing.assert_allclose(batched, [disc(x) for x in ref[:4]], rtol=1e-5, atol=1e-6)


def test_pooled_input_stats_is_an_equal_mixture():
    # An equal mixture of two sets is the union of equally many samples of each, so the
    # pooled stats must match numpy on the concatenation when both sets have one size.
    kr, kp = jax.random.split(jax.random.key(11))
    ref = jax.random.normal(kr, (300, 4)) * jnp.array([0.0, 1.0, 2.0, 0.5]) + 1.0
    pol = jax.random.normal(kp, (300, 4)) * 3.0 - 2.0
    mean, std = amp.pooled_input_stats(normalizer.from_batch(ref), normalizer.from_batch(pol), std_floor=0.05)
    both = np.concatenate([np.asarray(ref), np.asarray(pol)])
    np.testing.assert_allclose(mean, both.mean(axis=0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std, both.std(axis=0), rtol=1e-4)
    # The policy's count does not weigh: a million policy samples count as much as 300.
    many = normalizer.RunningStats(count=jnp.asarray(1e6), mean=jnp.mean(pol, 0), m2=jnp.var(pol, 0) * 1e6)
    mean2, std2 = amp.pooled_input_stats(normalizer.from_batch(ref), many)
    np.testing.assert_allclose(mean2, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(std2, std, rtol=1e-4)
    # A feature constant in both sets keeps the floor.
    const = jnp.zeros((10, 1))
    const_stats = normalizer.from_batch(const)
    np.testing.assert_allclose(amp.pooled_input_stats(const_stats, const_stats, std_floor=0.05)[1], [0.05])


def test_input_noise_blurs_training_but_metrics_read_clean_batches():
    # Two sets 2 units apart: without noise a discriminator separates them completely;
    # with noise of std 3 in normalised units the sets overlap, so training must leave
    # the logits much closer together. Accuracy metrics come from the clean batch, so
    # with lr = 0 they equal the clean accuracy of the fixed discriminator.
    ref, pol = _toy_data(dim=2)
    mean, std = amp.input_stats(jnp.concatenate([ref, pol]))
    disc0 = amp.init(jax.random.key(12), 2, hidden=(16,), norm_mean=mean, norm_std=std)
    opt = amp.make_optimizer(3e-3)
    buf = replay.init(8, 2)
    kw = dict(batch_size=128, num_steps=150, loss_type="least_squares", gp_weight=0.1, replay_fraction=0.0)
    gaps = {}
    for noise in (0.0, 3.0):
        disc, _, m = _update(jax.random.key(13), disc0, opt.init(amp.trainable(disc0)), opt, ref, pol, buf,
                             input_noise=noise, **kw)
        gaps[noise] = float(jnp.mean(amp.logits(disc, ref)) - jnp.mean(amp.logits(disc, pol)))
    assert gaps[0.0] > 1.6 and gaps[3.0] < 0.6 * gaps[0.0], gaps
    _, _, m = _update(jax.random.key(14), disc0, _FROZEN.init(amp.trainable(disc0)), _FROZEN, ref, pol, buf,
                      input_noise=3.0, **(kw | dict(num_steps=1, batch_size=256)))
    d_ref = amp.logits(disc0, ref)
    # The batch is drawn with replacement, so compare with a tolerance, not exactly.
    assert abs(float(m["disc/accuracy_reference"]) - float(jnp.mean(d_ref > 0))) < 0.1
