"""Fitting an actuator net to motor logs, and judging it by open-loop replay.

Training samples are every tick of every joint with `history` samples behind it: the
errors (command - position) and velocities of the last `history` ticks, newest first,
and the logged torque of the newest tick. Whole 2 s blocks of the training logs (every
`1 / validation_fraction`-th) are held out for early stopping, so that neighbouring
ticks never sit on both sides. Input and output scales are the training data's standard
deviations per joint kind.

Replay: the net drives a simulated joint (the rig's link inertia plus the rotor inertia
as armature, with the spec's Coulomb and viscous friction, semi-implicit Euler at the log
rate with friction resolved implicitly, as MuJoCo does) from the logged commands in windows of `replay_seconds`, each started from the logged
state and history; its positions are compared with the logged ones.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, Int, PRNGKeyArray

from common.actuator import log as log_lib
from common.actuator import net as net_lib


@dataclasses.dataclass(frozen=True)
class Samples:
    """N training samples: histories (newest first), kind index and target torque."""

    errors: Float[np.ndarray, "N H"]
    velocities: Float[np.ndarray, "N H"]
    kind: Int[np.ndarray, " N"]
    torque: Float[np.ndarray, " N"]
    block: Int[np.ndarray, " N"]  # which `block_seconds` block of its trace each sample is in

    def __len__(self) -> int:
        return len(self.torque)

    def take(self, mask: np.ndarray) -> Samples:
        return Samples(*(getattr(self, f.name)[mask] for f in dataclasses.fields(self)))


def samples(logs: list[log_lib.MotorLog], kinds: tuple[str, ...], history: int, *,
            block_seconds: float = 2.0) -> Samples:
    """Every tick with a full history, from every joint of `logs` (which need torque_nm)."""
    parts = []
    block0 = 0
    for log in logs:
        for joint, t in log.joints.items():
            if t.torque is None:
                raise log_lib.LogError(f"{log.source}: joint {joint!r} has no torque_nm column; the net is fitted "
                                       "to torque (common/actuator/log.py says how to get it)")
            kind = net_lib.kind_of(joint)
            if kind not in kinds:
                raise log_lib.LogError(f"{log.source}: joint {joint!r} is of kind {kind!r}, not one of {list(kinds)}")
            error = t.command - t.position
            idx = np.arange(history - 1, len(t))[:, None] - np.arange(history)[None, :]
            block = (np.arange(history - 1, len(t)) / (block_seconds * log.rate_hz)).astype(np.int64) + block0
            block0 = int(block.max()) + 1
            parts.append(Samples(errors=error[idx], velocities=t.velocity[idx],
                                 kind=np.full(len(idx), kinds.index(kind), np.int32), torque=t.torque[history - 1:],
                                 block=block))
    return Samples(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Samples)))


def make_spec(train: Samples, kinds: tuple[str, ...], history: int, rate_hz: float, hidden: tuple[int, ...],
              rotor_inertia: float, coulomb: dict[str, float], viscous: dict[str, float]) -> net_lib.NetSpec:
    """The spec with per-kind scales from the training samples' spread, and the joint
    mechanics (per kind name) a simulator keeps under the net."""
    def inv_std(x):
        return tuple(float(1.0 / max(np.std(x[train.kind == k]), 1e-6)) for k in range(len(kinds)))
    return net_lib.NetSpec(history=history, rate_hz=rate_hz, kinds=kinds, error_scale=inv_std(train.errors),
                           velocity_scale=inv_std(train.velocities),
                           torque_scale=tuple(1.0 / s for s in inv_std(train.torque)), hidden=hidden,
                           rotor_inertia=rotor_inertia, coulomb=tuple(float(coulomb[k]) for k in kinds),
                           viscous=tuple(float(viscous[k]) for k in kinds))


def _loss(net: net_lib.ActuatorNet, batch: tuple[Array, ...]) -> Float[Array, ""]:
    errors, velocities, kind, torque = batch
    out = net.raw(net.features(errors, velocities, kind))
    return jnp.mean((out - torque / jnp.asarray(net.spec.torque_scale)[kind]) ** 2)


@eqx.filter_jit
def _predict(net: net_lib.ActuatorNet, errors, velocities, kind):
    return net(errors, velocities, kind)


def predict(net: net_lib.ActuatorNet, s: Samples) -> Float[np.ndarray, " N"]:
    """The net's torque (N m) for each sample of `s`."""
    return np.asarray(_predict(net, jnp.asarray(s.errors, jnp.float32), jnp.asarray(s.velocities, jnp.float32),
                               jnp.asarray(s.kind)))


def torque_rmse(net: net_lib.ActuatorNet, s: Samples) -> float:
    """Root mean square torque error (N m) of the net on `s`."""
    return float(np.sqrt(np.mean((predict(net, s) - s.torque) ** 2)))


def fit(key: PRNGKeyArray, train: Samples, valid: Samples, spec: net_lib.NetSpec, *, learning_rate: float,
        batch_size: int, max_epochs: int, patience: int, log=print) -> tuple[net_lib.ActuatorNet, list[dict]]:
    """Adam on the scaled squared error; stops after `patience` epochs without a better
    validation loss and returns the best net and the per-epoch history."""
    k_init, k_perm = jax.random.split(key)
    net = net_lib.ActuatorNet.init(k_init, spec)
    optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, max_epochs * (len(train) // batch_size)))
    opt_state = optimizer.init(net)
    as_arrays = lambda s: (jnp.asarray(s.errors, jnp.float32), jnp.asarray(s.velocities, jnp.float32),
                           jnp.asarray(s.kind), jnp.asarray(s.torque, jnp.float32))
    data, held = as_arrays(train), as_arrays(valid)
    steps = len(train) // batch_size

    @jax.jit
    def epoch(net, opt_state, key):
        order = jax.random.permutation(key, len(train))[: steps * batch_size].reshape(steps, batch_size)

        def step(carry, idx):
            net, opt_state = carry
            loss, grads = jax.value_and_grad(_loss)(net, tuple(x[idx] for x in data))
            updates, opt_state = optimizer.update(grads, opt_state, net)
            return (optax.apply_updates(net, updates), opt_state), loss

        (net, opt_state), losses = jax.lax.scan(step, (net, opt_state), order)
        return net, opt_state, jnp.mean(losses), _loss(net, held)

    best, best_loss, since, history = net, np.inf, 0, []
    for i, k in enumerate(jax.random.split(k_perm, max_epochs)):
        net, opt_state, train_loss, valid_loss = epoch(net, opt_state, k)
        history.append({"epoch": i, "train_loss": float(train_loss), "valid_loss": float(valid_loss)})
        if float(valid_loss) < best_loss:
            best, best_loss, since = net, float(valid_loss), 0
        else:
            since += 1
        if i % 10 == 0 or since > patience:
            log(f"epoch {i}: train {float(train_loss):.4g}, validation {float(valid_loss):.4g} (best {best_loss:.4g})")
        if since > patience:
            break
    return best, history


@dataclasses.dataclass(frozen=True)
class Replay:
    """Windows of logged and replayed positions, [W, T] each, and their kinds [W]."""

    logged: Float[np.ndarray, "W T"]
    replayed: Float[np.ndarray, "W T"]
    kind: Int[np.ndarray, " W"]

    @property
    def rmse(self) -> float:
        return float(np.sqrt(np.mean((self.logged - self.replayed) ** 2)))


def replay(net: net_lib.ActuatorNet, logs: list[log_lib.MotorLog], inertia: dict[str, float], *,
           seconds: float, substeps: int = 1) -> Replay:
    """Open-loop replay of every full `seconds` window of `logs` (see the module doc);
    each tick's torque is held over `substeps` integration steps."""
    spec = net.spec
    h = spec.history
    windows = {"command": [], "position": [], "velocity": [], "kind": []}
    n = int(round(seconds * spec.rate_hz))
    for log in logs:
        for joint, t in log.joints.items():
            kind = spec.kinds.index(net_lib.kind_of(joint))
            for start in range(h - 1, len(t) - n, n):
                span = slice(start - h + 1, start + n + 1)
                for name in ("command", "position", "velocity"):
                    windows[name].append(getattr(t, name)[span])
                windows["kind"].append(kind)
    if not windows["kind"]:
        raise log_lib.LogError(f"the held-out logs have no window of {seconds} s with {h} samples before it")
    w = {k: np.asarray(v) for k, v in windows.items()}
    armature = jnp.asarray([inertia[k] for k in spec.kinds]) + spec.rotor_inertia
    coulomb, viscous = jnp.asarray(spec.coulomb), jnp.asarray(spec.viscous)
    dt = 1.0 / spec.rate_hz / substeps

    def one(command, position, velocity, kind):
        errors0 = (command[:h] - position[:h])[::-1]
        velocities0 = velocity[:h][::-1]

        def tick(carry, target_next):
            q, v, errors, velocities = carry
            tau = net(errors, velocities, kind)
            inertia_k = armature[kind]
            q_tick = q
            for _ in range(substeps):
                # Viscous friction implicitly; then dry friction stops the joint where the
                # velocity change it allows (coulomb x dt / inertia) covers the free motion.
                free = (v * inertia_k / dt + tau) / (inertia_k / dt + viscous[kind])
                stick = coulomb[kind] * dt / inertia_k
                v = jnp.where(jnp.abs(free) <= stick, 0.0, free - jnp.sign(free) * stick)
                q = q + v * dt
            errors = jnp.concatenate([(target_next - q)[None], errors[:-1]])
            # As the logs measure it: the position's change over the tick (at one
            # substep, as in MJX's semi-implicit step, the velocity itself).
            velocities = jnp.concatenate([((q - q_tick) / (dt * substeps))[None], velocities[:-1]])
            return (q, v, errors, velocities), q

        carry = (position[h - 1], velocity[h - 1], errors0, velocities0)
        _, q = jax.lax.scan(tick, carry, command[h:])
        return q

    run = jax.jit(jax.vmap(one))
    replayed = run(*(jnp.asarray(w[k], jnp.float32) for k in ("command", "position", "velocity")),
                   jnp.asarray(w["kind"]))
    return Replay(logged=w["position"][:, h:], replayed=np.asarray(replayed), kind=w["kind"])
