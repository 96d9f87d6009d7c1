"""Throughput of the PPO+AMP pipeline on the biped, for `experiments.benchmark`.

    python -m experiments.benchmark --config=configs/ppo_amp_cpu.py [--config.num_envs=64 ...]

At batch `num_envs` and horizon `rollout_length` (the steps one iteration collects per
env, so all three lines time the same env-steps; `--ppo_rollouts=K` scans K x
rollout_length steps in the two baselines), under the config's own physics profile,
it measures:
  * `mjx_physics`: the bare MJX step of the biped model (frame_skip substeps, the
    default-pose ctrl held), vmapped over the batch and scanned over the horizon;
  * `mjx_env_step`: the env's own step with a zero action (physics, randomisation,
    latency, pushes, observation, rewards, termination), same shape; `ratio` = its
    env-steps/s over `mjx_physics`'s;
  * `ppo_amp_iteration`: one whole `Trainer.iteration` (rollout with the actor and
    critic, auto-resets, AMP windows, discriminator steps, GAE, PPO epochs), counted as
    num_envs x rollout_length env-steps; `physics_steps_per_s` and `ratio` compare it
    with `mjx_env_step` (1.0 would mean networks and updates cost nothing; the same
    figure is repeated as `ratio_to_mjx_env_step`), and `mjx_physics_steps_per_s` and
    `ratio_to_mjx_physics` with `mjx_physics`.
With several devices (`cpu_devices`, or GPUs) the baselines split the batch over the
mesh with `shard_map`, as the iteration splits its envs.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp
import ml_collections
from absl import flags

from common import compile_cache, config as config_lib, launch, physics
from experiments import timing
from ppo_amp import config as ppo_config
from ppo_amp.trainer import Trainer

_ROLLOUTS = flags.DEFINE_integer(
    "ppo_rollouts", 1, "PPO+AMP configs: the baselines' horizon in rollouts (horizon = this x rollout_length).")

# Flags of the ES measurements that have no meaning for a PPO+AMP config.
ES_ONLY_FLAGS = ("profiles", "c_threads", "es", "gym_horizon")


def is_ppo_amp(config: ml_collections.ConfigDict) -> bool:
    """A PPO+AMP config: the biped task, or envs counted by `num_envs`."""
    return config.get("env") == "biped_walk" or "num_envs" in config


def check_flags() -> None:
    for name in ES_ONLY_FLAGS:
        if flags.FLAGS[name].present:
            raise config_lib.ConfigError(
                f"--{name}: measures ES configs only; a PPO+AMP config is timed under its own "
                "--config.physics (biped profiles)")
    if _ROLLOUTS.value < 1:
        raise config_lib.ConfigError(f"--ppo_rollouts: must be a positive integer, got {_ROLLOUTS.value}")


def measure(config: ml_collections.ConfigDict, cache_dir: str | None, repeats: int) -> list[dict]:
    """The three measurement lines (without the machine fields `benchmark.main` adds)."""
    mesh = launch.make_mesh() if jax.device_count() > 1 else None
    trainer = Trainer(config, mesh)
    env = trainer.env
    batch, horizon = config.num_envs, _ROLLOUTS.value * config.rollout_length
    frame_skip = env.config.frame_skip
    shape = {"batch": batch, "horizon": horizon, "rollout_length": config.rollout_length, "physics": config.physics,
             "impl": config.impl, "amp": bool(config.amp.enabled), "n_devices": jax.device_count()}
    keys = jax.random.split(jax.random.PRNGKey(config.seed), batch)
    states = jax.jit(jax.vmap(env.reset))(keys)
    ctrl = env.statics.default_ctrl
    step_fn = physics.make_step_fn(frame_skip)

    def physics_only(data):
        def body(d, _):
            return jax.vmap(step_fn, in_axes=(None, 0, None))(env.model, d, ctrl), None
        return jax.lax.scan(body, data, length=horizon)[0].qpos

    def env_steps(state):
        def body(s, _):
            return jax.vmap(env.step)(s, jnp.zeros((s.obs.shape[0], env.action_size))), None
        return jax.lax.scan(body, state, length=horizon)[0].obs

    lines, rates = [], {}
    for name, fn, arg in (("mjx_physics", physics_only, states.data), ("mjx_env_step", env_steps, states)):
        compiled, report = compile_cache.warm_up(f"benchmark_ppo_{name}", jax.jit(timing.per_device(fn, mesh)), arg,
                                                 cache_dir=cache_dir, shape=shape)
        rates[name] = batch * horizon / timing.best_seconds(compiled, arg, repeats=repeats)
        lines.append({"name": name, **shape, "env_steps_per_s": rates[name],
                      "substeps_per_s": rates[name] * frame_skip,
                      "compile_seconds": report.compile_seconds, "cache_hits": report.cache_hits})
    lines[1]["physics_steps_per_s"] = rates["mjx_physics"]
    lines[1]["ratio"] = rates["mjx_env_step"] / rates["mjx_physics"]

    state = trainer.place(trainer.init(jax.random.PRNGKey(config.seed)))
    compiled, report = compile_cache.warm_up("benchmark_ppo_amp_iteration", trainer.iteration, state,
                                             cache_dir=cache_dir, shape=shape)
    seconds = timing.best_seconds(compiled, state, repeats=repeats)
    env_steps_per_iteration = batch * config.rollout_length
    rate = env_steps_per_iteration / seconds
    lines.append({"name": "ppo_amp_iteration", **shape, "horizon": config.rollout_length,
                  "env_steps_per_s": rate, "iteration_seconds": seconds,
                  "iteration_env_steps": env_steps_per_iteration,
                  "epochs": config.ppo.epochs, "minibatches": config.ppo.minibatches,
                  "physics_steps_per_s": rates["mjx_env_step"], "ratio": rate / rates["mjx_env_step"],
                  "ratio_to_mjx_env_step": rate / rates["mjx_env_step"],
                  "mjx_physics_steps_per_s": rates["mjx_physics"], "ratio_to_mjx_physics": rate / rates["mjx_physics"],
                  "compile_seconds": report.compile_seconds, "cache_hits": report.cache_hits})
    return lines


def prepare(config: ml_collections.ConfigDict) -> None:
    """Splits the CPU as asked, then validates (which starts JAX's backend) before anything is written."""
    check_flags()
    launch.request_cpu_devices(config.cpu_devices)
    launch.maybe_initialize_distributed()
    ppo_config.validate(config, n_devices=jax.device_count())
    launch.check_cpu_devices(config.cpu_devices)
