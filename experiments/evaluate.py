"""Roll out a trained run's deterministic policy and print one JSON line.

    python -m experiments.evaluate --run=results/es/cpu --physics=gym --episodes=10
    python -m experiments.evaluate --run=results/ppo_amp/cpu --command=0.5,0,0 --episodes=20 --seconds=10

Loads `<run>/config.json` and the latest checkpoint; the experiment (`es` or `ppo_amp`)
is the name of the folder above the run. `--physics` swaps the physics profile (the
observation, reward and termination are the same in every profile): the humanoid's
profiles for ES runs, the biped's (common/envs/biped/config.py PROFILES) for PPO+AMP. The
named profile runs as defined: the run's own solver, integrator and contact overrides
are dropped.

ES runs print `eval_return` and `eval_length` (means over episodes; `--episodes`
defaults to 10).

PPO+AMP runs walk at a fixed command `--command=vx,vy,wz` (m/s, m/s, rad/s; default the
run's `eval_command`) for `--seconds` (default the run's `eval_seconds`; rounded to whole
policy steps) under nominal physics, with `--episodes` defaulting to the run's
`eval_episodes`. The line carries `episodes`, `falls`, `tracking_mae`,
`tracking_mae_instant`, `mean_speed`, `mean_abs_torque`, `energy_per_meter`,
`eval_return`, `eval_length` (defined in ppo_amp/evaluate.py) and `run`, `iteration`,
`physics`, `command`, `seconds`, `steps`.

Bad input (a malformed flag, a folder that is not a run, a run with no checkpoint)
ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

import jax
import ml_collections
from absl import flags

from common import cli, host_loop, robots
from common.checkpoint import CheckpointError
from common.config import ConfigError, under_profile, with_defaults
from common.envs.biped import config as biped_config
from configs import es as es_defaults, ppo_amp as ppo_defaults
from humanoid_es import config as es_config, hooks as es_hooks
from ppo_amp import config as ppo_config, hooks as ppo_hooks

_RUN = flags.DEFINE_string("run", None, "Run directory: results_dir/<experiment>/<run_name>.", required=True)
_PHYSICS = flags.DEFINE_string("physics", None, "Physics profile to evaluate under; default: the run's.")
_EPISODES = flags.DEFINE_integer("episodes", None, "Episodes to roll out; default 10 (ES), eval_episodes (PPO+AMP).")
_SEED = flags.DEFINE_integer("seed", 12345, "Seed of the evaluation episodes.")
_COMMAND = flags.DEFINE_string("command", None, "PPO+AMP: 'vx,vy,wz' to walk at; default: the run's eval_command.")
_SECONDS = flags.DEFINE_float("seconds", None, "PPO+AMP: seconds per episode; default: the run's eval_seconds.")

_ES_EPISODES = 10


def load_run_config(run_path: str) -> ml_collections.ConfigDict:
    path = os.path.join(run_path, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"--run: {run_path!r} has no config.json (not a run directory)")
    try:
        with open(path) as f:
            return ml_collections.ConfigDict(json.load(f))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"--run: {path} is unreadable ({e})") from None


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


def _check_checkpoint(run_path: str) -> None:
    # Checked here so that a run with none is reported without creating anything in it.
    if not os.path.isdir(os.path.join(run_path, "checkpoints")):
        raise CheckpointError(f"--run: {run_path!r} has no checkpoints/ (the run never saved one)")


def _evaluate_es(run_path: str, config: ml_collections.ConfigDict) -> dict:
    for flag in (_COMMAND, _SECONDS):
        if flag.present:
            raise ConfigError(f"--{flag.name}: only PPO+AMP runs take --command and --seconds; "
                              f"{run_path!r} is an ES run")
    physics = _PHYSICS.value or config.physics
    if physics not in robots.PROFILES:
        raise ConfigError(f"--physics: must be one of {sorted(robots.PROFILES)}, got {physics!r}")
    episodes = _ES_EPISODES if _EPISODES.value is None else _EPISODES.value
    config = under_profile(with_defaults(config, es_defaults.get_config()), _PHYSICS.value, es_config.PHYSICS_OVERRIDES)
    es_config.validate(config)
    _check_checkpoint(run_path)
    trainer, state = host_loop.restore_latest(run_path, config, es_hooks.PIPELINE)
    metrics = trainer.evaluate(state, jax.random.PRNGKey(_SEED.value), episodes=episodes)
    return {"run": run_path, "physics": physics, "episodes": episodes,
            "iteration": int(state.iteration), **{k: float(v) for k, v in jax.device_get(metrics).items()}}


def _evaluate_ppo_amp(run_path: str, config: ml_collections.ConfigDict, command) -> dict:
    physics = _PHYSICS.value or config.physics
    if physics not in biped_config.PROFILES:
        raise ConfigError(f"--physics: a PPO+AMP run needs a biped profile, one of {sorted(biped_config.PROFILES)}, "
                          f"got {physics!r}")
    config = under_profile(with_defaults(config, ppo_defaults.get_config()), _PHYSICS.value, ppo_config.PHYSICS_OVERRIDES)
    ppo_config.validate(config)
    command = tuple(float(v) for v in config.eval_command) if command is None else command
    seconds = float(config.eval_seconds) if _SECONDS.value is None else _SECONDS.value
    episodes = int(config.eval_episodes) if _EPISODES.value is None else _EPISODES.value
    _check_checkpoint(run_path)
    trainer, state = host_loop.restore_latest(run_path, config, ppo_hooks.PIPELINE)
    steps = round(seconds / trainer.env.dt)
    if steps < 1:
        raise ConfigError(f"--seconds: {seconds} is shorter than one policy step ({trainer.env.dt} s)")
    eval_env = trainer.make_eval_env(command, steps)
    metrics = trainer.evaluate(state, jax.random.PRNGKey(_SEED.value), episodes=episodes, env=eval_env, steps=steps)
    figures = {k: float(v) for k, v in jax.device_get(metrics).items()}
    figures["episodes"], figures["falls"] = int(figures["episodes"]), int(figures["falls"])
    return {"run": run_path, "physics": physics, "iteration": int(state.iteration), "command": list(command),
            "seconds": steps * trainer.env.dt, "steps": steps, **figures}


def main(argv: Sequence[str]) -> None:
    del argv
    # The flags' own syntax first: a typo costs no model build.
    command = None if _COMMAND.value is None else parse_command(_COMMAND.value)
    if _SECONDS.value is not None and not (math.isfinite(_SECONDS.value) and _SECONDS.value > 0):
        raise ConfigError(f"--seconds: must be a positive number, got {_SECONDS.value}")
    if _EPISODES.value is not None and _EPISODES.value < 1:
        raise ConfigError(f"--episodes: must be a positive integer, got {_EPISODES.value}")
    run_path = os.path.normpath(_RUN.value)
    config = load_run_config(run_path)
    experiment = os.path.basename(os.path.dirname(os.path.abspath(run_path)))
    if experiment == es_hooks.EXPERIMENT:
        line = _evaluate_es(run_path, config)
    elif experiment == ppo_hooks.EXPERIMENT:
        line = _evaluate_ppo_amp(run_path, config, command)
    else:
        raise ConfigError(f"--run: {run_path!r} is under {experiment!r}, not an "
                          f"'{es_hooks.EXPERIMENT}' or '{ppo_hooks.EXPERIMENT}' results directory")
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    cli.run(main)
