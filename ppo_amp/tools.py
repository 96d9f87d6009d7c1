"""PPO+AMP's part in the tools: what `experiments.evaluate`, `export` and `sim2sim` do with a walker's run.

`evaluate` walks the deterministic policy at a held command (`command`, default the
run's `eval_command`) for `seconds` under nominal physics (`ppo_amp/evaluate.py` defines
the figures), or with `suite="robustness"` runs `ppo_amp/robustness.py`'s scenarios and
writes `<run>/robustness.json` and its chart; `heading_hold`, `actuator` and
`actuator_net` judge the policy under another command layer or actuator model. `export`
is the actor with the observation normaliser folded in (`ppo_amp/export.py`); `sim2sim`
walks the exported model in MuJoCo C on the MJCF as written (`ppo_amp/sim2sim.py`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import ml_collections

from common import envs, results, saved_run
from common.config import ConfigError
from common.pipeline import Export, Options, Record
from ppo_amp import config as ppo_config, export as ppo_export, robustness, sim2sim as mujoco_c

# The tools' flags a PPO+AMP run takes beyond every run's.
TOOL_FLAGS = frozenset({"command", "seconds", "heading_hold", "actuator", "actuator_net", "suite",
                        "latency_steps", "ppo_rollouts"})
# Where a run keeps the actuator net it trains with (the tools read it there).
ACTUATOR_NET_COPY = "actuator_net.npz"
_SUITE_EPISODES = 20
_SUITE_SECONDS = 30.0
# Lines drawn on the suite's chart: the robot plan's targets.
_SUITE_TARGETS = {"success rate": 0.7, "distance (m)": 10.0, "mean power (W)": 30.0}


def open_config(config: ml_collections.ConfigDict, run_path: str) -> ml_collections.ConfigDict:
    """A run that trained on a learned actuator is judged with its own copy of the net."""
    kept = os.path.join(run_path, ACTUATOR_NET_COPY)
    if config.task.actuator == "learned" and os.path.isfile(kept):
        config.task.actuator_net = kept
    return config


def _command(run: saved_run.SavedRun, options: Options) -> tuple[float, float, float]:
    """The command to walk at: the flag's, or the run's `eval_command`."""
    return options["command"] or tuple(float(v) for v in run.config.eval_command)


def _env_flags(run: saved_run.SavedRun, options: Options) -> dict[str, object]:
    """The task overrides of heading_hold, actuator and actuator_net."""
    out: dict[str, object] = {} if options["heading_hold"] is None else {"heading_hold": options["heading_hold"]}
    if options["actuator_net"] is not None and options["actuator"] != "learned":
        raise ConfigError("--actuator_net: goes with --actuator=learned")
    if options["actuator"] == "ideal":
        out.update(actuator="ideal", actuator_net=None)
    elif options["actuator"] == "learned":
        net = options["actuator_net"] or run.config.task.get("actuator_net")
        if net is None:
            raise ConfigError(f"--actuator=learned: {run.path!r} trained on ideal actuators; name a net file "
                              "with --actuator_net")
        out.update(actuator="learned", actuator_net=net)
    return out


def evaluate(run: saved_run.SavedRun, options: Options) -> list[Record]:
    if options["suite"] == "robustness":
        return _robustness(run, options)
    config = run.config
    command = _command(run, options)
    seconds = float(config.eval_seconds) if options["seconds"] is None else options["seconds"]
    episodes = options["episodes"] or int(config.eval_episodes)
    trainer, state = saved_run.restore(run)
    steps = round(seconds / trainer.env.dt)
    if steps < 1:
        raise ConfigError(f"--seconds: {seconds} is shorter than one policy step ({trainer.env.dt} s)")
    eval_env = trainer.make_eval_env(command, steps, **_env_flags(run, options))
    metrics = trainer.evaluate(state, jax.random.PRNGKey(options["seed"]), episodes=episodes, env=eval_env,
                               steps=steps)
    figures = {k: float(v) for k, v in jax.device_get(metrics).items()}
    figures["episodes"], figures["falls"] = int(figures["episodes"]), int(figures["falls"])
    return [{"run": run.path, "physics": run.physics, "iteration": int(state.iteration), "command": list(command),
             "heading_hold": eval_env.config.heading_hold, "actuator": eval_env.config.actuator,
             "seconds": steps * trainer.env.dt, "steps": steps, **figures}]


def _robustness(run: saved_run.SavedRun, options: Options) -> list[Record]:
    config = run.config
    command = _command(run, options)
    seconds = _SUITE_SECONDS if options["seconds"] is None else options["seconds"]
    episodes = options["episodes"] or _SUITE_EPISODES
    trainer, state = saved_run.restore(run)
    dt = trainer.env.dt
    try:
        walk_steps = robustness.walk_steps(command, dt)
    except ValueError as e:
        raise ConfigError(f"--command: {e}") from None
    suite = eqx.filter_jit(robustness.episode_sums)
    keys = jax.random.split(jax.random.PRNGKey(options["seed"]), (len(robustness.SCENARIOS), episodes))
    sums = {}
    # Two programs: every scenario but the walk at `seconds`, and the 50 m walk.
    for long in (False, True):
        idx = [i for i, s in enumerate(robustness.SCENARIOS) if (s.walk_distance is not None) == long]
        steps = walk_steps if long else max(1, round(seconds / dt))
        walk = trainer.make_eval_env(command, steps, **robustness.env_overrides(dt), **_env_flags(run, options))
        specs = tuple(robustness.SCENARIOS[i] for i in idx)
        out = suite(walk, robustness.stack(specs, walk.nominal_friction), state.actor, state.obs_stats,
                    keys[jnp.asarray(idx)], steps=steps, obs_clip=float(config.ppo.obs_clip))
        for line in robustness.summarize(out, specs, dt):
            sums[line["scenario"]] = line
    lines = [{"run": run.path, "iteration": int(state.iteration), "physics": run.physics, "command": list(command),
              "heading_hold": walk.config.heading_hold, "actuator": walk.config.actuator, **sums[s.name]}
             for s in robustness.SCENARIOS]
    results.atomic_write_json(os.path.join(run.path, "robustness.json"), lines)
    os.makedirs(os.path.join(run.path, "plots"), exist_ok=True)
    panels = {"success rate": {l["scenario"]: l["success_rate"] for l in lines},
              "distance (m)": {l["scenario"]: l["distance_m"] for l in lines},
              "mean power (W)": {l["scenario"]: l["mean_power_w"] for l in lines}}
    results.plot_bars(panels, os.path.join(run.path, "plots", "robustness.png"), targets=_SUITE_TARGETS,
                      title=f"{os.path.basename(run.path)} iteration {int(state.iteration)}, command {list(command)}")
    return lines


def export(trainer: Any, state: Any, config: ml_collections.ConfigDict) -> Export:
    graph, inputs, outputs = ppo_export.graph(state.actor, state.obs_stats, config.ppo.obs_clip)
    return Export(graph, inputs, outputs, ppo_export.metadata(trainer.env.config, trainer.env.config.load_mj_model()))


def sim2sim(run: saved_run.SavedRun, model: Callable[[], str], options: Options,
            reopen: Callable[[str | None], tuple[Any, Any]]) -> Record:
    del reopen  # the figures are MuJoCo C's alone
    path = model()
    task = envs.config_for(ppo_config.ENV, **ppo_config.env_overrides(run.config))
    command = _command(run, options)
    termination = mujoco_c.Termination(min_base_height=task.min_base_height, max_tilt=task.max_tilt,
                                       grace_steps=task.grace_steps, reset_joint_noise=task.reset_joint_noise,
                                       keyframe=task.keyframe)
    try:
        figures = mujoco_c.run(path, task.xml_path, termination, command, episodes=options["episodes"],
                               seconds=options["seconds"], seed=options["seed"],
                               latency_steps=options["latency_steps"], heading_hold=options["heading_hold"])
    except ValueError as e:
        raise ConfigError(f"--onnx: {e}") from None
    return {"run": run.path, "onnx": path, "simulator": f"MuJoCo C {task.xml_path} as written", **figures}
