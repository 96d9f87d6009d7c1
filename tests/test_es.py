"""ES numerics: noise regeneration, low-rank noise, fitness shaping, parity with evosax, and
the evaluation's count of whole episodes."""

import types

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from evosax.algorithms import Open_ES
from jax.flatten_util import ravel_pytree

from configs import es_test
from humanoid_es import es, policy
from humanoid_es.trainer import Trainer, full_episodes

TEMPLATE = {"w": jnp.zeros((6, 9)), "b": jnp.zeros((6,))}


def _explicit_sum(keys, weights, rank):
    eps = [ravel_pytree(es.sample(k, TEMPLATE, rank))[0] for k in keys]
    return np.tensordot(np.asarray(weights), np.stack(eps), axes=1)


@pytest.mark.parametrize("rank", [0, 2])
def test_weighted_sum_regenerates_the_sampled_noise(rank):
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    weights = jnp.array([0.3, -1.0, 2.0, 0.0, 0.7])
    got = ravel_pytree(es.weighted_sum(keys, weights, TEMPLATE, rank))[0]
    np.testing.assert_allclose(got, _explicit_sum(keys, weights, rank), rtol=1e-5, atol=1e-5)


def test_low_rank_noise_is_standard_normal_and_low_rank():
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    w = jax.vmap(lambda k: es.sample(k, TEMPLATE, 2)["w"])(keys)
    assert np.linalg.matrix_rank(np.asarray(w[0])) == 2
    # Entries of A B^T / sqrt(r) have mean 0 and variance 1 like full-rank noise.
    np.testing.assert_allclose(np.mean(w), 0.0, atol=0.02)
    np.testing.assert_allclose(np.var(w), 1.0, atol=0.05)
    # Vectors stay full rank: a rank only applies to matrices.
    b = jax.vmap(lambda k: es.sample(k, TEMPLATE, 2)["b"])(keys)
    np.testing.assert_allclose(np.var(b), 1.0, atol=0.05)


def test_centered_ranks_and_top_k():
    f = jnp.array([3.0, -1.0, 10.0, 0.5])
    np.testing.assert_allclose(es.centered_ranks(f), [1 / 6, -0.5, 0.5, -1 / 6], atol=1e-6)
    f_plus, f_minus = jnp.array([1.0, 5.0, 2.0, 0.0]), jnp.array([4.0, 0.0, 1.0, 3.0])
    w, kept = es.pair_weights(f_plus, f_minus, "none", top_k=2)
    # max(f+, f-) = [4, 5, 2, 3]: pairs 0 and 1 are the top two.
    assert int(kept) == 2
    np.testing.assert_allclose(w, [-3.0, 5.0, 0.0, 0.0])
    w, kept = es.pair_weights(f_plus, f_minus, "ars", top_k=2)
    std = np.std([1.0, 5.0, 4.0, 0.0])
    np.testing.assert_allclose(w, np.array([-3.0, 5.0, 0.0, 0.0]) / std, rtol=1e-6)


def test_training_fitness_charges_the_shift_and_the_tilt():
    returns, lengths = jnp.array([600.0, 600.0, 300.0]), jnp.array([100, 100, 40])
    tilt = jnp.array([5.0, 50.0, 2.0])
    # No shaping: the return itself; reward_shift 5: ARS's return without the survival bonus.
    np.testing.assert_allclose(es.training_fitness(returns, lengths, tilt, 0.0, 0.0), returns)
    np.testing.assert_allclose(es.training_fitness(returns, lengths, tilt, 5.0, 0.0), [100.0, 100.0, 100.0])
    # Shift 4 with tilt cost 1 keeps 1 - tilt per step: the upright candidate ranks first.
    np.testing.assert_allclose(es.training_fitness(returns, lengths, tilt, 4.0, 1.0), [195.0, 150.0, 138.0])


def test_the_fall_height_is_held_then_rises_to_the_tasks_over_env_steps():
    def heights(fall_height, rise_from, rise_to, env_steps):
        config = es_test.get_config()
        config.fall_height, config.fall_height_rise_from, config.fall_height_rise_to = fall_height, rise_from, rise_to
        trainer = Trainer(config)
        return [trainer.fall_height(types.SimpleNamespace(env_steps=jnp.float32(n))) for n in env_steps]

    got = heights(0.7, 1000, 3000, (0, 1000, 2000, 3000, 10**7))
    assert [float(h) for h in got] == pytest.approx([0.7, 0.7, 0.85, 1.0, 1.0])
    assert float(heights(0.7, 0, 0, (10**7,))[0]) == pytest.approx(0.7)  # held throughout
    assert heights(None, 0, 0, (0,)) == [None]  # the task's own, as evaluations always use


def test_the_assist_falls_linearly_to_nothing_over_env_steps():
    config = es_test.get_config()
    config.assist, config.assist_env_steps = 0.6, 2000
    trainer = Trainer(config)
    got = [float(trainer.assist(types.SimpleNamespace(env_steps=jnp.float32(n)))) for n in (0, 1000, 2000, 10**7)]
    assert got == pytest.approx([0.6, 0.3, 0.0, 0.0])
    assert Trainer(es_test.get_config()).assist(types.SimpleNamespace(env_steps=jnp.float32(0))) is None


def test_a_training_reset_noise_starts_only_training_episodes_wider():
    config = es_test.get_config()
    config.train_reset_noise = 0.2
    trainer = Trainer(config)
    assert (trainer.train_env.config.reset_noise_scale, trainer.env.config.reset_noise_scale) == (0.2, 0.01)
    assert Trainer(es_test.get_config()).train_env.config.reset_noise_scale == 0.01


def test_a_reservoir_seed_fixes_the_reservoir_and_leaves_the_rest_to_the_runs_seed():
    def init(seed, reservoir_seed):
        config = es_test.get_config()
        config.seed, config.policy.reservoir_seed = seed, reservoir_seed
        return Trainer(config).init(jax.random.PRNGKey(seed))

    own0, own5, fixed5 = init(0, None), init(5, None), init(5, 0)
    leaves = jax.tree.leaves
    for a, b in zip(leaves(fixed5.frozen), leaves(own0.frozen), strict=True):
        np.testing.assert_array_equal(a, b)  # seed 0's draw, bit for bit
    assert any(not np.array_equal(a, b) for a, b in zip(leaves(own5.frozen), leaves(own0.frozen)))
    np.testing.assert_array_equal(fixed5.key, own5.key)  # the noise and episodes: the run's own


def test_gradient_in_chunks_equals_one_chunk():
    key = jax.random.PRNGKey(4)
    weights = jax.random.normal(jax.random.PRNGKey(5), (8,))
    kwargs = dict(n_kept=jnp.asarray(8), sigma=jnp.asarray(0.1), template=TEMPLATE, rank=2)
    a = ravel_pytree(es.gradient(key, weights, chunk=2, **kwargs))[0]
    b = ravel_pytree(es.gradient(key, weights, chunk=8, **kwargs))[0]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_gradient_equals_evosax_open_es():
    """Our ascent direction on fitness f is minus evosax's OpenES step on -f."""
    pairs, sigma = 16, 0.05
    theta = jax.random.normal(jax.random.PRNGKey(0), (ravel_pytree(TEMPLATE)[0].shape[0],))
    noise_key = jax.random.PRNGKey(1)
    eps = jnp.stack([ravel_pytree(es.sample(es.pair_key(noise_key, i), TEMPLATE))[0] for i in range(pairs)])
    f_plus = jax.random.normal(jax.random.PRNGKey(2), (pairs,)) * 10.0
    f_minus = jax.random.normal(jax.random.PRNGKey(3), (pairs,)) * 10.0

    weights, n_kept = es.pair_weights(f_plus, f_minus, "centered_rank", top_k=0)
    ours = ravel_pytree(es.gradient(noise_key, weights, n_kept, jnp.asarray(sigma), TEMPLATE, rank=0, chunk=4))[0]

    # evosax stacks the antithetic halves ([+eps; -eps]) and minimises; plain SGD with
    # learning rate 1 makes its mean move by exactly minus its gradient estimate.
    strategy = Open_ES(population_size=2 * pairs, solution=theta, optimizer=optax.sgd(1.0),
                       std_schedule=optax.constant_schedule(sigma))
    params = strategy.default_params
    state = strategy.init(jax.random.PRNGKey(9), theta, params)
    population = jnp.concatenate([theta + sigma * eps, theta - sigma * eps])
    fitness = -jnp.concatenate([f_plus, f_minus])
    state, _ = strategy.tell(jax.random.PRNGKey(10), population, fitness, state, params)
    evosax_step = state.mean - theta
    np.testing.assert_allclose(ours, evosax_step, rtol=1e-4, atol=1e-6)


def test_reservoir_policy_draw_and_partition():
    cfg = policy.ReservoirConfig(size=32, sparsity=0.8, spectral_radius=0.7)
    ctrl = np.tile([[-0.4, 0.4]], (17, 1))
    pol = policy.init(jax.random.PRNGKey(0), cfg, 376, ctrl)
    radius = np.max(np.abs(np.linalg.eigvals(np.asarray(pol.w_rec, np.float64))))
    np.testing.assert_allclose(radius, 0.7, rtol=1e-4)
    assert 0.1 < float(jnp.mean(pol.w_rec != 0)) < 0.3
    # Same seed, same reservoir.
    again = policy.init(jax.random.PRNGKey(0), cfg, 376, ctrl)
    np.testing.assert_array_equal(pol.w_rec, again.w_rec)

    from common import normalizer

    h, a = pol(normalizer.init(376), pol.initial_state(), jnp.ones(376))
    assert h.shape == (32,) and a.shape == (17,)
    np.testing.assert_array_equal(a, 0.0)  # the readout starts at zero

    spec = policy.trainable_filter(pol, ("w_out", "b_out"))
    import equinox as eqx

    trainable, frozen = eqx.partition(pol, spec)
    assert ravel_pytree(trainable)[0].shape == (17 * (32 + 376) + 17,)
    assert frozen.w_out is None and trainable.w_rec is None
    with pytest.raises(ValueError, match="unknown leaves"):
        policy.trainable_filter(pol, ("w_outt",))


def test_policy_reads_only_the_first_obs_features():
    from common import normalizer

    cfg = policy.ReservoirConfig(size=8, obs_features=45)
    ctrl = np.tile([[-0.4, 0.4]], (17, 1))
    pol = policy.init(jax.random.PRNGKey(0), cfg, 376, ctrl)
    assert pol.w_in.shape == (8, 45) and pol.w_out.shape == (17, 8 + 45)
    assert jax.tree.map(jnp.shape, policy.zeros(cfg, 376, 17)) == jax.tree.map(jnp.shape, pol)
    pol = eqx.tree_at(lambda p: p.w_out, pol, jax.random.normal(jax.random.PRNGKey(1), pol.w_out.shape))
    obs = jax.random.normal(jax.random.PRNGKey(2), (376,))
    changed_tail = obs.at[45:].set(100.0)
    stats = normalizer.init(376)
    _, a = pol(stats, pol.initial_state(), obs)
    _, b = pol(stats, pol.initial_state(), changed_tail)
    np.testing.assert_array_equal(a, b)
    _, c = pol(stats, pol.initial_state(), obs.at[0].add(1.0))
    assert not np.allclose(a, c)


def test_action_maps_tanh_and_clip():
    from common import normalizer

    ctrl = np.array([[-0.4, 0.4], [0.0, 1.0]])
    outs = jnp.array([0.1, 3.0])
    for action_map, want in (("tanh", [0.4 * np.tanh(0.1), 0.5 + 0.5 * np.tanh(3.0)]),
                             ("clip", [0.1, 1.0])):
        cfg = policy.ReservoirConfig(size=1, action_map=action_map)
        pol = policy.init(jax.random.PRNGKey(0), cfg, 3, ctrl)
        pol = eqx.tree_at(lambda p: p.b_out, pol, outs)
        _, a = pol(normalizer.init(3), pol.initial_state(), jnp.zeros(3))
        np.testing.assert_allclose(np.asarray(a), want, rtol=1e-6)
    # Clamped below as well: offset 0.5 - 3 is under the range's low end 0.
    pol = eqx.tree_at(lambda p: p.b_out, pol, -outs)
    _, a = pol(normalizer.init(3), pol.initial_state(), jnp.zeros(3))
    np.testing.assert_allclose(np.asarray(a), [-0.1, 0.0], rtol=1e-6)


def test_full_episodes_count_only_finite_episodes_that_lived_the_horizon():
    out = types.SimpleNamespace(length=jnp.array([1000, 999, 1000, 1000, 12]),
                                diverged=jnp.array([False, False, True, False, False]))
    assert int(full_episodes(out, 1000)) == 2
    assert int(full_episodes(out, 12)) == 4
