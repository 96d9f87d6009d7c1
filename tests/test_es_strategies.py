"""evosax strategies on the ES engine: each iterates and resumes exactly; 4 devices = 1.

Each strategy's own part (ask, tell, its state in the checkpoint) runs in the real
jitted iteration on the closed-form fitness of tests/test_es_direction.py, so every
strategy is checked in seconds, with no MJX rollout. How the asked population reaches
the rollouts (sharded by candidate, every candidate's episode run) compiles MJX once,
for Open_ES, and is `slow`: `.ci/run` runs it after the default suite.
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


def _config(name, **overrides):
    return _tiny_config(strategy=name, **{"policy.trainable": ("w_out", "b_out"), **overrides})


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


@pytest.mark.slow
def test_evosax_population_sharded_over_four_devices_equals_one_device():
    """The asked population enters the rollouts split by candidate; every candidate's
    episode runs (nobody falls within 4 steps), and results match one device."""
    assert jax.device_count() == 4
    one = Trainer(_config("Open_ES"))
    four = Trainer(_config("Open_ES", candidate_chunk=8), sharding.make_mesh())
    start = one.init(jax.random.PRNGKey(2))
    a, ma = _run(one, start, 2)
    b, mb = _run(four, four.place(start), 2)
    for x, y in zip(ma, mb, strict=True):
        assert float(x["iteration_env_steps"]) == float(y["iteration_env_steps"]) == 8 * 4
        np.testing.assert_allclose(y["fitness_mean"], x["fitness_mean"], rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(a.theta), np.asarray(a.strategy_state.mean))
    np.testing.assert_allclose(np.asarray(b.theta), np.asarray(a.theta), rtol=1e-4, atol=1e-6)
