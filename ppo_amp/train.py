"""The PPO+AMP run: validate, compile, then iterate, evaluate, record, checkpoint and resume.

The host loop does no learning: it calls the jitted `Trainer.iteration`, evaluates the
deterministic policy every `eval_every` iterations, logs one line and one metrics record
per iteration, checkpoints every `checkpoint_every` iterations and on exit, and stops
cleanly on SIGTERM/SIGUSR1. The same command with the same run name resumes exactly:
the checkpoint holds networks, optimizers, discriminator, replay buffer, normalisers,
reward scaling, every env's state and the curriculum level.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import jax
import ml_collections
from absl import logging

from common import checkpoint, compile_cache, config as config_lib, launch, results
from ppo_amp import config as ppo_config
from ppo_amp.trainer import Trainer, TrainState

EXPERIMENT = "ppo_amp"


def _floats(tree: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in tree.items()}


def _eval_record(metrics: dict[str, float]) -> dict[str, float]:
    return {f"eval_{k}" if not k.startswith("eval_") else k: v for k, v in metrics.items()}


def run(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """Trains (or resumes) the run that `config` names; returns its summary."""
    launch.request_cpu_devices(config.cpu_devices)
    launch.maybe_initialize_distributed()
    ppo_config.validate(config, n_devices=jax.device_count())
    launch.check_cpu_devices(config.cpu_devices)
    launch.log_banner()
    cache_dir = compile_cache.enable(config.compile_cache_dir) if config.compile_cache_dir else None
    mesh = launch.make_mesh() if jax.device_count() > 1 else None
    # Built (reference motions loaded, env checked) before the results directory is touched.
    trainer = Trainer(config, mesh)
    resolved = config_lib.to_dict(config)
    run_dir = results.RunDir(config.results_dir, EXPERIMENT, results.run_name(resolved), resolved)
    logging.info("results in %s", run_dir.path)

    state = trainer.init(jax.random.PRNGKey(config.seed))
    ckpt = checkpoint.Checkpointer(run_dir.sub("checkpoints"), max_to_keep=config.checkpoints_to_keep)
    start_iteration = ckpt.latest_step() or 0
    if start_iteration:
        state = ckpt.restore(state, start_iteration)
        logging.info("resuming from iteration %d", start_iteration)
    state = trainer.place(state)
    run_dir.truncate_after(start_iteration if start_iteration else -1)
    previous = run_dir.records[-1] if run_dir.records else {}
    env_steps = int(previous.get("env_steps", 0))
    wall_before = float(previous.get("wall_seconds", 0.0))

    shape = {"num_envs": config.num_envs, "rollout_length": config.rollout_length, "horizon": config.horizon,
             "devices": jax.device_count(), "physics": config.physics, "impl": config.impl,
             "amp": config.amp.enabled}
    start = time.perf_counter()
    iteration_fn, it_report = compile_cache.warm_up("ppo_amp_iteration", trainer.iteration, state,
                                                    cache_dir=cache_dir, shape=shape)
    eval_fn, ev_report = compile_cache.warm_up("ppo_amp_evaluate", trainer.evaluate, state, trainer.eval_key(state),
                                               cache_dir=cache_dir, shape=shape)
    compile_seconds = it_report.compile_seconds + ev_report.compile_seconds
    logging.info("PPO%s: %d envs x %d steps per iteration, %d device(s)", "+AMP" if trainer.amp_enabled else "",
                 config.num_envs, config.rollout_length, jax.device_count())

    evals = [r for r in run_dir.records if r.get("eval_return") is not None]
    best_eval = max((r["eval_return"] for r in evals), default=None)
    last_eval = evals[-1] if evals else None
    if start_iteration == 0:
        last_eval = _eval_record(_floats(jax.device_get(eval_fn(state, trainer.eval_key(state)))))
        run_dir.log({"iteration": 0, "env_steps": 0, "wall_seconds": 0.0, "compile_seconds": compile_seconds,
                     **last_eval})
        best_eval = last_eval["eval_return"]

    iteration = start_iteration
    loop_start = time.perf_counter()
    with launch.StopFlag() as stop:
        while iteration < config.num_iterations and stop.signal is None:
            t0 = time.perf_counter()
            state, metrics = iteration_fn(state)
            metrics = _floats(jax.device_get(metrics))
            seconds = time.perf_counter() - t0
            iteration += 1
            env_steps += int(metrics["iteration_env_steps"])
            record = {"iteration": iteration, "env_steps": env_steps,
                      "env_steps_per_s": metrics["iteration_env_steps"] / seconds,
                      "iteration_seconds": seconds, **metrics}
            if iteration == start_iteration + 1:
                record["compile_seconds"] = compile_seconds
            if iteration % config.eval_every == 0 or iteration == config.num_iterations:
                last_eval = _eval_record(_floats(jax.device_get(eval_fn(state, trainer.eval_key(state)))))
                record.update(last_eval)
                best_eval = last_eval["eval_return"] if best_eval is None else max(best_eval, last_eval["eval_return"])
            record["wall_seconds"] = wall_before + (time.perf_counter() - start)
            run_dir.log(record)
            done = iteration - start_iteration
            eta = (time.perf_counter() - loop_start) / done * (config.num_iterations - iteration)
            evaluated = (f"eval falls {record['eval_falls']:.0f}/{record['eval_episodes']:.0f} "
                         f"mae {record['eval_tracking_mae']:.3f} | ") if "eval_falls" in record else ""
            logging.info(
                "iteration %d/%d | return %.2f length %.0f | track err %.3f | disc acc %s | %s%.0f steps/s | "
                "%.2f s | ETA %s",
                iteration, config.num_iterations, record["episode_return"], record["episode_length"],
                record["tracking_error"],
                (f"{record['disc_accuracy_reference']:.2f}/{record['disc_accuracy_policy']:.2f}"
                 if "disc_accuracy_reference" in record else "-"),
                evaluated, record["env_steps_per_s"], seconds, launch.format_eta(eta),
            )
            if iteration % config.checkpoint_every == 0 or stop.signal is not None:
                ckpt.save(iteration, state)
        if ckpt.latest_step() != iteration:
            ckpt.save(iteration, state)
        stopped_by = signal.Signals(stop.signal).name if stop.signal is not None else None
    ckpt.close()

    run_dir.plot("env_steps", ["episode_return", "eval_return"], "learning_curve.png",
                 title=f"PPO+AMP {run_dir.path}: returns")
    run_dir.plot("env_steps", ["tracking_error", "eval_tracking_mae"], "tracking.png", title="velocity tracking (m/s)")
    if trainer.amp_enabled:
        run_dir.plot("env_steps", ["disc_accuracy_reference", "disc_accuracy_policy", "style_reward"],
                     "discriminator.png", title="AMP discriminator")
    summary = {
        "best_eval_return": best_eval,
        "final_eval_return": None if last_eval is None else last_eval["eval_return"],
        "final_eval": last_eval,
        "iterations": iteration,
        "env_steps": env_steps,
        "wall_seconds": wall_before + (time.perf_counter() - start),
        "compile_seconds": compile_seconds,
        "compile_cache_hits": it_report.cache_hits + ev_report.cache_hits,
        "stopped_by_signal": stopped_by,
        "versions": launch.versions(),
        "devices": launch.device_summary()["devices"],
        "run_dir": run_dir.path,
    }
    run_dir.write_summary(summary)
    logging.info("done: %s", {k: summary[k] for k in ("best_eval_return", "final_eval_return", "env_steps")})
    return summary


def restore_latest(run_path: str, config: ml_collections.ConfigDict, **env_overrides) -> tuple[Trainer, TrainState]:
    """The trainer and the latest checkpointed state of the run in `run_path`."""
    trainer = Trainer(config, None, **env_overrides)
    template = trainer.init(jax.random.PRNGKey(config.seed))
    return trainer, checkpoint.restore_latest(f"{run_path}/checkpoints", template)
