"""Episodes in Gymnasium's own MuJoCo environments (MuJoCo C, their XML and solver), for
policies run outside MJX: the ARS reference and the sim2sim check of exported ES policies."""

from __future__ import annotations

from collections.abc import Callable

import gymnasium
import numpy as np

HUMANOID = "Humanoid-v4"


def make(name: str = HUMANOID) -> gymnasium.Env:
    return gymnasium.make(name)


def episode(env: gymnasium.Env, act: Callable[[np.ndarray], np.ndarray], seed: int,
            shift: float = 0.0) -> tuple[float, int]:
    """One episode from `env.reset(seed=seed)` with `act(obs) -> action` until it terminates
    or is truncated; returns (sum of reward - `shift` per step, steps)."""
    obs, _ = env.reset(seed=seed)
    total, steps, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(act(obs))
        total += float(reward) - shift
        steps += 1
        done = terminated or truncated
    return total, steps
