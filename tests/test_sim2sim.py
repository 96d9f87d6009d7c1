"""sim2sim: an exported biped policy runs in MuJoCo C on the MJCF as written."""

import jax
import pytest

from common import envs, normalizer, onnx_export
from ppo_amp import export as ppo_export, networks, sim2sim


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory):
    """A fresh (near-zero) actor exported with the biped's metadata: it holds the default pose."""
    env_config = envs.config_for("biped_walk")
    actor, _ = networks.init(jax.random.PRNGKey(0), 45, 55, 12, hidden=(16, 16))
    stats = normalizer.init(45)
    g, inputs, outputs = ppo_export.graph(actor, stats, obs_clip=5.0)
    meta = ppo_export.metadata(env_config, env_config.load_mj_model()) | {"run_name": "tiny", "iteration": 0}
    path = str(tmp_path_factory.mktemp("export") / "policy.onnx")
    onnx_export.save(onnx_export.build(g, inputs, outputs, meta, "ppo_amp_policy"), path)
    return path, env_config


def _termination(c):
    return sim2sim.Termination(min_base_height=c.min_base_height, max_tilt=c.max_tilt, grace_steps=c.grace_steps,
                               reset_joint_noise=c.reset_joint_noise, keyframe=c.keyframe)


def test_a_tiny_policy_stands_through_sim2sim_episodes(tiny_export):
    path, c = tiny_export
    line = sim2sim.run(path, c.xml_path, _termination(c), (0.0, 0.0, 0.0), episodes=2, seconds=2.0, seed=3)
    assert line["episodes"] == 2 and line["falls"] == 0 and line["success_rate"] == 1.0
    assert line["seconds"] == pytest.approx(2.0) and line["run_name"] == "tiny"
    # Standing still at a zero command: little drift, little error, the servos holding the pose.
    assert line["distance_m"] < 0.1 and line["tracking_mae"] < 0.1 and line["mean_power_w"] > 0.0
    late = sim2sim.run(path, c.xml_path, _termination(c), (0.0, 0.0, 0.0), episodes=1, seconds=0.5, seed=3,
                       latency_steps=3)
    assert late["latency_steps"] == 3 and late["falls"] == 0


def test_a_wrong_time_step_is_refused(tiny_export, tmp_path):
    path, c = tiny_export
    text = open(c.xml_path).read()
    assert 'timestep="0.005"' in text
    xml = tmp_path / "biped.xml"
    xml.write_text(text.replace('timestep="0.005"', 'timestep="0.002"'))
    with pytest.raises(ValueError, match="differs from the export's physics_dt"):
        sim2sim.run(path, str(xml), _termination(c), (0.0, 0.0, 0.0), episodes=1, seconds=0.1)
