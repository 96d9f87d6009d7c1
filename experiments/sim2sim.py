"""Run an exported policy in another simulator and print one JSON line.

    python -m experiments.sim2sim --run=results/ppo_amp/cpu --episodes=20 --seconds=60 --command=0.5,0,0
    python -m experiments.sim2sim --run=results/es/cpu --gymnasium --episodes=20

What runs is the run's pipeline's (`Pipeline.sim2sim`, in ppo_amp/tools.py and
humanoid_es/tools.py). The file tested is the run's ONNX export (`--onnx`, default `<run>/export/policy.onnx`,
written by `python -m experiments.export --run=<run>`), so a mismatch between the export
and training shows up here.

PPO+AMP runs: the biped's MJCF as written, in MuJoCo C (`ppo_amp/sim2sim.py`: all its
contacts, its own integrator and solver; policy at the export's control rate over its
physics rate, each action held; the observation built by `ppo_amp/firmware.py` from the
model's metadata alone), at `--command` for `--seconds`, with actions `--latency_steps`
control steps late. The line carries episodes, falls, success_rate, distance_m (net, per
episode), tracking_mae (as `experiments.evaluate` defines it), mean_speed, mean_power_w.

ES runs with `--gymnasium`: Gymnasium's own Humanoid-v4 (its XML and solver; episodes of
at most 1000 steps), the reservoir state fed back through the model; the line carries the
mean return and length there and the episodes that lived all 1000 steps
(`gymnasium_full_episodes`), and beside them MJX's evaluation of the run's latest
checkpoint on as many episodes (`mjx_return`, `mjx_length`, `mjx_full_episodes`, under
`mjx_physics`) with their ratio. `--reference=gym` (default) evaluates under the `gym`
profile, Gymnasium's own physics, so the ratio checks the export and the simulator;
`--reference=own` under the run's training physics (its profile and its own overrides),
as `experiments.evaluate` does at the same `--seed` and `--episodes` (far cheaper on a
CPU), so the ratio is how much of its return the policy keeps in Gymnasium.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

from absl import flags

from common import cli, onnx_export, saved_run
from common.config import ConfigError, fingerprint, to_dict
from common.results import RESUMABLE_FIELDS
from experiments import pipelines

_RUN = flags.DEFINE_string("run", None, "Run directory: results_dir/<experiment>/<run_name>.", required=True)
_ONNX = flags.DEFINE_string("onnx", None, "The exported policy; default <run>/export/policy.onnx.")
_EPISODES = flags.DEFINE_integer("episodes", 20, "Episodes to run.")
_SECONDS = flags.DEFINE_float("seconds", 60.0, "PPO+AMP: seconds per episode.")
_COMMAND = flags.DEFINE_string("command", None, "PPO+AMP: 'vx,vy,wz' to walk at; default: the run's eval_command.")
_LATENCY = flags.DEFINE_integer("latency_steps", 0, "PPO+AMP: control steps between an action and its servos.")
_HEADING = flags.DEFINE_float("heading_hold", None, "PPO+AMP: the command layer's heading hold (1/s, 0 = off); "
                              "default: the export's (as the run trained).")
_GYMNASIUM = flags.DEFINE_bool("gymnasium", False, "ES: run in Gymnasium's Humanoid-v4.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the episodes' starts.")
_REFERENCE = flags.DEFINE_enum("reference", "gym", ["gym", "own"], "ES: MJX's evaluation beside Gymnasium's, "
                               "under the `gym` profile or the run's own training physics.")

# The flags some pipelines' runs take and others refuse (`Pipeline.tool_flags`).
_RUN_FLAGS = ("seconds", "command", "latency_steps", "heading_hold", "gymnasium", "reference")


def _model_path(run: saved_run.SavedRun) -> str:
    path = _ONNX.value or os.path.join(run.path, "export", "policy.onnx")
    if not os.path.isfile(path):
        raise ConfigError(f"--onnx: {path!r} does not exist; write it with "
                          f"`python -m experiments.export --run={run.path}`")
    meta = onnx_export.read_metadata(path)
    expected = fingerprint(to_dict(saved_run.load_config(run.path)), RESUMABLE_FIELDS)
    if meta.get("config_hash") != expected:
        raise ConfigError(f"--onnx: {path!r} was exported from another run (config hash "
                          f"{meta.get('config_hash')!r}, this run's {expected!r})")
    return path


def main(argv: Sequence[str]) -> None:
    del argv
    if _EPISODES.value < 1:
        raise ConfigError(f"--episodes: must be a positive integer, got {_EPISODES.value}")
    if not _SECONDS.value > 0:
        raise ConfigError(f"--seconds: must be a positive number, got {_SECONDS.value}")
    if _LATENCY.value < 0:
        raise ConfigError(f"--latency_steps: must be an integer >= 0, got {_LATENCY.value}")
    command = cli.parse_command(_COMMAND.value) if _COMMAND.value else None
    if _HEADING.value is not None and not (math.isfinite(_HEADING.value) and _HEADING.value >= 0):
        raise ConfigError(f"--heading_hold: must be a finite number >= 0 (1/s; 0 = off), got {_HEADING.value}")
    run = pipelines.open_run(_RUN.value)
    pipelines.refuse_foreign(run.pipeline, _RUN_FLAGS)
    options = pipelines.options(run.pipeline, _RUN_FLAGS, {"command": command}, episodes=_EPISODES.value,
                                seed=_SEED.value)
    line = run.pipeline.sim2sim(run, lambda: _model_path(run), options,
                                lambda physics: saved_run.restore(pipelines.open_run(run.path, physics)))
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    cli.run(main)
