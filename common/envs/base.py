"""The env contract shared by every task: `reset(key) -> State`, `step(state, action) -> State`.

Envs are Equinox modules: the MJX model is an array-valued field (so it can be traced,
vmapped or randomised), task constants are static fields. Methods are pure; batching is
`jax.vmap` from outside.
"""

from __future__ import annotations

import abc
from typing import Any

import equinox as eqx
from jaxtyping import Array, Bool, Float, PRNGKeyArray
from mujoco import mjx


class State(eqx.Module):
    """One env's state after a reset or step.

    Attributes:
      data: the MJX physics state.
      obs: the observation the policy sees.
      reward: reward earned by the step that produced this state (0 after reset).
      done: the episode has ended (termination, divergence or time limit).
      metrics: scalar diagnostics, flat names.
      info: task arrays that travel with the episode (step count, RNG key, ...).
    """

    data: mjx.Data
    obs: Float[Array, " obs"]
    reward: Float[Array, ""]
    done: Bool[Array, ""]
    metrics: dict[str, Array]
    info: dict[str, Any]


class Env(eqx.Module):
    """Interface every registered task implements."""

    @property
    @abc.abstractmethod
    def observation_size(self) -> int: ...

    @property
    @abc.abstractmethod
    def action_size(self) -> int: ...

    @abc.abstractmethod
    def reset(self, key: PRNGKeyArray) -> State: ...

    @abc.abstractmethod
    def step(self, state: State, action: Float[Array, " act"]) -> State: ...
