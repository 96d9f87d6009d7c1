"""Fitting an actuator net to motor logs, and judging it by open-loop replay.

Training samples are every tick of every joint with `history` samples behind it: the
errors (command - position) and velocities of the last `history` ticks, newest first,
and the logged torque of the newest tick. Whole 2 s blocks of the training logs (every
`1 / validation_fraction`-th) are held out for early stopping, so that neighbouring
ticks never sit on both sides. Input and output scales are the training data's standard
deviations per joint kind.

Refinement (`refine`): the torque fit is what the logs give, but unmodelled mechanics
(the gearbox's compliance and backlash behind the encoder) make the best torque fit a poor
driver of a rigid simulated joint; fine-tuning on the position error of rollouts through
training windows (the replay's own measure) halves the replay error on held-out logs.

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


def _traces(logs: list[log_lib.MotorLog], block_seconds: float):
    """Every joint trace of `logs` with each tick's `block_seconds` block, numbered on
    across traces (the unit of the train/validation split)."""
    block0 = 0
    for log in logs:
        for joint, t in log.joints.items():
            block = (np.arange(len(t)) / (block_seconds * log.rate_hz)).astype(np.int64) + block0
            block0 = int(block[-1]) + 1
            yield log, joint, t, block


def samples(logs: list[log_lib.MotorLog], kinds: tuple[str, ...], history: int, *,
            block_seconds: float = 2.0) -> Samples:
    """Every tick with a full history, from every joint of `logs` (which need torque_nm)."""
    parts = []
    for log, joint, t, block in _traces(logs, block_seconds):
        if t.torque is None:
            raise log_lib.LogError(f"{log.source}: joint {joint!r} has no torque_nm column; the net is fitted "
                                   "to torque (common/actuator/log.py says how to get it)")
        kind = net_lib.kind_of(joint)
        if kind not in kinds:
            raise log_lib.LogError(f"{log.source}: joint {joint!r} is of kind {kind!r}, not one of {list(kinds)}")
        error = t.command - t.position
        idx = np.arange(history - 1, len(t))[:, None] - np.arange(history)[None, :]
        parts.append(Samples(errors=error[idx], velocities=t.velocity[idx],
                             kind=np.full(len(idx), kinds.index(kind), np.int32), torque=t.torque[history - 1:],
                             block=block[history - 1:]))
    return Samples(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(Samples)))


def is_validation(block: Int[np.ndarray, "*b"], validation_fraction: float) -> np.ndarray:
    """Whether blocks (from `samples` or `windows`) belong to the validation split."""
    return block % max(2, round(1.0 / validation_fraction)) == 0


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


def windows(logs: list[log_lib.MotorLog], kinds: tuple[str, ...], history: int, ticks: int, *,
            stride: int | None = None, split: tuple[float, bool] | None = None,
            block_seconds: float = 2.0) -> dict[str, np.ndarray]:
    """Every window of `ticks` ticks (with `history` ticks before it) of `logs`, starting
    each `stride` ticks (default: back to back): command, position and velocity [W, H + T]
    and kind [W]. With `split=(validation_fraction, validation)`, only the windows wholly
    inside (True) or wholly outside (False) the validation blocks of `samples`."""
    out = {"command": [], "position": [], "velocity": [], "kind": []}
    h = history
    for _, joint, t, block in _traces(logs, block_seconds):
        kind = kinds.index(net_lib.kind_of(joint))
        valid = None if split is None else is_validation(block, split[0])
        for start in range(h - 1, len(t) - ticks, stride or ticks):
            span = slice(start - h + 1, start + ticks + 1)
            if valid is not None and not np.all(valid[span] == split[1]):
                continue
            for name in ("command", "position", "velocity"):
                out[name].append(getattr(t, name)[span])
            out["kind"].append(kind)
    if not out["kind"]:
        raise log_lib.LogError(f"the logs have no window of {ticks} ticks with {h} samples before it")
    return {k: np.asarray(v, np.int32 if k == "kind" else np.float32) for k, v in out.items()}


def rollout(net: net_lib.ActuatorNet, inertia: dict[str, float], w: dict[str, Array], *,
            substeps: int = 1) -> Float[Array, "W T"]:
    """The net driving the simulated joint (see the module doc) through windows `w` from
    `windows`, each started from its logged state and history; positions after each tick.
    Differentiable in the net."""
    spec = net.spec
    h = spec.history
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

    return jax.vmap(one)(w["command"], w["position"], w["velocity"], w["kind"])


def replay(net: net_lib.ActuatorNet, logs: list[log_lib.MotorLog], inertia: dict[str, float], *,
           seconds: float, substeps: int = 1) -> Replay:
    """Open-loop replay of every full `seconds` window of `logs` (see the module doc);
    each tick's torque is held over `substeps` integration steps."""
    h = net.spec.history
    w = windows(logs, net.spec.kinds, h, int(round(seconds * net.spec.rate_hz)))
    run = eqx.filter_jit(lambda net, w: rollout(net, inertia, w, substeps=substeps))
    replayed = run(net, {k: jnp.asarray(v) for k, v in w.items()})
    return Replay(logged=w["position"][:, h:], replayed=np.asarray(replayed), kind=w["kind"])


def refine(key: PRNGKeyArray, net: net_lib.ActuatorNet, train: dict[str, np.ndarray], valid: dict[str, np.ndarray],
           inertia: dict[str, float], torque_samples: Samples, *, substeps: int, learning_rate: float,
           batch_size: int, steps: int, torque_weight: float, every: int = 50,
           log=print) -> tuple[net_lib.ActuatorNet, list[dict]]:
    """Fine-tunes a fitted net on what the replay measures: Adam on the squared position
    error of open-loop rollouts through training windows (`windows`), plus `torque_weight`
    x the torque fit's loss on `torque_samples` so the net stays a torque model. Keeps the
    net with the lowest rollout RMSE on the `valid` windows (checked every `every` steps),
    starting from `net` itself."""
    optimizer = optax.chain(optax.clip_by_global_norm(1.0),
                            optax.adam(optax.cosine_decay_schedule(learning_rate, steps)))
    opt_state = optimizer.init(eqx.filter(net, eqx.is_array))
    h = net.spec.history
    to_jnp = lambda w: {k: jnp.asarray(v) for k, v in w.items()}
    train_w, valid_w = to_jnp(train), to_jnp(valid)
    torque_data = (jnp.asarray(torque_samples.errors, jnp.float32), jnp.asarray(torque_samples.velocities, jnp.float32),
                   jnp.asarray(torque_samples.kind), jnp.asarray(torque_samples.torque, jnp.float32))
    n_windows, n_torque = len(train["kind"]), len(torque_samples)

    def loss(net, idx, tidx):
        w = {k: v[idx] for k, v in train_w.items()}
        q = rollout(net, inertia, w, substeps=substeps)
        position = jnp.mean((q - w["position"][:, h:]) ** 2)
        return position / 1e-4 + torque_weight * _loss(net, tuple(x[tidx] for x in torque_data)), position

    @eqx.filter_jit
    def block(net, opt_state, key):
        def step(carry, k):
            net, opt_state = carry
            k1, k2 = jax.random.split(k)
            idx = jax.random.randint(k1, (batch_size,), 0, n_windows)
            tidx = jax.random.randint(k2, (4 * batch_size,), 0, n_torque)
            (_, position), grads = eqx.filter_value_and_grad(loss, has_aux=True)(net, idx, tidx)
            updates, opt_state = optimizer.update(grads, opt_state, eqx.filter(net, eqx.is_array))
            return (eqx.apply_updates(net, updates), opt_state), position

        (net, opt_state), position = jax.lax.scan(step, (net, opt_state), jax.random.split(key, every))
        return net, opt_state, jnp.sqrt(jnp.mean(position))

    @eqx.filter_jit
    def valid_rmse(net):
        q = rollout(net, inertia, valid_w, substeps=substeps)
        return jnp.sqrt(jnp.mean((q - valid_w["position"][:, h:]) ** 2))

    best, best_rmse = net, float(valid_rmse(net))
    history = [{"step": 0, "valid_rollout_rmse": best_rmse}]
    log(f"refine: step 0, validation rollout RMSE {best_rmse:.4g}")
    for i, k in enumerate(jax.random.split(key, max(1, steps // every))):
        net, opt_state, train_rmse = block(net, opt_state, k)
        rmse = float(valid_rmse(net))
        history.append({"step": (i + 1) * every, "train_rollout_rmse": float(train_rmse), "valid_rollout_rmse": rmse})
        if rmse < best_rmse:
            best, best_rmse = net, rmse
        log(f"refine: step {(i + 1) * every}, train {float(train_rmse):.4g}, validation {rmse:.4g} (best {best_rmse:.4g})")
    return best, history
