"""Running mean/variance of observations as a mergeable pytree.

Statistics are kept as (count, mean, M2) and merged with Chan et al.'s parallel rule,
so per-chunk and per-device statistics combine to exactly the one-pass result (up to
float rounding) in any grouping. Samples are selected with a mask via `jnp.where`,
so a non-finite value in a masked-out sample never reaches the statistics.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.typing import DTypeLike
from jaxtyping import Array, Bool, Float


class RunningStats(eqx.Module):
    count: Float[Array, ""]
    mean: Float[Array, " dim"]
    m2: Float[Array, " dim"]

    @property
    def variance(self) -> Float[Array, " dim"]:
        return self.m2 / jnp.maximum(self.count, 1.0)

    @property
    def std(self) -> Float[Array, " dim"]:
        return jnp.sqrt(self.variance)


def init(dim: int, dtype: DTypeLike = jnp.float32) -> RunningStats:
    return RunningStats(
        count=jnp.zeros((), dtype), mean=jnp.zeros((dim,), dtype), m2=jnp.zeros((dim,), dtype)
    )


def from_batch(
    x: Float[Array, "batch dim"], mask: Bool[Array, " batch"] | None = None
) -> RunningStats:
    """Statistics of the rows of `x` where `mask` (and the row is finite)."""
    valid = jnp.all(jnp.isfinite(x), axis=-1)
    if mask is not None:
        valid = valid & mask
    x = jnp.where(valid[:, None], x, 0.0)
    w = valid.astype(x.dtype)
    count = jnp.sum(w)
    mean = jnp.sum(x, axis=0) / jnp.maximum(count, 1.0)
    centred = jnp.where(valid[:, None], x - mean, 0.0)
    return RunningStats(count=count, mean=mean, m2=jnp.sum(jnp.square(centred), axis=0))


def merge(a: RunningStats, b: RunningStats) -> RunningStats:
    """Chan's parallel combination; exact for any split of the samples."""
    count = a.count + b.count
    safe = jnp.maximum(count, 1.0)
    delta = b.mean - a.mean
    mean = a.mean + delta * (b.count / safe)
    m2 = a.m2 + b.m2 + jnp.square(delta) * (a.count * b.count / safe)
    return RunningStats(count=count, mean=mean, m2=m2)


def merge_stacked(stats: RunningStats) -> RunningStats:
    """Merges statistics stacked on a leading axis (chunks or devices), in order."""
    first = jax.tree.map(lambda x: x[0], stats)
    rest = jax.tree.map(lambda x: x[1:], stats)
    out, _ = jax.lax.scan(lambda acc, s: (merge(acc, s), None), first, rest)
    return out


def normalize(
    stats: RunningStats,
    x: Float[Array, "*batch dim"],
    clip: float | None = 5.0,
    eps: float = 1e-8,
    std_floor: float = 0.0,
    zero_below: float = 0.0,
) -> Float[Array, "*batch dim"]:
    """(x - mean) / max(std, std_floor), clipped to +-clip; identity until samples arrive.

    `std_floor` keeps near-constant features (a force that is almost always zero) from
    being blown up to +-clip by rounding-level variation. `zero_below` is ARS's rule for
    the same problem: a feature whose std is below it reads 0. `clip=None` does not clip.
    """
    std = jnp.maximum(jnp.sqrt(stats.variance + eps), std_floor)
    started = stats.count > 1.0
    y = (x - stats.mean) / jnp.where(started, std, 1.0)
    if zero_below > 0.0:
        y = jnp.where(started & (jnp.sqrt(stats.variance) < zero_below), 0.0, y)
    return y if clip is None else jnp.clip(y, -clip, clip)
