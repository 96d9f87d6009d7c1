"""Actor and critic networks of the PPO + AMP biped, as Equinox modules.

The actor is a tanh-squashed diagonal Gaussian: an ELU MLP gives the mean of a Gaussian
over *pre-squash* actions u, a learned state-independent vector gives its log std, and
the action sent to the env is a = tanh(u) in [-1, 1]. The critic is an ELU MLP with a
scalar output; it may read privileged observations (`critic_obs`) the actor does not.

Conventions shared with `ppo_amp.ppo` and the trainer:

* Every method takes ONE unbatched observation (`Float[Array, " obs"]`); callers `vmap`
  over envs / batch rows. Nothing here broadcasts over a leading batch axis.
* Rollouts store the raw (pre-tanh) action `u`, not `a`. Log-probabilities are then
  exact and need no `arctanh(a)`, which is ill-conditioned (and infinite in float32)
  where tanh saturates.
* Observations arrive already normalised; normalisation statistics are trainer state,
  not network parameters.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

DEFAULT_HIDDEN = (512, 256, 128)
# Pre-squash std 0.5: about 95% of the initial samples have |u| < 1, where tanh is still
# far from saturation (slope > 0.42), so exploration is not wasted pinned at the action
# bounds, while the spread of a = tanh(u) is still about +-0.46 of the action range.
DEFAULT_INIT_LOG_STD = math.log(0.5)
# Range of log std in use. Below e^-5 ~ 0.007 the policy is effectively deterministic and
# PPO ratios become hair-trigger; above e^1 ~ 2.7 most pre-squash mass lands in tanh's
# flat tails, so actions turn bang-bang. The learned vector itself is left unclipped.
LOG_STD_MIN = -5.0
LOG_STD_MAX = 1.0
# The mean head's last layer is scaled down so the initial policy sits near a = 0 (the
# default joint pose) instead of starting from a random offset per joint.
MEAN_HEAD_INIT_SCALE = 0.01

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)
_LOG2 = math.log(2.0)


class MLP(eqx.Module):
    """Dense layers with an activation between them and none after the last."""

    layers: tuple[eqx.nn.Linear, ...]
    activation: Callable[[Array], Array] = eqx.field(static=True)

    def __init__(
        self,
        key: PRNGKeyArray,
        in_size: int,
        hidden: Sequence[int],
        out_size: int | str,
        activation: Callable[[Array], Array] = jax.nn.elu,
    ):
        """`out_size="scalar"` gives a 0-d output (the critic)."""
        sizes = [in_size, *hidden]
        keys = jax.random.split(key, len(hidden) + 1)
        hidden_layers = [
            eqx.nn.Linear(n_in, n_out, key=k) for n_in, n_out, k in zip(sizes[:-1], sizes[1:], keys[:-1])
        ]
        self.layers = (*hidden_layers, eqx.nn.Linear(sizes[-1], out_size, key=keys[-1]))
        self.activation = activation

    def __call__(self, x: Float[Array, " in"]) -> Float[Array, "*out"]:
        for layer in self.layers[:-1]:
            x = self.activation(layer(x))
        return self.layers[-1](x)


def tanh_log_det_jacobian(raw_action: Float[Array, "*b act"]) -> Float[Array, "*b act"]:
    """log |d tanh(u)/du| = log(1 - tanh(u)^2), per dimension, stable for any u.

    Uses 1 - tanh(u)^2 = 4 e^{-2u} / (1 + e^{-2u})^2, whose log is
    2 (log 2 - u - softplus(-2u)); the direct form rounds to log(0) once |u| > ~9 in
    float32.
    """
    return 2.0 * (_LOG2 - raw_action - jax.nn.softplus(-2.0 * raw_action))


class Actor(eqx.Module):
    """Tanh-squashed diagonal Gaussian policy (see the module docstring)."""

    mean_net: MLP
    log_std: Float[Array, " act"]
    log_std_min: float = eqx.field(static=True, default=LOG_STD_MIN)
    log_std_max: float = eqx.field(static=True, default=LOG_STD_MAX)

    def distribution_params(
        self, obs: Float[Array, " obs"]
    ) -> tuple[Float[Array, " act"], Float[Array, " act"]]:
        """(mean, log_std) of the pre-squash Gaussian; log_std is clipped to its range."""
        mean = self.mean_net(obs)
        log_std = jnp.clip(self.log_std, self.log_std_min, self.log_std_max)
        return mean, log_std

    def sample(
        self, key: PRNGKeyArray, obs: Float[Array, " obs"]
    ) -> tuple[Float[Array, " act"], Float[Array, ""], Float[Array, " act"]]:
        """(action = tanh(u), log pi(action | obs), raw action u). Store u for PPO."""
        mean, log_std = self.distribution_params(obs)
        noise = jax.random.normal(key, mean.shape, mean.dtype)
        raw_action = mean + jnp.exp(log_std) * noise
        # The Gaussian term is written with `noise` directly: same value as
        # _gaussian_log_prob(raw_action), without re-deriving it through a subtraction.
        log_prob = jnp.sum(-0.5 * jnp.square(noise) - log_std - _HALF_LOG_2PI) - jnp.sum(
            tanh_log_det_jacobian(raw_action)
        )
        return jnp.tanh(raw_action), log_prob, raw_action

    def log_prob(self, obs: Float[Array, " obs"], raw_action: Float[Array, " act"]) -> Float[Array, ""]:
        """log density of the squashed action tanh(raw_action), in action space.

        log pi(a) = log N(u; mean, std) - sum_i log(1 - tanh(u_i)^2), with u = raw_action.
        """
        mean, log_std = self.distribution_params(obs)
        z = (raw_action - mean) * jnp.exp(-log_std)
        gaussian = jnp.sum(-0.5 * jnp.square(z) - log_std - _HALF_LOG_2PI)
        return gaussian - jnp.sum(tanh_log_det_jacobian(raw_action))

    def entropy(self, obs: Float[Array, " obs"]) -> Float[Array, ""]:
        """Entropy of the pre-squash Gaussian: sum_i (log_std_i + 0.5 log(2 pi e)).

        The squashed policy's entropy is this plus E[sum log(1 - tanh(u)^2)] <= 0, a term
        with no closed form, so this is an upper bound. As a bonus it does the job (it
        pushes log_std up) and needs no samples.
        `obs` is unused (the std is state-independent) but kept for a uniform interface.
        """
        del obs
        log_std = jnp.clip(self.log_std, self.log_std_min, self.log_std_max)
        return jnp.sum(log_std + 0.5 + _HALF_LOG_2PI)

    def deterministic(self, obs: Float[Array, " obs"]) -> Float[Array, " act"]:
        """tanh(mean): the evaluation / deployment action."""
        mean, _ = self.distribution_params(obs)
        return jnp.tanh(mean)


class Critic(eqx.Module):
    """State-value function V(critic_obs)."""

    net: MLP

    def __call__(self, critic_obs: Float[Array, " cobs"]) -> Float[Array, ""]:
        return self.net(critic_obs)


def init(
    key: PRNGKeyArray,
    obs_size: int,
    critic_obs_size: int,
    action_size: int,
    hidden: Sequence[int] = DEFAULT_HIDDEN,
    init_log_std: float = DEFAULT_INIT_LOG_STD,
) -> tuple[Actor, Critic]:
    """Fresh (actor, critic); the mean head's last layer is scaled by MEAN_HEAD_INIT_SCALE
    and its bias zeroed, so the initial policy is centred on a = 0."""
    actor_key, critic_key = jax.random.split(key)
    del key
    mean_net = MLP(actor_key, obs_size, hidden, action_size)
    mean_net = eqx.tree_at(
        lambda m: (m.layers[-1].weight, m.layers[-1].bias),
        mean_net,
        (MEAN_HEAD_INIT_SCALE * mean_net.layers[-1].weight, jnp.zeros((action_size,))),
    )
    actor = Actor(mean_net=mean_net, log_std=jnp.full((action_size,), init_log_std, jnp.float32))
    critic = Critic(net=MLP(critic_key, critic_obs_size, hidden, "scalar"))
    return actor, critic
