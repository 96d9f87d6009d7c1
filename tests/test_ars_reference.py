"""The ARS reference on Gymnasium's Humanoid-v4: its update rule, and its records."""

import json
import os
import subprocess
import sys

import numpy as np

from experiments import ars_reference
from tests.conftest import REPO_ROOT


def test_episode_counts_steps_statistics_and_the_shift():
    weights = np.zeros((17, 376))
    mean, inv_std = np.zeros(376), np.ones(376)
    ret, steps, s1, s2 = ars_reference.episode(weights, mean, inv_std, seed=0, shift=0.0)
    shifted, steps_again, _, _ = ars_reference.episode(weights, mean, inv_std, seed=0, shift=5.0)
    # Zero actions: the humanoid falls within ~40-60 steps, earning 5 a step plus drift.
    assert 20 <= steps <= 100 and steps_again == steps
    assert np.isclose(shifted, ret - 5.0 * steps)
    assert np.all(s2 >= s1 * s1 / steps - 1e-6)  # sum of squares >= n x mean^2


def test_a_tiny_run_writes_evaluations_against_env_steps(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.ars_reference", "--budget=1500", "--directions=4", "--eval_every=2",
         "--eval_episodes=2", "--workers=1", f"--results_dir={tmp_path}", "--run_name=t"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with open(os.path.join(tmp_path, "es", "t", "metrics.jsonl")) as f:
        records = [json.loads(l) for l in f]
    steps = [r["env_steps"] for r in records]
    assert steps[0] == 0 and steps == sorted(steps) and steps[-1] >= 1500
    assert all(r["eval_length"] > 0 for r in records)
