"""Roll out a trained run's deterministic policy and print one JSON line.

    python -m experiments.evaluate --run=results/es/cpu --physics=gym --episodes=10

Loads `<run>/config.json` and the latest checkpoint; `--physics` swaps the physics
profile (the observation, reward and termination are the same in every profile).
ES runs print `eval_return` and `eval_length` (means over episodes).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import jax
from absl import app, flags
import ml_collections

from common import launch, robots
from common.config import ConfigError
from humanoid_es import config as es_config, train as es_train

_RUN = flags.DEFINE_string("run", None, "Run directory: results_dir/<experiment>/<run_name>.", required=True)
_PHYSICS = flags.DEFINE_string("physics", None, "Physics profile to evaluate under; default: the run's.")
_EPISODES = flags.DEFINE_integer("episodes", 10, "Episodes to roll out.")
_SEED = flags.DEFINE_integer("seed", 12345, "Seed of the evaluation episodes.")


def load_run_config(run_path: str) -> ml_collections.ConfigDict:
    path = os.path.join(run_path, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"run: {run_path!r} has no config.json (not a run directory)")
    try:
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"run: {path} is unreadable ({e})") from None


@launch.user_errors_exit
def main(argv: Sequence[str]) -> None:
    del argv
    run_path = os.path.normpath(_RUN.value)
    config = load_run_config(run_path)
    experiment = os.path.basename(os.path.dirname(run_path))
    if experiment != es_train.EXPERIMENT:
        raise ConfigError(f"run: {run_path!r} is not under an '{es_train.EXPERIMENT}' results directory")
    physics = _PHYSICS.value or config.physics
    if physics not in robots.PROFILES:
        raise ConfigError(f"physics: must be one of {sorted(robots.PROFILES)}, got {physics!r}")
    if _EPISODES.value < 1:
        raise ConfigError(f"episodes: must be a positive integer, got {_EPISODES.value}")
    config.physics = physics
    es_config.validate(config)
    trainer, state = es_train.restore_latest(run_path, config)
    metrics = trainer.evaluate(state, jax.random.PRNGKey(_SEED.value), episodes=_EPISODES.value)
    line = {"run": run_path, "physics": physics, "episodes": _EPISODES.value,
            "iteration": int(state.iteration), **{k: float(v) for k, v in jax.device_get(metrics).items()}}
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    app.run(main)
