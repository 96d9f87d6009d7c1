"""PPO pieces for the biped: GAE, the clipped loss, the minibatch update, schedules and
reward scaling. Each is a pure function of its inputs (stochastic ones take the key
first) so the trainer can put a whole iteration under one `jit`.

Data layout: rollouts are time-major, `(T, N)` for T steps of N envs. `gae` works on that
layout; `flatten_time` turns a `(T, N, ...)` `Batch` into the flat `(T*N, ...)` one that
`loss` and `update_epochs` take. Actions are stored raw (pre-tanh), see
`ppo_amp.networks`.
"""

from __future__ import annotations

import chex
import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray, PyTree

from common import normalizer
from ppo_amp.networks import Actor, Critic

Metrics = dict[str, Float[Array, ""]]


# ---------------------------------------------------------------------------------------
# Advantages


def gae(
    rewards: Float[Array, "T N"],
    values: Float[Array, "T N"],
    next_values: Float[Array, "T N"],
    terminations: Bool[Array, "T N"] | Float[Array, "T N"],
    dones: Bool[Array, "T N"] | Float[Array, "T N"],
    gamma: float,
    lam: float,
) -> tuple[Float[Array, "T N"], Float[Array, "T N"]]:
    """Generalised advantage estimates and value targets, `(advantages, returns)`.

    Contract for step t of env n (all arrays time-major, same shape):
      rewards[t]      r_t, the reward of the transition s_t -> s_{t+1}.
      values[t]       V(s_t).
      next_values[t]  V(s_{t+1}) of the SAME episode. When step t ended the episode by a
                      time-out this is the value of the final observation, taken before
                      the env auto-reset (the env/trainer provide it); for the last step
                      of the rollout it bootstraps the cut-off tail.
      terminations[t] the episode ended in a true terminal state (fall): no future value.
      dones[t]        the episode ended for any reason (terminal or time-out), so
                      step t+1 belongs to a new episode. terminations must imply dones.

      delta_t   = r_t + gamma * (1 - terminations_t) * next_values_t - values_t
      A_t       = delta_t + gamma * lam * (1 - dones_t) * A_{t+1},   A_T = 0
      returns_t = A_t + values_t

    A time-out therefore bootstraps from the value and a termination does not, and no
    advantage leaks across an episode boundary. Outputs carry no gradient.
    """
    chex.assert_equal_shape([rewards, values, next_values, terminations, dones])
    dtype = rewards.dtype
    continues = 1.0 - terminations.astype(dtype)
    same_episode = 1.0 - dones.astype(dtype)
    deltas = rewards + gamma * continues * next_values - values

    def backward(next_advantage, step):
        delta, same = step
        advantage = delta + gamma * lam * same * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(values[0]), (deltas, same_episode), reverse=True
    )
    advantages = jax.lax.stop_gradient(advantages)
    return advantages, jax.lax.stop_gradient(advantages + values)


# ---------------------------------------------------------------------------------------
# Loss


class Batch(eqx.Module):
    """One PPO batch; leading axes `*batch` are `(B,)` flat or `(T, N)` from a rollout."""

    obs: Float[Array, "*batch obs"]
    critic_obs: Float[Array, "*batch cobs"]
    # Pre-tanh action u; the env saw tanh(u).
    raw_action: Float[Array, "*batch act"]
    # log pi_old(tanh(u) | obs) at collection time.
    log_prob: Float[Array, " *batch"]
    # V_old(critic_obs) at collection time (the anchor of value clipping).
    value: Float[Array, " *batch"]
    advantage: Float[Array, " *batch"]
    # Value target, `returns` from `gae`.
    returns: Float[Array, " *batch"]


def flatten_time(batch: Batch) -> Batch:
    """Merges the leading `(T, N)` axes of every field into one `T*N` axis."""
    return jax.tree.map(lambda x: x.reshape(x.shape[0] * x.shape[1], *x.shape[2:]), batch)


def loss(
    actor: Actor,
    critic: Critic,
    batch: Batch,
    *,
    clip_eps: float,
    value_clip_eps: float | None,
    value_coef: float,
    entropy_coef: float | Float[Array, ""],
    normalize_advantages: bool = True,
) -> tuple[Float[Array, ""], Metrics]:
    """PPO-clip loss on a flat batch `(B, ...)`; returns `(total, metrics)`.

      ratio  = exp(log pi(u | obs) - batch.log_prob)
      policy = -mean(min(ratio A, clip(ratio, 1 - clip_eps, 1 + clip_eps) A))
      value  = 0.5 mean(max((V - R)^2, (V_old + clip(V - V_old, +-value_clip_eps) - R)^2))
               (just 0.5 mean((V - R)^2) when value_clip_eps is None or 0)
      total  = policy + value_coef * value - entropy_coef * mean entropy

    A is `batch.advantage`, standardised over this batch when `normalize_advantages`.
    `value_clip_eps` is a Python number or None (it selects the branch at trace time);
    `entropy_coef` may be a traced scalar, so a schedule can drive it.

    Metrics: `loss/total`, `loss/policy`, `loss/value` (the terms above, before their
    coefficients), `loss/entropy` (mean pre-squash entropy, the bonus before its
    coefficient), `approx_kl` (mean of (ratio - 1) - log ratio, an unbiased, non-negative
    estimate of KL(old || new)), `clip_fraction` (share of samples with
    |ratio - 1| > clip_eps).
    """
    log_prob = jax.vmap(actor.log_prob)(batch.obs, batch.raw_action)
    log_ratio = log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)

    advantage = batch.advantage
    if normalize_advantages:
        advantage = (advantage - jnp.mean(advantage)) / (jnp.std(advantage) + 1e-8)
    surrogate = jnp.minimum(ratio * advantage, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantage)
    policy_loss = -jnp.mean(surrogate)

    value = jax.vmap(critic)(batch.critic_obs)
    squared_error = jnp.square(value - batch.returns)
    if value_clip_eps:
        clipped_value = batch.value + jnp.clip(value - batch.value, -value_clip_eps, value_clip_eps)
        squared_error = jnp.maximum(squared_error, jnp.square(clipped_value - batch.returns))
    value_loss = 0.5 * jnp.mean(squared_error)

    entropy = jnp.mean(jax.vmap(actor.entropy)(batch.obs))
    total = policy_loss + value_coef * value_loss - entropy_coef * entropy

    ratio = jax.lax.stop_gradient(ratio)
    metrics = {
        "loss/total": total,
        "loss/policy": policy_loss,
        "loss/value": value_loss,
        "loss/entropy": entropy,
        "approx_kl": jnp.mean((ratio - 1.0) - jax.lax.stop_gradient(log_ratio)),
        "clip_fraction": jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(ratio.dtype)),
    }
    return total, metrics


# ---------------------------------------------------------------------------------------
# Update


class _UpdateCarry(eqx.Module):
    # The inexact arrays of (actor, critic); the rest is closed over and recombined.
    params: PyTree
    opt_state: optax.OptState


def init_opt_state(optimizer: optax.GradientTransformation, actor: Actor, critic: Critic) -> optax.OptState:
    """Optimizer state over the trainable arrays of the pair (actor, critic)."""
    return optimizer.init(eqx.filter((actor, critic), eqx.is_inexact_array))


def update_epochs(
    key: PRNGKeyArray,
    actor: Actor,
    critic: Critic,
    opt_state: optax.OptState,
    optimizer: optax.GradientTransformation,
    batch: Batch,
    *,
    epochs: int,
    minibatches: int,
    clip_eps: float,
    value_clip_eps: float | None,
    value_coef: float,
    entropy_coef: float | Float[Array, ""],
    normalize_advantages: bool = True,
) -> tuple[Actor, Critic, optax.OptState, Metrics]:
    """`epochs` passes over a flat batch `(B, ...)`, each in `minibatches` shuffled parts.

    Every minibatch takes one gradient step of `loss` (same keywords) on actor and critic
    together, with one optimizer over the pair (state from `init_opt_state`). Returns the
    updated `(actor, critic, opt_state)` and the loss metrics plus `optim/grad_norm`
    (before clipping), each averaged over all epochs x minibatches steps.

    Raises ValueError (at trace time) unless B is divisible by `minibatches`, since every
    minibatch must have the same static shape.
    """
    batch_size = batch.advantage.shape[0]
    if minibatches < 1 or batch_size % minibatches:
        raise ValueError(
            f"batch size {batch_size} is not divisible into {minibatches} equal minibatches; "
            "choose num_envs * rollout_length as a multiple of the number of minibatches"
        )
    chex.assert_tree_shape_prefix(batch, (batch_size,))
    minibatch_size = batch_size // minibatches
    params, static = eqx.partition((actor, critic), eqx.is_inexact_array)

    @eqx.filter_value_and_grad(has_aux=True)
    def minibatch_loss(params: PyTree, minibatch: Batch) -> tuple[Float[Array, ""], Metrics]:
        actor, critic = eqx.combine(params, static)
        return loss(
            actor,
            critic,
            minibatch,
            clip_eps=clip_eps,
            value_clip_eps=value_clip_eps,
            value_coef=value_coef,
            entropy_coef=entropy_coef,
            normalize_advantages=normalize_advantages,
        )

    def minibatch_step(carry: _UpdateCarry, minibatch: Batch) -> tuple[_UpdateCarry, Metrics]:
        (_, metrics), grads = minibatch_loss(carry.params, minibatch)
        updates, opt_state = optimizer.update(grads, carry.opt_state, carry.params)
        params = eqx.apply_updates(carry.params, updates)
        metrics = {**metrics, "optim/grad_norm": optax.tree.norm(grads)}
        return _UpdateCarry(params=params, opt_state=opt_state), metrics

    def epoch(carry: _UpdateCarry, epoch_key: PRNGKeyArray) -> tuple[_UpdateCarry, Metrics]:
        order = jax.random.permutation(epoch_key, batch_size)
        split = jax.tree.map(
            lambda x: x[order].reshape(minibatches, minibatch_size, *x.shape[1:]), batch
        )
        return jax.lax.scan(minibatch_step, carry, split)

    carry, metrics = jax.lax.scan(
        epoch, _UpdateCarry(params=params, opt_state=opt_state), jax.random.split(key, epochs)
    )
    actor, critic = eqx.combine(carry.params, static)
    return actor, critic, carry.opt_state, jax.tree.map(jnp.mean, metrics)


# ---------------------------------------------------------------------------------------
# Optimizer and schedules


def make_optimizer(
    learning_rate: float | optax.Schedule, max_grad_norm: float | None
) -> optax.GradientTransformation:
    """Global-norm gradient clipping (skipped when `max_grad_norm` is None) then Adam.

    A schedule is indexed by optimizer steps: epochs * minibatches per iteration.
    """
    # eps 1e-5 rather than Adam's 1e-8: PPO's usual setting, it damps the first steps on
    # parameters whose gradients are near zero (the small-initialised mean head).
    adam = optax.adam(learning_rate, eps=1e-5)
    if max_grad_norm is None:
        return adam
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), adam)


def cosine_schedule(
    learning_rate: float, total_steps: int, warmup: int = 0, final_fraction: float = 0.0
) -> optax.Schedule:
    """Linear warm-up from 0 over `warmup` steps, then cosine decay reaching
    `final_fraction * learning_rate` at `total_steps` (warm-up included) and staying there."""
    if total_steps <= warmup:
        raise ValueError(f"total_steps ({total_steps}) must exceed warmup ({warmup})")
    if warmup > 0:
        return optax.warmup_cosine_decay_schedule(
            0.0, learning_rate, warmup, total_steps, end_value=final_fraction * learning_rate
        )
    return optax.cosine_decay_schedule(learning_rate, total_steps, alpha=final_fraction)


def entropy_coef_schedule(
    iteration: Int[Array, ""] | int, start: float, end: float, decay_iterations: int
) -> Float[Array, ""]:
    """Linear from `start` at iteration 0 to `end` at `decay_iterations`, then `end`."""
    if decay_iterations <= 0:
        raise ValueError(
            f"decay_iterations must be positive, got {decay_iterations}; use start == end for a constant"
        )
    fraction = jnp.clip(jnp.asarray(iteration, jnp.float32) / decay_iterations, 0.0, 1.0)
    return start + (end - start) * fraction


# ---------------------------------------------------------------------------------------
# Reward scaling


class RewardScaling(eqx.Module):
    """Rewards are divided by the running std of the per-env discounted return."""

    # Discounted return of each env's current episode so far.
    discounted_return: Float[Array, " N"]
    # Running statistics of every discounted-return value seen (dim 1).
    stats: normalizer.RunningStats


def reward_scaling_init(num_envs: int) -> RewardScaling:
    return RewardScaling(discounted_return=jnp.zeros((num_envs,), jnp.float32), stats=normalizer.init(1))


def reward_scaling_update(
    state: RewardScaling,
    rewards: Float[Array, "T N"],
    dones: Bool[Array, "T N"] | Float[Array, "T N"],
    gamma: float,
    eps: float = 1e-8,
) -> tuple[RewardScaling, Float[Array, "T N"]]:
    """Folds a time-major batch into the statistics and returns the scaled rewards.

    G_t = gamma * G_{t-1} + r_t, restarted at 0 after a step with dones_t. All T*N values
    G_t join the running statistics, then every reward in the batch is divided by
    sqrt(var(G) + eps) of the updated statistics (unscaled while fewer than 2 samples).
    The mean is not subtracted: shifting rewards would change the task.
    """
    chex.assert_equal_shape([rewards, dones])
    same_episode = 1.0 - dones.astype(rewards.dtype)

    def forward(running, step):
        reward, same = step
        running = gamma * running + reward
        return running * same, running

    discounted_return, returns = jax.lax.scan(forward, state.discounted_return, (rewards, same_episode))
    stats = normalizer.merge(state.stats, normalizer.from_batch(returns.reshape(-1, 1)))
    std = jnp.where(stats.count > 1.0, jnp.sqrt(stats.variance[0] + eps), 1.0)
    return RewardScaling(discounted_return=discounted_return, stats=stats), rewards / std
