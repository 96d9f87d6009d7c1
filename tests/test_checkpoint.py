"""Orbax checkpoints: a whole train-state pytree round-trips; damage is one clear error."""

import os

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

from common import checkpoint, normalizer
from tests.conftest import assert_same_leaves


class _TrainState(eqx.Module):
    theta: jax.Array
    stats: normalizer.RunningStats
    step: jax.Array
    key: jax.Array
    label: str = eqx.field(static=True, default="es")


def _state(seed):
    k = jax.random.PRNGKey(seed)
    return _TrainState(
        theta=jax.random.normal(k, (5, 3)),
        stats=normalizer.from_batch(jax.random.normal(k, (10, 4))),
        step=jnp.asarray(seed, jnp.int32),
        key=jax.random.split(k)[0],
    )


def _assert_tree_equal(a, b):
    assert_same_leaves(a, b)


def test_round_trip_and_latest(tmp_path):
    ckpt = checkpoint.Checkpointer(str(tmp_path / "ckpt"), max_to_keep=2)
    for step in (1, 2, 3):
        ckpt.save(step, _state(step))
    assert ckpt.latest_step() == 3
    restored = ckpt.restore(_state(0))
    _assert_tree_equal(restored, _state(3))
    assert restored.label == "es"
    assert sorted(int(d) for d in os.listdir(tmp_path / "ckpt") if d.isdigit()) == [2, 3]
    ckpt.close()


def test_corrupt_or_mismatched_checkpoint_is_a_clear_error(tmp_path):
    ckpt = checkpoint.Checkpointer(str(tmp_path / "ckpt"))
    ckpt.save(1, _state(1))
    wrong = _TrainState(theta=jnp.zeros((7, 3)), stats=_state(0).stats, step=jnp.zeros((), jnp.int32), key=_state(0).key)
    with pytest.raises(checkpoint.CheckpointError, match="ckpt"):
        ckpt.restore(wrong)
    # Overwrite every data file of the step with garbage.
    for root, _, files in os.walk(tmp_path / "ckpt" / "1"):
        for f in files:
            with open(os.path.join(root, f), "wb") as fh:
                fh.write(b"\x00garbage")
    with pytest.raises(checkpoint.CheckpointError, match="cannot be restored"):
        checkpoint.Checkpointer(str(tmp_path / "ckpt")).restore(_state(0))
    with pytest.raises(checkpoint.CheckpointError, match="no checkpoint"):
        checkpoint.Checkpointer(str(tmp_path / "empty")).restore(_state(0))
