"""Export a trained run's deterministic policy to ONNX with metadata, verified against JAX.

    python -m experiments.export --run=results/ppo_amp/cpu [--output=policy.onnx]
    python -m experiments.export --run=results/es/cpu
    python -m experiments.export --inspect=results/ppo_amp/cpu/export/policy.onnx

The graph is the run's pipeline's (`Pipeline.export`): the biped's actor takes the 45 raw
observation values and returns the 12 actions in [-1, 1] (`ppo_amp/export.py`); the ES
reservoir takes the humanoid's 376 values and its recurrent state and returns the 17
controls and the next state (`humanoid_es/export.py`). Both fold the run's observation
normaliser in. The model's `metadata_props` hold JSON values read from the run's
resolved config and MJCF (the pipeline's list, plus run name, config hash, code commit,
iteration and experiment); `--inspect` prints them.

Before it reports success the command checks the model (`onnx.checker`), plays the
policy in MJX for `--observations` recorded observations (16 envs, episodes restart)
and compares onnxruntime's outputs with JAX's on every one of them, and on as many
random observations; it prints one JSON line with the largest absolute differences and
the single-thread CPU latency of one call (p50, p99), and exits 1 if the difference on
the recorded observations exceeds `--tolerance`. The default output is `<run>/export/policy.onnx`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence

import jax
import numpy as np
from absl import flags

from common import cli, launch, onnx_export, results, saved_run, video
from common.config import ConfigError, fingerprint, to_dict
from experiments import pipelines

_RUN = flags.DEFINE_string("run", None, "Run directory: results_dir/<experiment>/<run_name>.")
_OUTPUT = flags.DEFINE_string("output", None, "ONNX path; default <run>/export/policy.onnx.")
_INSPECT = flags.DEFINE_string("inspect", None, "Print the metadata of this ONNX file and exit.")
_OBSERVATIONS = flags.DEFINE_integer("observations", 10_000, "Recorded observations the export is verified on.")
_TOLERANCE = flags.DEFINE_float("tolerance", 1e-5, "Largest |onnxruntime - JAX| accepted.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the recorded episodes and the random observations.")

_ENVS = 16


def _code_commit(run_path: str) -> str | None:
    try:
        with open(os.path.join(run_path, "summary.json")) as f:
            commit = json.load(f).get("code_commit")
    except (OSError, json.JSONDecodeError):
        commit = None
    if commit:
        return commit
    now = launch.code_commit()
    return None if now is None else f"{now} (at export: the run has no summary yet)"


def main(argv: Sequence[str]) -> None:
    del argv
    if _INSPECT.value is not None:
        if _RUN.present:
            raise ConfigError("--inspect: reads a model and takes no --run")
        print(json.dumps(onnx_export.read_metadata(_INSPECT.value), indent=2), flush=True)
        return
    if _RUN.value is None:
        raise ConfigError("--run: name a run directory to export (or --inspect=<model.onnx>)")
    if _OBSERVATIONS.value < _ENVS:
        raise ConfigError(f"--observations: must be at least {_ENVS}, got {_OBSERVATIONS.value}")
    if not (math.isfinite(_TOLERANCE.value) and _TOLERANCE.value > 0):
        raise ConfigError(f"--tolerance: must be a positive number, got {_TOLERANCE.value}")
    if _OUTPUT.value is not None and not _OUTPUT.value.endswith(".onnx"):
        raise ConfigError(f"--output: must name an .onnx file, got {_OUTPUT.value!r}")
    run = pipelines.open_run(_RUN.value)
    trainer, state = saved_run.restore(run)
    exported = run.pipeline.export(trainer, state, run.config)
    inputs, outputs, carry = exported.inputs, exported.outputs, exported.carry
    # The hash of config.json as the run wrote it: fields that later code adds with their
    # defaults do not change which run a model came from.
    written = to_dict(saved_run.load_config(run.path))
    meta = {**exported.metadata, "run_name": os.path.basename(run.path),
            "config_hash": fingerprint(written, results.RESUMABLE_FIELDS), "code_commit": _code_commit(run.path),
            "iteration": int(state.iteration), "experiment": run.experiment}
    model = onnx_export.build(exported.graph, inputs, outputs, meta, name=f"{run.experiment}_policy")
    path = onnx_export.save(model, _OUTPUT.value or os.path.join(run.path, "export", "policy.onnx"))

    # The policy's own observations: 16 envs played until there are enough of them.
    steps = math.ceil(_OBSERVATIONS.value / _ENVS)
    probe = run.pipeline.playback(trainer, state, 1.0, None)
    playback = run.pipeline.playback(trainer, state, steps * probe.control_dt, None)
    key_play, key_random = jax.random.split(jax.random.PRNGKey(_SEED.value))
    trajectory = jax.device_get(video.record_playback(playback, key_play, batch=_ENVS))
    flat = lambda x: np.asarray(x).reshape(-1, *np.shape(x)[2:])[: _OBSERVATIONS.value]
    obs, state_in = flat(trajectory.obs), jax.tree.map(flat, trajectory.carry)
    # Random observations around the normaliser's statistics, 3 std wide, as a second set.
    stats = state.obs_stats
    noise = np.asarray(jax.random.normal(key_random, obs.shape))
    random_obs = np.asarray(stats.mean) + 3.0 * np.sqrt(np.asarray(stats.variance) + 1e-8) * noise
    act = jax.jit(jax.vmap(playback.act, in_axes=(None, 0, 0)))

    def check(observations: np.ndarray) -> float:
        state_out, action = jax.device_get(act(playback.params, state_in, observations))
        feeds = {"obs": observations} | ({} if carry is None else {carry[0]: state_in})
        expected = {"action": action} | ({} if carry is None else {carry[1]: state_out})
        return onnx_export.verify(path, feeds, expected)

    recorded_error, random_error = check(obs), check(random_obs.astype(np.float32))

    def one_row(i: int) -> dict[str, np.ndarray]:
        row = i % len(obs)
        return {"obs": obs[row][None]} | ({} if carry is None else {carry[0]: state_in[row][None]})

    line = {"path": path, "run": run.path, "iteration": int(state.iteration), "inputs": inputs, "outputs": outputs,
            "observations": int(obs.shape[0]), "max_abs_error": recorded_error, "random_max_abs_error": random_error,
            **onnx_export.latency(path, one_row), "metadata_keys": sorted(meta)}
    print(json.dumps(line), flush=True)
    # The gate is the policy's own observations; the random ones reach far tails (3 std
    # on every feature at once) where float32 rounding of a 376-wide sum is larger.
    if recorded_error > _TOLERANCE.value:
        raise SystemExit(f"error: export: onnxruntime differs from JAX by {recorded_error:.3g} on recorded "
                         f"observations (> --tolerance {_TOLERANCE.value}); {path} does not match the trained policy")


if __name__ == "__main__":
    cli.run(main)
