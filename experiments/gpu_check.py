"""Is this machine ready for production? One JSON line per figure, printed as measured.

    bash scripts/gpu_check.sh                  # one H100/H200 (also `sbatch scripts/gpu_check.sh`)
    python -m experiments.gpu_check --tiny     # the same sequence at a tiny shape (CPU, tests)

In order:
  * `machine`: backend, devices, versions.
  * per MJX implementation in `--impls` (`warp` is reported as `skipped`, with the reason,
    where it cannot run): `es_compile` (compile seconds of the production ES iteration),
    `es_iteration` (median seconds per iteration over `--iterations`, env-steps lived per
    second, peak device memory) and `es_cached_start` (the same iteration compiled again
    from the persistent cache after JAX's in-memory caches are dropped: what a requeued
    job pays).
  * `ppo_amp_iteration`: one PPO+AMP iteration of `configs/ppo_amp.py` (4,096 envs; `--noppo`
    skips it).
  * `es_eval`: production ES (`configs/es.py`) trained for `--es_seconds` (counted from
    the end of its compile) through the real host loop, one line per evaluation as it
    lands, with that iteration's seconds beside the model's (`model_iteration_seconds`:
    2 x pairs x mean episode length at the timed iteration's env steps/s, and at the
    published H200 estimate), then `es_run` with its summary. The run stops the way
    Slurm stops a job (SIGUSR1, checkpoint, clean exit).
`--init_from=<ES run>[@<iteration>]` starts the timed iterations and the run from that
run's policy (its shapes must be the production config's): the iteration's seconds at
the episode lengths of a policy that walks, which a fresh one reaches only hours later.
A check that raises prints a `failed` line with its error and traceback, the others still
run, and the command exits non-zero at the end.
Production shape: 8192 antithetic pairs (16,384 candidates) in chunks of 2048, under
`configs/es.py`'s physics (the `fast` profile with 2 Newton iterations and body contacts);
`--tiny` shrinks every shape so that the suite runs the whole sequence on CPU.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import statistics
import threading
import time
import traceback
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
from absl import flags

from common import cli, compile_cache, config as config_lib, host_loop, launch, physics, processes, sharding
from configs import es as es_configs
from configs import ppo_amp as ppo_configs
from humanoid_es import config as es_config
from humanoid_es import hooks as es_hooks
from humanoid_es.trainer import Trainer as EsTrainer
from ppo_amp import config as ppo_config
from ppo_amp.trainer import Trainer as PpoTrainer

_TINY = flags.DEFINE_bool("tiny", False, "Tiny shapes (CPU, tests) in place of the production ones.")
_IMPLS = flags.DEFINE_list("impls", ["jax", "warp"], "MJX implementations to time the ES iteration with.")
_ITERATIONS = flags.DEFINE_integer("iterations", 3, "Timed ES iterations per implementation (after the compile).")
_ES_SECONDS = flags.DEFINE_float(
    "es_seconds", 300.0, "Wall seconds of production ES training (after its compile); 0 skips it.")
_PPO = flags.DEFINE_bool("ppo", True, "Also time a PPO+AMP iteration.")
_RESULTS = flags.DEFINE_string("results_dir", "results/gpu_check", "Where the ES run and the compile cache go.")
_INIT_FROM = flags.DEFINE_string(
    "init_from", "", "Start the timed ES iterations and the ES run from this ES run's checkpoint (`<run dir>` or "
    "`<run dir>@<iteration>`, as `config.init_from`): iterations at its episodes' lengths, a walker's 1,000 "
    "steps for one, where a fresh policy falls within ~60.")


# MJX's published humanoid throughput on one H200, physics steps per second, and the
# physics steps of one env step here (frame_skip 5): ~440-600K env steps/s, an estimate
# (BENCHMARKS.md, "An H200's time to 6,000") until this check has run on one.
H200_PHYSICS_STEPS_PER_S = (2.2e6, 3.0e6)
PHYSICS_STEPS_PER_ENV_STEP = 5


def model_iteration_seconds(pairs: int, episode_length: float, env_steps_per_s: float) -> float:
    """The model's seconds per ES iteration: 2 x pairs episodes of `episode_length` steps at
    a rate of env steps per second that does not depend on the episodes' length."""
    return 2 * pairs * episode_length / env_steps_per_s


def emit(name: str, **fields: Any) -> None:
    print(json.dumps({"name": name, **fields}), flush=True)


def peak_memory_bytes() -> int | None:
    """Peak bytes in use over the local devices; None where the backend keeps no count (CPU)."""
    peaks = [(d.memory_stats() or {}).get("peak_bytes_in_use") for d in jax.local_devices()]
    peaks = [p for p in peaks if p is not None]
    return max(peaks) if peaks else None


def es_config_for(impl: str) -> ml_collections.ConfigDict:
    c = es_configs.get_config()
    c.impl = impl
    c.results_dir = _RESULTS.value
    c.compile_cache_dir = os.path.join(_RESULTS.value, "jax_compile_cache")
    if _TINY.value:
        c.pairs, c.candidate_chunk, c.horizon, c.early_exit_block = 4, 4, 20, 10
        c.eval_episodes = 2
        c.policy.size = 8
        # A tiny run's few env steps would never reach production's 1M between evaluations.
        c.eval_every, c.eval_every_env_steps = 2, 0
    c.checkpoint_every = 5
    # The run stops on time; the schedules' length is part of the compiled iteration,
    # so the timed iteration and the run share one (and the run hits the cache).
    c.num_iterations = 100_000
    c.init_from = _INIT_FROM.value or None
    return c


def ppo_config_for() -> ml_collections.ConfigDict:
    c = ppo_configs.get_config()
    if _TINY.value:
        c.num_envs, c.rollout_length = 8, 4
        c.ppo.hidden = c.amp.hidden = (16, 16)
        c.amp.batch_size, c.amp.replay_capacity = 16, 64
    return c


def check_es_iteration(impl: str, cache_dir: str) -> float | None:
    """Compiles and times the production ES iteration; returns its env steps per second."""
    config = es_config_for(impl)
    try:
        physics.check_impl(impl)
    except physics.ImplError as e:
        emit("skipped", impl=impl, what="es_iteration", reason=str(e))
        return None
    es_config.validate(config, jax.device_count())
    mesh = sharding.make_mesh()
    trainer = EsTrainer(config, mesh)
    # The run's own start: its branch where `--init_from` names one, as the host loop does.
    branch = es_hooks.PIPELINE.init_from(config, trainer)
    state = trainer.place(trainer.init(jax.random.PRNGKey(0)) if branch is None else branch.state)
    shape = {"population": trainer.population, "candidate_chunk": config.candidate_chunk,
             "horizon": config.horizon, "physics": config.physics, "impl": impl, "params": trainer.num_params,
             "init_from": config.init_from}
    compiled, report = compile_cache.warm_up(f"gpu_check_es_{impl}", trainer.iteration, state,
                                             cache_dir=cache_dir, shape=shape)
    emit("es_compile", **shape, compile_seconds=report.compile_seconds, xla_seconds=report.xla_seconds,
         cache_hits=report.cache_hits)
    seconds, lived = [], []
    for _ in range(_ITERATIONS.value):
        start = time.perf_counter()
        state, metrics = compiled(state)
        steps = int(jax.device_get(metrics["iteration_env_steps"]))
        seconds.append(time.perf_counter() - start)
        lived.append(steps)
    median = statistics.median(seconds)
    rate = sum(lived) / sum(seconds)
    emit("es_iteration", **shape, iteration_seconds=median, env_steps_per_s=rate,
         iteration_env_steps=lived, episode_length_mean=float(metrics["episode_length_mean"]),
         peak_memory_bytes=peak_memory_bytes())
    jax.clear_caches()
    _, again = compile_cache.warm_up(f"gpu_check_es_{impl}_cached", trainer.iteration, state,
                                     cache_dir=cache_dir, shape=shape)
    emit("es_cached_start", **shape, compile_seconds=again.compile_seconds, cache_hits=again.cache_hits,
         cold_compile_seconds=report.compile_seconds)
    return rate


def check_ppo_iteration(cache_dir: str) -> None:
    config = ppo_config_for()
    ppo_config.validate(config, n_devices=jax.device_count())
    mesh = sharding.make_mesh()
    trainer = PpoTrainer(config, mesh)
    state = trainer.place(trainer.init(jax.random.PRNGKey(0)))
    shape = {"num_envs": config.num_envs, "rollout_length": config.rollout_length, "physics": config.physics,
             "impl": config.impl}
    compiled, report = compile_cache.warm_up("gpu_check_ppo_amp", trainer.iteration, state,
                                             cache_dir=cache_dir, shape=shape)
    jax.block_until_ready(compiled(state))
    seconds = []
    for _ in range(_ITERATIONS.value):
        start = time.perf_counter()
        state, _ = jax.block_until_ready(compiled(state))
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    emit("ppo_amp_iteration", **shape, iteration_seconds=median,
         env_steps_per_s=config.num_envs * config.rollout_length / median,
         compile_seconds=report.compile_seconds, peak_memory_bytes=peak_memory_bytes())


def _follow(path: str, done: threading.Event, started: threading.Event, pairs: int, rate: float | None) -> None:
    """Prints each evaluation record of `path` (metrics.jsonl, appended to by the run) as it
    is written, beside the seconds per iteration that the model gives for its episodes at
    `rate` env steps/s (the timed iteration's) and at the published H200 estimate; sets
    `started` at the first record (iteration 0's evaluation, just before the loop). Only
    complete lines are read: the writer may be halfway through one."""
    offset, pending = 0, ""
    while True:
        finished = done.is_set()
        if os.path.exists(path):
            with open(path) as f:
                f.seek(offset)
                pending += f.read()
                offset = f.tell()
            *lines, pending = pending.split("\n")
            for line in lines:
                record = json.loads(line)
                started.set()
                if record.get("eval_return") is not None:
                    length = record.get("episode_length_mean")
                    model = {}
                    if length is not None:
                        estimate = [model_iteration_seconds(pairs, length, r / PHYSICS_STEPS_PER_ENV_STEP)
                                    for r in H200_PHYSICS_STEPS_PER_S]
                        model = {"model_iteration_seconds_h200_estimate": sorted(estimate),
                                 "model_iteration_seconds": None if rate is None else
                                 model_iteration_seconds(pairs, length, rate)}
                    emit("es_eval", **{k: record.get(k) for k in (
                        "iteration", "env_steps", "wall_seconds", "eval_return", "eval_length",
                        "eval_x_velocity_mean", "env_steps_per_s", "iteration_seconds", "episode_length_mean")},
                         **model)
        if finished:
            return
        time.sleep(0.5)


def _stop_after(seconds: float, started: threading.Event, done: threading.Event) -> None:
    """SIGUSR1 to this process `seconds` after training starts, as Slurm signals a job
    before its time limit; the host loop then checkpoints and returns."""
    while not started.wait(0.5):
        if done.is_set():
            return
    if not done.wait(seconds):
        os.kill(os.getpid(), signal.SIGUSR1)


def check_es_run(seconds: float, rate: float | None) -> None:
    config = es_config_for("jax")
    config.run_name = f"es-{int(time.time())}"
    path = os.path.join(config.results_dir, es_hooks.EXPERIMENT, config.run_name, "metrics.jsonl")
    done, started = threading.Event(), threading.Event()
    threads = [threading.Thread(target=_follow, args=(path, done, started, config.pairs, rate), daemon=True),
               threading.Thread(target=_stop_after, args=(seconds, started, done), daemon=True)]
    for t in threads:
        t.start()
    try:
        summary = host_loop.run(config, es_hooks.PIPELINE)
    finally:
        done.set()
        for t in threads:
            t.join()
    emit("es_run", seconds=seconds, **{k: summary.get(k) for k in (
        "iterations", "env_steps", "wall_seconds", "compile_seconds", "best_eval_return", "final_eval_return",
        "stopped_by_signal", "run_dir")})


def main(argv: Sequence[str]) -> None:
    del argv
    if _ITERATIONS.value < 1:
        raise config_lib.ConfigError(f"--iterations: must be a positive integer, got {_ITERATIONS.value}")
    processes.initialize()
    cache_dir = compile_cache.enable(os.path.join(_RESULTS.value, "jax_compile_cache"))
    emit("machine", **launch.device_summary(), versions=launch.versions(), tiny=_TINY.value)
    rates: dict[str, float | None] = {}
    checks = [(f"es_iteration[{impl}]", functools.partial(check_es_iteration, impl, cache_dir))
              for impl in _IMPLS.value]
    if _PPO.value:
        checks.append(("ppo_amp_iteration", functools.partial(check_ppo_iteration, cache_dir)))
    if _ES_SECONDS.value > 0:
        # The run's iterations beside the model at the rate the jax iteration was timed at.
        checks.append(("es_run", lambda: check_es_run(_ES_SECONDS.value, rates.get("es_iteration[jax]"))))
    failed = []
    for what, check in checks:
        # One broken check (say, an MJX feature the Warp path lacks) is reported with its
        # error, and the others still run: a lent GPU's minutes are scarce.
        try:
            rates[what] = check()
        except Exception as e:  # pylint: disable=broad-exception-caught
            failed.append(what)
            emit("failed", what=what, error=f"{type(e).__name__}: {e}"[:2000], traceback=traceback.format_exc()[-4000:])
    if failed:
        raise SystemExit(f"gpu_check: {len(failed)} check(s) failed: {', '.join(failed)}")


if __name__ == "__main__":
    cli.run(main)
