"""Run an exported policy in another simulator and print one JSON line.

    python -m experiments.sim2sim --run=results/ppo_amp/cpu --episodes=20 --seconds=60 --command=0.5,0,0
    python -m experiments.sim2sim --run=results/es/cpu --gymnasium --episodes=20

The file tested is the run's ONNX export (`--onnx`, default `<run>/export/policy.onnx`,
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

import numpy as np
from absl import flags

from common import cli, envs, gymnasium_episodes, onnx_export
from common.config import ConfigError, fingerprint, to_dict
from common.results import RESUMABLE_FIELDS
from experiments import saved_run
from ppo_amp import config as ppo_config, sim2sim

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


def _model_path(run: saved_run.SavedRun) -> str:
    path = _ONNX.value or os.path.join(run.path, "export", "policy.onnx")
    if not os.path.isfile(path):
        raise ConfigError(f"--onnx: {path!r} does not exist; write it with "
                          f"`python -m experiments.export --run={run.path}`")
    meta = onnx_export.read_metadata(path)
    expected = fingerprint(to_dict(saved_run.load_run_config(run.path)), RESUMABLE_FIELDS)
    if meta.get("config_hash") != expected:
        raise ConfigError(f"--onnx: {path!r} was exported from another run (config hash "
                          f"{meta.get('config_hash')!r}, this run's {expected!r})")
    return path


def _biped(run: saved_run.SavedRun, path: str) -> dict:
    task = envs.config_for(ppo_config.ENV, **ppo_config.env_overrides(run.config))
    command = saved_run.parse_command(_COMMAND.value) if _COMMAND.value else tuple(run.config.eval_command)
    termination = sim2sim.Termination(min_base_height=task.min_base_height, max_tilt=task.max_tilt,
                                      grace_steps=task.grace_steps, reset_joint_noise=task.reset_joint_noise,
                                      keyframe=task.keyframe)
    try:
        figures = sim2sim.run(path, task.xml_path, termination, command, episodes=_EPISODES.value,
                              seconds=_SECONDS.value, seed=_SEED.value, latency_steps=_LATENCY.value,
                              heading_hold=_HEADING.value)
    except ValueError as e:
        raise ConfigError(f"--onnx: {e}") from None
    return {"run": run.path, "onnx": path, "simulator": f"MuJoCo C {task.xml_path} as written", **figures}


def _humanoid(run: saved_run.SavedRun, path: str) -> dict:
    import jax  # the MJX reference figure only

    policy = onnx_export.session(path, threads=1)
    size = int(onnx_export.read_metadata(path)["reservoir_size"])
    env = gymnasium_episodes.make()
    returns, lengths = [], []
    for i in range(_EPISODES.value):
        h = np.zeros((1, size), np.float32)

        def act(obs):
            nonlocal h
            action, h = policy.run(["action", "h_next"], {"obs": obs[None].astype(np.float32), "h": h})
            return action[0].astype(np.float64)

        ret, steps = gymnasium_episodes.episode(env, act, seed=_SEED.value + i)
        returns.append(ret)
        lengths.append(steps)
    reference = saved_run.open_run(run.path, "gym" if _REFERENCE.value == "gym" else None)
    trainer, state = saved_run.restore(reference)
    mjx = jax.device_get(trainer.evaluate(state, jax.random.PRNGKey(_SEED.value), episodes=_EPISODES.value))
    gym_return, mjx_return = float(np.mean(returns)), float(mjx["eval_return"])
    return {"run": run.path, "onnx": path, "simulator": f"gymnasium {gymnasium_episodes.HUMANOID}",
            "episodes": _EPISODES.value, "gymnasium_return": gym_return, "gymnasium_return_std": float(np.std(returns)),
            "gymnasium_length": float(np.mean(lengths)),
            "gymnasium_full_episodes": sum(steps >= env.spec.max_episode_steps for steps in lengths),
            "mjx_physics": reference.physics, "mjx_return": mjx_return, "mjx_length": float(mjx["eval_length"]),
            "mjx_full_episodes": int(mjx["eval_full_episodes"]),
            "ratio": gym_return / mjx_return if mjx_return else None, "iteration": int(state.iteration)}


def main(argv: Sequence[str]) -> None:
    del argv
    if _EPISODES.value < 1:
        raise ConfigError(f"--episodes: must be a positive integer, got {_EPISODES.value}")
    if not _SECONDS.value > 0:
        raise ConfigError(f"--seconds: must be a positive number, got {_SECONDS.value}")
    if _LATENCY.value < 0:
        raise ConfigError(f"--latency_steps: must be an integer >= 0, got {_LATENCY.value}")
    if _COMMAND.value:
        saved_run.parse_command(_COMMAND.value)
    run = saved_run.open_run(_RUN.value)
    if run.is_walker and _GYMNASIUM.value:
        raise ConfigError("--gymnasium: only ES runs are checked in Gymnasium's Humanoid-v4; a PPO+AMP run "
                          "runs in MuJoCo C without the flag")
    if not run.is_walker and not _GYMNASIUM.value:
        raise ConfigError("--gymnasium: an ES run is checked in Gymnasium's Humanoid-v4; pass --gymnasium")
    if _HEADING.value is not None and not (math.isfinite(_HEADING.value) and _HEADING.value >= 0):
        raise ConfigError(f"--heading_hold: must be a finite number >= 0 (1/s; 0 = off), got {_HEADING.value}")
    for flag in (_COMMAND, _LATENCY, _SECONDS, _HEADING):
        if flag.present and not run.is_walker:
            raise ConfigError(f"--{flag.name}: only PPO+AMP runs take it; {run.path!r} is an ES run")
    path = _model_path(run)
    line = _biped(run, path) if run.is_walker else _humanoid(run, path)
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    cli.run(main)
