"""Several JAX processes through jax.distributed (common/processes.py), as local CPU
processes over gloo: 2 processes x 1 device train exactly as 1 process x 2 devices, for
ES (stopped by SIGUSR1 and resumed on the way) and for PPO+AMP, and only process 0
writes the run's records.

Marked `multiprocess` (they start extra JAX processes): `bash run_tests.sh -m
multiprocess` runs them, as .ci/run does.
"""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, assert_same_leaves, cache_flag, cli_env, final_state

pytestmark = pytest.mark.multiprocess

ES = ("experiments.es", "configs/es_test.py",
      ("--config.pairs=8", "--config.candidate_chunk=8", "--config.horizon=40", "--config.early_exit_block=0",
       "--config.num_iterations=3", "--config.eval_every=3", "--config.eval_episodes=2", "--config.checkpoint_every=3",
       "--config.video_seconds=0"))
PPO = ("experiments.ppo_amp", "configs/ppo_amp_test.py",
       ("--config.num_envs=8", "--config.rollout_length=8", "--config.num_iterations=2", "--config.eval_every=2",
        "--config.eval_episodes=2", "--config.eval_seconds=0.5", "--config.checkpoint_every=2",
        "--config.video_seconds=0"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(job, results: str, name: str, processes: int, devices_each: int, stop_after: int = 0) -> str:
    """Trains `job` as `processes` local processes; with `stop_after`, sends them SIGUSR1
    (as Slurm does, to all) once an iteration past it is logged, and expects a stop."""
    module, config, tiny = job
    args = [sys.executable, "-m", module, f"--config={config}", *tiny, f"--config.results_dir={results}",
            f"--config.run_name={name}", f"--config.cpu_devices={devices_each}", cache_flag()]
    env = cli_env()
    for k in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
        env.pop(k, None)
    if processes == 1:
        out = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stderr[-3000:]
    else:
        port = _free_port()
        procs = [subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env=dict(env, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}",
                                           JAX_NUM_PROCESSES=str(processes), JAX_PROCESS_ID=str(i)))
                 for i in range(processes)]
        if stop_after:
            records = os.path.join(results, module.split(".")[-1], name, "metrics.jsonl")
            deadline = time.monotonic() + 600
            while not (os.path.isfile(records) and any(json.loads(line).get("iteration", 0) > stop_after
                                                       for line in open(records) if line.strip())):
                assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
                time.sleep(0.2)
            for p in procs:
                p.send_signal(signal.SIGUSR1)
        outs = [p.communicate(timeout=900) for p in procs]
        for i, (p, (_, err)) in enumerate(zip(procs, outs)):
            assert p.returncode == 0, f"process {i}:\n{err[-3000:]}"
        # One log: the others log warnings and errors only.
        logged = [re.search(r"iteration \d+/\d+ \|", err) is not None for _, err in outs]
        assert logged == [True] + [False] * (processes - 1), logged
    return os.path.join(results, module.split(".")[-1], name)


def _records(run: str) -> list[dict]:
    with open(os.path.join(run, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def _assert_same_training(one: str, two: str, metrics: tuple[str, ...]) -> None:
    """Run `two` (two processes) logged what run `one` (one process, two devices) logged,
    iteration by iteration, and ended in the same state."""
    a, b = _records(one), _records(two)
    assert [r["iteration"] for r in a] == [r["iteration"] for r in b]
    assert all(any(key in r for r in a) for key in metrics), metrics
    for ra, rb in zip(a, b):
        for key in metrics:
            if key in ra:
                np.testing.assert_allclose(rb[key], ra[key], rtol=1e-5, atol=1e-6, err_msg=key)
    assert len(json.load(open(os.path.join(two, "summary.json")))["devices"]) == 2
    assert_same_leaves(final_state(one), final_state(two), rtol=1e-5, atol=1e-6)


def test_ppo_amp_two_processes_train_as_one_process_with_two_devices(tmp_path):
    one = _train(PPO, str(tmp_path), "one_process", processes=1, devices_each=2)
    two = _train(PPO, str(tmp_path), "two_processes", processes=2, devices_each=1)
    _assert_same_training(one, two, ("loss/policy", "loss/value", "disc/loss", "optim/grad_norm", "eval_return"))


def test_es_two_processes_stopped_and_resumed_train_as_one_process_with_two_devices(tmp_path):
    """Two processes stopped by SIGUSR1 mid-run, then resumed by the same command, log and
    end as one process with two devices run straight through: both equalities at once."""
    module, config, tiny = ES
    job = (module, config, (*[t for t in tiny if "num_iterations" not in t and "checkpoint_every" not in t],
                            "--config.num_iterations=30", "--config.checkpoint_every=30"))
    results = str(tmp_path)
    stopped = _train(job, results, "two_processes", processes=2, devices_each=1, stop_after=2)
    summary = json.load(open(os.path.join(stopped, "summary.json")))
    assert summary["stopped_by_signal"] == "SIGUSR1" and 2 < summary["iterations"] < 30
    _train(job, results, "two_processes", processes=2, devices_each=1)
    assert json.load(open(os.path.join(stopped, "summary.json")))["iterations"] == 30
    straight = _train(job, results, "one_process", processes=1, devices_each=2)
    _assert_same_training(straight, stopped, ("fitness_mean", "fitness_max", "grad_norm", "eval_return", "theta_norm"))
