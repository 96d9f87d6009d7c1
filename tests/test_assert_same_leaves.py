"""The leaf-by-leaf comparison of the invariance tests fails where a `zip` would pass."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import assert_same_leaves


def _tree():
    return {"theta": jnp.arange(3.0), "step": jnp.asarray(2, jnp.int32), "key": jax.random.key(0)}


def test_equal_trees_pass_and_any_difference_fails():
    assert_same_leaves(_tree(), _tree())
    assert_same_leaves([np.ones(2)], [np.ones(2) + 1e-7], rtol=1e-5)
    with pytest.raises(AssertionError, match="no leaves"):
        assert_same_leaves([], [])
    with pytest.raises(AssertionError, match="structures differ"):
        assert_same_leaves([np.ones(2)], [np.ones(2), np.ones(2)])
    with pytest.raises(AssertionError, match=r"\['theta'\]"):
        assert_same_leaves(_tree(), dict(_tree(), theta=jnp.array([0.0, 1.0, 2.0000002])))
    with pytest.raises(AssertionError, match=r"\['key'\]"):
        assert_same_leaves(_tree(), dict(_tree(), key=jax.random.key(1)))
    with pytest.raises(AssertionError, match="float64"):
        assert_same_leaves([np.ones(2, np.float32)], [np.ones(2, np.float64)], rtol=1e-5)
