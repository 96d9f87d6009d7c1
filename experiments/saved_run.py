"""A finished or running run's directory, opened for the commands that use its policy.

`experiments.evaluate`, `experiments.play` and `experiments.export` read a run the same
way: `config.json` (completed, for fields added since, with the values that keep its
behaviour: `configs.es.fields()`, the PPO+AMP config's defaults), the
pipeline named by the folder above the run, an optional physics profile swap, and the
latest checkpoint. Everything is checked before a model is built, and nothing is
written into the run.
"""

from __future__ import annotations

import dataclasses
import math
import os
from typing import Any

import ml_collections

from common import compile_cache, host_loop, results, robots
from common.checkpoint import CheckpointError
from common.config import ConfigError, under_profile, with_defaults
from common.envs.biped import config as biped_config
from configs import es as es_fields, ppo_amp as ppo_defaults
from humanoid_es import config as es_config, hooks as es_hooks
from ppo_amp import config as ppo_config, hooks as ppo_hooks


@dataclasses.dataclass(frozen=True)
class SavedRun:
    path: str
    # "es" or "ppo_amp": the name of the folder above the run.
    experiment: str
    # The run's resolved config, under `physics`, validated.
    config: ml_collections.ConfigDict
    pipeline: host_loop.Pipeline
    physics: str

    @property
    def is_walker(self) -> bool:
        return self.experiment == ppo_hooks.EXPERIMENT


def load_run_config(run_path: str) -> ml_collections.ConfigDict:
    try:
        return ml_collections.ConfigDict(results.read_config(run_path))
    except ConfigError as e:
        raise ConfigError(f"--run: {run_path!r}: {e}") from None


def parse_command(text: str) -> tuple[float, float, float]:
    """'vx,vy,wz' -> three finite floats, or a `ConfigError` naming the flag."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ConfigError(f"--command: must be three numbers 'vx,vy,wz' (m/s, m/s, rad/s), got {text!r}")
    return values


def open_run(run_path: str, physics: str | None = None) -> SavedRun:
    """The run in `run_path`, its config under `physics` (None: the run's own)."""
    run_path = os.path.normpath(run_path)
    config = load_run_config(run_path)
    experiment = os.path.basename(os.path.dirname(os.path.abspath(run_path)))
    if experiment == es_hooks.EXPERIMENT:
        profiles, defaults, overrides = robots.PROFILES, es_fields.fields, es_config.PHYSICS_OVERRIDES
        pipeline, validate, what = es_hooks.PIPELINE, es_config.validate, "an ES run needs a humanoid profile"
    elif experiment == ppo_hooks.EXPERIMENT:
        profiles, defaults, overrides = biped_config.PROFILES, ppo_defaults.get_config, ppo_config.PHYSICS_OVERRIDES
        pipeline, validate, what = ppo_hooks.PIPELINE, ppo_config.validate, "a PPO+AMP run needs a biped profile"
    else:
        raise ConfigError(f"--run: {run_path!r} is under {experiment!r}, not an "
                          f"'{es_hooks.EXPERIMENT}' or '{ppo_hooks.EXPERIMENT}' results directory")
    name = physics or config.physics
    if name not in profiles:
        raise ConfigError(f"--physics: {what}, one of {sorted(profiles)}, got {name!r}")
    # The named profile runs as defined: the run's own solver and contact overrides go.
    config = under_profile(with_defaults(config, defaults()), physics, overrides)
    kept = os.path.join(run_path, ppo_hooks.ACTUATOR_NET_COPY)
    if experiment == ppo_hooks.EXPERIMENT and config.task.actuator == "learned" and os.path.isfile(kept):
        config.task.actuator_net = kept  # the run's own copy: the file it trained with
    validate(config)
    # Checked here so that a run with none is reported without creating anything in it.
    if not os.path.isdir(os.path.join(run_path, "checkpoints")):
        raise CheckpointError(f"--run: {run_path!r} has no checkpoints/ (the run never saved one)")
    return SavedRun(path=run_path, experiment=experiment, config=config, pipeline=pipeline, physics=name)


def restore(run: SavedRun) -> tuple[Any, Any]:
    """A single-device trainer and the run's latest checkpointed state; compiles go
    through the run's persistent compile cache, where it names one."""
    if run.config.compile_cache_dir:
        compile_cache.enable(run.config.compile_cache_dir)
    return host_loop.restore_latest(run.path, run.config, run.pipeline)
