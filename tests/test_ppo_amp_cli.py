"""The PPO+AMP command lines end to end: train, evaluate the run, benchmark, refuse bad input.

Every command runs in a subprocess on one CPU device, as a user would run it. Compiling
MJX dominates the file's time, so the subprocesses compile at XLA's lowest backend
optimisation level (about a third faster to compile; these tests check plumbing and
sanity, not speed), and they share the test run's compile cache: the benchmark times the
very iteration the training compiled and loads it.
"""

import json
import math
import os
import shutil
import subprocess
import sys

import imageio.v3 as iio
import jax
import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common import config as config_lib, onnx_export, results
from common.errors import UserError
from common.actuator import net as actuator_net
from experiments import pipelines
from tests.conftest import REPO_ROOT, cache_flag, cli_env

ENV = cli_env()
# The shape of tests/test_ppo_amp_train.py, on two CPU devices as configs/ppo_amp_cpu.py
# runs (the final video then starts from a state replicated over a mesh); the benchmark
# must use the same fields to reuse the training's compiled iteration.
TINY = ["--config.num_envs=8", "--config.rollout_length=4", "--config.num_iterations=2", "--config.eval_episodes=2",
        "--config.cpu_devices=2"]
FIGURES = ("episodes", "falls", "tracking_mae", "tracking_mae_instant", "mean_speed", "heading_drift",
           "mean_abs_torque", "energy_per_meter", "eval_return", "eval_length")


def _run(args, timeout=900):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=ENV, capture_output=True, text=True,
                          timeout=timeout)


def _one_error_line(proc, *needles):
    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
    assert len(lines) == 1 and all(n in lines[0] for n in needles), proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("ppo_amp_cli")
    return {"results": str(root / "results"), "root": root}


@pytest.fixture(scope="module")
def run_dir(work):
    proc = _run(["experiments.ppo_amp", "--config=configs/ppo_amp_test.py", *TINY,
                 f"--config.results_dir={work['results']}", cache_flag()])
    assert proc.returncode == 0, proc.stderr[-3000:]
    path = os.path.join(work["results"], "ppo_amp", "ppo_amp_test")
    assert os.path.isfile(os.path.join(path, "summary.json"))
    return path


def test_evaluate_prints_one_line_of_sane_figures(run_dir):
    proc = _run(["experiments.evaluate", f"--run={run_dir}", "--command=0.3,0,0", "--episodes=4", "--seconds=0.5"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (out,) = proc.stdout.strip().splitlines()
    line = json.loads(out)
    assert set(FIGURES) | {"run", "iteration", "command", "seconds", "steps", "physics"} <= set(line)
    # The figures' values are checked on a scripted walk (tests/test_ppo_amp_evaluate.py);
    # here their consistency: an episode that never fell lived all 25 steps.
    assert line["episodes"] == 4 and line["falls"] in range(5) and (line["falls"] > 0 or line["eval_length"] == 25)
    assert line["iteration"] == 2 and line["command"] == [0.3, 0.0, 0.0] and line["physics"] == "fast"
    assert line["steps"] == 25 and line["seconds"] == pytest.approx(0.5)
    assert all(math.isfinite(line[k]) for k in FIGURES)
    assert 0 < line["eval_length"] <= 25 and (4 * line["eval_length"]).is_integer() and line["mean_abs_torque"] > 0


@pytest.mark.filterwarnings("ignore:os.fork")  # the ffmpeg decoder subprocess
def test_training_ends_with_a_video_and_tensorboard_curves(run_dir):
    summary = json.load(open(os.path.join(run_dir, "summary.json")))
    assert summary["video"] == os.path.join(run_dir, "videos", "final.mp4")
    # video_seconds 0.5 at 50 Hz: 25 control steps, every second one shown (25 fps).
    frames = iio.imread(summary["video"])
    assert frames.shape == (13, 480, 640, 3)
    # The robot moves: pixels that change by more than the encoder's noise (0.59% measured).
    moved = np.abs(frames[0].astype(int) - frames[-1].astype(int)).max(-1) > 16
    assert moved.mean() > 1e-3
    records = [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]
    events = EventAccumulator(run_dir)
    events.Reload()
    logged = [r for r in records if "eval_return" in r]
    scalars = events.Scalars("eval_return")
    assert [e.step for e in scalars] == [r["iteration"] for r in logged]
    assert [e.value for e in scalars] == pytest.approx([r["eval_return"] for r in logged], rel=1e-6)
    assert set(events.Tags()["scalars"]) >= {"episode_return", "disc_accuracy", "env_steps"}


# ~35 s on 2 cores (the recorded play's compile): run by .ci/run, beside the ES run's play
# (tests/test_es_cli.py). The default suite renders the training's final video.
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:os.fork")
def test_play_renders_the_walker_at_a_command(run_dir, tmp_path):
    out = str(tmp_path / "walk.mp4")
    proc = _run(["experiments.play", f"--run={run_dir}", "--seconds=0.5", "--command=0.3,0,0.2", f"--output={out}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["path"] == out and line["frames"] == 13 and line["fps"] == pytest.approx(25.0)
    assert line["command"] == [0.3, 0.0, 0.2] and line["iteration"] == 2
    assert iio.imread(out).shape == (13, 480, 640, 3)
    _one_error_line(_run(["experiments.play", f"--run={run_dir}", "--output=walk.avi"], timeout=60), "--output:", ".mp4")


def test_export_matches_jax_and_carries_the_resolved_config(run_dir, tmp_path):
    out = str(tmp_path / "policy.onnx")
    proc = _run(["experiments.export", f"--run={run_dir}", f"--output={out}", "--observations=160"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["observations"] == 160 and line["inputs"] == {"obs": 45} and line["outputs"] == {"action": 12}
    assert line["max_abs_error"] <= 1e-5 and line["random_max_abs_error"] <= 1e-5
    assert 0 < line["latency_ms_p50"] <= line["latency_ms_p99"] < 5.0
    meta = onnx_export.read_metadata(out)
    config = json.load(open(os.path.join(run_dir, "config.json")))
    task = config["task"]
    assert [t["name"] for t in meta["obs_terms"]] == list(task["obs_terms"])
    assert sum(t["size"] for t in meta["obs_terms"]) == 45
    scales = {t["name"]: t["scale"] for t in meta["obs_terms"]}
    assert scales["base_ang_vel"] == task["ang_vel_scale"] and scales["joint_vel"] == task["joint_vel_scale"]
    assert meta["command_ranges"] == {"vx": task["command_vx"], "vy": task["command_vy"], "yaw_rate": task["command_yaw"]}
    assert meta["control_dt"] == pytest.approx(0.005 * task["frame_skip"])
    assert meta["run_name"] == "ppo_amp_test" and meta["iteration"] == 2
    assert meta["config_hash"] == config_lib.fingerprint(config, results.RESUMABLE_FIELDS)
    assert meta["code_commit"] == json.load(open(os.path.join(run_dir, "summary.json")))["code_commit"]
    # The per-joint scale is the config's action_scale x effort / kp, at full precision.
    np.testing.assert_allclose(meta["action_scale"],
                               task["action_scale"] * np.asarray(meta["effort_limit"]) / np.asarray(meta["kp"]), rtol=1e-12)
    assert len(meta["joint_names"]) == 12 and len(meta["default_joint_pos"]) == 12
    inspect = _run(["experiments.export", f"--inspect={out}"], timeout=60)
    assert inspect.returncode == 0 and json.loads(inspect.stdout) == meta
    _one_error_line(_run(["experiments.export", f"--inspect={run_dir}/config.json"], timeout=60),
                    "--inspect:", "not a readable ONNX model")


@pytest.mark.parametrize("flags, needles", [
    (["--command=0.5,0"], ["--command:", "'0.5,0'"]),
    (["--seconds=0"], ["--seconds:", "positive"]),
])
def test_evaluate_refuses_malformed_flags_in_one_line(tmp_path, flags, needles):
    # Checked before the run is read: the folder need not exist.
    _one_error_line(_run(["experiments.evaluate", f"--run={tmp_path}/ppo_amp/x", *flags], timeout=60), *needles)


def test_evaluate_refuses_bad_run_folders_in_one_line(run_dir, tmp_path):
    """Every tool opens a run through `pipelines.open_run`: its refusals in process, and
    one through the command line, which prints it as the only line."""
    config = os.path.join(run_dir, "config.json")
    (tmp_path / "ppo_amp" / "empty").mkdir(parents=True)
    shutil.copy(config, tmp_path / "ppo_amp" / "empty")
    (tmp_path / "other" / "run").mkdir(parents=True)
    shutil.copy(config, tmp_path / "other" / "run")
    cases = [
        ((str(tmp_path), None), r"^--run: .*no config\.json"),
        ((f"{tmp_path}/ppo_amp/empty", None), r"^--run: .*no checkpoints"),
        ((f"{tmp_path}/other/run", None), r"^--run: .*'other'"),
        ((run_dir, "gym"), r"^--physics: PPO\+AMP runs take one of"),
    ]
    for (path, physics), message in cases:
        with pytest.raises(UserError, match=message):
            pipelines.open_run(path, physics)
    assert sorted(os.listdir(tmp_path / "ppo_amp" / "empty")) == ["config.json"]  # nothing written
    _one_error_line(_run(["experiments.evaluate", f"--run={tmp_path}/ppo_amp/empty"], timeout=60),
                    "--run:", "no checkpoints")


def _tiny_net(tmp_path) -> str:
    """An untrained actuator net for the biped's joint kinds at the env's 200 Hz, saved."""
    kinds = ("hip_yaw", "hip_roll", "hip_pitch", "knee", "ankle_pitch", "ankle_roll")
    ones = tuple(1.0 for _ in kinds)
    path = str(tmp_path / "net.npz")
    actuator_net.save(actuator_net.ActuatorNet.init(jax.random.PRNGKey(0), actuator_net.NetSpec(
        history=3, rate_hz=200.0, kinds=kinds, error_scale=ones, velocity_scale=ones, torque_scale=ones,
        hidden=(8,), rotor_inertia=0.015, coulomb=ones, viscous=ones)), path)
    return path


# ~40 s on 2 cores (a subprocess compiling the evaluation twice): run by .ci/run.
@pytest.mark.slow
def test_evaluate_judges_the_policy_on_learned_actuators(run_dir, tmp_path):
    """The same episodes on the ideal servos and on an actuator net: the net's torques,
    not the servo law's, reach the joints."""
    common = [f"--run={run_dir}", "--command=0.3,0,0", "--episodes=2", "--seconds=0.2"]
    ideal = json.loads(_run(["experiments.evaluate", *common]).stdout.strip().splitlines()[-1])
    proc = _run(["experiments.evaluate", *common, "--actuator=learned", f"--actuator_net={_tiny_net(tmp_path)}"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    learned = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (ideal["actuator"], learned["actuator"]) == ("ideal", "learned")
    assert learned["steps"] == ideal["steps"] == 10 and learned["episodes"] == 2
    assert all(math.isfinite(learned[k]) for k in FIGURES)
    assert learned["mean_abs_torque"] != pytest.approx(ideal["mean_abs_torque"], rel=1e-3)


# ~90 s on 2 cores (the suite's two programs, one a 50 m walk): run by .ci/run.
@pytest.mark.slow
def test_robustness_suite_writes_its_lines_table_and_chart(run_dir):
    """`evaluate --suite=robustness`: one line per scenario, the same lines in
    robustness.json, the chart, and the 50 m walk run for its own length."""
    from ppo_amp import robustness

    proc = _run(["experiments.evaluate", f"--run={run_dir}", "--suite=robustness", "--episodes=2", "--seconds=0.2",
                 "--command=2.0,0,0"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(l) for l in proc.stdout.strip().splitlines()]
    assert [l["scenario"] for l in lines] == [s.name for s in robustness.SCENARIOS]
    assert json.load(open(os.path.join(run_dir, "robustness.json"))) == lines
    with open(os.path.join(run_dir, "plots", "robustness.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    dt = 0.005 * json.load(open(os.path.join(run_dir, "config.json")))["task"]["frame_skip"]
    for line in lines:
        assert line["episodes"] == 2 and line["iteration"] == 2 and line["command"] == [2.0, 0.0, 0.0]
        assert 0 <= line["falls"] <= 2 and line["success_rate"] <= 1 - line["falls"] / 2
        # Every episode lived at least one step and at most its scenario's length.
        longest = robustness.walk_steps((2.0, 0.0, 0.0), dt) if line["scenario"] == "walk_50m" else 10
        assert 0 < line["seconds"] <= longest * dt + 1e-9
        assert line["distance_min_m"] <= line["distance_m"] <= line["path_m"] + 1e-9
    walk = lines[[s.name for s in robustness.SCENARIOS].index("walk_50m")]
    # No episode ends within the env's 10 grace steps, so a walk that ran the other
    # scenarios' 10 steps, not its own length, would read at most 10 steps.
    assert walk["seconds"] > 10 * dt
    # An untrained walker falls long before 50 m: the walk is judged on its own distance.
    assert walk["success_rate"] == 0.0 and walk["distance_m"] < 50.0


# ~60 s on 2 cores (a subprocess compiling five programs): run by .ci/run.
@pytest.mark.slow
def test_benchmark_prints_its_lines_with_their_baselines(work, run_dir, tmp_path):
    del run_dir  # trained first: the benchmark's iteration then comes from the shared compile cache
    net_path = _tiny_net(tmp_path)
    proc = _run(["experiments.benchmark", "--config=configs/ppo_amp_test.py", *TINY, "--repeats=1",
                 f"--actuator_net={net_path}",
                 f"--config.results_dir={work['results']}", cache_flag()])
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {l["name"]: l for l in map(json.loads, proc.stdout.strip().splitlines())}
    assert list(lines) == ["mjx_physics", "mjx_env_step", "ppo_rollout", "ppo_amp_iteration",
                           "mjx_env_step_learned_actuators"]
    for line in lines.values():
        assert line["batch"] == 8 and line["horizon"] == 4 and line["env_steps_per_s"] > 0
        assert line["env_steps"] == 32 and line["compile_seconds"] >= 0
    assert "baseline" not in lines["mjx_physics"]
    # Each line's ratio is its rate over the rate of the line it names.
    for name, baseline in (("mjx_env_step", "mjx_physics"), ("ppo_rollout", "mjx_env_step"),
                           ("ppo_amp_iteration", "ppo_rollout"), ("mjx_env_step_learned_actuators", "mjx_env_step")):
        line, base = lines[name], lines[baseline]
        assert line["baseline"] == baseline and line["baseline_steps_per_s"] == base["env_steps_per_s"]
        assert line["ratio"] == pytest.approx(line["env_steps_per_s"] / base["env_steps_per_s"])
    assert lines["ppo_amp_iteration"]["cache_hits"] >= 1
    assert os.path.isfile(os.path.join(work["results"], "benchmark", "ppo_amp-ppo_amp_test", "summary.json"))
    # ES-only flags are refused for a PPO+AMP config, in one line, before anything runs.
    _one_error_line(_run(["experiments.benchmark", "--config=configs/ppo_amp_test.py", "--profiles=gym",
                          f"--config.results_dir={work['root']}/unused"], timeout=60), "--profiles:")
