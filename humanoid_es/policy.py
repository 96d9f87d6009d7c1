"""Echo-state (reservoir) recurrent policy for ES, as an Equinox module.

A fixed random recurrent layer turns the stream of normalised observations into a rich
state; a linear readout maps [state, observation] to actions. Only the leaves named by
the config train: `trainable_filter` marks them, `eqx.partition` splits them off and
ES flattens just those into its parameter vector.

    h' = (1 - leak) h + leak tanh(W_in x + W_rec h + b)
    a  = scale tanh(W_out [h', x] + b_out) + offset                (action_map "tanh")
    a  = clip(W_out [h', x] + b_out + offset, low, high)           (action_map "clip")

`x` is the observation normalised by the running statistics: with `obs_norm` "clip",
std floored and the result clipped to +-clip; with "ars", ARS's rule (no clip, features
whose std is below 1e-7 read 0).
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray, PyTree

from common import normalizer

TRAINABLE_LEAVES = ("w_out", "b_out", "w_in", "bias", "w_rec")
OBS_NORMS = ("clip", "ars")
ACTION_MAPS = ("tanh", "clip")
# ARS zeroes features whose std is below this (github.com/modestyachts/ARS, filter.py).
ARS_ZERO_STD = 1e-7


@dataclasses.dataclass(frozen=True)
class ReservoirConfig:
    """Shape, draw and trained part of the reservoir (all static): the ES config's `policy`
    section holds exactly these fields (`ReservoirConfig(**config.policy)`)."""

    # Recurrent units; the recurrent matrix is size x size.
    size: int = 256
    # Fraction of recurrent weights fixed at zero.
    sparsity: float = 0.9
    # Largest |eigenvalue| of the recurrent matrix (< 1 keeps echoes fading).
    spectral_radius: float = 0.9
    # Share of the new tanh activation mixed into the state each step.
    leak_rate: float = 0.5
    # Input weights are uniform in +-input_scaling, biases in +-bias_scaling.
    input_scaling: float = 0.5
    bias_scaling: float = 0.1
    # Readout sees the observation beside the reservoir state (extended state), so a
    # linear policy is a special case of this one.
    readout_obs: bool = True
    # Normalised observations are clipped to +-obs_clip (OpenAI ES uses 5).
    obs_clip: float = 5.0
    # Observation std below this is treated as this (see `normalizer.normalize`), so
    # near-constant features are not amplified.
    obs_std_floor: float = 1e-2
    # The policy reads the first `obs_features` observation entries (0: all of them).
    # Humanoid-v4's first 45 are qpos[2:] and qvel; the other 331 (body inertias and
    # velocities, actuator and contact forces) multiply the parameter count by eight.
    obs_features: int = 0
    # "clip": std floored at obs_std_floor, result clipped to +-obs_clip; "ars": no clip,
    # near-constant features zeroed (ARS's normaliser).
    obs_norm: str = "clip"
    # "tanh" squashes into the control range; "clip" is a linear readout clamped to it,
    # as MuJoCo clamps ARS's linear policy (the same theta moves the action 1/scale as
    # much under tanh for small outputs).
    action_map: str = "tanh"
    # Leaves ES trains, any of TRAINABLE_LEAVES; the rest stay as drawn.
    trainable: tuple[str, ...] = ("w_out", "b_out")
    # The seed the frozen reservoir is drawn from, the draw a run of `seed` =
    # reservoir_seed makes (None: the run's seed). Fixed, the run's seed varies only the
    # training noise and episodes (BENCHMARKS.md, "The reservoir or the noise?"). A branch
    # (`init_from`) carries its source's reservoir instead.
    reservoir_seed: int | None = None


class Reservoir(eqx.Module):
    """The policy's arrays; `config` and the action bounds are fixed for a run."""

    w_in: Float[Array, "res obs"]
    w_rec: Float[Array, "res res"]
    bias: Float[Array, " res"]
    w_out: Float[Array, "act feat"]
    b_out: Float[Array, " act"]
    action_scale: Float[Array, " act"]
    action_offset: Float[Array, " act"]
    config: ReservoirConfig = eqx.field(static=True)

    def initial_state(self) -> Float[Array, " res"]:
        return jnp.zeros((self.w_rec.shape[0],), self.w_rec.dtype)

    def __call__(
        self,
        stats: normalizer.RunningStats,
        h: Float[Array, " res"],
        obs: Float[Array, " obs"],
    ) -> tuple[Float[Array, " res"], Float[Array, " act"]]:
        c = self.config
        if c.obs_norm == "ars":
            x = normalizer.normalize(stats, obs, clip=None, zero_below=ARS_ZERO_STD)
        else:
            x = normalizer.normalize(stats, obs, clip=c.obs_clip, std_floor=c.obs_std_floor)
        if c.obs_features:
            x = x[: c.obs_features]
        pre = self.w_in @ x + self.w_rec @ h + self.bias
        h = (1.0 - c.leak_rate) * h + c.leak_rate * jnp.tanh(pre)
        features = jnp.concatenate([h, x]) if c.readout_obs else h
        out = self.w_out @ features + self.b_out
        if c.action_map == "clip":
            low = self.action_offset - self.action_scale
            action = jnp.clip(out + self.action_offset, low, low + 2.0 * self.action_scale)
        else:
            action = self.action_scale * jnp.tanh(out) + self.action_offset
        return h, action


def init(
    key: PRNGKeyArray,
    config: ReservoirConfig,
    obs_size: int,
    ctrl_range: Float[np.ndarray, "act 2"],
) -> Reservoir:
    """Draws the reservoir from `key`; the readout starts at zero (a zero action).

    The recurrent matrix is rescaled to `spectral_radius` with the eigenvalues computed
    on the host: this runs once per run, outside any jit.
    """
    k_in, k_rec, k_mask, k_bias = jax.random.split(key, 4)
    n = config.size
    obs_size = config.obs_features or obs_size
    w_in = config.input_scaling * jax.random.uniform(k_in, (n, obs_size), minval=-1.0, maxval=1.0)
    w_rec = jax.random.normal(k_rec, (n, n))
    w_rec = jnp.where(jax.random.uniform(k_mask, (n, n)) >= config.sparsity, w_rec, 0.0)
    radius = float(np.max(np.abs(np.linalg.eigvals(np.asarray(w_rec, np.float64)))))
    if radius > 0.0:
        w_rec = w_rec * (config.spectral_radius / radius)
    bias = config.bias_scaling * jax.random.uniform(k_bias, (n,), minval=-1.0, maxval=1.0)
    ctrl_range = np.asarray(ctrl_range, np.float32)
    n_act = ctrl_range.shape[0]
    n_feat = n + obs_size if config.readout_obs else n
    return Reservoir(
        w_in=w_in,
        w_rec=w_rec,
        bias=bias,
        w_out=jnp.zeros((n_act, n_feat)),
        b_out=jnp.zeros((n_act,)),
        action_scale=jnp.asarray((ctrl_range[:, 1] - ctrl_range[:, 0]) / 2.0),
        action_offset=jnp.asarray((ctrl_range[:, 1] + ctrl_range[:, 0]) / 2.0),
        config=config,
    )


def zeros(config: ReservoirConfig, obs_size: int, n_act: int) -> Reservoir:
    """A policy of zeros with the shapes `init` draws: a template that draws nothing."""
    n = config.size
    obs_size = config.obs_features or obs_size
    n_feat = n + obs_size if config.readout_obs else n
    z = jnp.zeros
    return Reservoir(
        w_in=z((n, obs_size)), w_rec=z((n, n)), bias=z((n,)), w_out=z((n_act, n_feat)), b_out=z((n_act,)),
        action_scale=z((n_act,)), action_offset=z((n_act,)), config=config,
    )


def trainable_filter(policy: Reservoir, names: tuple[str, ...]) -> PyTree[bool]:
    """A filter spec for `eqx.partition`: True on the named leaves, False elsewhere."""
    unknown = sorted(set(names) - set(TRAINABLE_LEAVES))
    if unknown:
        raise ValueError(f"trainable: unknown leaves {unknown}; choose from {TRAINABLE_LEAVES}")
    spec = jax.tree.map(lambda _: False, policy)
    return eqx.tree_at(lambda p: [getattr(p, n) for n in names], spec, replace=[True] * len(names))
