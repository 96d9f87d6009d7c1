"""The `fast` profile: a policy-free humanoid stands on its feet, then falls, as under `gym`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mujoco import mjx

from common import contact
from common.envs import humanoid



def test_zero_action_stands_then_falls_without_sinking(fast_env, fast_batch_fns):
    reset, step = fast_batch_fns
    state = reset(jax.random.split(jax.random.PRNGKey(0), 4))
    m = fast_env.config.load_mj_model()
    feet = [m.body(n).id for n in ("right_foot", "left_foot")]
    foot_radius = 0.075
    zero = jnp.zeros((4, 17))
    fell_at = np.full(4, -1)
    lowest_foot = np.inf
    for t in range(150):
        state = step(state, zero)
        done = np.asarray(state.done)
        alive = fell_at < 0
        # Foot spheres sit 0.1 above their body origins; while the episode runs they must
        # rest on the floor, not sink through it (explicit foot-floor pairs).
        foot_z = np.asarray(state.data.xpos)[:, feet, 2] + 0.1
        lowest_foot = min(lowest_foot, foot_z[alive].min() if alive.any() else np.inf)
        assert not np.any(np.asarray(state.metrics["diverged"])[alive])
        assert np.all(np.abs(np.asarray(state.data.qvel))[alive] < 60.0)
        fell_at[alive & done] = t + 1
        if np.all(fell_at > 0):
            break
    assert lowest_foot > foot_radius - 0.02
    # Under `gym` physics the same humanoid falls after ~40 steps (BENCHMARKS.md).
    assert np.all((fell_at >= 20) & (fell_at <= 90)), fell_at


def test_termination_and_time_limit(fast_env, fast_batch_fns):
    # The session's compiled batch-4 step serves: the time limit is reached by starting
    # the step counter three steps short of it.
    reset, step = fast_batch_fns
    state = reset(jax.random.split(jax.random.PRNGKey(0), 4))
    limit = fast_env.config.episode_length
    state = eqx.tree_at(lambda s: s.info["steps"], state, jnp.full((4,), limit - 3, jnp.int32))
    zero = jnp.zeros((4, 17))
    for _ in range(3):
        assert not np.any(np.asarray(state.done))
        state = step(state, zero)
        assert np.all(np.asarray(state.reward) > 4.0)  # healthy bonus minus nothing
    assert np.all(np.asarray(state.done)) and np.all(np.asarray(state.info["truncated"]))
    # Lifted to 2.5 m the torso is unhealthy: done after one step, not truncated.
    state = eqx.tree_at(lambda s: (s.data.qpos, s.info["steps"]), state,
                        (state.data.qpos.at[:, 2].set(2.5), jnp.zeros((4,), jnp.int32)))
    state = step(state, zero)
    assert np.all(np.asarray(state.done)) and not np.any(np.asarray(state.info["truncated"]))


@pytest.mark.slow
def test_a_fall_height_ends_episodes_where_it_says(fast_env, fast_batch_fns):
    reset, step = fast_batch_fns
    state = reset(jax.random.split(jax.random.PRNGKey(0), 4))
    zero = jnp.zeros((4, 17))
    z = float(np.min(np.asarray(step(state, zero).data.qpos[:, 2])))
    assert 1.3 < z < 1.5 and not np.any(np.asarray(step(state, zero).done))
    lowered_step = eqx.filter_jit(lambda env, s, a: jax.vmap(env.step)(s, a))  # one compile for every height
    below = lowered_step(fast_env.with_fall_height(z - 0.1), state, zero)
    above = lowered_step(fast_env.with_fall_height(z + 0.1), state, zero)
    assert not np.any(np.asarray(below.done)) and np.all(np.asarray(above.done))
    # Only the end moves: the reward and physics are the task's.
    np.testing.assert_allclose(np.asarray(above.reward), np.asarray(step(state, zero).reward), rtol=1e-6)


@pytest.mark.slow
def test_the_assist_holds_a_limp_body_up_to_its_horizon_and_at_zero_is_the_task(fast_env, fast_batch_fns):
    reset, step = fast_batch_fns
    start = reset(jax.random.split(jax.random.PRNGKey(0), 4))
    zero = jnp.zeros((4, 17))
    assisted_step = eqx.filter_jit(lambda env, s, a: jax.vmap(env.step)(s, a))  # one compile for every strength
    held, free, off = start, start, start
    for t in range(60):
        held = assisted_step(fast_env.with_assist(0.6, 60), held, zero)
        off = assisted_step(fast_env.with_assist(0.0, 1000), off, zero)
        free = step(free, zero)
        if t < 59:
            assert not np.any(np.asarray(held.done)), t
    # Held: truncated at the horizon, still up; at strength 0 the task's own physics.
    held_z, free_z = np.asarray(held.data.qpos[:, 2]), np.asarray(free.data.qpos[:, 2])
    assert np.all(np.asarray(held.info["truncated"])) and np.all(held_z > 1.05) and np.all(held_z > free_z + 0.05)
    np.testing.assert_array_equal(np.asarray(off.data.qpos), np.asarray(free.data.qpos))
    # The policy never sees the hand: the observation's external forces are an unheld body's.
    assert not np.any(np.asarray(held.data.xfrc_applied))
    np.testing.assert_array_equal(np.asarray(held.obs), np.asarray(jax.vmap(
        lambda d: humanoid.observe(fast_env.model, d, fast_env.wrenches))(held.data)))
    assert 1.25 < fast_env.stand_height < 1.35  # the default pose's feet are 0.107 m up


def test_contact_sensor_wrenches_equal_mjx_rne_postconstraint(fast_env, fast_batch_fns):
    """The observation's cinert (public fields) and cfrc_ext (contact sensors, any MJX implementation) equals what
    `mjx.rne_postconstraint` fills on the JAX implementation, on states with feet down."""
    reset, step = fast_batch_fns
    state = reset(jax.random.split(jax.random.PRNGKey(1), 4))
    for _ in range(10):
        state = step(state, jnp.zeros((4, 17)))
    model = fast_env.model

    @jax.jit
    @jax.vmap
    def both(data):
        filled = mjx.rne_postconstraint(model, data)
        impl = filled._impl  # pylint: disable=protected-access
        return (fast_env.wrenches.external_wrenches(model, data), impl.cfrc_ext,
                contact.com_inertia(model, data), impl.cinert)

    ours, reference, inertia, cinert = (np.asarray(x) for x in both(state.data))
    np.testing.assert_allclose(inertia, cinert, atol=1e-5, rtol=1e-4)
    assert np.abs(reference).max() > 100.0  # the feet carry the body
    np.testing.assert_allclose(ours, reference, atol=1e-3 * np.abs(reference).max())
    np.testing.assert_allclose(np.asarray(state.obs)[:, -14 * 6:], ours.reshape(4, -1), atol=1e-6)
