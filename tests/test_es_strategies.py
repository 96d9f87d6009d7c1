"""evosax strategies on the ES engine: two iterations and an exact resume each; 4 devices = 1.

Each strategy compiles its own iteration (about 3 minutes each on 2 busy cores, measured),
so all of them are `slow`: `.ci/run` runs them after the default suite.
"""

import jax
import numpy as np
import pytest

from common import checkpoint, sharding
from humanoid_es import strategies
from humanoid_es.trainer import Trainer
from tests.test_es_train import _run, _tiny_config

EVOSAX = [n for n in strategies.NAMES if n != strategies.PERTURBATIVE]


def _config(name, **overrides):
    return _tiny_config(strategy=name, **{"policy.trainable": ("w_out", "b_out"), **overrides})


def test_every_issue_strategy_is_offered():
    assert set(EVOSAX) >= {"Open_ES", "ARS", "PGPE", "SNES", "Sep_CMA_ES"}


@pytest.mark.slow
@pytest.mark.parametrize("name", EVOSAX)
def test_strategy_iterates_and_resumes_exactly(name, tmp_path):
    trainer = Trainer(_config(name))
    start = trainer.init(jax.random.PRNGKey(1))
    straight, history = _run(trainer, start, 2)
    assert int(straight.iteration) == 2
    theta = np.asarray(straight.theta)
    assert np.all(np.isfinite(theta)) and not np.allclose(theta, np.asarray(start.theta))
    # theta is the strategy's mean, and every candidate ran (nobody falls in 4 steps).
    np.testing.assert_array_equal(theta, np.asarray(straight.strategy_state.mean))
    assert all(float(m["iteration_env_steps"]) == 8 * 4 for m in history)
    assert all(np.isfinite(float(m["sigma"])) and float(m["sigma"]) > 0 for m in history)

    half, _ = _run(trainer, start, 1)
    ckpt = checkpoint.Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(1, half)
    ckpt.close()
    restored = checkpoint.Checkpointer(str(tmp_path / "ckpt")).restore(trainer.init(jax.random.PRNGKey(1)))
    resumed, _ = _run(trainer, restored, 1)
    for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.slow
def test_evosax_population_sharded_over_four_devices_equals_one_device():
    """The asked population enters the rollouts split by candidate; results match one device."""
    assert jax.device_count() == 4
    one = Trainer(_config("Open_ES"))
    four = Trainer(_config("Open_ES", candidate_chunk=8), sharding.make_mesh())
    start = one.init(jax.random.PRNGKey(2))
    a, ma = _run(one, start, 2)
    b, mb = _run(four, four.place(start), 2)
    for x, y in zip(ma, mb):
        np.testing.assert_allclose(y["fitness_mean"], x["fitness_mean"], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(b.theta), np.asarray(a.theta), rtol=1e-4, atol=1e-6)
