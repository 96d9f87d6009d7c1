"""Render a trained run's deterministic policy to an mp4, headless.

    python -m experiments.play --run=results/es/cpu [--seconds=10] [--physics=gym]
    python -m experiments.play --run=results/ppo_amp/cpu --command=0.8,0,0.3 [--output=walk.mp4]

Loads `<run>/config.json` and the latest checkpoint (as `experiments.evaluate` does),
plays `--seconds` of one env with the policy (an episode that ends restarts), and
renders it with MuJoCo C at 640x480 from a camera that follows the robot, at the
control rate or the divisor of it nearest 30 fps (humanoid 33.3 fps, biped 25 fps). A
walker holds `--command` (default: the run's `eval_command`), drawn on every frame.
The file goes to `--output` (default `<run>/videos/play-<iteration>[-<physics>].mp4`);
the command prints one JSON line with the path, frames, fps and the clip's return.

Rendering uses EGL (`MUJOCO_GL=egl`, set by default); where it fails, one line says so
and which `MUJOCO_GL` to try. Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

import jax
from absl import flags

from common import cli, saved_run, video
from common.config import ConfigError
from experiments import pipelines

_RUN = flags.DEFINE_string("run", None, "Run directory: results_dir/<experiment>/<run_name>.", required=True)
_SECONDS = flags.DEFINE_float("seconds", 10.0, "Seconds of play to render.")
_COMMAND = flags.DEFINE_string("command", None, "PPO+AMP: 'vx,vy,wz' to walk at; default: the run's eval_command.")
_PHYSICS = flags.DEFINE_string("physics", None, "Physics profile to play under; default: the run's.")
_OUTPUT = flags.DEFINE_string("output", None, "mp4 path; default <run>/videos/play-<iteration>[-<physics>].mp4.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the episodes' initial states.")


def main(argv: Sequence[str]) -> None:
    del argv
    command = None if _COMMAND.value is None else cli.parse_command(_COMMAND.value)
    if not (math.isfinite(_SECONDS.value) and _SECONDS.value > 0):
        raise ConfigError(f"--seconds: must be a positive number, got {_SECONDS.value}")
    if _OUTPUT.value is not None and not _OUTPUT.value.endswith(".mp4"):
        raise ConfigError(f"--output: must name an .mp4 file, got {_OUTPUT.value!r}")
    run = pipelines.open_run(_RUN.value, _PHYSICS.value)
    pipelines.refuse_foreign(run.pipeline, ("command",))
    walker = "command" in run.pipeline.tool_flags
    trainer, state = saved_run.restore(run)
    iteration = int(state.iteration)
    suffix = f"-{_PHYSICS.value}" if _PHYSICS.value else ""
    output = _OUTPUT.value or os.path.join(run.path, "videos", f"play-{iteration}{suffix}.mp4")
    playback = run.pipeline.playback(trainer, state, _SECONDS.value, command)
    clip = video.record_clip(playback, jax.random.PRNGKey(_SEED.value), output)
    print(json.dumps({"run": run.path, "iteration": iteration, "physics": run.physics,
                      **({"command": list(command or run.config.eval_command)} if walker else {}),
                      **clip}), flush=True)


if __name__ == "__main__":
    cli.run(main)
