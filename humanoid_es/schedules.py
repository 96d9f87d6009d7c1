"""Schedules for sigma and the learning rate, as optax schedules over a clock: iterations, or env steps."""

from __future__ import annotations

import optax

KINDS = ("constant", "linear", "cosine", "exponential")


def make(kind: str, init: float, final: float, steps: int) -> optax.Schedule:
    """A schedule from `init` at clock 0 to `final` at clock `steps` (held there after)."""
    if kind == "constant":
        return optax.constant_schedule(init)
    if kind == "linear":
        return optax.linear_schedule(init, final, steps)
    if kind == "cosine":
        return optax.cosine_decay_schedule(init, steps, alpha=final / init)
    if kind == "exponential":
        return optax.exponential_decay(init, transition_steps=steps, decay_rate=final / init, end_value=final)
    raise ValueError(f"schedule: must be one of {KINDS}, got {kind!r}")
