"""evosax strategies on the ES engine: each iterates and resumes exactly; 4 devices = 1.

Each strategy's own part (ask, tell, its state in the checkpoint, the population's
sharding constraint) runs in the real jitted iteration on the closed-form fitness of
tests/test_es_direction.py, so every strategy is checked in seconds, with no MJX
rollout. The rollouts of a population array, sharded by candidate, are
tests/test_rollout.py's; one strategy's iteration through real MJX episodes is `slow`
(`.ci/run` runs it after the default suite).
"""

import jax
import numpy as np
import pytest

from common import checkpoint, sharding
from humanoid_es import strategies
from humanoid_es.trainer import Trainer
from tests.conftest import assert_same_leaves
from tests.test_es_direction import _ToyTrainer, _quadratic, _config as _toy_config
from tests.test_es_train import _run, _tiny_config

EVOSAX = [n for n in strategies.NAMES if n != strategies.PERTURBATIVE]


def test_every_issue_strategy_is_offered():
    assert set(EVOSAX) >= {"Open_ES", "ARS", "PGPE", "SNES", "Sep_CMA_ES"}


@pytest.mark.parametrize("name", EVOSAX)
def test_strategy_iterates_and_resumes_exactly(name, tmp_path):
    """theta is the strategy's mean, and a checkpoint holds all of its state: a run
    restored after one iteration ends where the straight run ends, leaf for leaf."""
    trainer = _ToyTrainer(_toy_config(strategy=name), fitness=_quadratic)
    start = trainer.init(jax.random.PRNGKey(1))
    straight, history = _run(trainer, start, 2)
    assert int(straight.iteration) == 2
    theta = np.asarray(straight.theta)
    assert np.all(np.isfinite(theta)) and not np.allclose(theta, np.asarray(start.theta))
    np.testing.assert_array_equal(theta, np.asarray(straight.strategy_state.mean))
    assert all(np.isfinite(float(m["sigma"])) and float(m["sigma"]) > 0 for m in history)

    half, _ = _run(trainer, start, 1)
    ckpt = checkpoint.Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(1, half)
    ckpt.close()
    restored = checkpoint.Checkpointer(str(tmp_path / "ckpt")).restore(trainer.init(jax.random.PRNGKey(1)))
    resumed, _ = _run(trainer, restored, 1)
    assert_same_leaves(straight, resumed)


@pytest.mark.parametrize("name", ["Open_ES", "Sep_CMA_ES"])
def test_strategy_on_four_devices_equals_one_device(name):
    """The asked population is constrained to the mesh, split by candidate, before it is
    evaluated; the strategy's steps on four devices match one device's. (The rollouts
    of a population array sharded by candidate: tests/test_rollout.py.)"""
    assert jax.device_count() == 4
    one = _ToyTrainer(_toy_config(strategy=name), fitness=_quadratic)
    four = _ToyTrainer(_toy_config(strategy=name), fitness=_quadratic, mesh=sharding.make_mesh())
    start = one.init(jax.random.PRNGKey(2))
    a, ma = _run(one, start, 3)
    b, mb = _run(four, four.place(start), 3)
    assert len(b.theta.sharding.device_set) == 4
    for x, y in zip(ma, mb, strict=True):
        np.testing.assert_allclose(y["fitness_mean"], x["fitness_mean"], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(b.theta), np.asarray(a.theta), rtol=1e-5, atol=1e-6)


# ~50 s on 2 cores (the strategy's iteration compiled with MJX rollouts): run by .ci/run.
@pytest.mark.slow
def test_a_strategy_population_runs_real_episodes():
    """The trainer hands an evosax population to the MJX rollouts: every candidate's
    episode runs (nobody falls within 4 steps), and theta moves to the strategy's mean."""
    trainer = Trainer(_tiny_config(strategy="Open_ES", **{"policy.trainable": ("w_out", "b_out")}))
    start = trainer.init(jax.random.PRNGKey(2))
    state, (metrics,) = _run(trainer, start, 1)
    assert float(metrics["iteration_env_steps"]) == 2 * trainer.config.pairs * trainer.config.horizon
    assert np.isfinite(float(metrics["fitness_mean"])) and float(metrics["fitness_std"]) > 0
    theta = np.asarray(state.theta)
    np.testing.assert_array_equal(theta, np.asarray(state.strategy_state.mean))
    assert np.all(np.isfinite(theta)) and not np.array_equal(theta, np.asarray(start.theta))
