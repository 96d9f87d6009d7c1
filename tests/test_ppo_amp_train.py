"""The PPO+AMP trainer: resumed = uninterrupted, sharded = single device, plain PPO, bad config."""

import os

import equinox as eqx
import jax
import numpy as np
import pytest

from common import checkpoint, host_loop, normalizer, sharding
from common.config import ConfigError
from configs import ppo_amp_test
from ppo_amp import amp, config as ppo_config, hooks
from ppo_amp.trainer import Trainer
from tests.conftest import assert_same_leaves, set_fields


def _config(**overrides):
    return set_fields(ppo_amp_test.get_config(), {"num_envs": 8, "rollout_length": 4, **overrides})


@pytest.fixture(scope="module")
def single():
    trainer = Trainer(_config())
    jitted, device = eqx.filter_jit(trainer.iteration), jax.devices()[0]

    # A fresh state's arrays are uncommitted, an iteration's output and a restored
    # checkpoint's are committed to a device: each would compile the iteration again
    # (~20 s apiece, measured). Committed first, every state meets one executable.
    def iterate(state):
        return jitted(jax.device_put(state, device))

    return trainer, iterate


def _params(state):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(eqx.filter((state.actor, state.critic, state.disc),
                                                                           eqx.is_array))])


def test_iterations_are_finite_and_report_every_figure(single):
    trainer, iterate = single
    state = trainer.init(jax.random.PRNGKey(0))
    for _ in range(2):
        state, metrics = iterate(state)
    metrics = jax.device_get(metrics)
    for name in ("loss/policy", "loss/value", "loss/entropy", "approx_kl", "clip_fraction", "disc/loss",
                 "disc_accuracy", "disc_accuracy_reference", "disc_accuracy_policy", "style_reward", "style_reward_std",
                 "reward/tracking_lin_vel", "reward/torque", "episode_return", "episode_length", "tracking_error"):
        assert name in metrics and np.isfinite(metrics[name]), name
    # Pooled input units: after each iteration the discriminator normalises by the equal
    # mix of the clips and every policy window so far (the replay still holds them all).
    assert trainer.config.amp.normalization == "pooled"
    size = int(state.replay.size)
    assert size == 2 * trainer.num_envs * trainer.config.rollout_length
    mean, std = amp.pooled_input_stats(normalizer.from_batch(trainer.reference),
                                       normalizer.from_batch(state.replay.data[:size]))
    np.testing.assert_allclose(state.disc.norm_mean, mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state.disc.norm_std, std, rtol=1e-4, atol=1e-5)
    assert np.all(np.isfinite(_params(state)))
    assert int(state.iteration) == 2 and int(state.replay.size) == 2 * 8 * 4


def test_resumed_equals_uninterrupted(single, tmp_path):
    trainer, iterate = single
    state = trainer.init(jax.random.PRNGKey(1))
    straight = iterate(iterate(state)[0])[0]

    ckpt = checkpoint.Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(1, iterate(state)[0])
    restored = ckpt.restore(trainer.init(jax.random.PRNGKey(1)))
    ckpt.close()
    resumed = iterate(restored)[0]
    # Every leaf: networks, optimiser and normaliser states, replay, env states, counters, key.
    assert_same_leaves(straight, resumed)


def test_sharded_over_four_devices_equals_one_device(single):
    assert jax.device_count() == 4, "conftest forces four host devices"
    trainer, iterate = single
    state = trainer.init(jax.random.PRNGKey(2))
    one = iterate(state)[0]

    sharded = Trainer(_config(), sharding.make_mesh())
    placed = sharded.place(sharded.init(jax.random.PRNGKey(2)))
    compiled = sharded.iteration.lower(placed).compile()  # ahead of time, as train.run does
    four, _ = compiled(placed)
    assert len(four.env_state.data.qpos.sharding.device_set) == 4
    np.testing.assert_allclose(np.asarray(four.env_state.data.qpos), np.asarray(one.env_state.data.qpos),
                               atol=1e-5)
    # Gradients summed over devices in another order: float rounding only.
    np.testing.assert_allclose(_params(four), _params(one), rtol=1e-4, atol=1e-5)
    # The next iteration accepts the state the first one returned (same shardings).
    compiled(four)


# ~60 s on 2 cores (a second trainer's compile): run by .ci/run.
@pytest.mark.slow
def test_plain_ppo_without_amp():
    trainer = Trainer(_config(**{"amp.enabled": False}))
    state, metrics = eqx.filter_jit(trainer.iteration)(trainer.init(jax.random.PRNGKey(3)))
    assert state.disc is None and "disc/loss" not in metrics and "style_reward" not in metrics
    assert np.isfinite(float(metrics["loss/total"]))


@pytest.mark.parametrize("field, value, message", [
    ("num_envs", 6, "num_envs: must be divisible by the number of devices"),
    ("ppo.minibatches", 3, "ppo.minibatches: must divide the batch"),
    ("amp.loss", "hinge", "amp.loss: must be one of"),
    ("amp.normalization", "batch", "amp.normalization: must be one of"),
    ("amp.input_noise", -1.0, "amp.input_noise"),
    ("amp.motion_files", ("/no/such/clip.npz",), "amp.motion_files: no such file"),
    ("amp.replay_capacity", 4, "amp.replay_capacity"),
    ("rewards.tracking", 1.0, "rewards: unknown terms"),
    ("randomize.latency_steps", (3, 1), "latency_steps"),
    ("curriculum.threshold", 0.0, "curriculum.threshold"),
])
def test_bad_config_is_one_clear_error_before_any_results(tmp_path, field, value, message):
    c = _config(**{"results_dir": str(tmp_path / "results"), field: value})
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        ppo_config.validate(c, n_devices=4)
    with pytest.raises(ConfigError):
        host_loop.run(c, hooks.PIPELINE)
    assert not os.path.exists(tmp_path / "results")
