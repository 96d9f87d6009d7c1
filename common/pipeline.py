"""What a pipeline is to the code that serves every pipeline: the `Pipeline` record.

The host loop trains through it, and the tools (evaluate, export, play, sim2sim,
benchmark) open a run, evaluate it, export it and measure it through it, so that none of
them names a pipeline. Each pipeline package builds its own (`<package>.hooks.PIPELINE`);
`experiments.pipelines` is the table of them. This module imports no pipeline.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, Protocol

import ml_collections
from jax.sharding import Mesh
from jaxtyping import PRNGKeyArray

from common import results, video

Record = dict[str, Any]
# A tool's pipeline-specific flags, by name: only those the run's pipeline takes.
Options = dict[str, Any]


class Trainer(Protocol):
    """What the loop needs of a pipeline's trainer; the state is the pipeline's own pytree."""

    # Jitted (`jax.jit`/`eqx.filter_jit`): the loop lowers and compiles them ahead of time.
    iteration: Callable[[Any], tuple[Any, dict[str, Any]]]
    evaluate: Callable[[Any, PRNGKeyArray], dict[str, Any]]

    def init(self, key: PRNGKeyArray) -> Any: ...

    def place(self, state: Any) -> Any: ...

    def eval_key(self, state: Any) -> PRNGKeyArray: ...


def _as_is(fields: dict[str, float]) -> dict[str, float]:
    return fields


def _no_fields(records: Sequence[Record], last_eval: Record | None) -> dict[str, Any]:
    del records, last_eval
    return {}


def _config_as_is(config: ml_collections.ConfigDict, run_path: str) -> ml_collections.ConfigDict:
    del run_path
    return config


@dataclasses.dataclass(frozen=True)
class Branch:
    """Where a fresh run that starts from another run's state begins."""

    # The first state (unplaced), as `Trainer.init` would return it.
    state: Any
    # Env steps the source had lived: the run's records count on from them.
    env_steps: int
    # What iteration 0's record keeps of the source (its iteration and env steps; the path
    # is in config.json).
    record: Record


@dataclasses.dataclass(frozen=True)
class Export:
    """A run's deterministic policy as an ONNX graph (`common.onnx_export.build`'s inputs)."""

    graph: Any
    inputs: list[str]
    outputs: list[str]
    # JSON values the model's metadata_props carry (the tool adds the run's identity).
    metadata: dict[str, Any]
    # A recurrent policy's state: its input and output names (None: feed-forward).
    carry: tuple[str, str] | None = None


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """Everything in which one pipeline's runs differ from another's."""

    # Runs go to results_dir/<experiment>/<run_name>/; compile-cache markers are named
    # <experiment>_iteration and <experiment>_evaluate; the tools find a run's pipeline
    # by the name of the folder above it.
    experiment: str
    # What messages call its runs ("ES runs ...").
    title: str
    # The task its configs train (`config.env`): how a config names its pipeline.
    env: str
    # The config file its training command reads where `--config` is not given.
    config_file: str
    # Every field at the value that keeps a run from before the field existed as it ran:
    # a resumed or opened run's config.json is completed from it.
    defaults: Callable[[], ml_collections.ConfigDict]
    # The physics profiles its runs may be evaluated under (`--physics`), and the run's own
    # changes to a profile that a named profile drops.
    profiles: Collection[str]
    physics_overrides: tuple[str, ...]
    # `validate(config, n_devices)` raises ConfigError before anything is built.
    validate: Callable[[ml_collections.ConfigDict, int], None]
    # `make_trainer(config, mesh, **env_overrides)`; may raise UserError for input only
    # it can check.
    make_trainer: Callable[..., Trainer]
    # `train(config, pipeline)`: what its training command runs (`host_loop.run`, or a
    # pipeline's own driver around it); returns the run's summary.
    train: Callable[[ml_collections.ConfigDict, Pipeline], dict[str, Any]]
    # What the compile-cache markers record as the compiled shape, beyond the fields
    # every run shares (horizon, physics, impl, device count).
    compile_shape: Callable[[ml_collections.ConfigDict, Trainer], dict[str, Any]]
    # One line, logged after compiling, saying what an iteration does.
    banner: Callable[[ml_collections.ConfigDict, Trainer], str]
    # An iteration's figures for its log line, from its record; ends with " | ".
    progress: Callable[[Record], str]
    # Writes the plots from the run's records at the end.
    plot: Callable[[results.RunDir, Trainer], None]
    # `playback(trainer, state, seconds, command)`: the state's deterministic policy for a
    # clip of `seconds` (the final video, `experiments.play`, the export check);
    # `command` (vx, vy, wz) is for walkers, None meaning the run's own.
    playback: Callable[[Trainer, Any, float, tuple[float, float, float] | None], video.Playback]
    # `export(trainer, state, config)`: the policy as an ONNX graph with its metadata.
    export: Callable[[Trainer, Any, ml_collections.ConfigDict], Export]
    # The tools' flags its runs take beyond those every run takes (`--run`, `--physics`,
    # `--episodes`, `--seed`, ...); the tools refuse the others in one line.
    tool_flags: frozenset[str]
    # `evaluate(run, options)`: `experiments.evaluate`'s JSON lines for a `SavedRun`.
    evaluate: Callable[[Any, Options], list[Record]]
    # `sim2sim(run, model, options, reopen)`: `experiments.sim2sim`'s JSON line; `model()`
    # gives the checked path of the run's ONNX export (called once the pipeline's own
    # flags are checked) and `reopen(physics)` the run's trainer and state under another
    # profile.
    sim2sim: Callable[[Any, Callable[[], str], Options, Callable[[str | None], tuple[Trainer, Any]]], Record]
    # `benchmark(config, mesh, options, repeats, cache_dir)`: `experiments.benchmark`'s
    # measurements, one dict per line (`common.measure`), for a validated config.
    benchmark: Callable[[ml_collections.ConfigDict, Mesh | None, Options, int, str | None], Iterator[Record]]
    # What `experiments.benchmark` changes in a config before validating it.
    benchmark_config: Callable[[ml_collections.ConfigDict], None] = lambda config: None
    # A saved run's config as its tools use it (`open_config(config, run_path)`): where
    # the run keeps its own copy of an input file, that copy.
    open_config: Callable[[ml_collections.ConfigDict, str], ml_collections.ConfigDict] = _config_as_is
    # Renames or drops an evaluation's metrics on their way into a record; the result
    # must hold `eval_return`.
    eval_fields: Callable[[dict[str, float]], dict[str, float]] = _as_is
    # Summary fields beyond the shared ones, from the records and the latest evaluation
    # (in a resumed run that has not evaluated since, the whole last record holding one).
    summary_fields: Callable[[Sequence[Record], Record | None], dict[str, Any]] = _no_fields
    # `keep_inputs(config, run_path)`: copies the input files the run depends on into its
    # directory (checking a resumed run's copies) and returns what to record of them.
    keep_inputs: Callable[[ml_collections.ConfigDict, str], dict[str, Any]] = lambda config, path: {}
    # `init_from(config, trainer)`: the `Branch` a fresh run starts from, where its config
    # names another run; None otherwise. Called only for a run with no checkpoint yet, and
    # before its directory is opened, so a bad source never creates one.
    init_from: Callable[[ml_collections.ConfigDict, Trainer], Branch | None] = lambda config, trainer: None
