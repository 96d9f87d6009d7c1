"""Exact checks of the PPO pieces: GAE, the squashed-Gaussian policy, the clipped loss,
the minibatch update, reward scaling and the schedules."""

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ppo_amp import networks, ppo

KEY = jax.random.key(0)


def constant_actor(mean, log_std, obs_size=3):
    """An actor whose mean is `mean` whatever the observation (last layer zeroed)."""
    actor, _ = networks.init(KEY, obs_size, obs_size, len(mean), hidden=(8,))
    last = actor.mean_net.layers[-1]
    return eqx.tree_at(
        lambda a: (a.mean_net.layers[-1].weight, a.mean_net.layers[-1].bias, a.log_std),
        actor,
        (jnp.zeros_like(last.weight), jnp.asarray(mean, jnp.float32), jnp.asarray(log_std, jnp.float32)),
    )


def constant_critic(value, obs_size=3):
    _, critic = networks.init(KEY, obs_size, obs_size, 1, hidden=(8,))
    last = critic.net.layers[-1]
    return eqx.tree_at(
        lambda c: (c.net.layers[-1].weight, c.net.layers[-1].bias),
        critic,
        (jnp.zeros_like(last.weight), jnp.asarray(value, jnp.float32)),
    )


# ---------------------------------------------------------------------------------------
# GAE


def test_gae_hand_case():
    gamma, lam = 0.9, 0.5
    # env 0: continues, times out at t=1 (bootstraps from the final obs value 4.0, not
    #        from values[2] = 1.5, which is the next episode's), continues at t=2.
    # env 1: terminates at t=0 (next_values 7.0 must be ignored), then continues.
    rewards = np.array([[1.0, -1.0], [2.0, 0.5], [3.0, 0.0]], np.float32)
    values = np.array([[0.5, 2.0], [1.0, 0.2], [1.5, 0.4]], np.float32)
    next_values = np.array([[1.0, 7.0], [4.0, 0.4], [2.0, 0.6]], np.float32)
    terminations = np.array([[0, 1], [0, 0], [0, 0]], bool)
    dones = np.array([[0, 1], [1, 0], [0, 0]], bool)

    advantages, returns = ppo.gae(
        jnp.asarray(rewards), jnp.asarray(values), jnp.asarray(next_values),
        jnp.asarray(terminations), jnp.asarray(dones), gamma, lam,
    )
    # env 0: delta = [1 + .9*1 - .5, 2 + .9*4 - 1, 3 + .9*2 - 1.5] = [1.4, 4.6, 3.3]
    #        A2 = 3.3, A1 = 4.6 (episode ends), A0 = 1.4 + .45*4.6 = 3.47
    # env 1: delta = [-1 - 2, .5 + .9*.4 - .2, 0 + .9*.6 - .4] = [-3, .66, .14]
    #        A2 = .14, A1 = .66 + .45*.14 = .723, A0 = -3 (episode ends)
    expected_adv = np.array([[3.47, -3.0], [4.6, 0.723], [3.3, 0.14]])
    expected_ret = np.array([[3.97, -1.0], [5.6, 0.923], [4.8, 0.54]])
    np.testing.assert_allclose(np.asarray(advantages), expected_adv, rtol=0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(returns), expected_ret, rtol=0, atol=1e-6)


def test_gae_matches_python_loop():
    rng = np.random.default_rng(1)
    T, N, gamma, lam = 7, 5, 0.97, 0.9
    r, v, nv = (rng.normal(size=(T, N)).astype(np.float32) for _ in range(3))
    dones = rng.random((T, N)) < 0.3
    terms = dones & (rng.random((T, N)) < 0.5)
    expected = np.zeros((T, N))
    next_adv = np.zeros(N)
    for t in reversed(range(T)):
        delta = r[t] + gamma * (1 - terms[t]) * nv[t] - v[t]
        next_adv = delta + gamma * lam * (1 - dones[t]) * next_adv
        expected[t] = next_adv
    adv, ret = ppo.gae(*(jnp.asarray(x) for x in (r, v, nv, terms, dones)), gamma, lam)
    np.testing.assert_allclose(np.asarray(adv), expected, atol=1e-5)
    np.testing.assert_allclose(np.asarray(ret), expected + v, atol=1e-5)


# ---------------------------------------------------------------------------------------
# Networks


def test_log_prob_is_the_density_of_the_squashed_action():
    mu, sigma = np.array([0.3, -0.8]), np.array([0.6, 1.3])
    actor = constant_actor(mu, np.log(sigma))
    obs = jnp.ones(3)
    # Independent per dimension: P(tanh U <= a) = Phi((arctanh a - mu) / sigma); its
    # derivative in a, by central differences in float64, is the density of a.
    for raw in ([-2.0, 0.0], [0.7, 2.5], [-0.3, -1.1]):
        a = np.tanh(np.asarray(raw, np.float64))
        h = 1e-6
        cdf = lambda x: stats.norm.cdf((np.arctanh(x) - mu) / sigma)  # noqa: E731
        density = np.prod((cdf(a + h) - cdf(a - h)) / (2 * h))
        got = float(actor.log_prob(obs, jnp.asarray(raw, jnp.float32)))
        np.testing.assert_allclose(got, np.log(density), rtol=0, atol=1e-4)


def test_log_prob_is_finite_where_tanh_saturates_and_sample_agrees():
    actor = constant_actor([0.0], [0.0])
    obs = jnp.zeros(3)
    for u in (-30.0, 30.0):
        got = float(actor.log_prob(obs, jnp.array([u])))
        # log(1 - tanh(u)^2) -> log 4 - 2|u| for large |u|.
        expected = -0.5 * u * u - 0.5 * math.log(2 * math.pi) - (math.log(4.0) - 2 * abs(u))
        np.testing.assert_allclose(got, expected, rtol=1e-6)

    actor = constant_actor([0.2, -0.4, 1.0], np.log([0.5, 0.3, 0.8]))
    action, log_prob, raw = actor.sample(jax.random.key(3), obs)
    np.testing.assert_allclose(np.asarray(action), np.tanh(np.asarray(raw)), rtol=1e-6)
    np.testing.assert_allclose(float(log_prob), float(actor.log_prob(obs, raw)), atol=1e-5)
    assert np.all(np.abs(np.asarray(action)) <= 1.0)


def test_entropy_deterministic_and_log_std_clamp():
    sigma = np.array([0.5, 0.2])
    actor = constant_actor([0.4, -3.0], np.log(sigma))
    obs = jnp.zeros(3)
    np.testing.assert_allclose(float(actor.entropy(obs)), stats.norm(scale=sigma).entropy().sum(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(actor.deterministic(obs)), np.tanh([0.4, -3.0]), rtol=1e-6)
    # A learned log_std outside the range is used clamped.
    wild = eqx.tree_at(lambda a: a.log_std, actor, jnp.array([-20.0, 9.0]))
    _, log_std = wild.distribution_params(obs)
    np.testing.assert_allclose(np.asarray(log_std), [networks.LOG_STD_MIN, networks.LOG_STD_MAX])


def test_init_gives_a_near_zero_initial_policy():
    actor, critic = networks.init(jax.random.key(5), 48, 60, 12)
    obs = jax.random.normal(jax.random.key(6), (16, 48))
    assert [layer.out_features for layer in actor.mean_net.layers] == [512, 256, 128, 12]
    assert float(jnp.max(jnp.abs(jax.vmap(actor.deterministic)(obs)))) < 0.05
    np.testing.assert_allclose(np.asarray(actor.log_std), np.full(12, np.log(0.5)), rtol=1e-6)
    assert jax.vmap(critic)(jax.random.normal(jax.random.key(7), (16, 60))).shape == (16,)


# ---------------------------------------------------------------------------------------
# Loss


def _numpy_log_prob(mu, sigma, raw):
    gaussian = stats.norm.logpdf(raw, mu, sigma).sum(-1)
    return gaussian - np.log(1 - np.tanh(raw) ** 2).sum(-1)


def _hand_batch():
    """B = 4 samples with chosen ratios; the actor and critic outputs are constants."""
    mu, sigma = np.array([0.1, -0.2]), np.array([0.5, 0.2])
    actor, critic = constant_actor(mu, np.log(sigma)), constant_critic(0.3)
    raw = np.array([[0.2, -0.1], [0.5, 0.0], [-0.4, -0.3], [0.0, 0.1]])
    ratio = np.array([1.5, 0.5, 0.7, 1.1])
    batch = ppo.Batch(
        obs=jnp.zeros((4, 3)),
        critic_obs=jnp.zeros((4, 3)),
        raw_action=jnp.asarray(raw, jnp.float32),
        log_prob=jnp.asarray(_numpy_log_prob(mu, sigma, raw) - np.log(ratio), jnp.float32),
        value=jnp.array([0.0, 0.5, 0.3, 1.0]),
        advantage=jnp.array([2.0, -1.0, 1.0, -1.0]),
        returns=jnp.array([1.0, 0.0, 0.3, 0.2]),
    )
    entropy = stats.norm(scale=sigma).entropy().sum()
    return actor, critic, batch, ratio, entropy


def test_loss_hand_case():
    actor, critic, batch, ratio, entropy = _hand_batch()
    kwargs = dict(clip_eps=0.2, value_coef=0.5, entropy_coef=0.01, normalize_advantages=False)
    total, m = ppo.loss(actor, critic, batch, value_clip_eps=0.1, **kwargs)
    # Surrogates: 1.5*2 clipped to 1.2*2; 0.5*-1 clipped to 0.8*-1; 0.7*1 kept (the
    # pessimistic side); 1.1*-1 inside the range.
    policy = -(2.4 - 0.8 + 0.7 - 1.1) / 4
    # V = 0.3: errors^2 unclipped [.49, .09, 0, .01]; V_old + clip(V - V_old, +-.1) =
    # [.1, .4, .3, .9] gives [.81, .16, 0, .49]; the max is the clipped one here.
    value = 0.5 * (0.81 + 0.16 + 0.0 + 0.49) / 4
    np.testing.assert_allclose(float(m["loss/policy"]), policy, atol=1e-6)
    np.testing.assert_allclose(float(m["loss/value"]), value, atol=1e-6)
    np.testing.assert_allclose(float(m["loss/entropy"]), entropy, atol=1e-6)
    np.testing.assert_allclose(float(total), policy + 0.5 * value - 0.01 * entropy, atol=1e-6)
    np.testing.assert_allclose(float(m["clip_fraction"]), 0.75)
    np.testing.assert_allclose(float(m["approx_kl"]), np.mean(ratio - 1 - np.log(ratio)), atol=1e-6)

    _, m = ppo.loss(actor, critic, batch, value_clip_eps=None, **kwargs)
    np.testing.assert_allclose(float(m["loss/value"]), 0.5 * (0.49 + 0.09 + 0.0 + 0.01) / 4, atol=1e-6)
    _, m0 = ppo.loss(actor, critic, batch, value_clip_eps=0.0, **kwargs)
    np.testing.assert_allclose(float(m0["loss/value"]), float(m["loss/value"]))

    # Clipped samples pass no gradient: d policy / d old_log_prob_i = r_i A_i / B only
    # for the two unclipped samples.
    def policy_of(old_log_prob):
        return ppo.loss(actor, critic, eqx.tree_at(lambda b: b.log_prob, batch, old_log_prob),
                        value_clip_eps=None, **kwargs)[1]["loss/policy"]

    grad = jax.grad(policy_of)(batch.log_prob)
    np.testing.assert_allclose(np.asarray(grad), [0.0, 0.0, 0.7 / 4, -1.1 / 4], atol=1e-6)


def test_loss_normalises_advantages():
    actor, critic, batch, ratio, _ = _hand_batch()
    a = np.asarray(batch.advantage, np.float64)
    a = (a - a.mean()) / (a.std() + 1e-8)
    expected = -np.mean(np.minimum(ratio * a, np.clip(ratio, 0.8, 1.2) * a))
    _, m = ppo.loss(actor, critic, batch, clip_eps=0.2, value_clip_eps=None, value_coef=1.0, entropy_coef=0.0)
    np.testing.assert_allclose(float(m["loss/policy"]), expected, atol=1e-6)


# ---------------------------------------------------------------------------------------
# Update


def _bandit_batch(key, actor, critic, size=256, obs_size=4):
    """Contextual bandit: reward is closeness of tanh(u) to a fixed function of obs; the
    value target is a fixed linear function of obs."""
    obs_key, sample_key, w_key = jax.random.split(key, 3)
    obs = jax.random.normal(obs_key, (size, obs_size))
    action, log_prob, raw = jax.vmap(actor.sample)(jax.random.split(sample_key, size), obs)
    w = jax.random.normal(w_key, (obs_size, 2))
    reward = -jnp.sum(jnp.square(action - jnp.tanh(obs @ w)), axis=-1)
    return ppo.Batch(
        obs=obs, critic_obs=obs, raw_action=raw, log_prob=log_prob,
        value=jax.vmap(critic)(obs), advantage=reward - jnp.mean(reward), returns=obs @ w[:, 0],
    )


LOSS_KWARGS = dict(clip_eps=0.2, value_clip_eps=None, value_coef=0.5, entropy_coef=0.0)


def test_update_epochs_reduces_the_loss():
    actor, critic = networks.init(jax.random.key(1), 4, 4, 2, hidden=(32, 32))
    batch = _bandit_batch(jax.random.key(2), actor, critic)
    optimizer = ppo.make_optimizer(3e-3, max_grad_norm=1.0)
    opt_state = ppo.init_opt_state(optimizer, actor, critic)
    update = eqx.filter_jit(ppo.update_epochs)

    before = ppo.loss(actor, critic, batch, **LOSS_KWARGS)[1]
    new_actor, new_critic, opt_state, metrics = update(
        jax.random.key(3), actor, critic, opt_state, optimizer, batch, epochs=8, minibatches=4, **LOSS_KWARGS
    )
    after = ppo.loss(new_actor, new_critic, batch, **LOSS_KWARGS)[1]

    assert set(metrics) == {
        "loss/total", "loss/policy", "loss/value", "loss/entropy",
        "approx_kl", "clip_fraction", "optim/grad_norm",
    }
    assert all(np.isfinite(float(v)) and np.ndim(v) == 0 for v in metrics.values())
    assert float(after["loss/policy"]) < float(before["loss/policy"]) - 0.05
    assert float(after["loss/value"]) < 0.5 * float(before["loss/value"])
    assert float(metrics["approx_kl"]) > 0.0
    # The static parts (activation, clamp range) survive the partition/combine.
    assert new_actor.log_std_min == actor.log_std_min
    assert jax.tree.structure(new_actor) == jax.tree.structure(actor)

    # Same key, same result: nothing hidden is stochastic.
    again = update(jax.random.key(3), actor, critic, ppo.init_opt_state(optimizer, actor, critic),
                   optimizer, batch, epochs=8, minibatches=4, **LOSS_KWARGS)
    np.testing.assert_array_equal(np.asarray(again[0].log_std), np.asarray(new_actor.log_std))


def test_update_epochs_rejects_indivisible_minibatches():
    actor, critic = networks.init(jax.random.key(1), 4, 4, 2, hidden=(8,))
    batch = jax.tree.map(lambda x: x[:10], _bandit_batch(jax.random.key(2), actor, critic, size=16))
    optimizer = ppo.make_optimizer(1e-3, max_grad_norm=None)
    with pytest.raises(ValueError, match="divisible"):
        ppo.update_epochs(jax.random.key(0), actor, critic, ppo.init_opt_state(optimizer, actor, critic),
                          optimizer, batch, epochs=1, minibatches=4, **LOSS_KWARGS)


def test_flatten_time_merges_leading_axes():
    T, N = 3, 5
    batch = ppo.Batch(
        obs=jnp.arange(T * N * 2.0).reshape(T, N, 2), critic_obs=jnp.zeros((T, N, 4)),
        raw_action=jnp.zeros((T, N, 6)), log_prob=jnp.zeros((T, N)), value=jnp.zeros((T, N)),
        advantage=jnp.arange(T * N * 1.0).reshape(T, N), returns=jnp.zeros((T, N)),
    )
    flat = ppo.flatten_time(batch)
    assert flat.obs.shape == (15, 2) and flat.raw_action.shape == (15, 6) and flat.advantage.shape == (15,)
    np.testing.assert_array_equal(np.asarray(flat.advantage), np.arange(15.0))


# ---------------------------------------------------------------------------------------
# Reward scaling and schedules


def test_reward_scaling_hand_case():
    gamma = 0.5
    rewards = np.array([[1.0, 2.0], [1.0, 0.0], [1.0, 4.0]], np.float32)
    dones = np.array([[0, 1], [0, 0], [1, 0]], bool)
    state = ppo.reward_scaling_init(2)
    state, scaled = ppo.reward_scaling_update(state, jnp.asarray(rewards), jnp.asarray(dones), gamma)
    # env 0: G = 1, 1.5, 1.75 then restarts; env 1: G = 2 then restarts, 0, 4.
    seen = [1.0, 1.5, 1.75, 2.0, 0.0, 4.0]
    np.testing.assert_allclose(np.asarray(state.discounted_return), [0.0, 4.0])
    np.testing.assert_allclose(float(state.stats.std[0]), np.std(seen), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(scaled), rewards / np.sqrt(np.var(seen) + 1e-8), rtol=1e-6)

    # A second batch continues env 1's return and merges into the running variance.
    rewards2 = np.array([[0.5, 1.0], [2.0, -1.0]], np.float32)
    dones2 = np.zeros((2, 2), bool)
    state, scaled = ppo.reward_scaling_update(state, jnp.asarray(rewards2), jnp.asarray(dones2), gamma)
    seen += [0.5, 4 * 0.5 + 1.0, 0.25 + 2.0, 3.0 * 0.5 - 1.0]
    np.testing.assert_allclose(float(state.stats.std[0]), np.std(seen), rtol=1e-5)
    np.testing.assert_allclose(np.asarray(scaled), rewards2 / np.std(seen), rtol=1e-5)


def test_schedules_endpoints():
    coef = jax.jit(ppo.entropy_coef_schedule, static_argnums=(1, 2, 3))
    got = [float(coef(i, 0.01, 0.001, 100)) for i in (0, 50, 100, 400)]
    np.testing.assert_allclose(got, [0.01, 0.0055, 0.001, 0.001], rtol=1e-6)
    with pytest.raises(ValueError):
        ppo.entropy_coef_schedule(0, 0.01, 0.001, 0)

    lr = ppo.cosine_schedule(1e-3, 1000, final_fraction=0.1)
    np.testing.assert_allclose([float(lr(0)), float(lr(500)), float(lr(1000)), float(lr(5000))],
                               [1e-3, 0.55e-3, 1e-4, 1e-4], rtol=1e-5)
    warm = ppo.cosine_schedule(1e-3, 1000, warmup=100, final_fraction=0.0)
    np.testing.assert_allclose([float(warm(0)), float(warm(50)), float(warm(100)), float(warm(1000))],
                               [0.0, 0.5e-3, 1e-3, 0.0], atol=1e-9)
