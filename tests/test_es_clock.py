"""ES over env steps: schedules on the env-step clock, evaluations every N env steps, and a
run started from another run's state (`init_from`), through the real host loop.

The toy trainer of `test_es_direction` (closed-form fitness, one env step per candidate)
stands in for MJX, and its evaluation is the fitness of theta itself, so the host loop,
checkpoints and records run unchanged in seconds and every figure is known in advance.
"""

import dataclasses
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from common import checkpoint, host_loop
from common.config import ConfigError
from humanoid_es import hooks
from tests.conftest import COMPILE_CACHE, set_fields
from tests.test_es_direction import _ToyTrainer, _config as _toy_config, _quadratic


class _EvalToy(_ToyTrainer):
    """The toy trainer whose evaluation is the fitness of theta (no rollout compiled)."""

    def __init__(self, config, mesh=None):
        super().__init__(config, _quadratic, mesh)

    def _evaluate(self, state, key, episodes=None):
        del key, episodes
        return {"eval_return": _quadratic(state.theta), "eval_length": jnp.ones(()),
                "eval_x_velocity_mean": jnp.zeros(())}


_PIPELINE = dataclasses.replace(hooks.PIPELINE, make_trainer=_EvalToy, plot=lambda run_dir, trainer: None)


def _records(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_schedules_run_on_the_env_step_clock():
    """With `schedule_env_steps` the rate at an iteration is the schedule at the env steps
    lived before it (16 per toy iteration), held at its final value past the horizon, and
    the step taken equals a constant-rate run's at that rate."""
    lr0, lr1, horizon = 0.1, 0.01, 64
    sched = _toy_config(optimizer="sgd", learning_rate=lr0, learning_rate_final=lr1,
                        learning_rate_schedule="linear", schedule_env_steps=horizon)
    trainer = _ToyTrainer(sched, _quadratic)
    state = trainer.init(jax.random.PRNGKey(0))
    rates = []
    for _ in range(6):
        before = state
        state, metrics = trainer.iteration(state)
        rates.append(float(metrics["learning_rate"]))
    assert float(state.env_steps) == 6 * trainer.population == 96
    expected = [lr0 + (lr1 - lr0) * min(16 * k, horizon) / horizon for k in range(6)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)

    # The last step (clock 80 > 64: the final rate) as a constant-rate trainer takes it.
    constant = _ToyTrainer(set_fields(_toy_config(optimizer="sgd"), {"learning_rate": lr1, "learning_rate_final": lr1}),
                           _quadratic)
    again, _ = constant.iteration(before)
    np.testing.assert_allclose(np.asarray(again.theta), np.asarray(state.theta), rtol=1e-6, atol=1e-8)
    # Over iterations (schedule_env_steps=0, 64 iterations) it stands at 5 of 64.
    by_iteration = _ToyTrainer(set_fields(sched, {"schedule_env_steps": 0, "num_iterations": 64}), _quadratic)
    _, m = by_iteration.iteration(before)
    np.testing.assert_allclose(float(m["learning_rate"]), lr0 + (lr1 - lr0) * 5 / 64, rtol=1e-6)


def test_the_trainers_adam_step_is_adams_at_the_scheduled_rate():
    """The trainer scales Adam's unit-rate update by the rate: its first step from theta is
    Adam's first step at that rate, lr * g / (|g| + eps), g the ascent estimate (which an
    SGD trainer at rate 1 takes as its step, from the same state and noise)."""
    lr = 0.02
    sgd = _ToyTrainer(_toy_config(optimizer="sgd", learning_rate=1.0, learning_rate_final=1.0), _quadratic)
    adam = _ToyTrainer(_toy_config(optimizer="adam", learning_rate=lr, learning_rate_final=lr), _quadratic)
    start = sgd.init(jax.random.PRNGKey(4))
    g = np.asarray(sgd.iteration(start)[0].theta - start.theta)
    state = adam.init(jax.random.PRNGKey(4))
    np.testing.assert_array_equal(np.asarray(state.theta), np.asarray(start.theta))
    step = np.asarray(adam.iteration(state)[0].theta - state.theta)
    np.testing.assert_allclose(step, lr * g / (np.abs(g) + 1e-8), rtol=1e-5, atol=1e-9)
    # And optax's Adam at that rate equals the unit-rate update scaled, over several steps.
    grads = [jnp.array([0.3, -2.0, 1e-3]), jnp.array([-0.1, 0.5, 4.0]), jnp.array([1.0, 1.0, -1.0])]
    unit, direct = optax.adam(1.0), optax.adam(lr)
    s_unit, s_direct = unit.init(grads[0]), direct.init(grads[0])
    for grad in grads:
        u, s_unit = unit.update(grad, s_unit)
        d, s_direct = direct.update(grad, s_direct)
        np.testing.assert_allclose(lr * np.asarray(u), np.asarray(d), rtol=1e-6)


def _run_config(tmp_path, name, **overrides):
    return _toy_config(**{"results_dir": str(tmp_path), "run_name": name, "video_seconds": 0.0,
                          "tensorboard": False, "checkpoint_every": 2, "compile_cache_dir": COMPILE_CACHE,
                          **overrides})


def test_evaluations_every_n_env_steps_and_a_branch_counts_on_from_its_source(tmp_path):
    """Evaluations land at the first iteration at or past each multiple of 40 env steps
    (16 a toy iteration: iterations 3, 5, 8) and after the last (9), not every
    `eval_every`; a run started from it begins at its theta, clock, optimizer state and
    env steps, with another population size, and resumes without the source."""
    schedule = {"optimizer": "adam", "learning_rate_schedule": "linear", "schedule_env_steps": 512,
                "learning_rate_final": 0.001}
    source_config = _run_config(tmp_path, "source", num_iterations=9, eval_every=1000, eval_every_env_steps=40,
                                checkpoints_to_keep=1, checkpoints_keep_every=4, **schedule)
    host_loop.run(source_config, _PIPELINE)
    source_dir = tmp_path / "es" / "source"
    records = _records(source_dir)
    assert [r["iteration"] for r in records if "eval_return" in r] == [0, 3, 5, 8, 9]
    assert records[-1]["env_steps"] == 9 * 16

    branch_config = _run_config(tmp_path, "branch", num_iterations=2, pairs=4, candidate_chunk=8,
                                init_from=str(source_dir), **schedule)
    host_loop.run(branch_config, _PIPELINE)
    branch = _records(tmp_path / "es" / "branch")
    # Iteration 0 evaluates the source's final theta: the toy evaluation is its fitness.
    assert (branch[0]["iteration"], branch[0]["env_steps"]) == (0, 144)
    assert (branch[0]["init_from_iteration"], branch[0]["init_from_env_steps"]) == (9, 144)
    assert branch[0]["eval_return"] == records[-1]["eval_return"]
    assert [r["env_steps"] for r in branch[1:]] == [144 + 8, 144 + 16]
    # The rate continues from the source's clock (144 of 512 env steps).
    np.testing.assert_allclose(branch[1]["learning_rate"], 0.01 + (0.001 - 0.01) * 144 / 512, rtol=1e-6)

    # Beside the latest (9), the run kept iterations 4 and 8 (`checkpoints_keep_every`);
    # `<run>@<iteration>` branches from one of them.
    assert sorted(os.listdir(source_dir / "checkpoints")) == ["4", "8", "9"]
    early = _run_config(tmp_path, "early", num_iterations=1, init_from=f"{source_dir}@4", **schedule)
    host_loop.run(early, _PIPELINE)
    first = _records(tmp_path / "es" / "early")[0]
    assert (first["init_from_iteration"], first["env_steps"]) == (4, 64)
    kept = checkpoint.restore_latest(str(source_dir / "checkpoints"), _EvalToy(early).init(jax.random.PRNGKey(0)), 4)
    assert int(kept.iteration) == 4
    np.testing.assert_allclose(first["eval_return"], float(_quadratic(kept.theta)), rtol=1e-6)
    with pytest.raises(ConfigError, match=r"^config\.init_from: .*has no checkpoint of iteration 5"):
        host_loop.run(_run_config(tmp_path, "five", init_from=f"{source_dir}@5", **schedule), _PIPELINE)

    # The branch resumes from its own checkpoint, without its source.
    os.rename(source_dir, tmp_path / "moved")
    host_loop.run(set_fields(branch_config, {"num_iterations": 3}), _PIPELINE)
    assert [r["env_steps"] for r in _records(tmp_path / "es" / "branch")] == [144, 152, 160, 168]

    trainer = _EvalToy(branch_config)
    template = trainer.init(jax.random.PRNGKey(0))
    after = checkpoint.restore_latest(str(tmp_path / "es" / "branch" / "checkpoints"), template)
    source = checkpoint.restore_latest(str(tmp_path / "moved" / "checkpoints"), template)
    assert int(after.iteration) == 3 and float(after.env_steps) == 144 + 24
    # Adam's step count went on from the source's 9.
    assert int(after.opt_state[0].count) == 12 and int(source.opt_state[0].count) == 9

    # A source of another policy, or none at all: one line, and no run directory.
    for overrides, message in (({"policy.size": 32}, r"policy\.size \(16 there\)"),
                               ({"init_from": str(tmp_path / "nowhere")}, "must be an ES run directory")):
        c = _run_config(tmp_path / "refused", "x", **{"init_from": str(tmp_path / "moved"), **overrides})
        with pytest.raises(ConfigError, match=rf"^config\.init_from: .*{message}"):
            host_loop.run(c, _PIPELINE)
        assert not os.path.exists(tmp_path / "refused")


def test_a_branch_keeps_only_what_fits_and_refuses_another_policy(tmp_path):
    source = _ToyTrainer(_toy_config(optimizer="adam"), _quadratic)
    state, _ = source.iteration(source.init(jax.random.PRNGKey(1)))
    # Another optimizer: theta, normaliser and clock carry; SGD's own (empty) state is fresh.
    sgd = _ToyTrainer(_toy_config(optimizer="sgd"), _quadratic)
    fresh = sgd.init(jax.random.PRNGKey(2))
    branched = sgd.branch(fresh, state)
    np.testing.assert_array_equal(np.asarray(branched.theta), np.asarray(state.theta))
    assert float(branched.env_steps) == float(state.env_steps) == 16 and int(branched.iteration) == 0
    assert jax.tree.structure(branched.opt_state) == jax.tree.structure(fresh.opt_state)
    np.testing.assert_array_equal(np.asarray(branched.key), np.asarray(fresh.key))

    wider = _ToyTrainer(_toy_config(**{"policy.trainable": ("b_out", "w_out")}), _quadratic)
    with pytest.raises(ConfigError, match=r"^config\.init_from: the source run's theta"):
        wider.branch(wider.init(jax.random.PRNGKey(0)), state)


def test_a_source_that_is_not_a_run_is_one_line_and_creates_nothing(tmp_path):
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{not json")
    (tmp_path / "half" / "checkpoints").mkdir()
    c = _run_config(tmp_path / "results", "x", init_from=str(tmp_path / "half"))
    with pytest.raises(ConfigError, match=r"^config\.init_from: .*config\.json is unreadable"):
        host_loop.run(c, _PIPELINE)
    assert not os.path.exists(tmp_path / "results")


def test_curves_band_is_the_median_and_range_over_seeds_at_each_budget():
    """`experiments.curves --band`: each budget reads every seed's last evaluation at or
    before it, and the band stops where a seed has none (it stopped short)."""
    from experiments import curves

    def evals(*points):
        return [{"env_steps": s, "eval_return": r} for s, r in points]

    runs = [evals((0, 200), (0.6e6, 400), (1.1e6, 700), (2.2e6, 900)),
            evals((0, 210), (0.5e6, 300), (1.05e6, 500), (2.0e6, 800)),
            evals((0, 190), (0.55e6, 350), (1.2e6, 1000))]
    xs, low, middle, high = curves.band(runs, 0.5e6)
    # The third run's last evaluation is at 1.2M: no figure past 1.2M / 0.9 (at_budget's rule).
    assert xs == [0.5e6, 1.0e6]
    assert (low, middle, high) == ([190, 300], [200, 350], [300, 400])
    with pytest.raises(Exception, match="no evaluation in common"):
        curves.band([evals((0, 1))], 0.5e6)


def test_curves_first_reaching_is_the_first_evaluation_at_or_above_the_level():
    from experiments import curves

    evals = [{"env_steps": s, "iteration": i, "wall_seconds": w, "eval_return": r}
             for s, i, w, r in ((0, 0, 0.0, 200), (1e6, 10, 60.0, 5999), (2e6, 20, 130.0, 6000), (3e6, 30, 200.0, 7000))]
    assert curves.first_reaching(evals, 6000) == {"env_steps": 2e6, "iteration": 20, "wall_seconds": 130.0}
    assert curves.first_reaching(evals, 7001) is None
    # Figures at iterations follow the env-step budgets' rule.
    assert curves.at_budget(evals, 25, "iteration") == 6000 and curves.at_budget(evals, 40, "iteration") is None
