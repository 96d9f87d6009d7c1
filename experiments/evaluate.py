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

`--suite=robustness` (PPO+AMP runs) runs the scenarios of ppo_amp/robustness.py at the
command (`--episodes` each, default 20; `--seconds` each, default 30; the 50 m walk as long
as it takes at the command, +20%) in two compiled programs, prints one JSON line per
scenario and writes `<run>/robustness.json` and `<run>/plots/robustness.png`.

PPO+AMP runs also take `--heading_hold=K` (the command layer's heading hold, 1/s; default
the run's) and `--actuator=ideal|learned [--actuator_net=<file>]` (judge the policy under
the other actuator model; a run that trained on learned actuators uses its own copy of
the net by default).

Bad input (a malformed flag, a folder that is not a run, a run with no checkpoint)
ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from absl import flags

from common import cli, results
from common.config import ConfigError
from experiments import saved_run
from ppo_amp import robustness

_RUN = flags.DEFINE_string("run", None, "Run directory: results_dir/<experiment>/<run_name>.", required=True)
_PHYSICS = flags.DEFINE_string("physics", None, "Physics profile to evaluate under; default: the run's.")
_EPISODES = flags.DEFINE_integer("episodes", None, "Episodes to roll out; default 10 (ES), eval_episodes (PPO+AMP).")
_SEED = flags.DEFINE_integer("seed", 12345, "Seed of the evaluation episodes.")
_COMMAND = flags.DEFINE_string("command", None, "PPO+AMP: 'vx,vy,wz' to walk at; default: the run's eval_command.")
_SECONDS = flags.DEFINE_float("seconds", None, "PPO+AMP: seconds per episode; default: the run's eval_seconds "
                               "(the robustness suite: 30).")
_HEADING = flags.DEFINE_float("heading_hold", None, "PPO+AMP: the command layer's heading hold (1/s, 0 = off; "
                               "common/envs/biped/config.py); default: the run's task.heading_hold.")
_ACTUATOR = flags.DEFINE_enum("actuator", None, ["ideal", "learned"], "PPO+AMP: the actuators to judge the policy "
                               "under; default: the run's task.actuator.")
_ACTUATOR_NET = flags.DEFINE_string("actuator_net", None, "PPO+AMP, with --actuator=learned: the actuator net file "
                                    "(experiments.actuator train); default: the run's own.")
_SUITE = flags.DEFINE_enum("suite", None, ["robustness"], "PPO+AMP: run a suite of scenarios instead.")

_ES_EPISODES = 10
_SUITE_EPISODES = 20
_SUITE_SECONDS = 30.0
# Lines drawn on the suite's chart: the robot plan's targets.
_SUITE_TARGETS = {"success rate": 0.7, "distance (m)": 10.0, "mean power (W)": 30.0}


def _env_flags(run: saved_run.SavedRun) -> dict[str, object]:
    """The task overrides of --heading_hold, --actuator and --actuator_net."""
    out: dict[str, object] = {} if _HEADING.value is None else {"heading_hold": _HEADING.value}
    if _ACTUATOR_NET.value is not None and _ACTUATOR.value != "learned":
        raise ConfigError("--actuator_net: goes with --actuator=learned")
    if _ACTUATOR.value == "ideal":
        out.update(actuator="ideal", actuator_net=None)
    elif _ACTUATOR.value == "learned":
        net = _ACTUATOR_NET.value or run.config.task.get("actuator_net")
        if net is None:
            raise ConfigError(f"--actuator=learned: {run.path!r} trained on ideal actuators; name a net file "
                              "with --actuator_net")
        out.update(actuator="learned", actuator_net=net)
    return out


def _evaluate_es(run: saved_run.SavedRun) -> dict:
    for flag in (_COMMAND, _SECONDS, _HEADING, _ACTUATOR, _ACTUATOR_NET):
        if flag.present:
            raise ConfigError(f"--{flag.name}: only PPO+AMP runs take --command, --seconds, --heading_hold and "
                              f"--actuator; "
                              f"{run.path!r} is an ES run")
    episodes = _ES_EPISODES if _EPISODES.value is None else _EPISODES.value
    trainer, state = saved_run.restore(run)
    metrics = trainer.evaluate(state, jax.random.PRNGKey(_SEED.value), episodes=episodes)
    return {"run": run.path, "physics": run.physics, "episodes": episodes,
            "iteration": int(state.iteration), **{k: float(v) for k, v in jax.device_get(metrics).items()}}


def _evaluate_ppo_amp(run: saved_run.SavedRun, command) -> dict:
    config = run.config
    command = tuple(float(v) for v in config.eval_command) if command is None else command
    seconds = float(config.eval_seconds) if _SECONDS.value is None else _SECONDS.value
    episodes = int(config.eval_episodes) if _EPISODES.value is None else _EPISODES.value
    trainer, state = saved_run.restore(run)
    steps = round(seconds / trainer.env.dt)
    if steps < 1:
        raise ConfigError(f"--seconds: {seconds} is shorter than one policy step ({trainer.env.dt} s)")
    eval_env = trainer.make_eval_env(command, steps, **_env_flags(run))
    metrics = trainer.evaluate(state, jax.random.PRNGKey(_SEED.value), episodes=episodes, env=eval_env, steps=steps)
    figures = {k: float(v) for k, v in jax.device_get(metrics).items()}
    figures["episodes"], figures["falls"] = int(figures["episodes"]), int(figures["falls"])
    return {"run": run.path, "physics": run.physics, "iteration": int(state.iteration), "command": list(command),
            "heading_hold": eval_env.config.heading_hold, "actuator": eval_env.config.actuator, "seconds": steps * trainer.env.dt, "steps": steps, **figures}


def _robustness(run: saved_run.SavedRun, command) -> list[dict]:
    config = run.config
    command = tuple(float(v) for v in config.eval_command) if command is None else command
    seconds = _SUITE_SECONDS if _SECONDS.value is None else _SECONDS.value
    episodes = _SUITE_EPISODES if _EPISODES.value is None else _EPISODES.value
    trainer, state = saved_run.restore(run)
    dt = trainer.env.dt
    try:
        walk_steps = robustness.walk_steps(command, dt)
    except ValueError as e:
        raise ConfigError(f"--command: {e}") from None
    suite = eqx.filter_jit(robustness.episode_sums)
    keys = jax.random.split(jax.random.PRNGKey(_SEED.value), (len(robustness.SCENARIOS), episodes))
    sums = {}
    # Two programs: every scenario but the walk at `--seconds`, and the 50 m walk.
    for long in (False, True):
        idx = [i for i, s in enumerate(robustness.SCENARIOS) if (s.walk_distance is not None) == long]
        steps = walk_steps if long else max(1, round(seconds / dt))
        walk = trainer.make_eval_env(command, steps, **robustness.env_overrides(dt), **_env_flags(run))
        specs = tuple(robustness.SCENARIOS[i] for i in idx)
        out = suite(walk, robustness.stack(specs, walk.nominal_friction), state.actor, state.obs_stats,
                    keys[jnp.asarray(idx)], steps=steps, obs_clip=float(config.ppo.obs_clip))
        for line in robustness.summarize(out, specs, dt):
            sums[line["scenario"]] = line
    lines = [{"run": run.path, "iteration": int(state.iteration), "physics": run.physics, "command": list(command),
              "heading_hold": walk.config.heading_hold, "actuator": walk.config.actuator, **sums[s.name]} for s in robustness.SCENARIOS]
    results.atomic_write_json(os.path.join(run.path, "robustness.json"), lines)
    os.makedirs(os.path.join(run.path, "plots"), exist_ok=True)
    panels = {"success rate": {l["scenario"]: l["success_rate"] for l in lines},
              "distance (m)": {l["scenario"]: l["distance_m"] for l in lines},
              "mean power (W)": {l["scenario"]: l["mean_power_w"] for l in lines}}
    results.plot_bars(panels, os.path.join(run.path, "plots", "robustness.png"), targets=_SUITE_TARGETS,
                      title=f"{os.path.basename(run.path)} iteration {int(state.iteration)}, command {list(command)}")
    return lines


def main(argv: Sequence[str]) -> None:
    del argv
    # The flags' own syntax first: a typo costs no model build.
    command = None if _COMMAND.value is None else saved_run.parse_command(_COMMAND.value)
    if _SECONDS.value is not None and not (math.isfinite(_SECONDS.value) and _SECONDS.value > 0):
        raise ConfigError(f"--seconds: must be a positive number, got {_SECONDS.value}")
    if _HEADING.value is not None and not (math.isfinite(_HEADING.value) and _HEADING.value >= 0):
        raise ConfigError(f"--heading_hold: must be a finite number >= 0 (1/s; 0 = off), got {_HEADING.value}")
    if _EPISODES.value is not None and _EPISODES.value < 1:
        raise ConfigError(f"--episodes: must be a positive integer, got {_EPISODES.value}")
    run = saved_run.open_run(_RUN.value, _PHYSICS.value)
    if _SUITE.value is not None:
        if not run.is_walker:
            raise ConfigError(f"--suite: the robustness suite is for PPO+AMP runs; {run.path!r} is an ES run")
        for line in _robustness(run, command):
            print(json.dumps(line), flush=True)
        return
    line = _evaluate_ppo_amp(run, command) if run.is_walker else _evaluate_es(run)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    cli.run(main)
