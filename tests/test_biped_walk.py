"""The `biped_walk` task: observation layout, MuJoCo C parity, randomisation ranges, pushes."""

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from common import envs, quaternion, robots
from common.envs.biped import randomize
from common.envs.biped.config import BipedWalkConfig, validate


@pytest.fixture(scope="module")
def nominal_env():
    return envs.make("biped_walk", randomize=False, reset_random_yaw=False, reset_joint_noise=0.0,
                     fixed_command=(0.5, 0.0, 0.0))


def test_observation_layout_at_reset(nominal_env):
    env = nominal_env
    s = eqx.filter_jit(env.reset)(jax.random.PRNGKey(0))
    assert env.observation_size == 45 and s.obs.shape == (45,)
    assert s.info["critic_obs"].shape == (env.critic_observation_size,) == (55,)
    np.testing.assert_allclose(s.obs[:3], 0.0)  # base angular velocity
    np.testing.assert_allclose(s.obs[3:6], [0.0, 0.0, -1.0], atol=1e-6)  # gravity, upright
    np.testing.assert_allclose(s.obs[6:9], [0.5, 0.0, 0.0])  # the command
    np.testing.assert_allclose(s.obs[9:21], 0.0, atol=1e-6)  # joints at the default pose
    np.testing.assert_allclose(s.obs[21:], 0.0)  # joint velocities and previous action
    np.testing.assert_allclose(s.info["critic_obs"][:45], s.obs)  # no noise when not randomised


def test_steps_match_mujoco_c(nominal_env):
    """Ten policy steps of a fixed action: MJX and MuJoCo C agree on state, observation and reward."""
    env = nominal_env
    # The joint targets of a 0.5 amplitude at action_scale 0.3: larger swings make the
    # two engines' contact solutions drift apart over ten steps faster than this checks.
    action = 0.15 * jnp.sin(jnp.arange(12.0))
    step = eqx.filter_jit(env.step)
    s = eqx.filter_jit(env.reset)(jax.random.PRNGKey(0))
    m = env.config.load_mj_model()
    d = mujoco.MjData(m)
    d.qpos[:] = np.asarray(s.data.qpos)
    scale = np.asarray(env.statics.action_scale)
    ctrl = np.clip(np.asarray(env.statics.default_ctrl) + scale * np.asarray(action),
                   m.actuator_ctrlrange[:, 0], m.actuator_ctrlrange[:, 1])
    for _ in range(10):
        s = step(s, action)
        d.ctrl[:] = ctrl
        for _ in range(env.config.frame_skip):
            mujoco.mj_step(m, d)
    np.testing.assert_allclose(np.asarray(s.data.qpos), d.qpos, atol=2e-3)
    np.testing.assert_allclose(np.asarray(s.data.qvel), d.qvel, atol=5e-2)
    # The observation recomputed from MuJoCo C's state.
    rot = d.xmat[1].reshape(3, 3)
    expected = np.concatenate([
        d.qvel[3:6] * 0.25, rot.T @ [0, 0, -1], [0.5, 0, 0], d.qpos[7:] - np.asarray(env.statics.default_qpos[7:]),
        d.qvel[6:] * 0.05, np.asarray(action),
    ])
    np.testing.assert_allclose(np.asarray(s.obs), expected, atol=2e-2)
    # The tracking term from MuJoCo C's base velocity.
    v = rot.T @ d.qvel[:3]
    kernel = np.exp(-np.sum(np.square(np.array([0.5, 0.0]) - v[:2])) / env.config.tracking_sigma)
    weight = dict(env.config.reward_scales)["tracking_lin_vel"] * env.dt
    np.testing.assert_allclose(float(s.metrics["reward/tracking_lin_vel"]), weight * kernel, rtol=2e-2)
    # Foot forces from the contact sensors (read once per env step) against MuJoCo C's
    # contact forces of its last substep.
    forces_c, force = np.zeros(2), np.zeros(6)
    feet = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in env.config.contact_geoms]
    for i in range(d.ncon):
        mujoco.mj_contactForce(m, d, i, force)
        forces_c += force[0] * np.array([g in d.contact[i].geom for g in feet])
    weight_n = m.body_mass.sum() * 9.81
    assert forces_c.sum() > 0.5 * weight_n
    np.testing.assert_allclose(np.asarray(eqx.filter_jit(env._foot_forces)(s.data)), forces_c, atol=0.05 * weight_n)


def test_randomisation_draws_stay_in_their_ranges():
    c = BipedWalkConfig()
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    r = jax.vmap(lambda k: randomize.draw(k, c, 13, 18, 1.0))(keys)
    for values, (lo, hi) in ((r.friction, c.friction_range), (r.mass_scale, c.mass_scale_range),
                             (r.damping_scale, c.damping_scale_range)):
        values = np.asarray(values)
        assert values.min() >= lo and values.max() <= hi
        # Uniform draws reach close to both ends.
        assert values.min() < lo + 0.02 * (hi - lo) and values.max() > hi - 0.02 * (hi - lo)
    latency = np.asarray(r.latency)
    assert set(np.unique(latency)) == set(range(c.latency_steps[0], c.latency_steps[1] + 1))
    nominal = randomize.draw(keys[0], dataclasses.replace(c, randomize=False), 13, 18, 0.8)
    assert float(nominal.friction) == pytest.approx(0.8) and int(nominal.latency) == 0
    np.testing.assert_array_equal(nominal.mass_scale, 1.0)


def test_randomisation_reaches_the_model(nominal_env):
    model = nominal_env.model
    r = randomize.Randomization(friction=jnp.asarray(0.5), mass_scale=jnp.full((model.nbody,), 1.1),
                                damping_scale=jnp.full((model.nv,), 0.7), latency=jnp.asarray(0))
    out = randomize.apply(model, r)
    np.testing.assert_array_equal(out.actuator_forcerange, model.actuator_forcerange)
    np.testing.assert_allclose(out.body_mass, 1.1 * np.asarray(model.body_mass), rtol=1e-6)
    np.testing.assert_allclose(out.body_inertia, 1.1 * np.asarray(model.body_inertia), rtol=1e-6)
    np.testing.assert_allclose(out.dof_damping, 0.7 * np.asarray(model.dof_damping), rtol=1e-6)
    np.testing.assert_allclose(out.pair_friction[:, :2], 0.5)


def test_action_latency_ring():
    buf = jnp.zeros((4, 2))
    seen = []
    for t in range(6):
        buf, out = randomize.delay(buf, jnp.full((2,), float(t + 1)), jnp.asarray(2))
        seen.append(float(out[0]))
    # Two steps late; the ring starts at the default pose (0).
    assert seen == [0.0, 0.0, 1.0, 2.0, 3.0, 4.0]


def test_pushes_have_the_configured_size_timing_and_duration():
    c = BipedWalkConfig(push_interval_steps=(5, 10), push_duration_steps=3)
    p = randomize.push_init(jax.random.PRNGKey(0), c)
    advance = jax.jit(lambda k, p: randomize.push_advance(k, c, p))
    forces, active = [], []
    for k in jax.random.split(jax.random.PRNGKey(2), 400):
        p = advance(k, p)
        active.append(bool(p.remaining > 0))
        if p.remaining > 0:
            forces.append(np.asarray(p.force))
    forces = np.array(forces)
    magnitude = np.linalg.norm(forces, axis=1)
    assert magnitude.min() >= 5.0 - 1e-4 and magnitude.max() <= 50.0 + 1e-4
    np.testing.assert_allclose(forces[:, 2], 0.0)
    # Every push lasts exactly 3 steps, separated by 5-10 steps of waiting.
    runs, run = [], 0
    for a in active + [False]:
        if a:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    assert set(runs) == {3} and 400 / 13 <= len(runs) <= 400 / 5


def test_bad_settings_are_refused_before_any_compile(tmp_path):
    with pytest.raises(ValueError, match="latency_steps"):
        validate(BipedWalkConfig(latency_steps=(2, 1)))
    with pytest.raises(ValueError, match="reward_scales"):
        validate(BipedWalkConfig(reward_scales=(("tracking", 1.0),)))
    with pytest.raises(robots.ModelError, match="friction_range"):
        envs.make("biped_walk", friction_range=(-1.0, 1.0))
    with pytest.raises(robots.ModelError, match="physics"):
        envs.make("biped_walk", physics="gym")
    bad = tmp_path / "bad.xml"
    bad.write_text("<mujoco><worldbody><body><freejoint/><geom size='0.1'/></body></worldbody></mujoco>")
    with pytest.raises(robots.ModelError, match="has no geom named"):
        envs.make("biped_walk", xml_path=str(bad))


def test_a_batch_runs_finite_with_randomisation_and_auto_terminates():
    env = envs.make("biped_walk", episode_length=30)
    keys = jax.random.split(jax.random.PRNGKey(3), 8)
    reset = eqx.filter_jit(lambda k: jax.vmap(env.reset)(k))
    roll = eqx.filter_jit(lambda s: jax.lax.scan(
        lambda s, _: (lambda n: (n, (n.done, n.obs, n.reward)))(jax.vmap(env.step)(s, jnp.zeros((8, 12)))),
        s, None, length=30))
    _, (done, obs, reward) = roll(reset(keys))
    assert np.all(np.isfinite(obs)) and np.all(np.isfinite(reward))
    assert np.all(np.asarray(done)[-1])  # the time limit ends every episode


def test_every_registered_reward_term_has_a_function_and_every_weight_a_term():
    """The registry is the one list: the config's `rewards` section, the defaults and the
    validation derive from it, and each term computes a finite scalar."""
    from common.envs.biped import config as biped_config, rewards
    from configs import ppo_amp

    assert dict(ppo_amp.get_config().rewards) == {n: t.weight for n, t in rewards.TERMS.items()}
    assert biped_config.REWARD_TERMS == tuple(rewards.TERMS)
    q = rewards.StepQuantities(**{name: jnp.full(shape, 0.5) for name, shape in (
        ("command", 3), ("base_lin_vel", 3), ("base_ang_vel", 3), ("projected_gravity", 3), ("base_height", ()),
        ("joint_pos", 12), ("joint_vel", 12), ("joint_lower", 12), ("joint_upper", 12), ("torque", 12),
        ("action", 12), ("last_action", 12), ("contact_force", 2), ("air_time", 2))},
        first_contact=jnp.array([True, False]), terminated=jnp.array(True))
    for name, term in rewards.TERMS.items():
        value = term.fn(q, BipedWalkConfig())
        assert value.shape == () and np.isfinite(value), name
    with pytest.raises(ValueError, match=r"reward_scales: unknown or repeated terms \['stride'\]"):
        validate(BipedWalkConfig(reward_scales=(*BipedWalkConfig().reward_scales, ("stride", 1.0))))


def test_a_zero_weight_turns_a_reward_term_off():
    """Off terms are neither computed nor logged; reset and step agree on the metrics."""
    key = jax.random.PRNGKey(0)
    for scales, expected in (((), set()), ((("power", -1e-3), ("tracking_lin_vel", 1.0), ("torque", 0.0)),
                                           {"reward/power", "reward/tracking_lin_vel"})):
        env = envs.make("biped_walk", **({"reward_scales": scales} if scales else {}))
        start = eqx.filter_eval_shape(env.reset, key)
        after = eqx.filter_eval_shape(env.step, start, jax.ShapeDtypeStruct((12,), jnp.float32))
        rewards = {k for k in start.metrics if k.startswith("reward/")}
        assert set(after.metrics) == set(start.metrics)
        if expected:
            assert rewards == expected
        else:  # the defaults: power is off
            assert "reward/power" not in rewards and "reward/torque" in rewards


def test_heading_hold_steers_the_yaw_command_back_to_the_target():
    env = envs.make("biped_walk", heading_hold=1.0, command_yaw=(-0.3, 0.3))
    hold = eqx.filter_jit(env._hold_heading)
    straight = jnp.asarray([0.5, 0.0, 0.0])

    def yaw_rate(target, drawn, heading, redraw=False, command=straight):
        cmd, new = hold(jnp.asarray([target, drawn]), command, jnp.asarray(redraw),
                        quaternion.about_axis(2, jnp.asarray(heading)))
        np.testing.assert_allclose(cmd[:2], command[:2])
        return float(cmd[2]), np.asarray(new)

    rate, new = yaw_rate(0.0, 0.0, 0.2)  # veered 0.2 rad left: turn right at 0.2 rad/s
    assert rate == pytest.approx(-0.2, abs=1e-5) and new.tolist() == [0.0, 0.0]
    assert yaw_rate(0.0, 0.0, -1.0)[0] == pytest.approx(0.3)  # clipped to the widest command_yaw
    # Across +-pi the error is the short way round: heading -3.1 is 0.083 rad past target 3.1.
    assert yaw_rate(3.1, 0.0, -3.1)[0] == pytest.approx(6.2 - 2 * np.pi, abs=1e-4)
    # The target integrates the drawn yaw rate; a redraw takes the new command's.
    rate, new = yaw_rate(0.0, 0.1, 0.0)
    assert rate == pytest.approx(0.1 + 0.1 * env.dt, abs=1e-5) and new[0] == pytest.approx(0.1 * env.dt)
    rate, new = yaw_rate(0.0, 0.1, 0.0, redraw=True, command=jnp.asarray([0.0, 0.0, -0.2]))
    assert new[1] == pytest.approx(-0.2) and rate == pytest.approx(-0.2 - 0.2 * env.dt, abs=1e-5)
    # The firmware's NumPy command layer (experiments.sim2sim) gives the same commands.
    from ppo_amp.firmware import HeadingHold

    numpy_hold = HeadingHold(1.0, 0.3, env.dt)
    numpy_hold.reset(0.4)
    state = jnp.asarray([0.4, 0.1])
    for k, heading in enumerate([0.5, 0.2, -0.6, 3.0, -3.1]):
        command = jnp.asarray([0.5, 0.0, 0.1 if k < 3 else -0.2])
        cmd, state = hold(state, command, jnp.asarray(k == 3), quaternion.about_axis(2, jnp.asarray(heading)))
        np.testing.assert_allclose(numpy_hold(np.asarray(command), heading), cmd, atol=1e-5)
    # Off (the default), the state carries no heading: old checkpoints keep their layout.
    key = jax.random.PRNGKey(0)
    off = eqx.filter_eval_shape(envs.make("biped_walk").reset, key)
    on = eqx.filter_eval_shape(env.reset, key)
    assert "heading" not in off.info and on.info["heading"].shape == (2,)
    after = eqx.filter_eval_shape(env.step, on, jax.ShapeDtypeStruct((12,), jnp.float32))
    assert jax.tree.structure(after.info) == jax.tree.structure(on.info)
    with pytest.raises(ValueError, match="heading_hold"):
        validate(BipedWalkConfig(heading_hold=-1.0))
