"""The divergence guard: a bad member is not stepped, is marked done, and spoils nothing else."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from common import physics
from tests.conftest import assert_same_leaves


def _assert_member_equal(tree_a, tree_b, i):
    member = lambda t: jax.tree.map(lambda x: np.asarray(x)[i], t)
    assert_same_leaves(member(tree_a), member(tree_b))


def test_nan_in_one_member_leaves_the_others_bit_identical(fast_batch_fns):
    reset, step = fast_batch_fns
    state = reset(jax.random.split(jax.random.PRNGKey(0), 4))
    actions = 0.3 * jnp.tanh(jax.random.normal(jax.random.PRNGKey(1), (4, 17)))
    clean = step(state, actions)

    bad_actions = actions.at[1, 3].set(jnp.nan)
    bad_qvel = state.data.qvel.at[2, 0].set(jnp.inf)
    bad_state = state.__class__(
        data=state.data.replace(qvel=bad_qvel), obs=state.obs, reward=state.reward,
        done=state.done, metrics=state.metrics, info=state.info,
    )
    out = step(bad_state, bad_actions)

    for i in (0, 3):
        _assert_member_equal(out, clean, i)
    for i in (1, 2):
        assert bool(out.done[i])
        assert float(out.reward[i]) == 0.0
        assert float(out.metrics["diverged"][i]) == 1.0
        # Not stepped: the member keeps the state it came in with.
        np.testing.assert_array_equal(np.asarray(out.data.qpos[i]), np.asarray(state.data.qpos[i]))
    assert np.all(np.isfinite(np.asarray(out.reward)))
    assert float(jnp.sum(out.metrics["diverged"])) == 2.0


def test_exploding_step_is_rejected_and_earns_nothing(fast_env):
    """A step whose result is non-finite or absurdly fast is undone and reported."""
    model = fast_env.model
    data = eqx.filter_jit(fast_env.reset)(jax.random.PRNGKey(0)).data

    def exploding_step(m, d, a):
        # Member-dependent blow-ups: a finite explosion and a NaN.
        qvel = jnp.where(a[0] > 0.5, 1e6, jnp.where(a[0] < -0.5, jnp.nan, d.qvel + 0.1))
        return d.replace(qvel=qvel * jnp.ones_like(d.qvel))

    @jax.jit
    def run(actions):
        return jax.vmap(lambda a: physics.guarded_step(exploding_step, model, data, a, max_qvel=100.0))(actions)

    actions = jnp.zeros((3, 17)).at[0, 0].set(1.0).at[2, 0].set(-1.0)
    out, ok = run(actions)
    np.testing.assert_array_equal(np.asarray(ok), [False, True, False])
    for i in (0, 2):
        np.testing.assert_array_equal(np.asarray(out.qvel[i]), np.asarray(data.qvel))
    np.testing.assert_allclose(np.asarray(out.qvel[1]), np.asarray(data.qvel) + 0.1)
    assert np.all(np.isfinite(np.asarray(out.qvel)))
