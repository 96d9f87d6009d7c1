"""The one pure physics step over MuJoCo MJX, with a divergence guard.

`make_step_fn` returns `step_fn(model, data, action) -> data`: `frame_skip` MJX substeps
with the action held as `ctrl`. `guarded_step` wraps it for env code: a member whose
action, qpos or qvel is non-finite (or whose speed is absurd) before or after the step
keeps its last good state and is reported as diverged, so nothing non-finite or exploded
leaks into returns, statistics or other members of a batch.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import mujoco
import numpy as np
from jaxtyping import Array, Bool, Float
from mujoco import mjx

from common.errors import UserError

StepFn = Callable[[mjx.Model, mjx.Data, Float[Array, " nu"]], mjx.Data]
Control = Callable[[mjx.Data, Float[Array, " nu"], Any], tuple[Float[Array, " nu"], Any]]
Push = Callable[[mjx.Data], Float[Array, "nbody 6"]]
ControlledStepFn = Callable[[mjx.Model, mjx.Data, Float[Array, " nu"], Any], tuple[mjx.Data, Any]]

IMPLS = ("jax", "warp")


class ImplError(UserError):
    """An MJX implementation that cannot run on this machine."""


def check_impl(impl: str) -> None:
    """Fails early, in one line, where `impl` cannot run here."""
    if impl == "cpp":
        raise ImplError("impl: 'cpp' cannot step in MJX; use 'jax' (any backend) or 'warp' (NVIDIA GPU)")
    if impl not in IMPLS:
        raise ImplError(f"impl: must be one of {IMPLS}, got {impl!r}")
    if impl == "warp":
        backend = jax.default_backend()
        if backend != "gpu":
            raise ImplError(f"impl: 'warp' needs an NVIDIA GPU, but JAX's backend here is {backend!r}; use 'jax'")
        if importlib.util.find_spec("warp") is None:
            raise ImplError("impl: 'warp' needs `pip install mujoco-mjx[warp]` (the `warp` extra of setup.cfg)")


def put_model(mj_model: mujoco.MjModel, impl: str) -> mjx.Model:
    check_impl(impl)
    # This process's first device: MJX's default is the first of all processes' devices,
    # which only process 0 can reach when several run together.
    return mjx.put_model(mj_model, impl=impl, device=jax.local_devices()[0])


def make_data(model: mjx.Model, impl: str) -> mjx.Data:
    return mjx.make_data(model, impl=impl, device=jax.local_devices()[0])


def make_step_fn(frame_skip: int, push: Push | None = None) -> StepFn:
    """`frame_skip` MJX steps with `action` written to `ctrl` and held; `sensordata` is
    what the last substep's forward pass measured, as after MuJoCo C's `mj_step`."""
    controlled = make_controlled_step_fn(frame_skip, lambda data, action, carry: (action, carry), push)
    return lambda model, data, action: controlled(model, data, action, ())[0]


def make_controlled_step_fn(frame_skip: int, control: Control, push: Push | None = None) -> ControlledStepFn:
    """`frame_skip` MJX steps, each with `ctrl` from `control(data, action, carry) ->
    (ctrl, carry)` (a controller running at the physics rate, e.g. an actuator net with
    its history as the carry); returns the stepped data and the last carry. `push(data)`,
    where given, sets `xfrc_applied` before every substep: a feedback force held over a
    whole env step would be too late to damp a light body."""
    if frame_skip < 1:
        raise ValueError(f"frame_skip: must be >= 1, got {frame_skip}")

    def step_fn(model: mjx.Model, data: mjx.Data, action: Float[Array, " nu"], carry: Any) -> tuple[mjx.Data, Any]:
        def substep(m: mjx.Model):
            def body(_, state):
                d, c = state
                ctrl, c = control(d, action, c)
                d = d.replace(ctrl=ctrl) if push is None else d.replace(ctrl=ctrl, xfrc_applied=push(d))
                return mjx.step(m, d), c
            return body

        if not _contact_sensors_only(model):
            return jax.lax.fori_loop(0, frame_skip, substep(model), (data, carry))
        # The envs read their contact sensors once per env step, from the last substep.
        # MJX computes sensors in every substep; on JAX they are switched off in the loop
        # and computed once after it from the last forward pass's contacts and forces,
        # which the step leaves in `data`: the same values, and ~20% of the humanoid's
        # env step saved. (Position sensors would read the integrated qpos there, so
        # models with other sensors take the plain loop.)
        quiet = model.replace(opt=model.opt.replace(disableflags=model.opt.disableflags | mjx.DisableBit.SENSOR))
        data, carry = jax.lax.fori_loop(0, frame_skip, substep(quiet), (data, carry))
        return mjx.sensor_acc(model, data), carry

    return step_fn


def _contact_sensors_only(model: mjx.Model) -> bool:
    return (model.impl == mjx.Impl.JAX and model.nsensor > 0
            and bool(np.all(np.asarray(model.sensor_type) == mujoco.mjtSensor.mjSENS_CONTACT)))


def state_ok(data: mjx.Data, max_qvel: float) -> Bool[Array, ""]:
    """True where qpos and qvel are finite and every |qvel| is below `max_qvel`."""
    finite = jnp.all(jnp.isfinite(data.qpos)) & jnp.all(jnp.isfinite(data.qvel))
    # The comparison is False for NaN, so this also rejects non-finite velocities.
    bounded = jnp.all(jnp.abs(data.qvel) < max_qvel)
    return finite & bounded


def _sanitised(model: mjx.Model, data: mjx.Data, ok: Bool[Array, ""]) -> mjx.Data:
    """`data`, with a bad member's state swapped for a benign one so its solver converges.

    Only the integrated state matters: everything else is recomputed by the step.
    """
    keep = lambda x, fallback: jnp.where(ok, x, fallback)
    return data.replace(
        qpos=keep(data.qpos, model.qpos0),
        qvel=keep(data.qvel, 0.0),
        act=keep(data.act, 0.0),
        qacc_warmstart=keep(data.qacc_warmstart, 0.0),
    )


def guarded_step(
    step_fn: StepFn,
    model: mjx.Model,
    data: mjx.Data,
    action: Float[Array, " nu"],
    max_qvel: float,
) -> tuple[mjx.Data, Bool[Array, ""]]:
    """Steps one member; returns `(data, ok)`.

    Where the input (action, qpos or qvel) or the stepped output is not sane, the member
    keeps its input `data` and `ok` is False. Selecting with `jnp.where` (never by
    multiplying with a mask) keeps NaNs of a discarded branch out of the result.
    """
    data, _, ok = guarded_controlled_step(lambda m, d, a, c: (step_fn(m, d, a), c), model, data, action, (), max_qvel)
    return data, ok


def guarded_controlled_step(
    step_fn: ControlledStepFn,
    model: mjx.Model,
    data: mjx.Data,
    action: Float[Array, " nu"],
    carry: Any,
    max_qvel: float,
) -> tuple[mjx.Data, Any, Bool[Array, ""]]:
    """`guarded_step` for a `make_controlled_step_fn` step: a member that is not sane
    keeps its input `data` and `carry`."""
    ok_in = jnp.all(jnp.isfinite(action)) & state_ok(data, max_qvel)
    safe_action = jnp.where(ok_in, action, jnp.zeros_like(action))
    stepped, new_carry = step_fn(model, _sanitised(model, data, ok_in), safe_action, carry)
    ok = ok_in & state_ok(stepped, max_qvel)
    keep = lambda new, old: jnp.where(ok, new, old)
    return jax.tree.map(keep, stepped, data), jax.tree.map(keep, new_carry, carry), ok
