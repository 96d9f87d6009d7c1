"""Command lines: a mistyped field or flag is one line naming it, before JAX starts."""

import json
import os
import subprocess
import sys

import ml_collections
import pytest

from common import cli, config as config_lib
from configs import es_test
from tests.conftest import REPO_ROOT


def test_unknown_field_names_the_field_meant():
    config = ml_collections.ConfigDict({"pairs": 1, "policy": {"size": 2, "obs_norm": "clip"}})
    assert cli.unknown_field_message(config, "pairs", "config", "c.py") is None
    assert cli.unknown_field_message(config, "policy.size", "config", "c.py") is None
    assert cli.unknown_field_message(config, "policy", "config", "c.py") is None
    assert cli.unknown_field_message(config, "pars", "config", "c.py") == (
        "--config.pars: c.py has no field `pars`; did you mean `pairs`?")
    assert cli.unknown_field_message(config, "policy.obs_nrm", "config", "c.py").endswith(
        "did you mean `policy.obs_norm`?")
    assert cli.unknown_field_message(config, "zzzz", "config", "c.py") == "--config.zzzz: c.py has no field `zzzz`"


def test_the_table_holds_each_pipeline_once_and_finds_it_by_experiment_and_env():
    from experiments import pipelines

    table = pipelines.TABLE
    assert sorted(table) == ["es", "ppo_amp"]
    assert len({p.env for p in table.values()}) == len({p.title for p in table.values()}) == len(table)
    for name, pipeline in table.items():
        assert pipeline.experiment == name and pipelines.for_env(pipeline.env) is pipeline
        assert os.path.isfile(os.path.join(REPO_ROOT, pipeline.config_file))
        # Its defaults are a config of its own env, under one of its own profiles.
        defaults = pipeline.defaults()
        assert defaults.env == pipeline.env and defaults.physics in pipeline.profiles
    with pytest.raises(config_lib.ConfigError, match=r"^config\.env: must be one of 'humanoid' \(ES\), "):
        pipelines.for_env("quadruped")


def _run(args, jax_platforms="no_such_platform"):
    env = dict(os.environ)
    env.pop("JAX_PLATFORMS", None)
    # A platform JAX does not know: any backend start would end in a traceback, so a
    # clean one-line exit shows that the error came before JAX started.
    if jax_platforms is not None:
        env["JAX_PLATFORMS"] = jax_platforms
    proc = subprocess.run([sys.executable, "-m", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "Unable to initialize backend" not in proc.stderr, proc.stderr
    return errors[0]


@pytest.mark.parametrize("args, expected", [
    (("experiments.es", "--config=configs/es_test.py", "--config.pars=8"),
     "--config.pars: configs/es_test.py has no field `pars`; did you mean `pairs`?"),
    (("experiments.ppo_amp", "--config=configs/ppo_amp_test.py", "--config.ppo.hiden=(8,)"),
     "did you mean `ppo.hidden`?"),
    (("experiments.benchmark", "--config=configs/es_test.py", "--config.no_such_field=1"),
     "has no field `no_such_field`"),
    (("experiments.es", "--config=configs/no_such_config.py"), "--config=configs/no_such_config.py: no such config file"),
    (("experiments.evaluate", "--run=x", "--episdes=3"), "Unknown command line flag 'episdes'. Did you mean: episodes"),
    (("experiments.curves", "--runs=/no/such/run"), "--runs: no metrics.jsonl in '/no/such/run'"),
    (("experiments.curves", "--runs=x", "--iterations=1e2"), "--iterations: must be whole numbers, got ['1e2']"),
])
def test_bad_command_line_is_one_line_before_jax(args, expected):
    assert expected in _run(args)


@pytest.fixture(scope="module")
def es_run_dir(tmp_path_factory):
    """An ES run directory as training leaves it, minus a checkpoint's contents."""
    path = tmp_path_factory.mktemp("runs") / "es" / "tiny"
    (path / "checkpoints").mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config_lib.to_dict(es_test.get_config())))
    return str(path)


@pytest.mark.parametrize("args, expected", [
    (("experiments.play", "--command=0.5,0,0"), "--command: ES runs do not take it (only PPO+AMP runs do)"),
    (("experiments.play", "--output=clip.gif"), "--output: must name an .mp4 file"),
    (("experiments.play", "--physics=mjcf"), "--physics: ES runs take one of"),
    (("experiments.export", "--observations=3"), "--observations: must be at least 16"),
    (("experiments.sim2sim",), "--gymnasium: an ES run is checked in Gymnasium's Humanoid-v4"),
    (("experiments.sim2sim", "--gymnasium"), "does not exist; write it with `python -m experiments.export"),
    (("experiments.evaluate", "--suite=robustness"), "--suite: ES runs do not take it (only PPO+AMP runs do)"),
])
def test_run_commands_refuse_bad_input_in_one_line(es_run_dir, args, expected):
    assert expected in _run((*args, f"--run={es_run_dir}"), jax_platforms=None)


@pytest.mark.parametrize("flags, expected", [
    (("--config.eval_every=0",), "error: config.eval_every: must be a positive integer (got 0)"),
    # The tests' 4 host devices (XLA_FLAGS, inherited) cannot split a chunk of 2.
    (("--config.pairs=1", "--config.candidate_chunk=2"),
     "error: config.candidate_chunk: must be divisible by the number of devices (4) (got 2)"),
])
def test_bad_config_is_the_only_line_after_the_backend_starts_and_writes_nothing(tmp_path, flags, expected):
    """Validation that needs the device count runs once JAX is up: still one line (no
    backend probe chatter), before anything compiles, and no results directory."""
    results = tmp_path / "results"
    line = _run(("experiments.es", "--config=configs/es_test.py", *flags, f"--config.results_dir={results}"),
                jax_platforms=None)
    assert line == expected
    assert not results.exists()
