"""The benchmarks' one measurement helper: compile, time round-robin, rate against a named baseline.

Every benchmark line is a `Job`: a function, its argument and the env steps one call
runs. `measure` compiles the jitted ones through the persistent cache, then times all
jitted jobs in turn, `repeats` rounds, and keeps each one's fastest call: interleaving
makes a slow spell of the machine hit every line alike, so ratios between lines hold
better than the rates themselves. Host jobs (MuJoCo C) are timed apart, after them. A
job that names a baseline (an earlier job) gets `baseline`, `baseline_steps_per_s` and
`ratio` = its rate / the baseline's.

`physics_steps` and `env_steps` build the two baselines every config has: the bare MJX
step and the env's own step, scanned over a horizon at a batch, split over the mesh.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import Mesh
from jaxtyping import Array, Float

from common import compile_cache, physics, sharding
from common.envs.base import Env, State


@dataclasses.dataclass(frozen=True)
class Job:
    """One benchmark line: `fn(arg)` runs `env_steps` env steps."""

    name: str
    fn: Callable[[Any], Any]
    arg: Any
    env_steps: int
    # The name of an earlier job this one's rate is divided by.
    baseline: str | None = None
    # Fields of the line (its shape, what it counts); they also key its compile-cache marker.
    fields: dict[str, Any] = dataclasses.field(default_factory=dict)
    # False for host code (MuJoCo C), which is called as it is.
    jitted: bool = True


def measure(jobs: list[Job], *, repeats: int, cache_dir: str | None) -> list[dict[str, Any]]:
    """The JSON lines of `jobs`, in their order (see the module docstring)."""
    compiled, reports = {}, {}
    for job in jobs:
        if job.jitted:
            # A trainer's iteration comes jitted with its own shardings; the rest is jitted here.
            fn = job.fn if hasattr(job.fn, "lower") else jax.jit(job.fn)
            compiled[job.name], reports[job.name] = compile_cache.warm_up(
                f"benchmark_{job.name}_{job.fields.get('physics', '')}", fn, job.arg, cache_dir=cache_dir,
                shape=job.fields)
        else:
            compiled[job.name] = job.fn
    best = {job.name: float("inf") for job in jobs}
    # Host jobs run their repeats back to back, after the jitted rounds: called right after
    # an XLA computation, MuJoCo C's threads ran 2.2-2.6x slower (0.98-1.16 s against 0.45 s
    # for the same rollout on 2 cores), as XLA's CPU threads still held the cores.
    rounds = [[job for job in jobs if job.jitted]] * repeats + [[job] * repeats for job in jobs if not job.jitted]
    for round_jobs in rounds:
        for job in round_jobs:
            start = time.perf_counter()
            jax.block_until_ready(compiled[job.name](job.arg))
            best[job.name] = min(best[job.name], time.perf_counter() - start)
    lines, rates = [], {}
    for job in jobs:
        rates[job.name] = job.env_steps / best[job.name]
        line = {"name": job.name, **job.fields, "env_steps": job.env_steps, "env_steps_per_s": rates[job.name],
                "seconds": best[job.name]}
        if job.name in reports:
            line.update(compile_seconds=reports[job.name].compile_seconds, cache_hits=reports[job.name].cache_hits)
        if job.baseline is not None:
            base = rates[job.baseline]
            line.update(baseline=job.baseline, baseline_steps_per_s=base, ratio=rates[job.name] / base)
        lines.append(line)
    return lines


def physics_steps(env: Env, horizon: int, mesh: Mesh | None,
                  ctrl: Float[Array, " nu"] | None = None) -> Callable[[Any], Any]:
    """The bare MJX step (frame_skip substeps, `ctrl` held, zeros by default) over a batch of data."""
    step = physics.make_step_fn(env.config.frame_skip)

    def run(data):
        held = jnp.zeros_like(data.ctrl[0]) if ctrl is None else ctrl

        def body(d, _):
            return jax.vmap(step, in_axes=(None, 0, None))(env.model, d, held), None

        return jax.lax.scan(body, data, length=horizon)[0].qpos

    return sharding.per_device(run, mesh, sharding.SPLIT, sharding.SPLIT)


def env_steps(env: Env, horizon: int, mesh: Mesh | None) -> Callable[[State], Any]:
    """The env's own step (physics, guard, observation, reward) with a zero action over a batch of states."""

    def run(state):
        def body(s, _):
            return jax.vmap(env.step)(s, jnp.zeros((s.obs.shape[0], env.action_size), s.obs.dtype)), None

        return jax.lax.scan(body, state, length=horizon)[0].obs

    return sharding.per_device(run, mesh, sharding.SPLIT, sharding.SPLIT)
