"""Throughput of the physics and of a whole training iteration, measured in one process
and printed as JSON lines.

    python -m experiments.benchmark --config=configs/es.py [--config.candidate_chunk=256 ...]
    python -m experiments.benchmark --config=configs/ppo_amp_cpu.py [--config.num_envs=64 ...]

The config's env names the pipeline (`experiments.pipelines`), whose `benchmark` makes
the lines: the humanoid's are `humanoid_es/benchmark.py`'s (per physics profile:
`mjx_physics`, `mjx_env_step`, `mujoco_c_rollout`, then `es_population_rollout` and
`es_iteration`), the biped's `ppo_amp/benchmark.py`'s (`mjx_physics`, `mjx_env_step`,
`ppo_rollout`, `ppo_amp_iteration`); their docstrings say what each line runs. Each line
is timed by `common.measure` (round-robin, the fastest of `--repeats` calls) and names
its `baseline`, with `baseline_steps_per_s` and `ratio` = its env-steps/s over the
baseline's. Flags another pipeline's configs take are refused. Each line also carries
the machine, versions and compile seconds; the records are kept in
`results_dir/benchmark/<experiment>-<run_name>/` like any run's metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence

import jax
import ml_collections
from absl import flags, logging
from ml_collections import config_flags

from common import cli, compile_cache, config as config_lib, launch, processes, results, sharding
from experiments import pipelines

_CONFIG = config_flags.DEFINE_config_file("config", None, "ES or PPO+AMP config file.", lock_config=True)
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed calls per line (round-robin); the fastest is kept.")
_PROFILES = flags.DEFINE_list("profiles", ["fast", "gym"], "ES: physics profiles to measure.")
_C_THREADS = flags.DEFINE_integer("c_threads", 0, "ES: threads for MuJoCo C's rollout; 0 = all cores.")
_ES = flags.DEFINE_bool("es", True, "ES: also time the population rollout and a whole ES iteration.")
_GYM_HORIZON = flags.DEFINE_integer(
    "gym_horizon", 20, "ES: horizon for the `gym` profile, which is ~100x slower; 0 uses the config's.")
_ACTUATOR_NET = flags.DEFINE_string(
    "actuator_net", None, "PPO+AMP: also time the env step under this actuator net (task.actuator=learned), "
    "against the ideal actuators' step.")
_ROLLOUTS = flags.DEFINE_integer(
    "ppo_rollouts", 1, "PPO+AMP: the physics baselines' horizon in rollouts (horizon = this x rollout_length).")

# The flags some pipelines' configs take and others refuse (`Pipeline.tool_flags`).
_CONFIG_FLAGS = ("profiles", "c_threads", "es", "gym_horizon", "actuator_net", "ppo_rollouts")


def main(argv: Sequence[str]) -> None:
    del argv
    if _CONFIG.value is None:
        raise config_lib.ConfigError("--config: name an ES or PPO+AMP config file (configs/*.py)")
    config = _CONFIG.value.copy_and_resolve_references()
    pipeline = pipelines.for_env(config.env)
    # Bad values, and flags of another pipeline, end in one line before anything is built.
    if _REPEATS.value < 1:
        raise config_lib.ConfigError(f"--repeats: must be a positive integer, got {_REPEATS.value}")
    pipelines.refuse_foreign(pipeline, _CONFIG_FLAGS, what="configs")
    options = pipelines.options(pipeline, _CONFIG_FLAGS)
    for profile in options.get("profiles", ()):
        config_lib.require(profile in pipeline.profiles, "profiles", "unknown physics profile", profile)
    if options.get("ppo_rollouts", 1) < 1:
        raise config_lib.ConfigError(f"--ppo_rollouts: must be a positive integer, got {_ROLLOUTS.value}")
    pipeline.benchmark_config(config)
    launch.request_cpu_devices(config.cpu_devices)
    processes.initialize()
    # The rules of training, with its one-line errors, before anything is built.
    pipeline.validate(config, jax.device_count())
    launch.check_cpu_devices(config.cpu_devices)
    mesh = sharding.make_mesh()
    _record(config, f"{pipeline.experiment}-",
            lambda cache_dir: pipeline.benchmark(config, mesh, options, _REPEATS.value, cache_dir))


def _record(config: ml_collections.ConfigDict, prefix: str, lines: Callable[[str | None], Iterator[dict]]) -> None:
    """Prints each of `lines(cache_dir)` as JSON as it comes and keeps them in
    `results_dir/benchmark/<prefix><run_name>/`."""
    launch.log_banner()
    cache_dir = compile_cache.enable(config.compile_cache_dir) if config.compile_cache_dir else None
    cfg = config_lib.to_dict(config)
    run = results.RunDir(config.results_dir, "benchmark", prefix + results.run_name(cfg), cfg)
    machine = launch.device_summary()
    versions = launch.versions()
    start = time.perf_counter()
    all_lines = []
    for line in lines(cache_dir):
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
