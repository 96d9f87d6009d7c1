"""The robustness suite's scenarios change what they claim and nothing else, and the
firmware's observation (NumPy, from the export's metadata) equals the env's."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import envs
from common.envs.biped import randomize
from ppo_amp import export as ppo_export, robustness, sim2sim
from ppo_amp.firmware import Firmware

STEPS = 220  # a push comes every 100-200 steps (2-4 s) and lasts 5
SPECS = robustness.SCENARIOS
NAMES = [s.name for s in SPECS]


@pytest.fixture(scope="module")
def walk():
    return envs.make("biped_walk", fixed_command=(0.5, 0.0, 0.0), episode_length=STEPS,
                     **robustness.env_overrides(0.02))


@pytest.fixture(scope="module")
def recorded(walk):
    """STEPS steps of an open-loop swing of the legs in every scenario, one env each."""
    scenarios = robustness.stack(SPECS, walk.nominal_friction)

    def one(scenario, key):
        env = robustness.StressedWalk(walk, scenario)

        def body(s, t):
            action = 0.4 * jnp.sin(0.3 * t + jnp.arange(12.0))
            n = env.step(s, action)
            return n, {"qpos": s.data.qpos, "qvel": s.data.qvel, "obs": s.obs, "clean": s.info["critic_obs"][:45],
                       "command": s.info["command"], "last_action": s.info["last_action"], "action": action,
                       "ctrl": n.data.ctrl, "push": n.data.xfrc_applied[walk.base_body, :3]}

        start = env.reset(key)
        draw = (start.info["randomization"], start.info["stress"])
        return draw, jax.lax.scan(body, start, jnp.arange(STEPS, dtype=jnp.float32))[1]

    keys = jax.random.split(jax.random.PRNGKey(0), len(SPECS))
    return jax.device_get(jax.jit(jax.vmap(one))(scenarios, keys))


def _row(tree, i):
    return jax.tree.map(lambda x: np.asarray(x[i]), tree)


def test_each_scenario_draws_what_it_claims_and_nothing_else(recorded, walk):
    draws, _ = recorded
    nominal = _row(draws, NAMES.index("nominal"))
    base = walk.base_body
    claims = {  # the Randomization and Stress fields each scenario may change
        "nominal": set(), "walk_50m": set(), "friction": {"friction"}, "icy": {"friction"},
        "push": {"push_scale"}, "mass": {"mass_scale"}, "payload": {"mass_scale"}, "weak_motors": {"effort_scale"},
        "noise_x3": {"noise_scale"}, "latency_3": {"latency"},
        "worst_all": {"friction", "mass_scale", "effort_scale", "noise_scale"},
    }
    assert set(claims) == set(NAMES)
    for i, spec in enumerate(SPECS):
        changed = {f.name for a, b in zip(_row(draws, i), nominal) for f in dataclasses.fields(a)
                   if not np.array_equal(getattr(a, f.name), getattr(b, f.name))}
        assert changed == claims[spec.name], spec.name
    physics = lambda name: _row(draws, NAMES.index(name))[0]
    stress = lambda name: _row(draws, NAMES.index(name))[1]
    assert float(nominal[0].friction) == pytest.approx(walk.nominal_friction) and float(nominal[1].noise_scale) == 0.0
    assert float(physics("icy").friction) == pytest.approx(0.3) and 0.4 <= float(physics("friction").friction) <= 1.25
    mass = physics("mass").mass_scale
    assert mass.min() >= 0.85 and mass.max() <= 1.15 and np.ptp(mass) > 0.05
    payload = physics("payload").mass_scale
    assert payload[base] == pytest.approx(1.3) and np.all(np.delete(payload, base) == 1.0)
    assert float(stress("weak_motors").effort_scale) == pytest.approx(0.8)
    assert float(stress("noise_x3").noise_scale) == 3.0 and int(physics("latency_3").latency) == 3
    # What the effort scale does to the model: the force limits, nothing else.
    model = walk.model
    weak = randomize.apply(model, *_row(draws, NAMES.index("weak_motors")))
    np.testing.assert_allclose(weak.actuator_forcerange, 0.8 * np.asarray(model.actuator_forcerange), rtol=1e-6)
    same = randomize.apply(model, *nominal)
    for field in ("body_mass", "body_inertia", "dof_damping", "geom_friction", "pair_friction"):
        np.testing.assert_array_equal(getattr(weak, field), getattr(same, field))


def test_pushes_noise_and_latency_reach_the_robot_only_in_their_scenarios(recorded, walk):
    _, traj = recorded
    noise_levels = randomize.obs_noise_levels(walk.config)
    for i, spec in enumerate(SPECS):
        t = _row(traj, i)
        force = np.linalg.norm(t["push"], axis=-1)
        if spec.name == "push":
            # 10 N, for 5 steps at a time, to the base's left or right.
            assert set(np.round(np.unique(force), 3)) == {0.0, 10.0} and (force > 0).sum() >= 5
            # Each push starts from the heading of the state it is applied to, and holds.
            starts = [k for k in np.flatnonzero(force > 0) if k == 0 or force[k - 1] == 0]
            x_axis = np.stack([_x_axis(q) for q in t["qpos"][starts, 3:7]])
            cosine = np.abs(np.sum(x_axis * t["push"][starts, :2], axis=-1)) / 10.0
            assert cosine.max() < 1e-3 and np.all(np.abs(t["push"][:, 2]) == 0.0)
        else:
            assert force.max() == 0.0, spec.name
        noise = t["obs"] - t["clean"]
        scale = float(spec.noise_scale)
        bound = np.concatenate([np.full(3, noise_levels["base_ang_vel"]), np.full(3, noise_levels["projected_gravity"]),
                                np.zeros(3), np.full(12, noise_levels["joint_pos"]),
                                np.full(12, noise_levels["joint_vel"]), np.zeros(12)]) * scale
        assert np.all(np.abs(noise) <= bound + 1e-5), spec.name
        if scale:
            assert np.all(np.abs(noise).max(axis=0)[bound > 0] > 0.8 * bound[bound > 0]), spec.name
        latency = spec.latency_steps
        targets = np.clip(np.asarray(walk.statics.default_ctrl) + np.asarray(walk.statics.action_scale)
                          * np.concatenate([np.zeros((latency, 12)), t["action"]])[:STEPS],
                          np.asarray(walk.statics.ctrl_low), np.asarray(walk.statics.ctrl_high))
        np.testing.assert_allclose(t["ctrl"], targets, atol=1e-6, err_msg=spec.name)


def test_firmware_observation_equals_the_env_observation(recorded, walk):
    """The NumPy observation built from the export's metadata, on every recorded state."""
    _, traj = recorded
    t = _row(traj, NAMES.index("nominal"))
    meta = ppo_export.metadata(walk.config, walk.config.load_mj_model())
    firmware = Firmware(meta)
    robot = sim2sim.Robot(walk.config.xml_path, firmware, meta["physics_dt"])
    moved = 0.0
    for k in range(STEPS):
        qpos, qvel = t["qpos"][k].astype(np.float64), t["qvel"][k].astype(np.float64)
        obs = firmware.observation(qpos[3:7], qvel[3:6], qpos[robot.qpos_adr], qvel[robot.dof_adr], t["command"][k],
                                   t["last_action"][k])
        np.testing.assert_allclose(obs, t["clean"][k], rtol=1e-5, atol=1e-5)
        moved = max(moved, np.abs(obs[3:5]).max())
    assert moved > 0.1  # the states are not all upright and still
    with pytest.raises(ValueError, match="not a biped policy export"):
        Firmware({"obs_terms": []})


def _x_axis(q):
    """The base's heading: its x axis on the ground plane, unit length."""
    w, x, y, z = q
    v = np.array([1.0 - 2.0 * (y * y + z * z), 2.0 * (x * y + w * z)])
    return v / np.linalg.norm(v)


def test_summary_figures_on_hand_made_sums():
    """Two scenarios of two episodes: one walks 10 m and 12 m at 0.5 m/s, one falls once."""
    specs = (robustness.Spec("a"), robustness.Spec("walk", walk_distance=11.0))
    zeros = np.zeros((2, 2))
    sums = {"alive_steps": np.full((2, 2), 1000.0), "counted_steps": np.full((2, 2), 950.0),
            "tracking": np.full((2, 2), 95.0), "tracking_instant": np.full((2, 2), 200.0),
            "speed": np.full((2, 2), 500.0), "torque": np.full((2, 2), 3000.0), "energy": np.full((2, 2), 400.0),
            "distance": np.full((2, 2), 11.0), "fell": np.array([[0.0, 0.0], [1.0, 0.0]]), "return": zeros,
            "yaw_rate": np.array([[100.0, -300.0], [0.0, 0.0]]),
            "joint_torque": np.tile(np.arange(12.0) * 1000.0, (2, 2, 1)), "power": np.full((2, 2), 20_000.0),
            "mass": np.full((2, 2), 12_000.0), "displacement": np.array([[[6.0, 8.0], [0.0, 12.0]], [[0.0, 12.0], [6.0, 8.0]]])}
    a, walk = robustness.summarize(sums, specs, control_dt=0.02)
    assert a["scenario"] == "a" and a["episodes"] == 2 and a["falls"] == 0 and a["success_rate"] == 1.0
    assert a["distance_m"] == pytest.approx(11.0) and a["distance_min_m"] == pytest.approx(10.0)
    assert a["seconds"] == pytest.approx(20.0) and a["tracking_mae"] == pytest.approx(0.1)
    # Path: 11 m per episode; heading drift: |100| and |-300| rad over 1000 steps each.
    assert a["path_m"] == pytest.approx(11.0) and a["heading_drift"] == pytest.approx(0.2)
    assert a["mean_speed"] == pytest.approx(0.5) and a["mean_power_w"] == pytest.approx(20.0)
    assert a["mean_abs_torque"] == pytest.approx(list(np.arange(12.0)))
    # P / (m g v) with the mean mass 12 kg.
    assert a["cost_of_transport"] == pytest.approx(20.0 / (12.0 * 9.81 * 0.5))
    # The walk: the fall fails (at 12 m), and so does the episode short of the distance (10 m < 11 m).
    assert walk["falls"] == 1 and walk["success_rate"] == 0.0
