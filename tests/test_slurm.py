"""The launchers under a real Slurm (scripts/local_slurm.sh up): `sbatch test_run.sh`;
run_ppo_amp.sh preempted by `scancel`, requeued and ending where an uninterrupted run of
the same command ends; run_h200.sh stopped by a real time limit, requeued and resuming
to its last iteration; two tasks through `srun` joining as one run over two devices; a
bad config failing at once.

What the ES time-limit job does not compare, other tests hold: a stopped and resumed ES
run ends where a straight one ends (tests/test_multiprocess.py, two processes, and
tests/test_es_train.py in process), and a job Slurm requeues resumes exactly (the PPO+AMP
scancel test here). Every job and straight run shares the test run's compile cache.

Marked `slurm`: `bash run_tests.sh -m slurm` runs them (.ci/run does, with the cluster
up). The jobs ask for what this machine has through command-line overrides of the
launchers' #SBATCH lines, and write their runs under a temporary results directory.
"""

import glob
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, assert_same_leaves, cache_flag, cli_env, final_state

pytestmark = pytest.mark.slurm

# What the node has (2 cores here); the launchers ask for 16 CPUs and 128G.
RESOURCES = ("--cpus-per-task=2", "--mem=8G")
ES_TINY = ("--config.pairs=8", "--config.candidate_chunk=8", "--config.horizon=50", "--config.early_exit_block=0",
           "--config.num_iterations=40", "--config.eval_every=20", "--config.eval_episodes=2",
           "--config.checkpoint_every=20", "--config.video_seconds=0", "--config.cpu_devices=1", cache_flag())
# Under a 3-minute limit signalled 90 s ahead the job must still be running 90 s in on
# any machine (one CI machine ran 150 iterations in 56 s): its length is measured here.
LIMIT_RUN_SECONDS = 100.0
PPO_TINY = ("--config.num_envs=8", "--config.rollout_length=8", "--config.horizon=64", "--config.num_iterations=30",
            "--config.ppo.hidden=(16,16)", "--config.ppo.epochs=1", "--config.ppo.minibatches=2",
            "--config.amp.hidden=(16,16)", "--config.amp.batch_size=16", "--config.amp.steps_per_iteration=1",
            "--config.amp.replay_capacity=256", "--config.amp.generator_speeds=(0.5,)", "--config.eval_every=15", "--config.eval_episodes=2",
            "--config.eval_seconds=0.5", "--config.checkpoint_every=15", "--config.video_seconds=0",
            "--config.cpu_devices=1", cache_flag())


@pytest.fixture(autouse=True, scope="module")
def cluster():
    up = subprocess.run(["bash", os.path.join(REPO_ROOT, "scripts", "local_slurm.sh"), "status"],
                        capture_output=True, text=True, timeout=60).returncode == 0
    if not up:
        message = "no Slurm cluster is up: bash scripts/local_slurm.sh up"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def _env() -> dict[str, str]:
    """The command lines' environment, less the tests' forced host devices (jobs inherit it)."""
    return cli_env()


def _sbatch(*args: str) -> str:
    out = subprocess.run(["sbatch", "--parsable", *args], cwd=REPO_ROOT, env=_env(), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().split(";")[0]


def _job(job: str) -> dict[str, str]:
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, timeout=30)
    return dict(re.findall(r"(\w+)=(\S*)", out.stdout))


def _wait(job: str, until, timeout: float, what: str) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = _job(job)
        if until(info):
            return info
        time.sleep(2)
    raise AssertionError(f"job {job}: {what} not within {timeout:.0f} s; last {_job(job)}\n{_logs(job)}")


def _finished(info: dict[str, str]) -> bool:
    return info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")


def _logs(job: str) -> str:
    return "".join(open(p).read()[-3000:] for p in sorted(glob.glob(os.path.join(REPO_ROOT, "logs", f"*-{job}.*"))))


def _records(run: str) -> list[dict]:
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _uninterrupted(module: str, config: str, results: str, tiny: tuple[str, ...]) -> str:
    """The same command run straight through, outside Slurm: the run to compare with."""
    out = subprocess.run([sys.executable, "-m", module, f"--config={config}", *tiny, f"--config.results_dir={results}",
                          "--config.run_name=straight"], cwd=REPO_ROOT, env=_env(), capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    return os.path.join(results, module.split(".")[-1], "straight")


def _preempt_and_compare(launcher: str, module: str, config: str, tiny: tuple[str, ...], tmp_path, *,
                         iterations: int, time_limit: bool) -> dict[str, float]:
    """Submits, stops mid-run (scancel's USR1, or Slurm's own before the time limit), and
    follows the requeue to completion; a scancel'd run is then compared, leaf by leaf,
    with the same command run straight through."""
    results = str(tmp_path / "results")
    run = os.path.join(results, module.split(".")[-1], "preempted")
    extra = ("--time=3", "--signal=B:USR1@90") if time_limit else ()
    submitted = time.time()
    job = _sbatch(*RESOURCES, *extra, launcher, *tiny, f"--config.results_dir={results}",
                  "--config.run_name=preempted")
    first = _wait(job, lambda i: i.get("JobState") == "RUNNING", 300, "start")
    # Signalled mid-run: after a few iterations, well before the last.
    deadline = time.monotonic() + 600
    while not any(r.get("iteration", 0) >= 3 for r in _records(run)):
        assert time.monotonic() < deadline and not _finished(_job(job)), _logs(job)
        time.sleep(1)
    first_iteration_s = time.time() - submitted
    # Under a time limit the first signal may come while compiling (a stop before any
    # iteration); the requeue that counts is the first after this point.
    restarts = int(_job(job).get("Restarts", 0))
    if not time_limit:
        subprocess.run(["scancel", "--signal=USR1", "--batch", job], check=True, timeout=30)
    signalled = time.time()
    _wait(job, lambda i: int(i.get("Restarts", 0)) > restarts, 400, "requeue")
    if time_limit:
        # The requeued part would get the same 3 minutes and, measured, its own signal and
        # a second requeue (~150 s more); one stop under the limit shows what it claims.
        subprocess.run(["scontrol", "update", f"JobId={job}", "TimeLimit=15"], check=True, timeout=30)
    stopped_at = max(r["iteration"] for r in _records(run))
    _wait(job, lambda i: i.get("JobState") == "RUNNING", 400, "restart")
    resumed_s = time.time() - signalled
    info = _wait(job, _finished, 900, "completion")
    assert info["JobState"] == "COMPLETED", _logs(job)
    log = open(os.path.join(REPO_ROOT, "logs", f"{first['JobName']}-{job}.out")).read()
    err = open(os.path.join(REPO_ROOT, "logs", f"{first['JobName']}-{job}.err")).read()
    # Both parts' logs are in the files: the first part's was appended to, not truncated.
    assert "preempted: requeueing job" in log, log[-3000:]
    assert f"resuming from iteration {stopped_at}" in err, err[-3000:]
    assert err.count("backend cpu") >= 2, err[-3000:]
    summary = json.load(open(os.path.join(run, "summary.json")))
    assert summary["iterations"] == iterations and 0 < stopped_at < iterations
    # One record per iteration across both parts: the resumed part redid nothing and
    # skipped nothing.
    records = _records(run)
    assert [r["iteration"] for r in records] == list(range(iterations + 1))
    assert all(a["env_steps"] < b["env_steps"] for a, b in zip(records[1:], records[2:]))
    figures = {"first_iteration_s": first_iteration_s, "preempt_to_resume_s": resumed_s, "stopped_at": stopped_at}
    if time_limit:
        return figures
    straight = _uninterrupted(module, config, results, tiny)
    preempted, uninterrupted = final_state(run), final_state(straight)
    assert_same_leaves(uninterrupted, preempted, rtol=1e-5, atol=1e-6)
    diffs = [float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(preempted, uninterrupted)]
    return figures | {"max_abs_diff": max(diffs)}


def test_sbatch_test_run_completes_with_both_pipelines():
    submitted = time.time()
    job = _sbatch(*RESOURCES, "test_run.sh")
    info = _wait(job, _finished, 1200, "completion")
    assert info["JobState"] == "COMPLETED", _logs(job)
    out = os.path.join(REPO_ROOT, "logs", f"humanoid-test-{job}.out")
    assert re.search(r"python 3\.[\d.]+ \| jax [\d.]+ \| mujoco [\d.]+ \| backend cpu", open(out).read())
    for pattern in ("test_results/es/*/summary.json", "test_results/ppo_amp/ppo_amp_test/summary.json"):
        fresh = [p for p in glob.glob(os.path.join(REPO_ROOT, pattern)) if os.path.getmtime(p) >= submitted]
        assert fresh, f"no {pattern} written by job {job}"


def _es_tiny(iterations: int) -> tuple[str, ...]:
    return (*ES_TINY[:4], f"--config.num_iterations={iterations}", *ES_TINY[5:])


def _iterations_lasting(seconds: float, tmp_path) -> int:
    """How many tiny ES iterations take `seconds` on this machine, from a short straight run."""
    calibration = _uninterrupted("experiments.es", "configs/es.py", str(tmp_path / "calibration"), _es_tiny(20))
    per_iteration = float(np.median([r["iteration_seconds"] for r in _records(calibration) if r["iteration"] > 1]))
    return max(100, int(np.ceil(seconds / per_iteration)))


def test_es_job_stopped_by_its_time_limit_is_requeued_and_resumes_to_its_last_iteration(tmp_path):
    iterations = _iterations_lasting(LIMIT_RUN_SECONDS, tmp_path)
    figures = _preempt_and_compare("run_h200.sh", "experiments.es", "configs/es.py", _es_tiny(iterations), tmp_path,
                                   iterations=iterations, time_limit=True)
    print("es time limit", iterations, "iterations", figures)


def test_ppo_amp_job_preempted_by_scancel_resumes_to_the_same_state(tmp_path):
    figures = _preempt_and_compare("run_ppo_amp.sh", "experiments.ppo_amp", "configs/ppo_amp.py", PPO_TINY,
                                   tmp_path, iterations=30, time_limit=False)
    print("ppo_amp scancel", figures)


def test_two_tasks_through_srun_join_as_one_run_over_two_devices(tmp_path):
    """Slurm's own variables join the tasks (jax.distributed) into one run of two devices
    with one log. That two processes train exactly as one process with two devices is
    tests/test_multiprocess.py's (the same join, from JAX's variables)."""
    results = str(tmp_path / "results")
    short = (*ES_TINY[:4], "--config.num_iterations=3", "--config.eval_every=3", "--config.eval_episodes=2",
             "--config.checkpoint_every=3", "--config.video_seconds=0", cache_flag())
    job = _sbatch("--ntasks=2", "--cpus-per-task=1", "--mem=8G", "run_h200.sh", *short, "--config.cpu_devices=1",
                  f"--config.results_dir={results}", "--config.run_name=tasks")
    info = _wait(job, _finished, 900, "completion")
    assert info["JobState"] == "COMPLETED" and info["NumTasks"] == "2", _logs(job)
    err = open(os.path.join(REPO_ROOT, "logs", f"humanoid-es-{job}.err")).read()
    assert err.count("iteration 3/3") == 1, err[-3000:]  # one log: process 0's
    tasks = os.path.join(results, "es", "tasks")
    summary = json.load(open(os.path.join(tasks, "summary.json")))
    assert len(summary["devices"]) == 2 and summary["iterations"] == 3 and summary["final_eval_return"] is not None
    assert [r["iteration"] for r in _records(tasks)] == [0, 1, 2, 3]


def test_a_bad_config_fails_fast_in_one_line_and_is_not_requeued(tmp_path):
    job = _sbatch(*RESOURCES, "run_h200.sh", "--config.pairs=-3", f"--config.results_dir={tmp_path}")
    info = _wait(job, _finished, 300, "failure")
    assert info["JobState"] == "FAILED" and info["Restarts"] == "0" and info["ExitCode"].startswith("2:"), info
    err = open(os.path.join(REPO_ROOT, "logs", f"humanoid-es-{job}.err")).read()
    errors = [line for line in err.splitlines() if "pairs" in line]
    assert len(errors) == 1 and "error" in errors[0].lower(), err[-2000:]
    assert not os.listdir(tmp_path)
