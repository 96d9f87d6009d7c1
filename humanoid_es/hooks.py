"""The ES pipeline's hooks in the shared host loop: `host_loop.run(config, hooks.PIPELINE)`.

ES's parts of the loop: the compile shape (population, chunk, parameter count), an
iteration's line (training fitness, episode length, eval return), the learning curve
(fitness and eval return), the reward terms, velocity and episode-length plots, the
policy for videos, `final_eval_length` and `final_eval_full_episodes` in the summary, and
a fresh run's start from another run (`init_from`). Evaluation metrics go into the
records under their own names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import jax
import ml_collections
from absl import logging

from common import config as config_lib, host_loop, results, robots
from common.checkpoint import CheckpointError
from common.config import ConfigError
from humanoid_es import benchmark, config as es_config, fields, starts, tools
from humanoid_es.trainer import Trainer

EXPERIMENT = "es"
# ARS's median evaluation return over its 26 Humanoid-v1 logs (github.com/modestyachts/ARS,
# trained_policies/Humanoid-v1 at commit 81736fa; each log's last evaluation at or before
# the budget): the bar ES must reach.
ARS_MEDIAN = ((0.25e6, 287.5), (0.5e6, 318.8), (1e6, 393.1), (2e6, 488.4), (3e6, 580.6), (4e6, 666.7),
              (5e6, 702.2), (10e6, 877.9), (12e6, 959.2))
# Humanoid counts as solved at 6,000 in the ES literature; ARS's 26 logs first reach it
# between 16.5M and 292M env steps, about 35M for the median seed.
SOLVED = 6000.0
ARS_SOLVED_STEPS = (("ARS's first seed at 6,000 (16.5M)", 16.5e6), ("ARS's median seed at 6,000 (~35M)", 35e6))


def _compile_shape(config: ml_collections.ConfigDict, trainer: Trainer) -> dict[str, Any]:
    return {"pairs": config.pairs, "candidate_chunk": config.candidate_chunk, "params": trainer.num_params,
            "early_exit_block": config.early_exit_block}


def _banner(config: ml_collections.ConfigDict, trainer: Trainer) -> str:
    return "ES: %d candidates x %d params, chunks of %d, horizon %d, %d device(s)" % (
        trainer.population, trainer.num_params, config.candidate_chunk, config.horizon, jax.device_count())


def _progress(record: dict[str, Any]) -> str:
    evaluated = ""
    if "eval_return" in record:
        evaluated = (f"eval {record['eval_return']:.1f} over {record['eval_length']:.0f} steps at "
                     f"{record['eval_x_velocity_mean']:+.2f} m/s | ")
    return "fitness mean %.1f max %.1f | length %.0f | %s" % (
        record["fitness_mean"], record["fitness_max"], record["episode_length_mean"], evaluated)


def _plot(run_dir: results.RunDir, trainer: Trainer) -> None:
    del trainer
    run_dir.plot("env_steps", ["fitness_mean", "eval_return"], "learning_curve.png",
                 title=f"ES {run_dir.path}: fitness and eval return",
                 reference=("ARS median (Humanoid-v1)", ARS_MEDIAN),
                 hlines=(("solved (6,000)", SOLVED),), vlines=ARS_SOLVED_STEPS)
    run_dir.plot("env_steps", ["eval_length"], "episode_length.png",
                 title=f"ES {run_dir.path}: evaluation episode length (1,000 = the time limit)")
    # Whether the policy lunges (forward up, healthy flat), stands (healthy up, forward
    # flat) or walks (both up): the reward terms per candidate episode.
    run_dir.plot("env_steps", ["reward/forward", "reward/healthy", "reward/ctrl"], "reward_terms.png",
                 title=f"ES {run_dir.path}: reward terms per episode")
    run_dir.plot("env_steps", ["eval_x_velocity_mean", "x_velocity_mean"], "velocity.png",
                 title=f"ES {run_dir.path}: mean forward velocity (m/s)")


def _playback(trainer: Trainer, state: Any, seconds: float, command: tuple[float, float, float] | None):
    if command is not None:
        raise ConfigError("--command: the humanoid takes no velocity command; only PPO+AMP runs do")
    return trainer.playback(state, seconds)


def _init_from(config: ml_collections.ConfigDict, trainer: Trainer) -> host_loop.Branch | None:
    """A fresh run's start from a checkpoint of the run in `config.init_from`: its latest,
    or `<run>@<iteration>`'s."""
    if config.init_from is None:
        return None
    source_path, step = config.init_from, None
    # `<run>@<iteration>` names one of the run's kept checkpoints (`checkpoints_keep_every`).
    head, _, tail = source_path.rpartition("@")
    if not os.path.isdir(source_path) and head and tail.isdigit():
        source_path, step = head, int(tail)

    def refuse(why: str) -> ConfigError:
        return ConfigError(f"config.init_from: {why} (got {config.init_from!r})")

    if jax.process_count() > 1:
        raise refuse("a multi-process run cannot start from another run; start it on one process, "
                     "then resume it on several")
    for needed in ("config.json", "checkpoints"):
        if not os.path.exists(os.path.join(source_path, needed)):
            raise refuse(f"must be an ES run directory (no {needed} in it)")
    try:
        saved = ml_collections.ConfigDict(results.read_config(source_path))
    except ConfigError as e:
        raise refuse(str(e)) from None
    # Fields the source predates take this run's values: they shape nothing it saved.
    source_config = config_lib.with_defaults(saved, config)
    source_config.init_from = None
    try:
        es_config.validate(source_config)
    except ConfigError as e:
        raise refuse(f"not a run this code can read ({e})") from None
    def plain(value):  # config.json holds tuples as lists
        return list(value) if isinstance(value, (list, tuple)) else value

    differ = [f"policy.{k} ({source_config.policy[k]!r} there)" for k in config.policy.keys()
              if plain(source_config.policy[k]) != plain(config.policy[k])]
    if differ:
        raise refuse(f"a branch keeps the source's policy, which differs in {', '.join(differ)}")
    try:
        _, source = host_loop.restore_latest(source_path, source_config, PIPELINE, step=step)
    except CheckpointError as e:
        raise refuse(f"its checkpoint does not restore ({e})") from None
    iteration = int(source.iteration)
    at = [r for r in results.read_records(source_path) if r.get("iteration") == iteration]
    if not at:
        raise refuse(f"its metrics.jsonl has no record of iteration {iteration}, the checkpoint's")
    env_steps = int(at[-1]["env_steps"])
    logging.info("starting from %s at iteration %d (%d env steps)", source_path, iteration, env_steps)
    state = trainer.branch(trainer.init(jax.random.PRNGKey(config.seed)), source)
    return host_loop.Branch(state=state, env_steps=env_steps,
                            record={"init_from_iteration": iteration, "init_from_env_steps": env_steps})


def _summary_fields(records: Sequence[dict[str, Any]], last_eval: dict[str, Any] | None) -> dict[str, Any]:
    del records
    if last_eval is None:
        return {"final_eval_length": None, "final_eval_full_episodes": None}
    # A run resumed from records that predate the field has none.
    full = last_eval.get("eval_full_episodes")
    return {"final_eval_length": last_eval["eval_length"], "final_eval_full_episodes": None if full is None else int(full)}


PIPELINE = host_loop.Pipeline(
    experiment=EXPERIMENT,
    title="ES",
    env=es_config.ENV,
    config_file="configs/es.py",
    defaults=fields.fields,
    profiles=tuple(robots.PROFILES),
    physics_overrides=es_config.PHYSICS_OVERRIDES,
    validate=es_config.validate,
    make_trainer=Trainer,
    train=starts.train,
    export=tools.export,
    tool_flags=tools.TOOL_FLAGS,
    evaluate=tools.evaluate,
    sim2sim=tools.sim2sim,
    benchmark=benchmark.lines,
    benchmark_config=benchmark.prepare,
    compile_shape=_compile_shape,
    banner=_banner,
    progress=_progress,
    plot=_plot,
    playback=_playback,
    summary_fields=_summary_fields,
    init_from=_init_from,
)
