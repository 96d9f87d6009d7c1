"""The ARS reference on Gymnasium's Humanoid-v4: its update rule, and its records."""

import json
import os
import subprocess
import sys

import numpy as np

from common import gymnasium_episodes
from experiments import ars_reference
from tests.conftest import REPO_ROOT


def test_episode_counts_steps_statistics_and_the_shift():
    weights = np.zeros((17, 376))
    # Zero weights act 0 whatever the normaliser; a non-trivial one tells raw states from normalised ones.
    mean, inv_std = np.full(376, 0.5), np.full(376, 2.0)
    ret, steps, s1, s2 = ars_reference.episode(weights, mean, inv_std, seed=0, shift=0.0)
    shifted, steps_again, _, _ = ars_reference.episode(weights, mean, inv_std, seed=0, shift=5.0)
    # Zero actions: the humanoid falls within ~40-60 steps, earning 5 a step plus drift.
    assert 20 <= steps <= 100 and steps_again == steps
    assert np.isclose(shifted, ret - 5.0 * steps)
    # s1, s2 are the sums of the raw states the policy saw, one per step: replay the same
    # seed (MuJoCo C is deterministic) recording each observation.
    seen = []

    def record(obs):
        seen.append(np.array(obs, copy=True))
        return np.zeros(17)

    assert gymnasium_episodes.episode(gymnasium_episodes.make(), record, seed=0)[1] == steps
    seen = np.stack(seen)
    assert seen.shape == (steps, 376)
    np.testing.assert_allclose(s1, seen.sum(axis=0), rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(s2, np.square(seen).sum(axis=0), rtol=1e-12, atol=1e-9)


def test_ars_step_on_a_hand_worked_case():
    """Two directions on a 1 x 2 weight matrix, every number worked by hand.

    Returns r+ = (3, -1), r- = (-1, 3): all four are 3, -1, -1, 3, mean 1, deviations
    +-2, so sigma_r = 2 (their RMS would be sqrt(5)). sum_i (r+_i - r-_i) delta_i =
    4 (1, 2) - 4 (0, 1) = (4, 4), and W' = (1, 0) + 0.5 / (2 x 2) x (4, 4) = (1.5, 0.5).
    Swapping r+ and r- would give (0.5, -0.5); leaving out sigma_r, (2, 1).
    """
    weights = np.array([[1.0, 0.0]])
    deltas = np.array([[[1.0, 2.0]], [[0.0, 1.0]]])
    plus, minus = np.array([3.0, -1.0]), np.array([-1.0, 3.0])
    new = ars_reference.ars_step(weights, deltas, plus, minus, step=0.5)
    np.testing.assert_allclose(new, [[1.5, 0.5]], rtol=1e-12)
    np.testing.assert_array_equal(weights, [[1.0, 0.0]])  # pure: the input is left alone


def test_state_normalizer_on_a_hand_worked_case():
    """Four states of three features, worked by hand.

    Feature 0 is 1, 1, 1, 1: s1 = 4, s2 = 4, mean 1, variance 4/4 - 1 = 0, so it reads 0
    (1 / std = 0, ARS's rule for constant features). Feature 1 is 0, 0, 4, 4: s1 = 8,
    s2 = 32, mean 2, variance 32/4 - 4 = 4, std 2, 1 / std = 0.5. Feature 2 is constant
    0.1 with s2 a hair short of 0.04, as rounding can leave it: s2/4 - mean^2 < 0 must
    read 0, not NaN.
    """
    s1 = np.array([4.0, 8.0, 0.4])
    s2 = np.array([4.0, 32.0, 0.04 - 1e-12])
    mean, inv_std = ars_reference.state_normalizer(4, s1, s2)
    np.testing.assert_allclose(mean, [1.0, 2.0, 0.1], rtol=1e-12)
    np.testing.assert_array_equal(inv_std, [0.0, 0.5, 0.0])


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
