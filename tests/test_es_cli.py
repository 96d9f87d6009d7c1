"""The ES command lines end to end on one tiny run: train to `max_env_steps` under the
default run name, the same command resuming it, then evaluate (its own and Gymnasium's
physics), play, export (and its tolerance gate) and sim2sim in Gymnasium's Humanoid-v4.

Every command is a subprocess on one CPU device, as a user runs it; they share the test
run's compile cache. `slow` (about 3 minutes on 2 cores): `.ci/run` runs it after the
default suite.
"""

import glob
import json
import os
import subprocess
import sys

import imageio.v3 as iio
import numpy as np
import pytest

from tests.conftest import REPO_ROOT, cache_flag, cli_env
from tests.test_es_train import TINY

pytestmark = pytest.mark.slow

# 8 candidates x 4 steps (nobody falls within 4) = 32 env steps an iteration: the
# budget ends the run after 2 of its 5 iterations.
BUDGET = 64


def _run(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=cli_env(), capture_output=True,
                          text=True, timeout=timeout)


def _line(proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """The run that the same command, given twice, trains and then resumes."""
    results = tmp_path_factory.mktemp("es_cli") / "results"
    overrides = [f"--config.{k}={v!r}" if isinstance(v, tuple) else f"--config.{k}={v}" for k, v in TINY.items()]
    command = ("experiments.es", "--config=configs/es_test.py", *overrides, f"--config.results_dir={results}",
               cache_flag(), "--config.num_iterations=5", "--config.eval_every=2", "--config.video_seconds=0",
               f"--config.max_env_steps={BUDGET}")
    first = _run(*command)
    assert first.returncode == 0, first.stderr[-3000:]
    (path,) = glob.glob(os.path.join(results, "es", "cfg-*"))  # the default name: a hash of the config
    summary = json.load(open(os.path.join(path, "summary.json")))
    assert summary["iterations"] == 2 and summary["env_steps"] == BUDGET and summary["stopped_by_signal"] is None
    # Nobody falls within the horizon of 4 steps: both evaluation episodes live it out.
    assert summary["final_eval_return"] is not None and summary["final_eval_full_episodes"] == 2
    records = open(os.path.join(path, "metrics.jsonl")).read()
    assert [json.loads(r)["iteration"] for r in records.splitlines()] == [0, 1, 2]
    with open(os.path.join(path, "plots", "learning_curve.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"

    again = _run(*command)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from iteration 2" in again.stderr
    assert glob.glob(os.path.join(results, "es", "*")) == [path]
    # The budget is spent: nothing more runs, and the records stay as they were.
    assert open(os.path.join(path, "metrics.jsonl")).read() == records
    summary = json.load(open(os.path.join(path, "summary.json")))
    assert summary["iterations"] == 2 and summary["compile_cache_hits"] >= 1
    return path


@pytest.fixture(scope="module")
def own_evaluation(run_dir):
    """`experiments.evaluate` under the run's own physics, 2 episodes at its default seed."""
    return _line(_run("experiments.evaluate", f"--run={run_dir}", "--episodes=2"))


def test_evaluate_under_the_runs_and_gymnasiums_physics(run_dir, own_evaluation):
    own = own_evaluation
    gym = _line(_run("experiments.evaluate", f"--run={run_dir}", "--episodes=2", "--physics=gym"))
    for line, physics in ((own, "fast"), (gym, "gym")):
        assert line["iteration"] == 2 and line["episodes"] == 2 and line["physics"] == physics
        assert np.isfinite(line["eval_return"]) and line["eval_nonfinite_guard"] == 0
    assert own["eval_length"] == 4 and own["eval_full_episodes"] == 2  # nobody falls within 4 steps
    assert 0 < gym["eval_length"] <= 4
    # The same policy and episode seeds under other physics (RK4, every geom colliding):
    # the returns differ (by 3.4e-4 of ~20, measured), so the profile really was swapped.
    # Under the same physics both commands run one program and agree to the bit; the
    # bound is five float32 steps at 20.
    assert abs(gym["eval_return"] - own["eval_return"]) > 1e-5


def test_play_writes_the_clip_it_reports(run_dir):
    line = _line(_run("experiments.play", f"--run={run_dir}", "--seconds=0.06"))
    assert line["path"] == os.path.join(run_dir, "videos", "play-2.mp4") and line["iteration"] == 2
    frames = iio.imread(line["path"])
    assert frames.shape[0] == line["frames"] > 0 and frames.shape[-1] == 3


def test_export_matches_jax_then_gymnasium_runs_it(run_dir, own_evaluation, tmp_path):
    line = _line(_run("experiments.export", f"--run={run_dir}", "--observations=16"))
    assert line["path"] == os.path.join(run_dir, "export", "policy.onnx") and line["iteration"] == 2
    assert line["inputs"] == {"obs": 376, "h": 16} and line["outputs"] == {"action": 17, "h_next": 16}
    error = line["max_abs_error"]
    assert 0 < error <= 1e-5, line

    # The gate: a tolerance below the difference measured on the same observations fails.
    strict = _run("experiments.export", f"--run={run_dir}", "--observations=16", f"--tolerance={error / 2}",
                  f"--output={tmp_path / 'strict.onnx'}")
    assert strict.returncode == 1, strict.stderr[-3000:]
    assert f"> --tolerance {error / 2}" in strict.stderr and "does not match the trained policy" in strict.stderr

    sim = _line(_run("experiments.sim2sim", f"--run={run_dir}", "--gymnasium", "--episodes=2"))
    assert sim["onnx"] == line["path"] and sim["episodes"] == 2 and sim["iteration"] == 2
    assert sim["simulator"].startswith("gymnasium Humanoid-v4")
    # An untrained policy falls within Gymnasium's 1,000 steps; both figures are real episodes.
    assert 0 < sim["gymnasium_length"] < 1000 and np.isfinite(sim["gymnasium_return"])
    assert sim["gymnasium_full_episodes"] == 0 and sim["mjx_physics"] == "gym"
    assert np.isfinite(sim["mjx_return"]) and 0 < sim["mjx_length"] <= 4
    # Beside the run's own physics the reference is `experiments.evaluate`'s at that seed.
    own = _line(_run("experiments.sim2sim", f"--run={run_dir}", "--gymnasium", "--episodes=2", "--reference=own",
                     "--seed=12345"))
    assert own["mjx_physics"] == "fast" and np.isfinite(own["gymnasium_return"])
    assert (own["mjx_return"], own["mjx_full_episodes"]) == (own_evaluation["eval_return"],
                                                             own_evaluation["eval_full_episodes"])
