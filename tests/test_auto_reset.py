"""The training rollout form (`common.rollout.auto_reset`): finished episodes restart from
the reset drawn with that step's key, and report their own return and length."""

import jax
import jax.numpy as jnp
import numpy as np

from common import rollout

HORIZON = 60


def test_auto_reset_restarts_finished_episodes_and_accounts_for_them(fast_env, fast_batch_fns):
    n, t = 4, HORIZON
    # A strong constant action makes the humanoid fall within the 60 steps, each env at its own time.
    actions = 0.4 * jnp.tanh(jax.random.normal(jax.random.PRNGKey(5), (n, fast_env.action_size)))
    act_keys, reset_keys = jax.random.split(jax.random.PRNGKey(6), (2, t, n))
    # The start states and every reset the scan may draw, from one compiled batch (reset
    # run eagerly, op by op, cost minutes).
    keys = jnp.concatenate([jax.random.split(jax.random.PRNGKey(7), n), reset_keys.reshape(t * n, 2)])
    resets = fast_batch_fns[0](keys)
    start = jax.tree.map(lambda x: x[:n], resets)
    running = rollout.Running(state=start, extra=jnp.zeros((n,)), episode_return=jnp.zeros((n,)),
                              episode_length=jnp.zeros((n,), jnp.int32))

    def record(steps_seen, s, new, fresh, done):
        # The caller's own carry: steps since its episode began, restarted where one ended.
        steps_seen = jnp.where(done, 0.0, steps_seen + 1.0)
        return steps_seen, fresh.obs

    run = jax.jit(lambda r: rollout.auto_reset(fast_env.step, fast_env.reset, lambda s, k: (actions, ()), record,
                                               r, act_keys, reset_keys))
    final, steps = jax.device_get(run(running))
    done = np.asarray(steps.done)
    assert done.any(axis=0).all(), "every env should have finished an episode"
    fresh_obs = np.asarray(resets.obs[n:]).reshape(t, n, -1)
    for env in range(n):
        ends = np.flatnonzero(done[:, env])
        begin = 0
        for end in ends:
            # A finished episode reports its own return and length, and the next step
            # starts from the reset drawn with that step's key.
            np.testing.assert_allclose(steps.finished_return[end, env], steps.reward[begin:end + 1, env].sum(),
                                       rtol=1e-5)
            assert steps.finished_length[end, env] == end + 1 - begin
            # The reset inside the scan is a differently fused XLA program: equal to the last bits or so.
            np.testing.assert_allclose(steps.out[end, env], fresh_obs[end, env], rtol=1e-5, atol=1e-6)
            if end + 1 < t:
                np.testing.assert_allclose(steps.obs[end + 1, env], fresh_obs[end, env], rtol=1e-5, atol=1e-6)
            begin = end + 1
        assert (steps.finished_return[:, env][~done[:, env]] == 0).all()
        # What carries over is the unfinished episode's running figures.
        assert final.episode_length[env] == t - begin == final.extra[env]
        np.testing.assert_allclose(final.episode_return[env], steps.reward[begin:, env].sum(), rtol=1e-5)
