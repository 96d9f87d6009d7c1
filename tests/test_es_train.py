"""The ES trainer: resumed = uninterrupted, 4 devices = 1 device, recorded play and export.

The command lines on an ES run are in tests/test_es_cli.py."""

import dataclasses

import equinox as eqx
import jax
import numpy as np
import pytest

from common import checkpoint, onnx_export, sharding, video
from configs import es_test
from humanoid_es import export as es_export
from humanoid_es.trainer import Trainer
from tests.conftest import assert_same_leaves, set_fields

# A 4-step horizon keeps compiled rollouts small and makes 4 devices agree with one to
# float tolerance (see the sharding test).
TINY = {"pairs": 4, "candidate_chunk": 2, "horizon": 4, "early_exit_block": 2, "eval_episodes": 2,
        "policy.size": 16, "noise_rank": 2, "policy.trainable": ("w_out", "b_out", "w_rec")}


def _tiny_config(**overrides):
    return set_fields(es_test.get_config(), {**TINY, **overrides})


@pytest.fixture(scope="module")
def trainer(fast_env):
    del fast_env  # built first so the session shares one model
    return Trainer(_tiny_config())


def _run(trainer, state, n):
    history = []
    for _ in range(n):
        state, metrics = trainer.iteration(state)
        history.append(jax.device_get(metrics))
    return state, history


def test_iteration_updates_theta_and_stays_finite(trainer):
    state = trainer.init(jax.random.PRNGKey(0))
    assert trainer.num_params == 17 * (16 + 376) + 17 + 16 * 16
    new, (m,) = _run(trainer, state, 1)
    assert int(new.iteration) == 1
    assert np.all(np.isfinite(np.asarray(new.theta)))
    assert float(m["update_norm"]) > 0 and int(m["pairs_kept"]) == 4
    # Normaliser statistics come from this iteration's rollouts: one sample per live step.
    assert float(new.obs_stats.count) == float(m["iteration_env_steps"])
    # Frozen leaves are carried, never trained.
    np.testing.assert_array_equal(new.frozen.w_in, state.frozen.w_in)
    # Nobody falls within 4 steps: every candidate ran the whole horizon.
    assert float(m["iteration_env_steps"]) == 8 * 4 and int(m["episode_length_max"]) == 4


def test_resumed_equals_uninterrupted(trainer, tmp_path):
    start = trainer.init(jax.random.PRNGKey(1))
    straight, _ = _run(trainer, start, 4)

    half, _ = _run(trainer, start, 2)
    ckpt = checkpoint.Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(2, half)
    ckpt.close()
    template = trainer.init(jax.random.PRNGKey(1))
    restored = checkpoint.Checkpointer(str(tmp_path / "ckpt")).restore(template)
    resumed, _ = _run(trainer, restored, 2)

    assert_same_leaves(straight, resumed)


# ~100 s on 2 cores (a second trainer's two compiles): run by .ci/run. The default suite
# checks sharded = single device on the population rollouts (tests/test_rollout.py).
@pytest.mark.slow
def test_sharded_over_four_devices_equals_one_device(trainer):
    """Chunks of 8 over 4 devices run the same 2-member rollouts as chunks of 2 on one.

    The horizon is short on purpose: over longer episodes a falling humanoid turns
    rounding differences between the two compiled programs into a contact made one
    step earlier, and returns then differ by whole units (tests/test_rollout.py bounds
    that on zero-noise rollouts). Over 4 steps the comparison is to float tolerance.
    """
    assert jax.device_count() == 4
    four = Trainer(_tiny_config(candidate_chunk=8), sharding.make_mesh())
    start = trainer.init(jax.random.PRNGKey(2))
    a, ma = _run(trainer, start, 2)
    # As train.run does: executables compiled ahead of time for the placed first state
    # must accept every later state, the evaluation's included.
    placed = four.place(start)
    iteration = four.iteration.lower(placed).compile()
    evaluate = four.evaluate.lower(placed, four.eval_key(placed)).compile()
    b, mb = placed, []
    for _ in range(2):
        b, m = iteration(b)
        mb.append(jax.device_get(m))
    assert np.isfinite(float(evaluate(b, four.eval_key(b))["eval_return"]))
    for x, y in zip(ma, mb):
        np.testing.assert_allclose(y["fitness_mean"], x["fitness_mean"], rtol=1e-5)
        assert y["iteration_env_steps"] == x["iteration_env_steps"]
    # To a thousandth of the largest step: ARS's weights are differences of nearly equal
    # 4-step returns, so rounding that leaves the fitness within 1e-5 moves single
    # coordinates of a near-zero theta by ~5e-6 (measured); a pairing or noise error moves
    # them by the whole step.
    step = float(np.abs(np.asarray(a.theta) - np.asarray(start.theta)).max())
    assert step > 0
    np.testing.assert_allclose(np.asarray(b.theta), np.asarray(a.theta), rtol=1e-4, atol=1e-3 * step)
    np.testing.assert_allclose(np.asarray(b.obs_stats.mean), np.asarray(a.obs_stats.mean), rtol=1e-4, atol=1e-4)
    assert float(b.obs_stats.count) == float(a.obs_stats.count)


@pytest.fixture(scope="module")
def played(trainer):
    """A policy with trained-looking weights and statistics, played 4 steps in 2 envs."""
    state = trainer.init(jax.random.PRNGKey(3))
    state = eqx.tree_at(lambda s: s.theta, state, 0.05 * jax.random.normal(jax.random.PRNGKey(4), state.theta.shape))
    playback = trainer.playback(state, seconds=4 * 0.015)
    trajectory = video.record_playback(playback, jax.random.PRNGKey(11), batch=2)
    return state, playback, trajectory


# Compiling the recorded play and the 2-episode evaluation costs ~85 s on 2 cores; the
# export's check and every video also run `rollout.record`, through the CLI tests.
@pytest.mark.slow
def test_recorded_play_is_the_evaluation_episode_until_its_first_reset(trainer, played):
    """`rollout.record` (videos, export check) plays the policy `evaluate` scores."""
    state, playback, trajectory = played
    assert playback.steps == 4 and playback.control_dt == pytest.approx(0.015)
    key = jax.random.PRNGKey(11)
    out = trainer.evaluate(state, key, episodes=2)
    done = np.asarray(trajectory.done)
    first = np.cumsum(done, axis=0) - done == 0  # steps up to and including the first episode end
    returns = (np.asarray(trajectory.reward) * first).sum(axis=0)
    np.testing.assert_allclose(returns.mean(), float(out["eval_return"]), rtol=1e-5)
    np.testing.assert_allclose(first.sum(axis=0).mean(), float(out["eval_length"]), rtol=1e-6)
    assert trajectory.obs.shape == (4, 2, 376) and trajectory.carry.shape == (4, 2, 16)


@pytest.fixture(scope="module")
def trained(trainer):
    """The state after one iteration: a trained readout and the rollouts' observation statistics."""
    return _run(trainer, trainer.init(jax.random.PRNGKey(3)), 1)[0]


@pytest.mark.parametrize("obs_norm, action_map", [("clip", "tanh"), ("ars", "clip")])
def test_onnx_export_matches_the_reservoir(trainer, trained, tmp_path, obs_norm, action_map):
    """The graph with the normaliser folded in, on a trained state and observations at its statistics' scale."""
    state = trained
    reservoir = trainer.policy(state)
    reservoir = dataclasses.replace(reservoir, config=dataclasses.replace(reservoir.config, obs_norm=obs_norm,
                                                                          action_map=action_map))
    g, inputs, outputs = es_export.graph(reservoir, state.obs_stats)
    path = onnx_export.save(onnx_export.build(g, inputs, outputs, {"run_name": "x"}, "es"), str(tmp_path / "p.onnx"))
    # The iteration's rollouts leave constant features (std 0; the rules zero or floor them)
    # and varying ones, drawn here out to 6 std, past the clip at 5.
    std = np.asarray(state.obs_stats.std)
    assert (std == 0).any() and (std > 0).any()
    noise = np.asarray(jax.random.normal(jax.random.PRNGKey(6), (64, std.size)))
    obs = (np.asarray(state.obs_stats.mean) + np.where(std > 0, 6 * std, 1.0) * noise).astype(np.float32)
    h = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (64, 16)))
    h_next, action = jax.vmap(reservoir, in_axes=(None, 0, 0))(state.obs_stats, h, obs)
    assert np.abs(np.asarray(action)).max() > 0.05  # the readout is trained, not zero
    assert onnx_export.verify(path, {"obs": obs, "h": h}, {"action": action, "h_next": h_next}) <= 1e-5
    assert onnx_export.read_metadata(path) == {"run_name": "x"}
