"""`experiments.benchmark` on an ES config: five lines, each rate against the line it names."""

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT, cache_flag, cli_env


@pytest.mark.slow
def test_es_benchmark_lines_and_baselines(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "experiments.benchmark", "--config=configs/es_test.py", "--profiles=fast",
         "--repeats=1", "--config.pairs=4", "--config.candidate_chunk=4", "--config.horizon=10",
         "--config.policy.size=8", f"--config.results_dir={tmp_path}", cache_flag()],
        cwd=REPO_ROOT, env=cli_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {l["name"]: l for l in map(json.loads, proc.stdout.strip().splitlines())}
    expected = {"mjx_physics": None, "mjx_env_step": "mjx_physics", "mujoco_c_rollout": "mjx_env_step",
                "es_population_rollout": "mjx_env_step", "es_iteration": "es_population_rollout"}
    assert list(lines) == list(expected)
    for name, baseline in expected.items():
        line = lines[name]
        assert line["physics"] == "fast" and line["horizon"] == 10 and line["env_steps_per_s"] > 0
        if baseline is None:
            assert "baseline" not in line
            continue
        base = lines[baseline]
        assert line["baseline"] == baseline and line["baseline_steps_per_s"] == base["env_steps_per_s"]
        assert line["ratio"] == pytest.approx(line["env_steps_per_s"] / base["env_steps_per_s"])
    # The iteration and its baseline run the same population over the same horizon.
    assert lines["es_iteration"]["env_steps"] == lines["es_population_rollout"]["env_steps"] == 8 * 10
    assert lines["mjx_env_step"]["env_steps"] == 4 * 10
