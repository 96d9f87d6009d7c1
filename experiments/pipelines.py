"""The table of pipelines: each experiment's name -> its `common.pipeline.Pipeline`.

Every tool finds what it needs of a run or a config here, and none of them names a
pipeline: a run's pipeline is the folder above it (`results_dir/<experiment>/<run>`), a
config's is its `env`. Adding a pipeline is a new package with its `hooks.PIPELINE` and
one row below; a tool changes only where the pipeline brings a flag of its own (each
tool lists the flags some pipelines take and others refuse).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from absl import flags

from common import saved_run
from common.config import ConfigError
from common.pipeline import Options, Pipeline
from humanoid_es import hooks as es_hooks
from ppo_amp import hooks as ppo_amp_hooks

TABLE: dict[str, Pipeline] = {p.experiment: p for p in (es_hooks.PIPELINE, ppo_amp_hooks.PIPELINE)}


def get(experiment: str) -> Pipeline:
    return TABLE[experiment]


def for_env(env: str) -> Pipeline:
    """The pipeline whose configs train `env`, or one line naming `config.env`."""
    for pipeline in TABLE.values():
        if pipeline.env == env:
            return pipeline
    known = ", ".join(f"{p.env!r} ({p.title})" for p in TABLE.values())
    raise ConfigError(f"config.env: must be one of {known}, got {env!r}")


def open_run(run_path: str, physics: str | None = None) -> saved_run.SavedRun:
    """The run in `run_path` under its pipeline, its config under `physics` (None: its own)."""
    saved_run.load_config(run_path)  # a folder that is no run at all says so first
    experiment = os.path.basename(os.path.dirname(os.path.abspath(os.path.normpath(run_path))))
    if experiment not in TABLE:
        raise ConfigError(f"--run: {run_path!r} is under {experiment!r}, not a results directory of "
                          f"{' or '.join(repr(e) for e in TABLE)}")
    return saved_run.open_run(run_path, TABLE[experiment], physics)


def refuse_foreign(pipeline: Pipeline, names: Iterable[str], what: str = "runs") -> None:
    """One line for the first flag in `names` given on the command line that `pipeline`'s
    runs (or configs) do not take."""
    for name in names:
        if flags.FLAGS[name].present and name not in pipeline.tool_flags:
            takers = " and ".join(p.title for p in TABLE.values() if name in p.tool_flags)
            raise ConfigError(f"--{name}: {pipeline.title} {what} do not take it (only {takers} {what} do)")


def options(pipeline: Pipeline, names: Iterable[str], parsed: dict[str, Any] | None = None,
            **common: Any) -> Options:
    """The values of the flags in `names` that `pipeline` takes (a flag's `parsed` value in
    place of its text where the tool parsed it), beside `common` ones."""
    parsed = parsed or {}
    return {name: parsed[name] if name in parsed else flags.FLAGS[name].value
            for name in names if name in pipeline.tool_flags} | common
