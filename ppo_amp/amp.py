"""Adversarial Motion Priors (Peng et al. 2021): discriminator, its losses, style reward.

The discriminator scores windows of AMP features (`ppo_amp.amp_features`): high for
windows from the reference clips, low for windows from the policy. Its score becomes
the policy's style reward. Everything here is pure: `update` is a function of a key,
the discriminator, the optimizer state and the data, and runs its steps in a
`lax.scan`, so the caller can jit it inside its training iteration.

Trainable versus fixed arrays: the discriminator also carries the input normalisation
(mean and std set at `init`; a caller that pools the reference with the policy's
windows replaces them between updates, `pooled_input_stats` and `with_input_stats`)
and, with spectral normalisation, the power-iteration vectors. Neither is a
parameter: `trainable` selects
only the Linear and LayerNorm arrays, `update` differentiates and optimises only those,
and the forward pass wraps the fixed arrays in `lax.stop_gradient`, so a caller who
takes gradients of the whole module still gets zeros for them.

Spectral normalisation (`spectral_norm=True`): each Linear weight W is divided by an
estimate of its largest singular value. The estimate is one power-iteration step from
a stored left vector u: v = normalise(W^T u), sigma = |W v|, with v held constant in
the gradient (Miyato et al. 2018). The forward pass never writes u, so it stays a pure
function of the module, gives the same weights for reference, policy, gradient penalty
and reward within a step, and vmaps over inputs without batching u. `update` advances u
by the same step after every optimizer step (`spectral_refresh`), and `init` starts u
converged with a few dozen iterations, so one step per update keeps up with weights
that move a little per step. Note that LayerNorm after each hidden layer rescales
activations, so spectral normalisation here constrains the weights but does not by
itself bound the network's Lipschitz constant; the gradient penalty does that job.
"""

from __future__ import annotations

from typing import Literal, Sequence

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from common import normalizer
from ppo_amp import replay as replay_lib

LossType = Literal["least_squares", "logistic"]
_INIT_POWER_ITERATIONS = 50
# Logistic style reward is -log(max(1 - sigmoid(d), 1e-4)): bounded by -log(1e-4).
_LOGISTIC_REWARD_CAP = -math.log(1e-4)


class Discriminator(eqx.Module):
    """MLP from a flattened feature window (D,) to one logit; call on a single window."""

    hidden: tuple[eqx.nn.Linear, ...]
    norms: tuple[eqx.nn.LayerNorm, ...]
    output: eqx.nn.Linear
    norm_mean: Float[Array, " D"]
    norm_std: Float[Array, " D"]
    # One left singular vector estimate per Linear (hidden..., output); None without SN.
    spectral_u: tuple[Float[Array, " out"], ...] | None
    spectral_norm: bool = eqx.field(static=True)

    def linears(self) -> tuple[eqx.nn.Linear, ...]:
        return (*self.hidden, self.output)

    def weights(self) -> tuple[Float[Array, "out in"], ...]:
        """The weights the forward pass uses (divided by sigma under spectral norm)."""
        if not self.spectral_norm:
            return tuple(lin.weight for lin in self.linears())
        us = jax.lax.stop_gradient(self.spectral_u)
        return tuple(_spectral_normalised(lin.weight, u)[0] for lin, u in zip(self.linears(), us))

    def normalize(self, x: Float[Array, " D"]) -> Float[Array, " D"]:
        mean = jax.lax.stop_gradient(self.norm_mean)
        std = jax.lax.stop_gradient(self.norm_std)
        return (x - mean) / std

    def __call__(self, x: Float[Array, " D"]) -> Float[Array, ""]:
        return self.logit_normalized(self.normalize(x))

    def logit_normalized(self, h: Float[Array, " D"]) -> Float[Array, ""]:
        """The logit of an already normalised window (the gradient penalty's input)."""
        ws = self.weights()
        for lin, norm, w in zip(self.hidden, self.norms, ws[:-1]):
            h = jax.nn.elu(norm(w @ h + lin.bias))
        return (ws[-1] @ h + self.output.bias)[0]


def _spectral_normalised(
    w: Float[Array, "out in"], u: Float[Array, " out"]
) -> tuple[Float[Array, "out in"], Float[Array, " out"]]:
    """W / sigma from one power step starting at u, and the advanced u."""
    v = jax.lax.stop_gradient(_unit(w.T @ u))
    wv = w @ v
    sigma = jnp.linalg.norm(wv)
    return w / sigma, jax.lax.stop_gradient(wv / sigma)


def _unit(x: Float[Array, " n"]) -> Float[Array, " n"]:
    return x / (jnp.linalg.norm(x) + 1e-12)


def spectral_refresh(disc: Discriminator) -> Discriminator:
    """Advances every power-iteration vector by one step; identity without SN."""
    if not disc.spectral_norm:
        return disc
    us = tuple(_spectral_normalised(lin.weight, u)[1] for lin, u in zip(disc.linears(), disc.spectral_u))
    return eqx.tree_at(lambda d: d.spectral_u, disc, us)


def init(
    key: PRNGKeyArray,
    input_size: int,
    hidden: Sequence[int] = (1024, 512, 256),
    spectral_norm: bool = False,
    norm_mean: Float[Array, " D"] | None = None,
    norm_std: Float[Array, " D"] | None = None,
) -> Discriminator:
    """A fresh discriminator; mean/std default to 0/1 (see `input_stats`)."""
    sizes = (input_size, *hidden)
    keys = jax.random.split(key, 2 * len(sizes))
    lin_keys, u_keys = keys[: len(sizes)], keys[len(sizes) :]
    layers = tuple(eqx.nn.Linear(i, o, key=k) for i, o, k in zip(sizes[:-1], sizes[1:], lin_keys))
    output = eqx.nn.Linear(sizes[-1], 1, key=lin_keys[-1])
    mean = jnp.zeros(input_size) if norm_mean is None else jnp.asarray(norm_mean, jnp.float32)
    std = jnp.ones(input_size) if norm_std is None else jnp.asarray(norm_std, jnp.float32)
    us = None
    if spectral_norm:
        us = tuple(
            _unit(jax.random.normal(k, (lin.weight.shape[0],)))
            for lin, k in zip((*layers, output), u_keys)
        )
    disc = Discriminator(
        hidden=layers,
        norms=tuple(eqx.nn.LayerNorm(h) for h in hidden),
        output=output,
        norm_mean=mean,
        norm_std=std,
        spectral_u=us,
        spectral_norm=spectral_norm,
    )
    for _ in range(_INIT_POWER_ITERATIONS if spectral_norm else 0):
        disc = spectral_refresh(disc)
    return disc


def input_stats(
    reference: Float[Array, "M D"], std_floor: float = 0.05
) -> tuple[Float[Array, " D"], Float[Array, " D"]]:
    """Mean and floored std of the reference windows, for `init`.

    The floor keeps a feature that never changes in the clips (a foot always in contact)
    from dividing policy deviations by ~0.
    """
    reference = jnp.asarray(reference, jnp.float32)
    return jnp.mean(reference, axis=0), jnp.maximum(jnp.std(reference, axis=0), std_floor)


def pooled_input_stats(
    reference: normalizer.RunningStats, policy: normalizer.RunningStats, std_floor: float = 0.05
) -> tuple[Float[Array, " D"], Float[Array, " D"]]:
    """Mean and floored std of an equal mixture of the reference windows' and the policy's
    statistics; the counts do not weigh (`normalizer.from_batch` makes either).

    Normalising by the reference alone measures a policy feature that the clips hold
    still (base angular velocity, hip yaw) in units of the std floor, so the policy sits
    tens of units away and the gradient penalty, taken in those units, barely constrains
    the discriminator there: it becomes a step between the two sets and the style reward
    is flat over the policy's samples. In units of the pooled spread the gap is a few
    units, and the penalty (and `input_noise`) keep the discriminator sloped across it.
    """
    mean = 0.5 * (reference.mean + policy.mean)
    var = 0.5 * (reference.variance + policy.variance) + jnp.square(0.5 * (reference.mean - policy.mean))
    return mean, jnp.maximum(jnp.sqrt(var), std_floor)


def with_input_stats(disc: Discriminator, mean: Float[Array, " D"], std: Float[Array, " D"]) -> Discriminator:
    """`disc` normalising its input by `mean` and `std` instead."""
    return eqx.tree_at(lambda d: (d.norm_mean, d.norm_std), disc, (mean, std))


def _trainable_mask(disc: Discriminator) -> PyTree[bool]:
    mask = jax.tree.map(lambda _: False, disc)
    return eqx.tree_at(
        lambda m: (m.hidden, m.norms, m.output),
        mask,
        (
            jax.tree.map(eqx.is_array, disc.hidden),
            jax.tree.map(eqx.is_array, disc.norms),
            jax.tree.map(eqx.is_array, disc.output),
        ),
    )


def trainable(disc: Discriminator) -> PyTree:
    """The optimised arrays (Linear and LayerNorm), None elsewhere: `optimizer.init(trainable(d))`."""
    return eqx.filter(disc, _trainable_mask(disc))


def logits(disc: Discriminator, x: Float[Array, "B D"]) -> Float[Array, " B"]:
    return jax.vmap(disc)(x)


def disc_loss(
    disc: Discriminator,
    reference: Float[Array, "B D"],
    policy: Float[Array, "B D"],
    *,
    loss_type: LossType,
    gp_weight: float,
    logit_reg: float = 0.0,
) -> tuple[Float[Array, ""], dict[str, Float[Array, ""]]]:
    """Classification loss + gradient penalty on reference + optional output-weight penalty.

    least_squares: mean (D(ref) - 1)^2 + mean (D(pol) + 1)^2 (AMP's eq. 6).
    logistic: binary cross-entropy with logits, reference labelled 1, summed the same way.
    Gradient penalty: gp_weight / 2 * mean |dD/dx|^2 over reference windows, x being the
    normalised window: in raw units a feature with a tiny reference spread (a hip yaw
    that never moves) would make the penalty 1/std^2 times larger and swamp the loss. logit_reg * |W_out|^2 keeps the output layer from growing
    the logits without bound (the AMP/ASE code bases' "logit regularisation").
    Metric `disc/gp` is the unweighted mean |dD/dx|^2; `disc/loss_plain` the loss
    without either penalty.
    """
    d_ref = logits(disc, reference)
    d_pol = logits(disc, policy)
    if loss_type == "least_squares":
        plain = jnp.mean(jnp.square(d_ref - 1.0)) + jnp.mean(jnp.square(d_pol + 1.0))
    elif loss_type == "logistic":
        plain = jnp.mean(jax.nn.softplus(-d_ref)) + jnp.mean(jax.nn.softplus(d_pol))
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}")
    input_grads = jax.vmap(jax.grad(disc.logit_normalized))(jax.vmap(disc.normalize)(reference))
    grad_sq = jnp.mean(jnp.sum(jnp.square(input_grads), axis=-1))
    output_sq = jnp.sum(jnp.square(disc.output.weight))
    loss = plain + 0.5 * gp_weight * grad_sq + logit_reg * output_sq
    metrics = {
        "disc/loss": loss,
        "disc/loss_plain": plain,
        "disc/gp": grad_sq,
        "disc/accuracy_reference": jnp.mean(d_ref > 0.0),
        "disc/accuracy_policy": jnp.mean(d_pol < 0.0),
        "disc/logit_reference": jnp.mean(d_ref),
        "disc/logit_policy": jnp.mean(d_pol),
    }
    return loss, metrics


def style_reward(
    disc: Discriminator, transitions: Float[Array, "N D"], loss_type: LossType
) -> Float[Array, " N"]:
    """Per-window style reward; no gradient reaches the discriminator.

    least_squares: max(0, 1 - (d - 1)^2 / 4), 1 at the reference target, 0 at the policy's.
    logistic: -log(max(1 - sigmoid(d), 1e-4)), computed as min(softplus(d), -log 1e-4),
    the same value without the rounding of 1 - sigmoid for large d.
    """
    d = jax.lax.stop_gradient(logits(disc, transitions))
    if loss_type == "least_squares":
        return jnp.maximum(0.0, 1.0 - 0.25 * jnp.square(d - 1.0))
    if loss_type == "logistic":
        return jnp.minimum(jax.nn.softplus(d), _LOGISTIC_REWARD_CAP)
    raise ValueError(f"unknown loss_type {loss_type!r}")


def _draw(key: PRNGKeyArray, data: Float[Array, "M D"], n: int) -> Float[Array, "n D"]:
    return data[jax.random.randint(key, (n,), 0, data.shape[0])]


def make_optimizer(
    lr: float, weight_decay: float = 0.0, max_grad_norm: float | None = None
) -> optax.GradientTransformation:
    """Adam(W) for the discriminator; weight decay on weight matrices only, not biases/LayerNorm."""
    decay_mask = lambda params: jax.tree.map(lambda x: x.ndim >= 2, params)  # noqa: E731
    adam = optax.adamw(lr, weight_decay=weight_decay, mask=decay_mask)
    if max_grad_norm is None:
        return adam
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), adam)


def update(
    key: PRNGKeyArray,
    disc: Discriminator,
    opt_state: optax.OptState,
    optimizer: optax.GradientTransformation,
    reference_windows: Float[Array, "M D"],
    policy_windows: Float[Array, "P D"],
    buffer: replay_lib.ReplayBuffer,
    *,
    batch_size: int,
    num_steps: int,
    loss_type: LossType,
    gp_weight: float,
    replay_fraction: float,
    logit_reg: float = 0.0,
    input_noise: float = 0.0,
) -> tuple[Discriminator, optax.OptState, dict[str, Float[Array, ""]]]:
    """`num_steps` discriminator steps on minibatches drawn with replacement.

    Each step: `batch_size` reference windows, and `batch_size` policy windows of which
    round(replay_fraction * batch_size) come from `buffer` and the rest from this
    rollout's `policy_windows`. While the buffer is empty the replay share is drawn
    from the rollout too. The caller adds the rollout to the buffer afterwards
    (`replay.add`), so replayed windows are from earlier policies. Metrics are means
    over the steps. `opt_state` must come from `optimizer.init(trainable(disc))`.

    `input_noise` > 0 adds Gaussian noise of that std, in normalised units, to both
    sides of every training batch (instance noise, Sonderby et al. 2016): sets that a
    sharp boundary could split overlap, so the optimal discriminator is smooth and the
    style reward keeps a slope towards the reference. The accuracy and logit metrics
    are those of the clean batch, which is what the style reward reads.
    Not jitted here: the caller jits it (the keyword settings are Python numbers,
    static under `eqx.filter_jit`) or calls it inside its own jitted iteration.
    """
    num_replay = int(round(replay_fraction * batch_size))
    num_fresh = batch_size - num_replay
    arrays, static = eqx.partition(disc, eqx.is_array)

    def step(carry, step_key):
        arrays, opt_state = carry
        disc = eqx.combine(arrays, static)
        ref_key, fresh_key, replay_key, stand_in_key, noise_key = jax.random.split(step_key, 5)
        reference = _draw(ref_key, reference_windows, batch_size)
        fresh = _draw(fresh_key, policy_windows, num_fresh)
        replay = replay_lib.sample(replay_key, buffer, num_replay)
        stand_in = _draw(stand_in_key, policy_windows, num_replay)
        replay = jnp.where(buffer.size > 0, replay, stand_in)
        policy = jnp.concatenate([fresh, replay], axis=0)

        params, fixed = eqx.partition(disc, _trainable_mask(disc))
        noisy_reference, noisy_policy = reference, policy
        if input_noise > 0.0:
            k_ref, k_pol = jax.random.split(noise_key)
            scale = input_noise * jax.lax.stop_gradient(disc.norm_std)
            noisy_reference = reference + scale * jax.random.normal(k_ref, reference.shape)
            noisy_policy = policy + scale * jax.random.normal(k_pol, policy.shape)

        def loss_fn(params):
            return disc_loss(
                eqx.combine(params, fixed),
                noisy_reference,
                noisy_policy,
                loss_type=loss_type,
                gp_weight=gp_weight,
                logit_reg=logit_reg,
            )

        (_, metrics), grads = eqx.filter_value_and_grad(loss_fn, has_aux=True)(params)
        if input_noise > 0.0:
            d_ref, d_pol = logits(disc, reference), logits(disc, policy)
            metrics.update({
                "disc/accuracy_reference": jnp.mean(d_ref > 0.0),
                "disc/accuracy_policy": jnp.mean(d_pol < 0.0),
                "disc/logit_reference": jnp.mean(d_ref),
                "disc/logit_policy": jnp.mean(d_pol),
            })
        updates, opt_state = optimizer.update(grads, opt_state, params)
        disc = spectral_refresh(eqx.apply_updates(disc, updates))
        metrics["disc/grad_norm"] = optax.tree.norm(grads)
        return (eqx.filter(disc, eqx.is_array), opt_state), metrics

    (arrays, opt_state), metrics = jax.lax.scan(
        step, (arrays, opt_state), jax.random.split(key, num_steps)
    )
    return eqx.combine(arrays, static), opt_state, jax.tree.map(jnp.mean, metrics)
