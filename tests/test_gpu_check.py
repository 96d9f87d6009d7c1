"""`scripts/gpu_check.sh` at a tiny shape on CPU: every figure it promises, as JSON lines,
so the script that a lent GPU runs cannot rot between GPU sessions."""

import json
import os
import subprocess

import pytest

from tests.conftest import REPO_ROOT, cli_env


def _gpu_check(tmp_path, *flags):
    """`scripts/gpu_check.sh --tiny` on the project's venv: the process, its JSON lines,
    and those lines by name."""
    env = cli_env(GPU_CHECK_WHEELS=str(tmp_path / "no_wheels"))
    proc = subprocess.run(["bash", "scripts/gpu_check.sh", "--tiny", f"--results_dir={tmp_path}", *flags],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith("{")]
    by_name = {}
    for line in lines:
        by_name.setdefault(line["name"], []).append(line)
    return proc, lines, by_name


@pytest.mark.slow
def test_gpu_check_prints_every_figure_at_a_tiny_shape(tmp_path):
    proc, lines, by_name = _gpu_check(tmp_path, "--iterations=2", "--es_seconds=25")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert by_name["machine"][0]["backend"] == "cpu"
    # warp needs an NVIDIA GPU: one line says so, and the check goes on.
    (skipped,) = by_name["skipped"]
    assert skipped["impl"] == "warp" and "NVIDIA GPU" in skipped["reason"]
    (it,) = by_name["es_iteration"]
    assert it["impl"] == "jax" and it["population"] == 8 and it["env_steps_per_s"] > 0
    assert it["iteration_seconds"] > 0 and it["peak_memory_bytes"] is None  # CPU keeps no count
    (cached,) = by_name["es_cached_start"]
    assert cached["cache_hits"] >= 1
    (ppo,) = by_name["ppo_amp_iteration"]
    assert ppo["num_envs"] == 8 and ppo["env_steps_per_s"] > 0
    evals = by_name["es_eval"]
    assert evals[0]["iteration"] == 0 and all(e["eval_return"] is not None for e in evals)
    # Each later evaluation stands beside the model's seconds per iteration for its episodes:
    # at the timed iteration's rate, and at the published H200 estimate (two bounds).
    later = [e for e in evals if e["iteration"] > 0]
    assert later and all(e["iteration_seconds"] > 0 and e["model_iteration_seconds"] > 0 for e in later)
    assert all(len(e["model_iteration_seconds_h200_estimate"]) == 2 for e in later)
    (run,) = by_name["es_run"]
    assert run["stopped_by_signal"] == "SIGUSR1" and run["iterations"] >= 2
    assert [l["name"] for l in lines][-1] == "es_run"
    assert os.path.isdir(os.path.join(run["run_dir"], "checkpoints"))

    # `--init_from` starts the timed iteration from that run's checkpoint (a walker's, on a
    # GPU); a source that is no run is one clear failure, and the check still ends.
    es_only = ("--iterations=1", "--es_seconds=0", "--impls=jax", "--noppo")
    again, _, by_name = _gpu_check(tmp_path, *es_only, f"--init_from={run['run_dir']}")
    assert again.returncode == 0, again.stderr[-3000:]
    (branched,) = by_name["es_iteration"]
    assert branched["init_from"] == run["run_dir"] and branched["env_steps_per_s"] > 0
    bad, _, by_name = _gpu_check(tmp_path, *es_only, f"--init_from={tmp_path / 'no_such_run'}")
    failed = by_name["failed"]
    assert bad.returncode != 0 and failed[0]["what"] == "es_iteration[jax]"
    assert "config.init_from: must be an ES run directory" in failed[0]["error"]
