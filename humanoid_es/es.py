"""Perturbative ES with antithetic pairs: noise regenerated from keys, shaping, gradient.

Candidate 2i is theta + sigma eps_i and candidate 2i+1 is theta - sigma eps_i, where
eps_i is drawn from `pair_key(noise_key, i)`. Noise is never stored for the population:
the rollout regenerates a candidate's eps inside its chunk, and the gradient estimate
regenerates it again, chunk by chunk, so memory is O(chunk x params) either way.

Matrix-shaped leaves may take low-rank noise eps = A B^T / sqrt(r) (A: m x r, B: n x r),
which costs (m + n) r normals instead of m n. Its covariance is still the identity, so
the estimator below is unchanged.

The estimate ascends fitness:

    g = sum_i w_i eps_i / (2 n sigma),  w_i = s(f+_i) - s(f-_i)

over the n pairs kept, where s is the fitness shaping. With centred ranks and all pairs
kept this is OpenAI-ES's estimate (evosax's `Open_ES` gives -g on the negated fitness).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree

SHAPINGS = ("centered_rank", "ars", "none")


def training_fitness(
    episode_return: Float[Array, " n"], length: Int[Array, " n"], tilt_sum: Float[Array, " n"],
    reward_shift: float, tilt_cost: float,
) -> Float[Array, " n"]:
    """What ES ascends: the return less `reward_shift` per step lived (ARS removes the
    humanoid's survival bonus) and `tilt_cost` per unit of summed torso tilt."""
    return episode_return - reward_shift * length.astype(episode_return.dtype) - tilt_cost * tilt_sum


def pair_key(noise_key: PRNGKeyArray, pair: Int[Array, ""]) -> PRNGKeyArray:
    return jax.random.fold_in(noise_key, pair)


def _low_rank(leaf: Array, rank: int) -> bool:
    return rank > 0 and leaf.ndim == 2 and rank < min(leaf.shape)


def sample(key: PRNGKeyArray, template: PyTree[Array], rank: int = 0) -> PyTree[Array]:
    """eps ~ N(0, I) shaped like `template`; low-rank on matrix leaves when `rank` > 0."""
    leaves, treedef = jax.tree.flatten(template)
    keys = jax.random.split(key, len(leaves))
    out = []
    for k, leaf in zip(keys, leaves):
        if _low_rank(leaf, rank):
            m, n = leaf.shape
            ab = jax.random.normal(k, (m + n, rank), leaf.dtype)
            out.append(ab[:m] @ ab[m:].T / math.sqrt(rank))
        else:
            out.append(jax.random.normal(k, leaf.shape, leaf.dtype))
    return jax.tree.unflatten(treedef, out)


def weighted_sum(
    keys: PRNGKeyArray, weights: Float[Array, " n"], template: PyTree[Array], rank: int = 0
) -> PyTree[Array]:
    """sum_i weights_i * sample(keys_i): low-rank leaves are summed without forming eps_i."""
    leaves, treedef = jax.tree.flatten(template)
    per_key = jax.vmap(lambda k: jax.random.split(k, len(leaves)))(keys)
    out = []
    for j, leaf in enumerate(leaves):
        k = per_key[:, j]
        if _low_rank(leaf, rank):
            m, n = leaf.shape
            ab = jax.vmap(lambda kk: jax.random.normal(kk, (m + n, rank), leaf.dtype))(k)
            out.append(jnp.einsum("i,imr,inr->mn", weights, ab[:, :m], ab[:, m:]) / math.sqrt(rank))
        else:
            eps = jax.vmap(lambda kk: jax.random.normal(kk, leaf.shape, leaf.dtype))(k)
            out.append(jnp.tensordot(weights, eps, axes=1))
    return jax.tree.unflatten(treedef, out)


def centered_ranks(x: Float[Array, " n"]) -> Float[Array, " n"]:
    """Ranks scaled to [-0.5, 0.5] (ties broken by position, as argsort does)."""
    n = x.shape[0]
    ranks = jnp.zeros((n,), x.dtype).at[jnp.argsort(x)].set(jnp.arange(n, dtype=x.dtype))
    return ranks / max(n - 1, 1) - 0.5


def pair_weights(
    f_plus: Float[Array, " pairs"],
    f_minus: Float[Array, " pairs"],
    shaping: str,
    top_k: int,
) -> tuple[Float[Array, " pairs"], Int[Array, ""]]:
    """Per-pair weights w_i and how many pairs were kept.

    `centered_rank` ranks all 2n fitnesses together; `ars` uses raw differences divided
    by the std of the kept pairs' returns (ARS); `none` uses raw differences. With
    `top_k` in (0, n), only the k pairs with the largest max(f+, f-) count (ARS-t).
    """
    n = f_plus.shape[0]
    keep_all = top_k <= 0 or top_k >= n
    if keep_all:
        kept = jnp.ones((n,), bool)
    else:
        # A stable sort breaks ties by index, so exactly k pairs are kept.
        order = jnp.argsort(-jnp.maximum(f_plus, f_minus), stable=True)
        kept = jnp.zeros((n,), bool).at[order[:top_k]].set(True)
    n_kept = jnp.sum(kept.astype(jnp.int32))
    if shaping == "centered_rank":
        both = centered_ranks(jnp.concatenate([f_plus, f_minus]))
        w = both[:n] - both[n:]
    elif shaping == "ars":
        both = jnp.concatenate([f_plus, f_minus])
        mask = jnp.concatenate([kept, kept])
        mean = jnp.sum(jnp.where(mask, both, 0.0)) / (2 * n_kept)
        var = jnp.sum(jnp.where(mask, jnp.square(both - mean), 0.0)) / (2 * n_kept)
        w = (f_plus - f_minus) / jnp.maximum(jnp.sqrt(var), 1e-8)
    elif shaping == "none":
        w = f_plus - f_minus
    else:
        raise ValueError(f"fitness_shaping: must be one of {SHAPINGS}, got {shaping!r}")
    return jnp.where(kept, w, 0.0), n_kept


def gradient(
    noise_key: PRNGKeyArray,
    weights: Float[Array, " pairs"],
    n_kept: Int[Array, ""],
    sigma: Float[Array, ""],
    template: PyTree[Array],
    *,
    rank: int,
    chunk: int,
) -> PyTree[Array]:
    """The ascent direction g, with eps regenerated `chunk` pairs at a time."""
    n = weights.shape[0]
    chunk = min(chunk, n)
    if n % chunk:
        raise ValueError(f"pairs {n} must be divisible by the gradient chunk {chunk}")
    pairs = jnp.arange(n, dtype=jnp.int32).reshape(n // chunk, chunk)

    def body(acc, xs):
        idx, w = xs
        keys = jax.vmap(pair_key, in_axes=(None, 0))(noise_key, idx)
        part = weighted_sum(keys, w, template, rank)
        return jax.tree.map(jnp.add, acc, part), None

    zero = jax.tree.map(jnp.zeros_like, template)
    total, _ = jax.lax.scan(body, zero, (pairs, weights.reshape(n // chunk, chunk)))
    scale = 1.0 / (2.0 * n_kept.astype(sigma.dtype) * sigma)
    return jax.tree.map(lambda g: g * scale, total)
