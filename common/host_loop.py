"""The host loop of both pipelines: build, compile, then iterate, evaluate, record, checkpoint, resume.

The loop does no learning: it calls the pipeline's jitted `Trainer.iteration`, evaluates
at the start of a fresh run, every `eval_every` iterations (or at each multiple of
`eval_every_env_steps`) and after the last, logs one line and one metrics record per
iteration, checkpoints every `checkpoint_every` iterations and on exit, and stops cleanly
on SIGTERM/SIGUSR1 (Slurm's warning before preemption or the time limit). Running the
same command with the same run name resumes from the latest checkpoint, which holds the
whole train state; records logged after it are dropped and redone. A fresh run may start
from another run's state (a pipeline's `init_from`).

The trainer is built (config validated, env checked, any reference motions loaded) before
the results directory is opened, so bad input never creates or touches a run directory.
Both jitted functions are compiled ahead of time for the placed first state, through the
persistent compile cache where `compile_cache_dir` names one.

What differs between pipelines (experiment name, validation, trainer, log text, record
fields, plots, extra summary fields, the defaults that complete an older run's config)
comes in a `common.pipeline.Pipeline`; this module imports no pipeline.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import jax
import ml_collections
from absl import logging

from common import checkpoint, compile_cache, config as config_lib, launch, processes, results, sharding, video
from common.errors import UserError
from common.pipeline import Branch, Pipeline, Record, Trainer

__all__ = ["Branch", "Pipeline", "Record", "Trainer", "run", "restore_latest"]


def _floats(tree: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in tree.items()}


def run(config: ml_collections.ConfigDict, pipeline: Pipeline) -> dict[str, Any]:
    """Trains (or resumes) the run that `config` names with `pipeline`; returns its summary.

    A resumed run's config.json is read as completed from `pipeline.defaults()`.
    """
    # From the start: a signal while compiling (minutes on a GPU) stops the run at its
    # first chance, with a checkpoint, rather than killing it.
    with launch.StopFlag() as stop:
        return _run(config, pipeline, stop)


def _run(config: ml_collections.ConfigDict, pipeline: Pipeline, stop: launch.StopFlag) -> dict[str, Any]:
    # Before JAX starts its threads: this forks git.
    commit = launch.code_commit()
    launch.request_cpu_devices(config.cpu_devices)
    processes.initialize()
    main = processes.is_main()
    if not main:
        logging.set_verbosity(logging.WARNING)  # one log per run: process 0's
    pipeline.validate(config, jax.device_count())
    launch.check_cpu_devices(config.cpu_devices)
    launch.log_banner()
    cache_dir = compile_cache.enable(config.compile_cache_dir) if config.compile_cache_dir else None
    mesh = sharding.make_mesh()
    # Built first, so that input only the trainer can check never touches an existing run.
    trainer = pipeline.make_trainer(config, mesh)
    resolved = config_lib.to_dict(config)
    own_path = os.path.join(config.results_dir, pipeline.experiment, results.run_name(resolved))
    fresh = not checkpoint.saved_steps(own_path)
    branch = pipeline.init_from(config, trainer) if fresh else None
    run_dir = _open_run_dir(config, pipeline, resolved, main, config_lib.to_dict(pipeline.defaults()))
    logging.info("results in %s", run_dir.path)
    if main:
        inputs = pipeline.keep_inputs(config, run_dir.path)
        if inputs:
            results.atomic_write_json(os.path.join(run_dir.path, "inputs.json"), inputs)

    state = trainer.init(jax.random.PRNGKey(config.seed)) if branch is None else branch.state
    ckpt = checkpoint.Checkpointer(run_dir.sub("checkpoints"), max_to_keep=config.checkpoints_to_keep,
                                   keep_period=config.checkpoints_keep_every)
    start_iteration = int(processes.agree([ckpt.latest_step() or 0])[0])
    if jax.process_count() > 1:
        # Restored straight into the global layout: no process holds every shard.
        state = trainer.place(state)
        if start_iteration:
            state = ckpt.restore(state, start_iteration)
    else:
        if start_iteration:
            state = ckpt.restore(state, start_iteration)
        state = trainer.place(state)
    if start_iteration:
        logging.info("resuming from iteration %d", start_iteration)
    # Records logged after the checkpoint we start from describe iterations we redo
    # (all of them, iteration 0's evaluation included, when there is no checkpoint).
    run_dir.truncate_after(start_iteration if start_iteration else -1)
    previous = run_dir.records[-1] if run_dir.records else {}
    env_steps = int(previous.get("env_steps", 0))
    if start_iteration == 0 and branch is not None:
        env_steps = branch.env_steps
    wall_before = float(previous.get("wall_seconds", 0.0))

    shape = {"horizon": config.horizon, "physics": config.physics, "impl": config.impl,
             "devices": jax.device_count(), **pipeline.compile_shape(config, trainer)}
    start = time.perf_counter()
    iteration_fn, it_report = compile_cache.warm_up(f"{pipeline.experiment}_iteration", trainer.iteration, state,
                                                    cache_dir=cache_dir, shape=shape)
    eval_fn, ev_report = compile_cache.warm_up(f"{pipeline.experiment}_evaluate", trainer.evaluate, state,
                                               trainer.eval_key(state), cache_dir=cache_dir, shape=shape)
    compile_seconds = it_report.compile_seconds + ev_report.compile_seconds
    logging.info("%s", pipeline.banner(config, trainer))

    def evaluate(now: Any) -> dict[str, float]:
        return pipeline.eval_fields(_floats(jax.device_get(eval_fn(now, trainer.eval_key(now)))))

    # A resumed run's evaluations so far are in its records.
    evals = [r for r in run_dir.records if r.get("eval_return") is not None]
    best_eval = max((r["eval_return"] for r in evals), default=None)
    last_eval = evals[-1] if evals else None
    if start_iteration == 0:
        last_eval = evaluate(state)
        record = {"iteration": 0, "env_steps": env_steps, "wall_seconds": 0.0, "compile_seconds": compile_seconds,
                  **(branch.record if branch is not None else {}), **last_eval}
        run_dir.log(record)
        best_eval = last_eval["eval_return"]
        logging.info("iteration 0: eval return %.1f%s", record["eval_return"],
                     f", length {record['eval_length']:.0f}" if "eval_length" in record else "")

    iteration = start_iteration
    loop_start, loop_start_steps = time.perf_counter(), env_steps

    def eval_due(iteration: int, steps_before: int, steps_after: int) -> bool:
        every = config.eval_every_env_steps
        if every:
            return steps_after // every > steps_before // every
        return iteration % config.eval_every == 0

    def budget_left() -> bool:
        return not config.max_env_steps or env_steps < config.max_env_steps

    def stopping() -> bool:
        # Process 0's answer on every process: they must all save, and stop, together.
        return bool(processes.agree([stop.signal is not None])[0])

    stopped = stopping()
    while iteration < config.num_iterations and budget_left() and not stopped:
        t0 = time.perf_counter()
        state, metrics = iteration_fn(state)
        metrics = _floats(jax.device_get(metrics))
        seconds = time.perf_counter() - t0
        iteration += 1
        steps_before = env_steps
        env_steps += int(metrics["iteration_env_steps"])
        record = {"iteration": iteration, "env_steps": env_steps,
                  "env_steps_per_s": metrics["iteration_env_steps"] / seconds,
                  "iteration_seconds": seconds, **metrics}
        if iteration == start_iteration + 1:
            record["compile_seconds"] = compile_seconds
        if eval_due(iteration, steps_before, env_steps) or iteration == config.num_iterations or not budget_left():
            last_eval = evaluate(state)
            record.update(last_eval)
            best_eval = last_eval["eval_return"] if best_eval is None else max(best_eval, last_eval["eval_return"])
        record["wall_seconds"] = wall_before + (time.perf_counter() - start)
        run_dir.log(record)
        done = iteration - start_iteration
        elapsed = time.perf_counter() - loop_start
        eta = elapsed / done * (config.num_iterations - iteration)
        if config.max_env_steps and env_steps > loop_start_steps:
            # ES iterations lengthen with the episodes; env steps come at a steadier rate.
            eta = min(eta, elapsed / (env_steps - loop_start_steps) * max(config.max_env_steps - env_steps, 0))
        logging.info("iteration %d/%d | %s%.0f steps/s | %.2f s | ETA %s", iteration, config.num_iterations,
                     pipeline.progress(record), record["env_steps_per_s"], seconds, launch.format_eta(eta))
        stopped = stopping()
        if iteration % config.checkpoint_every == 0 or stopped:
            ckpt.save(iteration, state)
    if ckpt.latest_step() != iteration:
        ckpt.save(iteration, state)
    stopped_by = None
    if stopped:
        stopped_by = signal.Signals(stop.signal).name if stop.signal is not None else "process 0's signal"
    ckpt.close()
    run_dir.close()

    if main:
        pipeline.plot(run_dir, trainer)
    summary = {
        "best_eval_return": best_eval,
        "final_eval_return": None if last_eval is None else last_eval["eval_return"],
        "iterations": iteration,
        "env_steps": env_steps,
        "wall_seconds": wall_before + (time.perf_counter() - start),
        "compile_seconds": compile_seconds,
        "compile_cache_hits": it_report.cache_hits + ev_report.cache_hits,
        "stopped_by_signal": stopped_by,
        "versions": launch.versions(),
        "code_commit": commit,
        "devices": launch.device_summary()["devices"],
        "run_dir": run_dir.path,
        "video": None,
        **pipeline.summary_fields(run_dir.records, last_eval),
    }
    run_dir.write_summary(summary)
    # Not after a stop signal: Slurm's grace time is for the checkpoint, not for compiling.
    # The summary is written first: a video that fails loses nothing of the run.
    if config.video_seconds > 0 and stopped_by is None:
        final = processes.to_host(state)
    if config.video_seconds > 0 and stopped_by is None and main:
        try:
            clip = video.record_clip(pipeline.playback(trainer, final, config.video_seconds, None),
                                     jax.random.PRNGKey(config.seed + 2),
                                     run_dir.sub(os.path.join("videos", "final.mp4")))
        except UserError as e:  # no EGL, no ffmpeg: the run itself is done
            logging.error("no video of the final policy: %s", e)
            summary["video_error"] = str(e)
        else:
            logging.info("video of the final policy: %s (%d frames)", clip["path"], clip["frames"])
            summary["video"] = clip["path"]
        run_dir.write_summary(summary)
    logging.info("done: %s", {k: summary[k] for k in ("best_eval_return", "final_eval_return", "env_steps")})
    return summary


def _open_run_dir(config: ml_collections.ConfigDict, pipeline: Pipeline, resolved: dict[str, Any],
                  main: bool, defaults: dict[str, Any]) -> results.RunDir:
    """The run's directory: process 0 opens it (or refuses it, with the reason); the
    others then read it without writing."""
    args = (config.results_dir, pipeline.experiment, results.run_name(resolved), resolved)
    refused = None
    if main:
        try:
            run_dir = results.RunDir(*args, tensorboard=config.tensorboard, defaults=defaults)
        except UserError as e:
            refused = e
    if not processes.agree([refused is None])[0]:
        if refused is not None:
            raise refused
        raise UserError("process 0 refused the run directory (its log says why)")
    return run_dir if main else results.RunDir(*args, writer=False, defaults=defaults)


def restore_latest(run_path: str, config: ml_collections.ConfigDict, pipeline: Pipeline, *, step: int | None = None,
                   **trainer_kwargs: Any) -> tuple[Trainer, Any]:
    """A single-device trainer for `config` and the latest checkpointed state of the run in
    `run_path` (evaluation, export); `trainer_kwargs` go to `pipeline.make_trainer`."""
    trainer = pipeline.make_trainer(config, None, **trainer_kwargs)
    template = trainer.init(jax.random.PRNGKey(config.seed))
    return trainer, checkpoint.restore_latest(f"{run_path}/checkpoints", template, step)
