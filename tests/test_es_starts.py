"""Independent starts (`config.starts`): each start is its own seed's run, the longest-lived
one continues exactly as its uninterrupted run would, every start's env steps count, a
stopped run resumes, and bad settings are one line that creates nothing.

The toy trainer of `test_es_clock` (closed-form fitness, 16 env steps an iteration) runs
the real host loop in seconds; its evaluation's episode length here grows with the fitness
of theta, so the starts differ and the choice is known from their records.
"""

import dataclasses
import json
import os

import pytest

from common import host_loop
from common.config import ConfigError
from configs import es_cpu
from humanoid_es import config as es_config, hooks, starts
from tests.conftest import COMPILE_CACHE
from tests.test_es_clock import _EvalToy
from tests.test_es_direction import _config as _toy_config


class _LengthToy(_EvalToy):
    def _evaluate(self, state, key, episodes=None):
        out = super()._evaluate(state, key, episodes)
        # Longer "episodes" the fitter theta is (the quadratic is <= 0).
        return {**out, "eval_length": 100.0 + out["eval_return"]}


_PIPELINE = dataclasses.replace(hooks.PIPELINE, make_trainer=_LengthToy, plot=lambda run_dir, trainer: None)


def _config(tmp_path, **overrides):
    return _toy_config(**{"results_dir": str(tmp_path), "run_name": "multi", "video_seconds": 0.0,
                          "tensorboard": False, "checkpoint_every": 2, "compile_cache_dir": COMPILE_CACHE,
                          "num_iterations": 1000, "eval_every": 1000, "eval_every_env_steps": 16, "seed": 2,
                          "starts": 3, "start_env_steps": 40, "max_env_steps": 300, **overrides})


def _records(path):
    with open(os.path.join(path, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def _plain(records):
    """A record without the figures that differ between two runs of the same iterations."""
    drop = {"wall_seconds", "iteration_seconds", "env_steps_per_s", "compile_seconds"}
    return [{k: v for k, v in r.items() if k not in drop} for r in records]


def test_the_longest_lived_start_continues_and_every_start_counts(tmp_path):
    config = _config(tmp_path)
    # Start 1 stopped early (as a signal would leave it): the run resumes it.
    host_loop.run(starts.start_config(config, "multi", 1, 16), _PIPELINE)
    summary = starts.run(config, _PIPELINE)

    base = tmp_path / "es"
    figures = json.loads((base / "multi" / "starts.json").read_text())
    ends = []
    for k in range(3):
        saved = json.loads((base / f"multi.start{k}" / "config.json").read_text())
        assert (saved["seed"], saved["starts"]) == (2 * 3 + k, 1)
        records = _records(base / f"multi.start{k}")
        # Each start stops at the iteration that crosses 40 env steps (3 x 16), evaluated.
        choice = starts.until_choice(records, 40)[-1]
        assert (choice["iteration"], choice["env_steps"]) == (3, 48) and "eval_length" in choice
        assert figures["starts"][k]["eval_length"] == choice["eval_length"]
        ends.append(records[-1]["env_steps"])
    lengths = [f["eval_length"] for f in figures["starts"]]
    chosen = figures["chosen"]
    assert chosen == summary["chosen_start"] == max(range(3), key=lengths.__getitem__)
    assert len(set(lengths)) == 3
    # The others stopped at their choice; the chosen one went on to 300 - 2 x 48 = 204
    # env steps of its own (crossed at 208), and the run counts 2 x 48 + 208.
    assert sorted(ends) == [48, 48, 208] and ends[chosen] == 208
    assert summary["env_steps"] == 304

    # The continuation is the chosen seed's uninterrupted run.
    alone = starts.start_config(config, "multi", chosen, 208)
    alone.run_name = "alone"
    host_loop.run(alone, _PIPELINE)
    assert _plain(_records(base / f"multi.start{chosen}")) == _plain(_records(base / "alone"))

    # The run's curve: the starts one after another, then the continuation, in env steps.
    curve = _records(base / "multi")
    steps = [r["env_steps"] for r in curve]
    assert steps == sorted(steps) and steps[-1] == 304
    assert [r["start"] for r in curve if r["env_steps"] > 144] == [chosen] * sum(s > 144 for s in steps)
    assert (base / "multi" / "plots" / "learning_curve.png").stat().st_size > 0
    walls = [r["wall_seconds"] for r in curve]
    assert walls == sorted(walls)
    saved = json.loads((base / "multi" / "summary.json").read_text())
    assert (saved["env_steps"], saved["chosen_start"], saved["wall_seconds"]) == (304, chosen, walls[-1])

    # Again: every start is done and the continuation is at its budget; nothing changes.
    before = {k: _records(base / f"multi.start{k}") for k in range(3)}
    assert starts.run(config, _PIPELINE)["env_steps"] == 304
    assert {k: _records(base / f"multi.start{k}") for k in range(3)} == before


def test_the_longest_episodes_win_and_the_return_breaks_ties():
    figures = [{"eval_length": 120.0, "eval_return": 900.0}, {"eval_length": 150.0, "eval_return": 800.0},
               {"eval_length": 150.0, "eval_return": 850.0}]
    assert starts.choose(figures) == 2
    assert starts.until_choice([{"env_steps": 10}, {"env_steps": 50}, {"env_steps": 90}], 40) == [
        {"env_steps": 10}, {"env_steps": 50}]


@pytest.mark.parametrize("overrides, field, message", [
    ({"starts": 0}, "starts", "must be a positive integer"),
    ({"start_env_steps": 0}, "start_env_steps", "must be > 0 where starts > 1"),
    ({"max_env_steps": 120}, "max_env_steps", "must exceed starts x start_env_steps = 120"),
    ({"init_from": "results/es/other"}, "init_from", "must be None where starts > 1"),
])
def test_bad_starts_settings_are_one_line_and_create_nothing(tmp_path, overrides, field, message):
    config = _config(tmp_path / "results", **overrides)
    with pytest.raises(ConfigError, match=rf"^config\.{field}: {message}"):
        es_config.validate(config)
    with pytest.raises(ConfigError, match=rf"^config\.{field}: "):
        starts.run(config, _PIPELINE)
    assert not os.path.exists(tmp_path / "results")


def test_a_one_start_run_of_the_same_name_is_refused_untouched(tmp_path):
    config = _config(tmp_path)
    single = _config(tmp_path, starts=1, max_env_steps=32)
    host_loop.run(single, _PIPELINE)
    run = tmp_path / "es" / "multi"
    before = {name: (run / name).stat().st_mtime_ns for name in os.listdir(run)}
    with pytest.raises(ConfigError, match=r"^config\.run_name: .* holds a run of one start"):
        starts.run(config, _PIPELINE)
    assert {name: (run / name).stat().st_mtime_ns for name in os.listdir(run)} == before
    assert not any(name.startswith("multi.start") for name in os.listdir(tmp_path / "es"))


def test_the_cpu_config_validates_with_starts():
    config = es_cpu.get_config()
    config.starts, config.start_env_steps = 4, 4_000_000
    es_config.validate(config)
