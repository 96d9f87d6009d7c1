"""Learned actuators: the log format's loader, the bench rig, and fitting the net."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common.actuator import log as log_lib
from common.actuator import net as net_lib
from ppo_amp import actuator_fit, actuator_rig
from tests.conftest import assert_same_leaves


@pytest.fixture(scope="module")
def knee():
    return actuator_rig.joint_specs()["knee"]


@pytest.fixture(scope="module")
def step_log(knee):
    """The knee rig's answer to two 0.9 rad command steps, with a fixed 2-tick latency."""
    servo = actuator_rig.ServoModel(latency_ticks=(2, 2), torque_noise=0.0)
    commands = np.concatenate([np.full(60, 0.3), np.full(60, 1.2), np.full(60, 0.3)])
    return servo, actuator_rig.run(knee, servo, commands, np.random.default_rng(0))


def _columns(n=100, rate=200.0):
    t = np.arange(n) / rate
    q = 0.3 * np.sin(2 * np.pi * t)
    return {"time_s": t, "joint": np.full(n, "left_knee"), "command_rad": q + 0.01, "position_rad": q,
            "velocity_rad_s": np.gradient(q, 1 / rate), "torque_nm": 2 * np.cos(2 * np.pi * t)}


def test_good_logs_load_from_npz_and_csv_alike(tmp_path):
    trace = log_lib.check("x", _columns()).joints["left_knee"]
    for ext in ("npz", "csv"):
        path = str(tmp_path / f"log.{ext}")
        log_lib.save(path, {"left_knee": trace})
        log = log_lib.load(path, rate_hz=200.0)
        assert log.rate_hz == pytest.approx(200.0) and list(log.joints) == ["left_knee"]
        got = log.joints["left_knee"]
        np.testing.assert_allclose(got.position, trace.position, atol=1e-12)
        np.testing.assert_allclose(got.torque, trace.torque, atol=1e-12)
        assert got.current is None


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("velocity_rad_s"), "missing column"),
    (lambda c: c.update(position_deg=c.pop("position_rad")), "convert it to 'position_rad'"),
    (lambda c: c.update(torq_nm=c.pop("torque_nm")), "unknown column 'torq_nm'"),
    (lambda c: c["time_s"].__setitem__(50, c["time_s"][49]), "not strictly increasing"),
    (lambda c: c["time_s"].__setitem__(slice(60, None), c["time_s"][60:] + 0.1), "a gap of 0.105"),
    (lambda c: c.update(position_rad=np.degrees(c["position_rad"]) * 10), "more than 2 pi"),
    (lambda c: c.update(velocity_rad_s=np.degrees(c["velocity_rad_s"])), "other units"),
    (lambda c: c["torque_nm"].__setitem__(3, np.nan), "non-finite"),
])
def test_bad_logs_are_refused_in_one_line(change, message):
    columns = _columns()
    change(columns)
    with pytest.raises(log_lib.LogError, match=message) as e:
        log_lib.check("bad.npz", columns)
    assert "\n" not in str(e.value) and str(e.value).startswith("bad.npz")


def test_wrong_rate_and_pickled_or_broken_files_are_refused(tmp_path):
    with pytest.raises(log_lib.LogError, match="logged at 100 Hz"):
        log_lib.check("x", _columns(rate=100.0), rate_hz=200.0)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**_columns(), "joint": np.array(["left_knee"] * 100, dtype=object)})
    with pytest.raises(log_lib.LogError, match="pickled Python objects"):
        log_lib.load(str(pickled))
    broken = tmp_path / "broken.csv"
    broken.write_text("time_s,joint,command_rad,position_rad,velocity_rad_s\n0.0,left_knee,0.1,abc,0\n")
    with pytest.raises(log_lib.LogError, match="'abc' is not a number"):
        log_lib.load(str(broken))


def test_the_rig_shows_its_latency_and_saturation(step_log, knee):
    servo, log = step_log
    # Ticks 60-61: the new command is not there yet (2 ticks late); tick 62 saturates.
    current = log.current * servo.torque_constant
    assert abs(current[61]) < 0.1 * knee.effort
    assert current[62] == pytest.approx(knee.effort, rel=1e-3)
    assert np.max(np.abs(current)) <= knee.effort + 1e-9
    # Quantisation: every reading sits on the 14-bit grid.
    counts = log.position / (2 * np.pi / 2**servo.encoder_bits)
    np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)
    # Saturated, the joint is slowed by the torque-speed line: it nears the top speed.
    assert 0.5 * servo.top_speed < np.max(log.velocity[60:120]) < 1.1 * servo.top_speed
    # It reaches the new command, then comes back, to within the friction's dead band
    # (Coulomb friction / kp = 0.035 rad).
    band = servo.coulomb_fraction * knee.effort / knee.kp + 0.005
    assert abs(log.position[115] - 1.2) < band and abs(log.position[-1] - 0.3) < band


def test_a_tiny_fit_reduces_the_loss_and_the_file_round_trips(tmp_path, knee):
    rng = np.random.default_rng(1)
    servo = actuator_rig.ServoModel()
    commands = actuator_rig.held(actuator_rig.host_commands("random_walks", knee, 8.0, 50.0, rng), 4)
    log = log_lib.MotorLog("rig", 200.0, {"left_knee": actuator_rig.run(knee, servo, commands, rng)})
    s = actuator_fit.samples([log], ("knee",), 3)
    train, valid = s.take(s.block % 4 != 0), s.take(s.block % 4 == 0)
    spec = actuator_fit.make_spec(train, ("knee",), 3, 200.0, (8,), servo.rotor_inertia, coulomb={"knee": 1.75},
                                  viscous={"knee": 0.09})
    net, history = actuator_fit.fit(jax.random.PRNGKey(0), train, valid, spec, learning_rate=1e-2, batch_size=64,
                                    max_epochs=15, patience=100, log=lambda m: None)
    assert history[-1]["valid_loss"] < 0.5 * history[0]["valid_loss"]
    # Refining on rollouts lowers the rollout error on windows it did not train on.
    windows = lambda validation: actuator_fit.windows([log], ("knee",), 3, 60, stride=30,
                                                      split=(0.25, validation))
    inertia = {"knee": knee.inertia}
    refined, steps = actuator_fit.refine(jax.random.PRNGKey(1), net, windows(False), windows(True), inertia, train,
                                         substeps=1, learning_rate=3e-3, batch_size=16, steps=60,
                                         torque_weight=1.0, every=20, log=lambda m: None)
    assert len(steps) == 4 and steps[-1]["step"] == 60
    held = {k: jnp.asarray(v) for k, v in windows(True).items()}
    rmse = lambda n: float(jnp.sqrt(jnp.mean((actuator_fit.rollout(n, inertia, held) - held["position"][:, 3:]) ** 2)))
    assert rmse(refined) < 0.9 * rmse(net), (rmse(refined), rmse(net))
    path = str(tmp_path / "net.npz")
    net_lib.save(net, path)
    again = net_lib.load(path)
    np.testing.assert_allclose(actuator_fit.predict(again, valid), actuator_fit.predict(net, valid), rtol=1e-6)
    meta = json.loads(str(np.load(path)["metadata"]))
    assert meta["sign"].startswith("error = command_rad - position_rad") and meta["num_params"] == net.num_params
    np.savez(tmp_path / "bad.npz", metadata=np.array(json.dumps({**meta, "hidden": [9]})), w0=np.zeros((2, 2)))
    with pytest.raises(net_lib.NetFileError, match="malformed"):
        net_lib.load(str(tmp_path / "bad.npz"))


@pytest.fixture(scope="module")
def net_file(tmp_path_factory):
    """An untrained net over the biped's six joint kinds, with torques of a few N m."""
    kinds = actuator_rig.KINDS
    ones = tuple(1.0 for _ in kinds)
    spec = net_lib.NetSpec(history=3, rate_hz=200.0, kinds=kinds, error_scale=tuple(10.0 for _ in kinds),
                           velocity_scale=ones, torque_scale=tuple(5.0 for _ in kinds), hidden=(16,),
                           rotor_inertia=0.02, coulomb=tuple(0.1 * i for i in range(6)), viscous=ones)
    path = str(tmp_path_factory.mktemp("net") / "net.npz")
    net_lib.save(net_lib.ActuatorNet.init(jax.random.PRNGKey(0), spec), path)
    slow = str(tmp_path_factory.mktemp("net") / "slow.npz")
    net_lib.save(net_lib.ActuatorNet.init(jax.random.PRNGKey(0), dataclasses.replace(spec, rate_hz=100.0)), slow)
    return path, slow


def test_learned_actuators_drive_the_biped_inside_the_jitted_step(net_file):
    from common import envs, robots

    path, slow = net_file
    env = envs.make("biped_walk", actuator="learned", actuator_net=path, episode_length=20)
    net = env.actuator_net
    m = env.model
    np.testing.assert_array_equal(m.actuator_gainprm[:, 0], 1.0)
    np.testing.assert_array_equal(m.actuator_biasprm, 0.0)
    dofs = np.arange(6, 18)
    kinds = np.asarray(env.joint_kind)
    assert [actuator_rig.KINDS[k] for k in kinds[:6]] == list(actuator_rig.KINDS)
    np.testing.assert_allclose(m.dof_frictionloss[dofs], 0.1 * kinds, rtol=1e-6)
    np.testing.assert_allclose(m.dof_armature[dofs], 0.02)

    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    reset = jax.jit(jax.vmap(env.reset))
    step = jax.jit(jax.vmap(env.step))
    s0 = reset(keys)
    errors, velocities = s0.info["actuator_history"]
    assert errors.shape == velocities.shape == (3, 12, 3)
    # Reset: the history holds the standing start (default target - joints), no motion.
    expected = env.statics.default_ctrl - s0.data.qpos[:, 7:]
    np.testing.assert_allclose(errors, np.repeat(np.asarray(expected)[..., None], 3, axis=-1), atol=1e-7)
    np.testing.assert_array_equal(velocities, 0.0)
    actions = 0.3 * jax.random.normal(jax.random.PRNGKey(2), (25, 3, 12))
    s, forces = s0, []
    for a in actions:
        s = step(s, a)
        forces.append(s.data.actuator_force)
    assert np.all(np.isfinite(np.asarray(forces))) and np.all(np.isfinite(s.obs))
    # The last substep's torque is the net's answer to the history the step hands on.
    e, v = s.info["actuator_history"]
    answer = jax.vmap(net, in_axes=(0, 0, None))(e, v, env.joint_kind)
    torque = jnp.clip(answer, -m.actuator_forcerange[:, 1], m.actuator_forcerange[:, 1])
    np.testing.assert_allclose(s.data.actuator_force, torque, rtol=1e-5, atol=1e-5)
    # Each env's history is its own: the batch reversed gives each env the same history;
    # and the same inputs give the same states.
    batch = step(s0, actions[0])
    flipped = step(jax.tree.map(lambda x: x[::-1], s0), actions[0][::-1])
    # Batch order changes XLA rounding only.
    assert_same_leaves(jax.tree.map(lambda x: x[::-1], flipped.info["actuator_history"]),
                       batch.info["actuator_history"], atol=2e-4)
    assert not np.allclose(batch.info["actuator_history"][0][0], batch.info["actuator_history"][0][1])
    again = step(s0, actions[0])
    np.testing.assert_array_equal(again.data.qpos, batch.data.qpos)
    # A new episode starts from a fresh history, whatever the last one left.
    fresh = reset(keys)
    np.testing.assert_array_equal(fresh.info["actuator_history"][1], 0.0)
    with pytest.raises(robots.ModelError, match="fitted at 100 Hz"):
        envs.make("biped_walk", actuator="learned", actuator_net=slow)
    with pytest.raises(robots.ModelError, match="actuator_net"):
        envs.make("biped_walk", actuator="learned")


def test_cli_collects_and_trains_and_refuses_bad_input_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT, cli_env

    env = cli_env()
    run = lambda *args: subprocess.run([sys.executable, "-m", "experiments.actuator", *args], cwd=REPO_ROOT,
                                       env=env, capture_output=True, text=True, timeout=300)
    logs, out = str(tmp_path / "logs"), str(tmp_path / "net")
    collected = run("collect", f"--output={logs}", "--format=csv", "--config.collect.train_seconds=3",
                    "--config.collect.heldout_seconds=2.5", "--config.collect.segment_seconds=1")
    assert collected.returncode == 0, collected.stderr[-2000:]
    assert sorted(os.listdir(logs)) == ["heldout.csv", "rig.json", "train.csv"]
    trained = run("train", f"--logs={logs}", f"--output={out}", "--config.net.max_epochs=2",
                  "--config.net.hidden=(4,)", "--config.net.large_hidden=(4,)", "--config.net.batch_size=64",
                  "--config.net.refine_steps=4", "--config.net.refine_window_seconds=0.2")
    assert trained.returncode == 0, trained.stderr[-2000:]
    report = json.loads(trained.stdout.strip().splitlines()[-1])
    figures = report["nets"]["actuator_net"]
    assert figures["replay_windows"] == 6 and np.isfinite(figures["heldout_replay_position_rmse"])
    assert np.isfinite(report["servo_law"]["heldout_replay_position_rmse"])
    assert net_lib.load(os.path.join(out, "actuator_net.npz")).num_params == figures["params"]
    assert os.path.isfile(os.path.join(out, "plots", "heldout_traces.png"))
    bad = run("train", f"--logs={tmp_path}", f"--output={out}")
    assert bad.returncode == 2 and "exactly one train.npz or train.csv" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
