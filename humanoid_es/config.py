"""Validation of the ES config (`configs/es*.py`): every rule, before anything compiles."""

from __future__ import annotations

import ml_collections

from common import config as config_lib, envs, robots
from common.config import ConfigError, number, positive_int, require, validate_run
from humanoid_es import es, policy, schedules, strategies


# The task ES trains.
ENV = "humanoid"
# HumanoidConfig fields the config's `task` section leaves to the top level: the physics,
# the horizon and the MJCF.
TASK_EXCLUDE = (*config_lib.TOP_LEVEL_ENV_FIELDS, "xml_path", "episode_length")

# A run's own changes to its physics profile (`experiments.evaluate --physics` drops them).
PHYSICS_OVERRIDES = ("solver_iterations", "ls_iterations", "integrator", "contacts", "max_contact_points")


def validate(config: ml_collections.ConfigDict, n_devices: int = 1) -> None:
    """Raises `ConfigError` naming the first field that breaks a rule."""
    require(config.env == ENV, "env", f"ES trains the {ENV!r} task (its `task` section is HumanoidConfig's)",
            config.env)
    validate_run(config)
    positive_int(config, "pairs", "candidate_chunk")
    population = 2 * config.pairs
    require(
        population % config.candidate_chunk == 0,
        "candidate_chunk",
        f"must divide the population 2 * pairs = {population}",
        config.candidate_chunk,
    )
    require(
        config.candidate_chunk % n_devices == 0,
        "candidate_chunk",
        f"must be divisible by the number of devices ({n_devices})",
        config.candidate_chunk,
    )
    block = config.early_exit_block
    require(
        isinstance(block, int) and block >= 0 and (block == 0 or config.horizon % block == 0),
        "early_exit_block",
        f"must be 0 (off) or a positive divisor of horizon = {config.horizon}",
        block,
    )
    require(isinstance(config.rollout_queue, bool) and (not config.rollout_queue or block > 0), "rollout_queue",
            "must be a bool, and True needs early_exit_block > 0 (slots refill at block boundaries)",
            config.rollout_queue)
    require(config.physics in robots.PROFILES, "physics", f"must be one of {sorted(robots.PROFILES)}", config.physics)
    require(config.integrator is None or config.integrator in robots.INTEGRATORS, "integrator",
            f"must be None (the profile's) or one of {robots.INTEGRATORS}", config.integrator)
    require(config.contacts is None or config.contacts in robots.CONTACTS, "contacts",
            f"must be None (the profile's) or one of {robots.CONTACTS}", config.contacts)
    _validate_es(config)
    _validate_policy(config.policy)
    _validate_task(config)


def _validate_task(config: ml_collections.ConfigDict) -> None:
    t = config.task
    positive_int(t, "frame_skip", prefix="task.")
    number(t, "forward_reward_weight", "healthy_reward", "ctrl_cost_weight", "healthy_z_min", prefix="task.")
    number(t, "healthy_z_max", prefix="task.", above=t.healthy_z_min)
    number(t, "reset_noise_scale", prefix="task.", at_least=0)
    number(t, "max_qvel", prefix="task.", above=0)
    try:
        envs.config_for(config.env, **env_overrides(config))
    except TypeError as e:
        raise ConfigError(f"config.task: {e}") from None


def _validate_es(config: ml_collections.ConfigDict) -> None:
    require(config.strategy in strategies.NAMES, "strategy", f"must be one of {strategies.NAMES}", config.strategy)
    number(config, "sigma", "sigma_final", "learning_rate", "learning_rate_final", above=0)
    for field in ("sigma_schedule", "learning_rate_schedule"):
        require(config[field] in schedules.KINDS, field, f"must be one of {schedules.KINDS}", config[field])
    require(config.optimizer in ("adam", "sgd"), "optimizer", "must be 'adam' or 'sgd'", config.optimizer)
    number(config, "weight_decay", at_least=0)
    require(config.fitness_shaping in es.SHAPINGS, "fitness_shaping", f"must be one of {es.SHAPINGS}",
            config.fitness_shaping)
    require(isinstance(config.top_k, int) and 0 <= config.top_k <= config.pairs, "top_k",
            f"must be 0 (all pairs) or at most pairs = {config.pairs}", config.top_k)
    require(isinstance(config.noise_rank, int) and config.noise_rank >= 0, "noise_rank",
            "must be 0 (full rank) or a positive rank", config.noise_rank)
    number(config, "reward_shift")
    number(config, "tilt_cost", at_least=0)
    _validate_fall_height(config)
    _validate_assist(config)
    if config.train_reset_noise is not None:
        number(config, "train_reset_noise", at_least=0)
    config_lib.non_negative_int(config, "schedule_env_steps")
    require(config.schedule_env_steps == 0 or config.strategy == strategies.PERTURBATIVE, "schedule_env_steps",
            f"must be 0 for evosax strategies, which count iterations (strategy is {config.strategy!r})",
            config.schedule_env_steps)
    positive_int(config, "starts")
    config_lib.non_negative_int(config, "start_env_steps")
    if config.starts > 1:
        require(config.start_env_steps > 0, "start_env_steps", "must be > 0 where starts > 1",
                config.start_env_steps)
        require(config.max_env_steps > config.starts * config.start_env_steps, "max_env_steps",
                f"must exceed starts x start_env_steps = {config.starts * config.start_env_steps} (the chosen "
                "start continues on what is left)", config.max_env_steps)
        require(config.init_from is None, "init_from", "must be None where starts > 1 (each start draws from "
                "its own seed)", config.init_from)
    # The source itself is read when a fresh run starts (`hooks`): a branched run resumes,
    # and is evaluated, without it.
    require(config.init_from is None or config.strategy == strategies.PERTURBATIVE, "init_from",
            f"must be None for evosax strategies, whose state a branch does not carry (strategy is "
            f"{config.strategy!r})", config.init_from)


def _validate_fall_height(config: ml_collections.ConfigDict) -> None:
    config_lib.non_negative_int(config, "fall_height_rise_from", "fall_height_rise_to")
    require(config.fall_height_rise_to >= config.fall_height_rise_from, "fall_height_rise_to",
            f"must be >= fall_height_rise_from = {config.fall_height_rise_from}", config.fall_height_rise_to)
    if config.fall_height is None:
        require(config.fall_height_rise_to == 0, "fall_height_rise_to", "must be 0 where fall_height is None "
                "(no curriculum to rise)", config.fall_height_rise_to)
        return
    number(config, "fall_height", above=0)
    require(config.fall_height < config.task.healthy_z_max, "fall_height",
            f"must be below task.healthy_z_max = {config.task.healthy_z_max}", config.fall_height)


def _validate_assist(config: ml_collections.ConfigDict) -> None:
    number(config, "assist", at_least=0)
    # Its turning damper reads the previous substep: stable to ~1.3 (common/envs/humanoid.py).
    require(config.assist <= 1.0, "assist", "must be at most 1 (a 0.1 m sag lifting the body's weight)",
            config.assist)
    config_lib.non_negative_int(config, "assist_env_steps")
    positive_int(config, "assist_horizon")
    if not config.assist:
        require(config.assist_env_steps == 0, "assist_env_steps", "must be 0 where assist is 0 (no assist to "
                "decay)", config.assist_env_steps)
        return
    require(config.assist_env_steps > 0, "assist_env_steps", "must be > 0 where assist > 0 (the env step by "
            "which the assist has fallen to 0)", config.assist_env_steps)
    require(config.assist_horizon <= config.horizon, "assist_horizon", f"must be <= horizon = {config.horizon}",
            config.assist_horizon)


def _validate_policy(p: ml_collections.ConfigDict) -> None:
    require(isinstance(p.size, int) and p.size > 0, "policy.size", "must be a positive integer", p.size)
    require(0.0 <= p.sparsity < 1.0, "policy.sparsity", "must be in [0, 1)", p.sparsity)
    require(0.0 < p.leak_rate <= 1.0, "policy.leak_rate", "must be in (0, 1]", p.leak_rate)
    number(p, "spectral_radius", "input_scaling", "obs_clip", prefix="policy.", above=0)
    number(p, "bias_scaling", "obs_std_floor", prefix="policy.", at_least=0)
    require(isinstance(p.obs_features, int) and p.obs_features >= 0, "policy.obs_features",
            "must be an integer >= 0 (0 reads every observation entry)", p.obs_features)
    require(p.obs_norm in policy.OBS_NORMS, "policy.obs_norm", f"must be one of {policy.OBS_NORMS}", p.obs_norm)
    require(p.action_map in policy.ACTION_MAPS, "policy.action_map", f"must be one of {policy.ACTION_MAPS}",
            p.action_map)
    if p.reservoir_seed is not None:  # None: the run's seed
        config_lib.non_negative_int(p, "reservoir_seed", prefix="policy.")
    trainable = tuple(p.trainable)
    require(len(trainable) > 0 and set(trainable) <= set(policy.TRAINABLE_LEAVES), "policy.trainable",
            f"must be a non-empty subset of {policy.TRAINABLE_LEAVES}", trainable)


def policy_config(config: ml_collections.ConfigDict) -> policy.ReservoirConfig:
    """The `policy` section as the reservoir's config (config.json holds tuples as lists)."""
    return policy.ReservoirConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.policy.items()})


def env_overrides(config: ml_collections.ConfigDict) -> dict[str, object]:
    """The config fields that build the env, as `common.envs.make` overrides."""
    return config_lib.env_overrides(config, {"task": {}})
