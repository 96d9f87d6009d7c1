"""evosax strategies on the ES engine: which ones, how the config builds them, how they pair.

`config.strategy` is `perturbative` (the trainer's own antithetic ES, noise regenerated
from keys) or the name of an evosax 0.3.2 distribution-based algorithm. Those ask for the
whole population as a `[population, params]` array, which the trainer evaluates with
the same chunked, sharded rollouts as its own candidates, then tells them the fitness.

The config's `sigma` is every strategy's initial search scale; strategies that follow an
optimizer (Open_ES, ARS, PGPE, SNES) get the config's optimizer and learning-rate
schedule, and those with a fixed scale (Open_ES, ARS) the sigma schedule. Antithetic
strategies ask for candidates i and i + population / 2 as a mirrored pair, which meet
the same episode; the others get one reset key per candidate.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import optax

PERTURBATIVE = "perturbative"
# Strategy name -> (takes an optimizer, takes a fixed std schedule, asks antithetic pairs).
_EVOSAX = {
    "Open_ES": (True, True, True),
    "ARS": (True, True, True),
    "PGPE": (True, False, True),
    "SNES": (True, False, False),
    "Sep_CMA_ES": (False, False, False),
}
NAMES = (PERTURBATIVE, *_EVOSAX)


@dataclasses.dataclass(frozen=True, eq=False)
class Evosax:
    """A built evosax algorithm, its params pytree and how its population pairs up."""

    name: str
    algorithm: Any
    params: Any
    antithetic: bool

    def init(self, key, theta):
        return self.algorithm.init(key, theta, self.params)

    def ask(self, key, state):
        return self.algorithm.ask(key, state, self.params)

    def tell(self, key, population, fitness, state):
        """`fitness` is to be maximised; evosax minimises, so it gets the negation."""
        return self.algorithm.tell(key, population, -fitness, state, self.params)[0]


def make(
    name: str,
    population: int,
    num_params: int,
    optimizer: optax.GradientTransformation,
    sigma: float,
    sigma_schedule: optax.Schedule,
) -> Evosax:
    """The evosax algorithm `name` for a flat parameter vector of `num_params`."""
    if name not in _EVOSAX:
        raise ValueError(f"strategy: must be one of {NAMES[1:]} for evosax, got {name!r}")
    # evosax builds jax arrays when its modules load (default optimizers and params),
    # which would start a JAX backend before `cpu_devices` can split the CPU.
    from evosax import algorithms  # pylint: disable=import-outside-toplevel

    takes_optimizer, takes_schedule, antithetic = _EVOSAX[name]
    kwargs: dict[str, Any] = {}
    if takes_optimizer:
        kwargs["optimizer"] = optimizer
    if takes_schedule:
        kwargs["std_schedule"] = sigma_schedule
    algorithm = getattr(algorithms, name)(population_size=population, solution=jnp.zeros((num_params,)), **kwargs)
    params = algorithm.default_params
    # A strategy without a fixed schedule adapts its scale from `std_init`.
    if not takes_schedule:
        params = params.replace(std_init=jnp.asarray(sigma, jnp.float32))
    return Evosax(name=name, algorithm=algorithm, params=params, antithetic=antithetic)
