"""Throughput of the physics and of a whole training iteration, measured in one process
and printed as JSON lines.

    python -m experiments.benchmark --config=configs/es.py [--config.candidate_chunk=256 ...]
    python -m experiments.benchmark --config=configs/ppo_amp_cpu.py [--config.num_envs=64 ...]

A PPO+AMP config (env `biped_walk`, or a `num_envs` field) is measured by
`experiments/benchmark_ppo.py` (lines `mjx_physics`, `mjx_env_step`,
`ppo_amp_iteration` on the biped; its docstring has the details), kept in
`results_dir/benchmark/ppo_amp-<run_name>/`; `--ppo_rollouts` sets its baselines'
horizon and the ES-only flags below are refused for it.

For an ES config, for each physics profile (`--profiles`, default fast and gym) at batch
`candidate_chunk` and `horizon` env steps (`--gym_horizon` caps the slow `gym` one),
it measures:
  * `mjx_physics`: the bare MJX step (frame_skip substeps, zero action) vmapped over
    the batch and scanned over the horizon;
  * `mjx_env_step`: the env's own step (physics, guard, observation, reward), same
    shape; `ratio` = its env-steps/s over `mjx_physics`'s;
  * `mujoco_c_rollout`: MuJoCo C's threaded `mujoco.rollout` on the same model and
    shape, the CPU reference; `ratio` = MJX env step over this.
  * `es_iteration` (for the config's own profile): one whole ES iteration, 2 x pairs
    candidates in chunks with early exit off, counted as population x horizon
    env-steps; `ratio` = its env-steps/s over `mjx_env_step`'s at the same chunk and
    horizon (1.0 would mean policy, noise, shaping and update cost nothing).
Each line also carries the machine, versions and compile seconds; the records are kept
in `results_dir/benchmark/<run_name>/` like any run's metrics.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from absl import flags, logging
from ml_collections import config_flags
from mujoco import rollout as mj_rollout

from common import cli, compile_cache, config as config_lib, envs, launch, physics, results, robots
from experiments import benchmark_ppo, timing
from humanoid_es import config as es_config
from humanoid_es.trainer import Trainer

_CONFIG = config_flags.DEFINE_config_file("config", None, "ES or PPO+AMP config file.", lock_config=True)
_PROFILES = flags.DEFINE_list("profiles", ["fast", "gym"], "Physics profiles to measure.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed runs per measurement; the best is kept.")
_C_THREADS = flags.DEFINE_integer("c_threads", 0, "Threads for MuJoCo C's rollout; 0 = all cores.")
_ES = flags.DEFINE_bool("es", True, "Also time a whole ES iteration (config's profile only).")
_GYM_HORIZON = flags.DEFINE_integer(
    "gym_horizon", 20, "Horizon for the `gym` profile, which is ~100x slower; 0 uses the config's."
)


def _measure_profile(config, profile: str, cache_dir: str | None, repeats: int) -> list[dict]:
    overrides = es_config.env_overrides(config) | {"physics": profile}
    env = envs.make(config.env, **overrides)
    batch, horizon = config.candidate_chunk, config.horizon
    if profile == "gym" and _GYM_HORIZON.value:
        horizon = min(horizon, _GYM_HORIZON.value)
    frame_skip = env.config.frame_skip
    step_fn = physics.make_step_fn(frame_skip)
    keys = jax.random.split(jax.random.PRNGKey(config.seed), batch)
    states = jax.jit(jax.vmap(env.reset))(keys)
    mesh = launch.make_mesh() if jax.device_count() > 1 else None
    shape = {"batch": batch, "horizon": horizon, "physics": profile, "impl": config.impl,
             "n_devices": jax.device_count()}

    def physics_only(data):
        def body(d, _):
            return jax.vmap(step_fn, in_axes=(None, 0, 0))(env.model, d, jnp.zeros_like(d.ctrl)), None
        return jax.lax.scan(body, data, length=horizon)[0].qpos

    def env_steps(state):
        def body(s, _):
            return jax.vmap(env.step)(s, jnp.zeros_like(s.data.ctrl)), None
        return jax.lax.scan(body, state, length=horizon)[0].obs

    lines = []
    timings = {}
    for name, fn, arg in (("mjx_physics", physics_only, states.data), ("mjx_env_step", env_steps, states)):
        compiled, report = compile_cache.warm_up(
            f"benchmark_{name}_{profile}", jax.jit(timing.per_device(fn, mesh)), arg, cache_dir=cache_dir, shape=shape
        )
        seconds = timing.best_seconds(compiled, arg, repeats=repeats)
        timings[name] = batch * horizon / seconds
        lines.append({"name": name, **shape, "env_steps_per_s": timings[name],
                      "substeps_per_s": timings[name] * frame_skip,
                      "compile_seconds": report.compile_seconds, "cache_hits": report.cache_hits})
    lines[1]["physics_steps_per_s"] = timings["mjx_physics"]
    lines[1]["ratio"] = timings["mjx_env_step"] / timings["mjx_physics"]

    # MuJoCo C on the very same compiled model, from the same initial states.
    mj_model = env.config.load_mj_model()
    threads = _C_THREADS.value or os.cpu_count() or 1
    datas = [mujoco.MjData(mj_model) for _ in range(threads)]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    init = np.zeros((batch, mujoco.mj_stateSize(mj_model, spec)))
    d = mujoco.MjData(mj_model)
    qpos, qvel = np.asarray(states.data.qpos), np.asarray(states.data.qvel)
    for i in range(batch):
        d.qpos[:], d.qvel[:] = qpos[i], qvel[i]
        mujoco.mj_getState(mj_model, d, init[i], spec)
    control = np.zeros((batch, horizon * frame_skip, mj_model.nu))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        mj_rollout.rollout(mj_model, datas, init, control, persistent_pool=True)
        best = min(best, time.perf_counter() - start)
    mj_rollout.shutdown_persistent_pool()
    c_env_steps = batch * horizon / best
    lines.append({"name": "mujoco_c_rollout", **shape, "env_steps_per_s": c_env_steps,
                  "substeps_per_s": c_env_steps * frame_skip, "threads": threads,
                  "physics_steps_per_s": c_env_steps, "ratio": timings["mjx_env_step"] / c_env_steps})
    if _ES.value and profile == config.physics and horizon == config.horizon:
        lines.append(_measure_es(config, cache_dir, repeats, timings["mjx_env_step"]))
    return lines


def _measure_es(config, cache_dir: str | None, repeats: int, env_steps_per_s: float) -> dict:
    """One whole ES iteration at the config's shape (early exit and queue off in `main`)."""
    mesh = launch.make_mesh() if jax.device_count() > 1 else None
    trainer = Trainer(config, mesh)
    state = trainer.init(jax.random.PRNGKey(config.seed))
    shape = {"batch": trainer.population, "candidate_chunk": config.candidate_chunk, "horizon": config.horizon,
             "physics": config.physics, "impl": config.impl}
    compiled, report = compile_cache.warm_up("benchmark_es_iteration", trainer.iteration, state,
                                             cache_dir=cache_dir, shape=shape)
    seconds = timing.best_seconds(compiled, state, repeats=repeats)
    rate = trainer.population * config.horizon / seconds
    return {"name": "es_iteration", **shape, "env_steps_per_s": rate, "iteration_seconds": seconds,
            "params": trainer.num_params, "compile_seconds": report.compile_seconds,
            "cache_hits": report.cache_hits, "physics_steps_per_s": env_steps_per_s,
            "ratio": rate / env_steps_per_s}


def main(argv: Sequence[str]) -> None:
    del argv
    config = _CONFIG.value.copy_and_resolve_references()
    if benchmark_ppo.is_ppo_amp(config):
        if _REPEATS.value < 1:
            raise config_lib.ConfigError(f"--repeats: must be a positive integer, got {_REPEATS.value}")
        benchmark_ppo.prepare(config)
        _record(config, "ppo_amp-", lambda cache_dir: benchmark_ppo.measure(config, cache_dir, _REPEATS.value))
        return
    # Every measurement runs whole horizons: early exit (and the work queue built on it)
    # would make the step counts depend on when members fall.
    config.early_exit_block = 0
    config.rollout_queue = False
    if flags.FLAGS["ppo_rollouts"].present:
        raise config_lib.ConfigError("--ppo_rollouts: measures PPO+AMP configs only")
    launch.request_cpu_devices(config.cpu_devices)
    es_config.validate(config)
    for p in _PROFILES.value:
        config_lib.require(p in robots.PROFILES, "profiles", "unknown physics profile", p)
    launch.maybe_initialize_distributed()
    launch.check_cpu_devices(config.cpu_devices)
    _record(config, "", lambda cache_dir: [line for profile in _PROFILES.value
                                           for line in _measure_profile(config, profile, cache_dir, _REPEATS.value)])


def _record(config, prefix: str, measure) -> None:
    """Runs `measure(cache_dir)`, printing each line as JSON and keeping them in
    `results_dir/benchmark/<prefix><run_name>/`."""
    launch.log_banner()
    cache_dir = compile_cache.enable(config.compile_cache_dir) if config.compile_cache_dir else None
    cfg = config_lib.to_dict(config)
    run_name = results.run_name(cfg)
    run = results.RunDir(config.results_dir, "benchmark", prefix + run_name, cfg)
    machine = launch.device_summary()
    versions = launch.versions()
    start = time.perf_counter()
    all_lines = []
    for line in measure(cache_dir):
        line = {**line, "backend": machine["backend"], "cpu": machine["cpu"],
                "cpu_count": machine["cpu_count"], "devices": machine["devices"], "versions": versions}
        print(json.dumps(line), flush=True)
        all_lines.append(line)
        run.log({k: v for k, v in line.items() if not isinstance(v, (dict, list))}
                | {"iteration": len(run.records) + 1})
    run.write_summary({"measurements": all_lines, "wall_seconds": time.perf_counter() - start,
                       "versions": versions, "devices": machine["devices"]})
    run.plot("iteration", ["env_steps_per_s"], "throughput.png", title="env-steps/s per measurement")
    logging.info("records in %s", run.path)


if __name__ == "__main__":
    cli.run(main)
