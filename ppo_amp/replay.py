"""A ring buffer of past policy windows for the AMP discriminator: pure, fixed-shape, jittable.

Replayed windows come from earlier policies, so the discriminator keeps rejecting
styles the policy has left behind (`amp.update` mixes them with the fresh ones).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray


class ReplayBuffer(eqx.Module):
    """Ring buffer of past policy windows: rows [0, size) are filled, insert_index is next."""

    data: Float[Array, "C D"]
    insert_index: Int[Array, ""]
    size: Int[Array, ""]


def init(capacity: int, dim: int) -> ReplayBuffer:
    return ReplayBuffer(
        data=jnp.zeros((capacity, dim), jnp.float32),
        insert_index=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def add(buf: ReplayBuffer, samples: Float[Array, "N D"]) -> ReplayBuffer:
    """Writes `samples` over the oldest rows. N <= capacity (checked: larger N would
    scatter twice to one row, in an unspecified order)."""
    capacity, n = buf.data.shape[0], samples.shape[0]
    if n > capacity:
        raise ValueError(f"adding {n} samples to a replay buffer of capacity {capacity}")
    index = (buf.insert_index + jnp.arange(n, dtype=jnp.int32)) % capacity
    return ReplayBuffer(
        data=buf.data.at[index].set(samples.astype(buf.data.dtype)),
        insert_index=(buf.insert_index + n) % capacity,
        size=jnp.minimum(buf.size + n, capacity),
    )


def sample(key: PRNGKeyArray, buf: ReplayBuffer, n: int) -> Float[Array, "n D"]:
    """n rows drawn uniformly, with replacement, from the filled part.

    Rows fill from 0 upwards until the buffer is full, so the filled part is [0, size).
    On an empty buffer this returns zero rows: sampling it is the caller's error
    (`update` guards against it).
    """
    index = jax.random.randint(key, (n,), 0, jnp.maximum(buf.size, 1))
    return buf.data[index]
