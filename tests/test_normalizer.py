"""Mergeable observation statistics: any split merges to the one-pass result."""

import jax.numpy as jnp
import numpy as np

from common import normalizer


def test_merge_of_uneven_parts_equals_one_pass():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, size=(1000, 7)).astype(np.float32)
    parts = [x[:13], x[13:400], x[400:401], x[401:]]
    merged = normalizer.init(7)
    for p in parts:
        merged = normalizer.merge(merged, normalizer.from_batch(jnp.asarray(p)))
    np.testing.assert_allclose(float(merged.count), 1000)
    np.testing.assert_allclose(np.asarray(merged.mean), x.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(merged.variance), x.var(0), rtol=1e-4)

    stacked = normalizer.from_batch(jnp.asarray(x.reshape(10, 100, 7)[0]))
    per_chunk = [normalizer.from_batch(jnp.asarray(c)) for c in x.reshape(10, 100, 7)]
    stacked = normalizer.RunningStats(
        count=jnp.stack([s.count for s in per_chunk]),
        mean=jnp.stack([s.mean for s in per_chunk]),
        m2=jnp.stack([s.m2 for s in per_chunk]),
    )
    tree = normalizer.merge_stacked(stacked)
    np.testing.assert_allclose(np.asarray(tree.mean), x.mean(0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(tree.variance), x.var(0), rtol=1e-4)


def test_masked_and_non_finite_rows_are_left_out():
    x = np.array([[1.0, 2.0], [3.0, 4.0], [np.nan, 0.0], [100.0, 100.0]], np.float32)
    mask = np.array([True, True, True, False])
    s = normalizer.from_batch(jnp.asarray(x), jnp.asarray(mask))
    assert float(s.count) == 2.0
    np.testing.assert_allclose(np.asarray(s.mean), [2.0, 3.0])
    np.testing.assert_allclose(np.asarray(s.variance), [1.0, 1.0])
    assert np.all(np.isfinite(np.asarray(s.m2)))


def test_normalize_clips_and_is_identity_before_data():
    empty = normalizer.init(3)
    x = jnp.array([1.0, -20.0, 0.5])
    np.testing.assert_allclose(np.asarray(normalizer.normalize(empty, x, clip=5.0)), [1.0, -5.0, 0.5])
    s = normalizer.from_batch(jnp.array([[0.0, 0.0, 0.0], [2.0, 2.0, 2.0]]))
    np.testing.assert_allclose(np.asarray(normalizer.normalize(s, jnp.array([2.0, 1.0, 100.0]))), [1.0, 0.0, 5.0], atol=1e-6)


def test_ars_rule_zeroes_constant_features_and_does_not_clip():
    # Features 0 and 2 never change; feature 1 has mean 2 and std 1.
    s = normalizer.from_batch(jnp.array([[0.0, 1.0, 5.0], [0.0, 3.0, 5.0]]))
    x = jnp.array([7.0, 100.0, 9.0])
    ars = np.asarray(normalizer.normalize(s, x, clip=None, zero_below=1e-7))
    np.testing.assert_allclose(ars, [0.0, 98.0, 0.0], rtol=1e-6)
    # Today's rule: std floored at 0.01, then clipped: the constant features are blown up to the clip.
    floored = np.asarray(normalizer.normalize(s, x, clip=5.0, std_floor=0.01))
    np.testing.assert_allclose(floored, [5.0, 5.0, 5.0])
    floored = np.asarray(normalizer.normalize(s, jnp.array([0.001, 2.5, 5.0]), clip=5.0, std_floor=0.01))
    np.testing.assert_allclose(floored, [0.1, 0.5, 0.0], rtol=1e-4, atol=1e-6)
    # Before any sample both are the identity (ARS starts from mean 0, std 1).
    empty = normalizer.init(3)
    np.testing.assert_allclose(np.asarray(normalizer.normalize(empty, x, clip=None, zero_below=1e-7)), x)
