"""The `fast` profile: a policy-free humanoid stands on its feet, then falls, as under `gym`."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from common import envs


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


def test_termination_and_time_limit():
    env = envs.make("humanoid", episode_length=3)
    state = eqx.filter_jit(env.reset)(jax.random.PRNGKey(0))
    step = eqx.filter_jit(env.step)
    for t in range(3):
        assert not bool(state.done)
        state = step(state, jnp.zeros(17))
        assert float(state.reward) > 4.0  # healthy bonus minus nothing
    assert bool(state.done) and bool(state.info["truncated"])
    # Lifted to 2.5 m the torso is unhealthy: done after one step, not truncated.
    high = state.data.replace(qpos=state.data.qpos.at[2].set(2.5))
    state = step(state.__class__(data=high, obs=state.obs, reward=state.reward, done=state.done,
                                 metrics=state.metrics, info={**state.info, "steps": jnp.zeros((), jnp.int32)}),
                 jnp.zeros(17))
    assert bool(state.done) and not bool(state.info["truncated"])
