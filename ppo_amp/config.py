"""PPO+AMP config rules, checked before anything compiles, and the env overrides it implies."""

from __future__ import annotations

import os

import jax
import ml_collections

from common import config as config_lib, envs
from common.config import ConfigError, number, positive_int, require, validate_run
from common.envs.biped.config import RANDOMIZE_FIELDS, REWARD_TERMS, validate as validate_env

# The task PPO+AMP trains.
ENV = "biped_walk"
CPU_ENVS_PER_DEVICE = 64
LOSSES = ("least_squares", "logistic")
NORMALIZATIONS = ("reference", "pooled")


# BipedWalkConfig's `randomize` switch is the config's `randomize.enabled`.
RANDOMIZE_RENAME = {"randomize": "enabled"}
# BipedWalkConfig fields the config's `task` section leaves to others: the top-level
# physics, horizon and MJCF, the `rewards` section and the `randomize` section.
TASK_EXCLUDE = (*config_lib.TOP_LEVEL_ENV_FIELDS, "xml_path", "episode_length", "reward_scales", *RANDOMIZE_FIELDS)

# A run's own changes to its physics profile (`experiments.evaluate --physics` drops them).
PHYSICS_OVERRIDES = ("solver_iterations", "ls_iterations")


def validate(config: ml_collections.ConfigDict, n_devices: int = 1) -> None:
    """Raises `ConfigError` naming the first field that breaks a rule."""
    require(config.env == ENV, "env", f"PPO+AMP trains the {ENV!r} task", config.env)
    validate_run(config)
    positive_int(config, "num_envs", "rollout_length")
    require(config.num_envs % n_devices == 0, "num_envs", f"must be divisible by the number of devices ({n_devices})",
            config.num_envs)
    # Measured on jaxlib 0.10.2: with the CPU split into 2 devices, an MJX rollout of 128
    # envs per device never returns (every XLA thread parked), while 64 per device runs.
    per_device = config.num_envs // n_devices
    require(not (n_devices > 1 and jax.default_backend() == "cpu" and per_device > CPU_ENVS_PER_DEVICE),
            "num_envs", f"with {n_devices} CPU devices at most {CPU_ENVS_PER_DEVICE} envs per device run "
            f"(more deadlock XLA's CPU runtime: BENCHMARKS.md); use cpu_devices=0 or fewer envs", config.num_envs)
    require(config.eval_episodes % n_devices == 0, "eval_episodes",
            f"must be divisible by the number of devices ({n_devices})", config.eval_episodes)
    number(config, "eval_seconds", above=0)
    require(len(tuple(config.eval_command)) == 3, "eval_command", "must be (vx, vy, yaw rate)", config.eval_command)
    unknown = sorted(set(config.rewards.keys()) - set(REWARD_TERMS))
    require(not unknown, "rewards", f"unknown terms {unknown}; known: {list(REWARD_TERMS)}")
    number(config.rewards, *config.rewards.keys(), prefix="rewards.")
    _validate_ppo(config.ppo, config.num_envs * config.rollout_length)
    _validate_amp(config.amp, config.num_envs * config.rollout_length)
    c = config.curriculum
    require(isinstance(c.enabled, bool), "curriculum.enabled", "must be a bool", c.enabled)
    require(0.0 <= c.initial_level <= 1.0, "curriculum.initial_level", "must be in [0, 1]", c.initial_level)
    require(0.0 < c.threshold <= 1.0, "curriculum.threshold", "must be in (0, 1]", c.threshold)
    require(0.0 <= c.step <= 1.0, "curriculum.step", "must be in [0, 1]", c.step)
    try:
        validate_env(envs.config_for(ENV, **env_overrides(config)))
    except (ValueError, TypeError) as e:
        raise ConfigError(f"config (task/randomize): {e}") from None


def _validate_ppo(p: ml_collections.ConfigDict, batch: int) -> None:
    require(len(p.hidden) > 0 and all(isinstance(h, int) and h > 0 for h in p.hidden), "ppo.hidden",
            "must be a non-empty list of positive layer widths", p.hidden)
    number(p, "learning_rate", "clip_eps", "value_coef", "obs_clip", prefix="ppo.", above=0)
    number(p, "entropy_coef", "entropy_coef_final", "value_clip_eps", "max_grad_norm", prefix="ppo.", at_least=0)
    number(p, "init_log_std", prefix="ppo.")
    require(0.0 <= p.lr_final_fraction <= 1.0, "ppo.lr_final_fraction", "must be in [0, 1]", p.lr_final_fraction)
    require(0.0 < p.gamma <= 1.0, "ppo.gamma", "must be in (0, 1]", p.gamma)
    require(0.0 <= p.lam <= 1.0, "ppo.lam", "must be in [0, 1]", p.lam)
    positive_int(p, "epochs", "minibatches", "entropy_decay_iterations")
    require(batch % p.minibatches == 0, "ppo.minibatches",
            f"must divide the batch num_envs x rollout_length = {batch}", p.minibatches)


def _validate_amp(a: ml_collections.ConfigDict, batch: int) -> None:
    for f in ("enabled", "generator_standing", "generator_stepping_in_place"):
        require(isinstance(a[f], bool), f"amp.{f}", "must be a bool", a[f])
    require(a.loss in LOSSES, "amp.loss", f"must be one of {LOSSES}", a.loss)
    require(isinstance(a.window, int) and a.window >= 2, "amp.window", "must be an integer >= 2 (frames)", a.window)
    require(len(a.hidden) > 0 and all(isinstance(h, int) and h > 0 for h in a.hidden), "amp.hidden",
            "must be a non-empty list of positive layer widths", a.hidden)
    require(a.normalization in NORMALIZATIONS, "amp.normalization", f"must be one of {NORMALIZATIONS}",
            a.normalization)
    number(a, "gp_weight", "weight_decay", "task_weight", "style_weight", "input_noise", prefix="amp.", at_least=0)
    number(a, "learning_rate", prefix="amp.", above=0)
    positive_int(a, "batch_size", "steps_per_iteration", "replay_capacity")
    require(0.0 <= a.replay_fraction <= 1.0, "amp.replay_fraction", "must be in [0, 1]", a.replay_fraction)
    require(a.replay_capacity >= batch, "amp.replay_capacity",
            f"must hold at least one iteration's samples (num_envs x rollout_length = {batch})", a.replay_capacity)
    for path in a.motion_files:
        require(os.path.exists(path), "amp.motion_files", "no such file or directory", path)
    require(len(a.generator_speeds) > 0 or len(a.motion_files) > 0, "amp.generator_speeds",
            "must name at least one speed when amp.motion_files is empty", a.generator_speeds)


def env_overrides(config: ml_collections.ConfigDict) -> dict[str, object]:
    """The config fields that build the env, as `common.envs.make("biped_walk")` overrides."""
    rename = {v: k for k, v in RANDOMIZE_RENAME.items()}
    overrides = config_lib.env_overrides(config, {"task": {}, "randomize": rename})
    overrides["reward_scales"] = tuple((k, float(v)) for k, v in sorted(config.rewards.items()))
    return overrides
