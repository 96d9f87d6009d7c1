"""Roll out a trained run's deterministic policy and print one JSON line.

    python -m experiments.evaluate --run=results/es/cpu --physics=gym --episodes=10
    python -m experiments.evaluate --run=results/ppo_amp/cpu --command=0.5,0,0 --episodes=20 --seconds=10

Loads `<run>/config.json` and the latest checkpoint; the run's pipeline is the folder
above it (`experiments.pipelines`), whose `evaluate` makes the lines. `--physics` swaps the physics profile (the
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
scenario and writes `<run>/robustness.json` and `<run>/plots/robustness.png`
(ppo_amp/tools.py).

PPO+AMP runs also take `--heading_hold=K` (the command layer's heading hold, 1/s; default
the run's) and `--actuator=ideal|learned [--actuator_net=<file>]` (judge the policy under
the other actuator model; a run that trained on learned actuators uses its own copy of
the net by default).

Bad input (a malformed flag, a flag the run's pipeline does not take, a folder that is
not a run, a run with no checkpoint) ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

from absl import flags

from common import cli
from common.config import ConfigError
from experiments import pipelines

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

# The flags some pipelines' runs take and others refuse (`Pipeline.tool_flags`).
_RUN_FLAGS = ("command", "seconds", "heading_hold", "actuator", "actuator_net", "suite")


def main(argv: Sequence[str]) -> None:
    del argv
    # The flags' own syntax first: a typo costs no model build.
    command = None if _COMMAND.value is None else cli.parse_command(_COMMAND.value)
    if _SECONDS.value is not None and not (math.isfinite(_SECONDS.value) and _SECONDS.value > 0):
        raise ConfigError(f"--seconds: must be a positive number, got {_SECONDS.value}")
    if _HEADING.value is not None and not (math.isfinite(_HEADING.value) and _HEADING.value >= 0):
        raise ConfigError(f"--heading_hold: must be a finite number >= 0 (1/s; 0 = off), got {_HEADING.value}")
    if _EPISODES.value is not None and _EPISODES.value < 1:
        raise ConfigError(f"--episodes: must be a positive integer, got {_EPISODES.value}")
    run = pipelines.open_run(_RUN.value, _PHYSICS.value)
    pipelines.refuse_foreign(run.pipeline, _RUN_FLAGS)
    options = pipelines.options(run.pipeline, _RUN_FLAGS, {"command": command}, episodes=_EPISODES.value,
                                seed=_SEED.value)
    for line in run.pipeline.evaluate(run, options):
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    cli.run(main)
