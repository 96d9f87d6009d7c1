"""The PPO+AMP pipeline's hooks in the shared host loop: `host_loop.run(config, hooks.PIPELINE)`.

PPO+AMP's parts of the loop: the compile shape (envs, rollout length, AMP on or off), an
iteration's line (episode return and length, tracking error, discriminator accuracy,
evaluated falls and tracking error), the return, tracking and discriminator plots, the
walker at a held command for videos, and `final_eval` and `late_disc_accuracy` in the
summary. Evaluation metrics go into the records prefixed `eval_`. A resumed run
continues exactly: the checkpoint holds networks, optimizers, discriminator, replay
buffer, normalisers, reward scaling, every env's state and the curriculum level.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from common import host_loop, results
from common.envs.biped import config as biped_config
from ppo_amp import benchmark, config as ppo_config, fields, tools
from ppo_amp.trainer import Trainer

EXPERIMENT = "ppo_amp"
_DISC_FIGURES = ("disc_accuracy", "disc_accuracy_reference", "disc_accuracy_policy", "style_reward")


def _eval_record(metrics: dict[str, float]) -> dict[str, float]:
    return {f"eval_{k}" if not k.startswith("eval_") else k: v for k, v in metrics.items()}


def _late_mean(records: Sequence[dict[str, Any]], keys: tuple[str, ...],
               fraction: float = 0.25) -> dict[str, float] | None:
    """Means of `keys` over the last `fraction` of the iterations logged (None without them)."""
    rows = [r for r in records if all(k in r for k in keys)]
    if not rows:
        return None
    late = rows[-max(1, int(len(rows) * fraction)):]
    return {k: float(np.mean([r[k] for r in late])) for k in keys} | {"iterations": len(late)}


def _compile_shape(config: ml_collections.ConfigDict, trainer: Trainer) -> dict[str, Any]:
    del trainer
    return {"num_envs": config.num_envs, "rollout_length": config.rollout_length, "amp": config.amp.enabled}


def _banner(config: ml_collections.ConfigDict, trainer: Trainer) -> str:
    return "PPO%s: %d envs x %d steps per iteration, %d device(s)" % (
        "+AMP" if trainer.amp_enabled else "", config.num_envs, config.rollout_length, jax.device_count())


def _progress(record: dict[str, Any]) -> str:
    disc = (f"{record['disc_accuracy']:.2f} ({record['disc_accuracy_reference']:.2f} ref/"
            f"{record['disc_accuracy_policy']:.2f} pol)" if "disc_accuracy_reference" in record else "-")
    evaluated = (f"eval falls {record['eval_falls']:.0f}/{record['eval_episodes']:.0f} "
                 f"mae {record['eval_tracking_mae']:.3f} | ") if "eval_falls" in record else ""
    return "return %.2f length %.0f | track err %.3f | disc acc %s | %s" % (
        record["episode_return"], record["episode_length"], record["tracking_error"], disc, evaluated)


def _plot(run_dir: results.RunDir, trainer: Trainer) -> None:
    run_dir.plot("env_steps", ["episode_return", "eval_return"], "learning_curve.png",
                 title=f"PPO+AMP {run_dir.path}: returns")
    run_dir.plot("env_steps", ["tracking_error", "eval_tracking_mae"], "tracking.png", title="velocity tracking (m/s)")
    if trainer.amp_enabled:
        run_dir.plot("env_steps", _DISC_FIGURES, "discriminator.png", title="AMP discriminator")


def _summary_fields(records: Sequence[dict[str, Any]], last_eval: dict[str, Any] | None) -> dict[str, Any]:
    return {"final_eval": last_eval, "late_disc_accuracy": _late_mean(records, _DISC_FIGURES)}


def _keep_inputs(config: ml_collections.ConfigDict, run_path: str) -> dict[str, Any]:
    if config.task.actuator != "learned":
        return {}
    return {"actuator_net": results.keep_input(run_path, "task.actuator_net", config.task.actuator_net,
                                               tools.ACTUATOR_NET_COPY)}


PIPELINE = host_loop.Pipeline(
    experiment=EXPERIMENT,
    title="PPO+AMP",
    env=ppo_config.ENV,
    config_file="configs/ppo_amp.py",
    defaults=fields.fields,
    profiles=tuple(biped_config.PROFILES),
    physics_overrides=ppo_config.PHYSICS_OVERRIDES,
    validate=ppo_config.validate,
    make_trainer=Trainer,
    train=host_loop.run,
    export=tools.export,
    tool_flags=tools.TOOL_FLAGS,
    evaluate=tools.evaluate,
    sim2sim=tools.sim2sim,
    benchmark=benchmark.lines,
    open_config=tools.open_config,
    compile_shape=_compile_shape,
    banner=_banner,
    progress=_progress,
    plot=_plot,
    playback=Trainer.playback,
    eval_fields=_eval_record,
    summary_fields=_summary_fields,
    keep_inputs=_keep_inputs,
)
