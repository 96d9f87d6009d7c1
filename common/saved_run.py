"""A finished or running run's directory, opened for the tools that use its policy.

`experiments.evaluate`, `play`, `export` and `sim2sim` read a run the same way, whatever
its pipeline: `config.json` completed for fields added since with the values that keep
its behaviour (`Pipeline.defaults`), an optional physics profile swap, the pipeline's
own reading of a saved config (`Pipeline.open_config`), validation, and the latest
checkpoint. Everything is checked before a model is built, and nothing is written into
the run. `experiments.pipelines.open_run` finds the run's pipeline.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import ml_collections

from common import compile_cache, host_loop, results
from common.checkpoint import CheckpointError
from common.config import ConfigError, under_profile, with_defaults
from common.pipeline import Pipeline, Trainer


@dataclasses.dataclass(frozen=True)
class SavedRun:
    path: str
    # The run's resolved config, under `physics`, validated.
    config: ml_collections.ConfigDict
    pipeline: Pipeline
    physics: str

    @property
    def experiment(self) -> str:
        return self.pipeline.experiment


def load_config(run_path: str) -> ml_collections.ConfigDict:
    """The run's config.json as it was written, or a `ConfigError` naming `--run`."""
    try:
        return ml_collections.ConfigDict(results.read_config(run_path))
    except ConfigError as e:
        raise ConfigError(f"--run: {run_path!r}: {e}") from None


def open_run(run_path: str, pipeline: Pipeline, physics: str | None = None) -> SavedRun:
    """The `pipeline` run in `run_path`, its config under `physics` (None: the run's own)."""
    run_path = os.path.normpath(run_path)
    config = load_config(run_path)
    name = physics or config.physics
    if name not in pipeline.profiles:
        raise ConfigError(f"--physics: {pipeline.title} runs take one of {sorted(pipeline.profiles)}, got {name!r}")
    # The named profile runs as defined: the run's own solver and contact overrides go.
    config = under_profile(with_defaults(config, pipeline.defaults()), physics, pipeline.physics_overrides)
    config = pipeline.open_config(config, run_path)
    pipeline.validate(config)
    # Checked here so that a run with none is reported without creating anything in it.
    if not os.path.isdir(os.path.join(run_path, "checkpoints")):
        raise CheckpointError(f"--run: {run_path!r} has no checkpoints/ (the run never saved one)")
    return SavedRun(path=run_path, config=config, pipeline=pipeline, physics=name)


def restore(run: SavedRun) -> tuple[Trainer, Any]:
    """A single-device trainer and the run's latest checkpointed state; compiles go
    through the run's persistent compile cache, where it names one."""
    if run.config.compile_cache_dir:
        compile_cache.enable(run.config.compile_cache_dir)
    return host_loop.restore_latest(run.path, run.config, run.pipeline)
