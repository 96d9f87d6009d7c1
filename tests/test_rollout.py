"""Population evaluation: chunked = unchunked, early exit = full scan, 4 devices = 1 device.

The training form (`rollout.auto_reset`) is in tests/test_auto_reset.py: a file of its
own, so that the test workers share the compiles evenly."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from common import rollout, sharding

POPULATION = 8
HORIZON = 60


def _act(params, carry, obs):
    return carry, 0.4 * jnp.tanh(params @ obs)


def _init_carry(params):
    return jnp.zeros(())


def _candidate(theta, index, key):
    # Antithetic pairs share their env seed, as ES uses them.
    noise = jax.random.normal(jax.random.fold_in(key, index // 2), theta.shape)
    sign = jnp.where(index % 2 == 0, 1.0, -1.0)
    return theta + 0.05 * sign * noise, jax.random.fold_in(key, 10_000 + index // 2)


@pytest.fixture(scope="module")
def evaluate(fast_env):
    theta = 0.01 * jax.random.normal(jax.random.PRNGKey(3), (fast_env.action_size, fast_env.observation_size))
    key = jax.random.PRNGKey(7)
    cache = {}

    def run(chunk, block=None, mesh=None, queue=False):
        fn = jax.jit(
            lambda theta, key: rollout.evaluate_population(
                fast_env, _act, _init_carry, _candidate, theta, key,
                population=POPULATION, chunk=chunk, horizon=HORIZON, block=block, mesh=mesh, queue=queue,
            )
        )
        name = (chunk, block, mesh is not None, queue)
        if name not in cache:
            cache[name] = jax.device_get(fn(theta, key))
        return cache[name]

    run.theta, run.key = theta, key
    return run


def _assert_same(a, b):
    # Different batch shapes vectorise differently in XLA, so sums of 60 float32 rewards
    # agree to rounding, not bit for bit; contacts that switch on and off (the legs'
    # pairs) grow a rounding difference along the episode to ~2e-5 relative (measured).
    # Episode lengths are exact.
    np.testing.assert_allclose(a.episode_return, b.episode_return, rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(a.length, b.length)
    np.testing.assert_array_equal(a.diverged, b.diverged)
    np.testing.assert_array_equal(a.obs_stats.count, b.obs_stats.count)
    for k in b.metric_sums:
        np.testing.assert_allclose(a.metric_sums[k], b.metric_sums[k], rtol=1e-4, atol=1e-2)
    # Falling bodies are chaotic: rounding differences grow to ~1e-3 of a velocity or a
    # contact force by the end of an episode, so statistics are compared on their scale.
    scale = 1.0 + np.sqrt(b.obs_stats.m2 / b.obs_stats.count)
    np.testing.assert_array_less(np.abs(a.obs_stats.mean - b.obs_stats.mean), 1e-2 * scale)
    np.testing.assert_allclose(a.obs_stats.m2, b.obs_stats.m2, rtol=2e-2, atol=1e-2 * b.obs_stats.count)


def test_rollout_is_sane(evaluate):
    out = evaluate(POPULATION)
    assert out.episode_return.shape == (POPULATION,)
    assert np.all(np.isfinite(out.episode_return))
    # A small random linear policy falls well inside the horizon; each healthy step pays ~5.
    assert np.all(out.length < HORIZON) and np.all(out.length > 5)
    np.testing.assert_allclose(out.episode_return / out.length, 5.0, atol=1.5)
    assert float(out.obs_stats.count) == float(out.length.sum())


def test_reward_terms_sum_to_the_return(evaluate):
    """The per-member sums of the env's reward terms add up to its episode return."""
    for out in (evaluate(POPULATION), evaluate(2, block=10, queue=True)):
        terms = {k: v for k, v in out.metric_sums.items() if k.startswith("reward/")}
        assert set(terms) == {"reward/forward", "reward/healthy", "reward/ctrl"}
        np.testing.assert_allclose(sum(terms.values()), out.episode_return, rtol=1e-5, atol=1e-3)
        # The healthy bonus is 5 per step lived.
        np.testing.assert_allclose(terms["reward/healthy"], 5.0 * out.length, rtol=1e-6)
        assert np.all(terms["reward/ctrl"] <= 0.0)


def test_chunked_equals_unchunked(evaluate):
    _assert_same(evaluate(2), evaluate(POPULATION))


# ~55 s on 2 cores (its own compile of the blocked scan): run by .ci/run.
@pytest.mark.slow
def test_early_exit_equals_full_scan(evaluate):
    _assert_same(evaluate(POPULATION, block=10), evaluate(POPULATION))


def test_work_queue_equals_chunks(evaluate):
    """Two slots working through eight candidates give each its own whole episode."""
    queued = evaluate(2, block=10, queue=True)
    _assert_same(queued, evaluate(POPULATION))
    # Episodes end at different times, so slots were refilled mid-run.
    assert len(set(queued.length.tolist())) > 1


def _row(_, item, key):
    """An evosax-style candidate: its parameters are its row of a population array."""
    index, row = item
    return row, jax.random.fold_in(key, 10_000 + index // 2)


# The default suite's check that sharding changes nothing, on episodes that end by
# falling, through the path evosax strategies take (a population array, each device
# receiving its own rows). The perturbative ES iteration on four devices (ahead-of-time
# executables, the evaluation, the normaliser) is the slow tests/test_es_train.py check,
# and the strategies' own sharding constraint tests/test_es_strategies.py's.
def test_sharded_over_four_devices_equals_one_device(evaluate, fast_env):
    assert jax.device_count() == 4, "conftest forces four host devices"
    theta, key = evaluate.theta, evaluate.key
    indices = jnp.arange(POPULATION, dtype=jnp.int32)
    rows = jax.vmap(lambda i: _candidate(theta, i, key)[0])(indices)
    fn = jax.jit(lambda rows, key: rollout.evaluate_population(
        fast_env, _act, _init_carry, _row, None, key, population=POPULATION, chunk=POPULATION, horizon=HORIZON,
        mesh=sharding.make_mesh(), candidates=(indices, rows)))
    # The same candidates as the index-based rollout on one device, to rounding.
    _assert_same(jax.device_get(fn(rows, key)), evaluate(POPULATION))


def test_bad_shapes_are_refused(fast_env):
    with pytest.raises(ValueError, match="not divisible by chunk"):
        rollout.evaluate_population(
            fast_env, _act, _init_carry, _candidate, jnp.zeros((17, 376)), jax.random.PRNGKey(0),
            population=10, chunk=4, horizon=10,
        )
    with pytest.raises(ValueError, match="needs a block"):
        rollout.evaluate_population(
            fast_env, _act, _init_carry, _candidate, jnp.zeros((17, 376)), jax.random.PRNGKey(0),
            population=8, chunk=4, horizon=10, queue=True,
        )
    with pytest.raises(ValueError, match="must be >= 1 and divide horizon"):
        rollout.rollout(fast_env, _act, _init_carry, jnp.zeros((2, 17, 376)),
                        jax.random.split(jax.random.PRNGKey(0), 2), horizon=10, block=3)
