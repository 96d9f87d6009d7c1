"""Validation of the ES config (`configs/es*.py`): every rule, before anything compiles."""

from __future__ import annotations

import os
import re

import ml_collections

from common import envs, physics, robots
from common.config import ConfigError, positive_int, require

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def validate(config: ml_collections.ConfigDict, n_devices: int = 1) -> None:
    """Raises `ConfigError` naming the first field that breaks a rule."""
    require(config.env in envs.names(), "env", f"must be one of {envs.names()}", config.env)
    positive_int(config, "pairs", "candidate_chunk", "horizon", "num_iterations", "eval_every", "eval_episodes")
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
    require(isinstance(config.seed, int), "seed", "must be an integer", config.seed)
    require(config.physics in robots.PROFILES, "physics", f"must be one of {sorted(robots.PROFILES)}", config.physics)
    try:
        physics.check_impl(config.impl)
    except physics.ImplError as e:
        raise ConfigError(f"config.{e}") from None
    for field in ("solver_iterations", "ls_iterations"):
        value = config[field]
        require(
            value is None or (isinstance(value, int) and value > 0),
            field,
            "must be a positive integer or None (keep the profile's value)",
            value,
        )
    if config.xml_path is not None:
        require(os.path.isfile(config.xml_path), "xml_path", "MJCF file not found", config.xml_path)
    require(bool(config.results_dir), "results_dir", "must be a directory path", config.results_dir)
    require(
        config.run_name is None or bool(_RUN_NAME.match(config.run_name)),
        "run_name",
        "must be letters, digits, '.', '_' or '-' (no path separators)",
        config.run_name,
    )


def env_overrides(config: ml_collections.ConfigDict) -> dict[str, object]:
    """The config fields that build the env, as `common.envs.make` overrides."""
    return {
        "xml_path": config.xml_path,
        "physics": config.physics,
        "impl": config.impl,
        "solver_iterations": config.solver_iterations,
        "ls_iterations": config.ls_iterations,
        "episode_length": config.horizon,
    }
