"""The actuator net (Hwangbo et al. 2019): a small MLP from a short history of position
error and joint velocity to joint torque, its file format, and its input features.

Sign convention: error = command - position (rad), velocity in rad/s, torque (N m)
positive along the joint axis: the motor's torque (common/actuator/log.py, torque_nm).
The net models the servo (its firmware's control law and rate, latency, saturation, the
torque-speed limit); the joint's mechanics, rotor inertia and Coulomb and viscous
friction, stay with the simulator, which takes them from the file (`as_torque_motors`):
friction is a reaction that holds a load still, not a function of the servo's history.
One net serves every joint; a one-hot of the joint's kind (its name without a `left_` or
`right_` prefix) tells the kinds apart. The history is spaced at the logging rate
`rate_hz`, newest sample first.

File: an .npz (loaded with allow_pickle=False) with `w0, b0, w1, b1, ...` and a JSON
`metadata` string carrying everything needed to use the net: format, history, rate,
kinds, input and output scales, hidden widths, activation, sign convention, the joint
mechanics (rotor inertia, per-kind Coulomb and viscous friction), and its validation figures.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from common import npz
from common.errors import UserError

FORMAT = "actuator_net/1"
SIGN = "error = command_rad - position_rad; torque_nm positive along the joint axis"
SIDES = ("left_", "right_")


class NetFileError(UserError):
    """An actuator-net file that cannot be used."""


def kind_of(joint: str) -> str:
    """A joint's kind: its name without a leading side."""
    for side in SIDES:
        if joint.startswith(side):
            return joint[len(side):]
    return joint


@dataclasses.dataclass(frozen=True)
class NetSpec:
    """What a net file's metadata says about its inputs and outputs."""

    history: int
    rate_hz: float
    kinds: tuple[str, ...]
    error_scale: tuple[float, ...]  # per kind: inputs are error x this
    velocity_scale: tuple[float, ...]  # per kind
    torque_scale: tuple[float, ...]  # per kind: torque = output x this
    hidden: tuple[int, ...]
    rotor_inertia: float  # kg m^2: the armature a simulator keeps under this net
    coulomb: tuple[float, ...]  # per kind, N m: the joint's friction loss under this net
    viscous: tuple[float, ...]  # per kind, N m s/rad: the joint's damping under this net
    figures: tuple[tuple[str, float], ...] = ()

    @property
    def num_inputs(self) -> int:
        return 2 * self.history + len(self.kinds)

    def kind_index(self, joints: Sequence[str]) -> np.ndarray:
        """Each joint's kind as an index into `kinds`; an unknown kind is a `NetFileError`."""
        kinds = [kind_of(j) for j in joints]
        unknown = sorted({k for k in kinds if k not in self.kinds})
        if unknown:
            raise NetFileError(f"the actuator net knows the joint kinds {list(self.kinds)}, not {unknown}")
        return np.array([self.kinds.index(k) for k in kinds], np.int32)


class ActuatorNet(eqx.Module):
    """The MLP and its spec; softsign activations (Hwangbo et al.)."""

    weights: tuple[Float[Array, "i o"], ...]
    biases: tuple[Float[Array, " o"], ...]
    spec: NetSpec = eqx.field(static=True)

    @staticmethod
    def init(key: PRNGKeyArray, spec: NetSpec) -> ActuatorNet:
        sizes = (spec.num_inputs, *spec.hidden, 1)
        keys = jax.random.split(key, len(sizes) - 1)
        weights = tuple(jax.random.normal(k, (i, o)) * jnp.sqrt(1.0 / i) for k, i, o in zip(keys, sizes, sizes[1:]))
        biases = tuple(jnp.zeros((o,)) for o in sizes[1:])
        return ActuatorNet(weights=weights, biases=biases, spec=spec)

    @property
    def num_params(self) -> int:
        return sum(w.size + b.size for w, b in zip(self.weights, self.biases))

    def features(self, errors: Float[Array, "*b H"], velocities: Float[Array, "*b H"],
                 kind: Int[Array, "*b"]) -> Float[Array, "*b F"]:
        """The net's input: scaled histories (newest first) and the kind's one-hot."""
        s = self.spec
        e = errors * jnp.asarray(s.error_scale)[kind][..., None]
        v = velocities * jnp.asarray(s.velocity_scale)[kind][..., None]
        return jnp.concatenate([e, v, jax.nn.one_hot(kind, len(s.kinds), dtype=e.dtype)], axis=-1)

    def raw(self, x: Float[Array, "*b F"]) -> Float[Array, "*b"]:
        """The MLP on features, in output units (torque / torque_scale)."""
        for w, b in zip(self.weights[:-1], self.biases[:-1]):
            x = jax.nn.soft_sign(x @ w + b)
        return (x @ self.weights[-1] + self.biases[-1])[..., 0]

    def __call__(self, errors: Float[Array, "*b H"], velocities: Float[Array, "*b H"],
                 kind: Int[Array, "*b"]) -> Float[Array, "*b"]:
        """Torque (N m) from the histories (newest first) of joints of the given kinds."""
        return self.raw(self.features(errors, velocities, kind)) * jnp.asarray(self.spec.torque_scale)[kind]


def save(net: ActuatorNet, path: str) -> None:
    """Writes the net and its metadata (atomically)."""
    s = net.spec
    meta = {"format": FORMAT, "sign": SIGN, "activation": "softsign", "history": s.history, "rate_hz": s.rate_hz,
            "kinds": list(s.kinds), "error_scale": list(s.error_scale), "velocity_scale": list(s.velocity_scale),
            "torque_scale": list(s.torque_scale), "hidden": list(s.hidden), "rotor_inertia": s.rotor_inertia,
            "coulomb": list(s.coulomb), "viscous": list(s.viscous),
            "num_params": net.num_params, "figures": dict(s.figures)}
    arrays = {"metadata": np.array(json.dumps(meta))}
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        arrays[f"w{i}"], arrays[f"b{i}"] = np.asarray(w, np.float32), np.asarray(b, np.float32)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


def load(path: str) -> ActuatorNet:
    """Reads a net file; anything wrong is one `NetFileError` line naming the file."""
    arrays = npz.read(path, NetFileError, "actuator net file (.npz)")
    try:
        meta = json.loads(str(arrays["metadata"]))
        if meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format')!r}, expected {FORMAT!r}")
        kinds = tuple(str(k) for k in meta["kinds"])
        spec = NetSpec(history=int(meta["history"]), rate_hz=float(meta["rate_hz"]), kinds=kinds,
                       error_scale=tuple(float(v) for v in meta["error_scale"]),
                       velocity_scale=tuple(float(v) for v in meta["velocity_scale"]),
                       torque_scale=tuple(float(v) for v in meta["torque_scale"]),
                       hidden=tuple(int(h) for h in meta["hidden"]), rotor_inertia=float(meta["rotor_inertia"]),
                       coulomb=tuple(float(v) for v in meta["coulomb"]),
                       viscous=tuple(float(v) for v in meta["viscous"]),
                       figures=tuple((str(k), float(v)) for k, v in meta.get("figures", {}).items()))
        per_kind = ("error_scale", "velocity_scale", "torque_scale", "coulomb", "viscous")
        if not all(len(getattr(spec, f)) == len(kinds) for f in per_kind):
            raise ValueError("the per-kind scales do not match the kinds")
        sizes = (spec.num_inputs, *spec.hidden, 1)
        weights, biases = [], []
        for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            w, b = arrays[f"w{i}"], arrays[f"b{i}"]
            if w.shape != (n_in, n_out) or b.shape != (n_out,):
                raise ValueError(f"layer {i} has shapes {w.shape}, {b.shape}, the metadata says ({n_in}, {n_out})")
            if not (np.all(np.isfinite(w)) and np.all(np.isfinite(b))):
                raise ValueError(f"layer {i} has non-finite weights")
            weights.append(jnp.asarray(w, jnp.float32))
            biases.append(jnp.asarray(b, jnp.float32))
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
        raise NetFileError(f"actuator_net: {path} is malformed ({type(e).__name__}: {e})") from None
    return ActuatorNet(weights=tuple(weights), biases=tuple(biases), spec=spec)


def as_torque_motors(m, spec: NetSpec, kinds: Sequence[int]) -> None:
    """Turns the position servos of MuJoCo model `m` (in place) into the torque motors an
    actuator net drives: gain 1 and no bias, a control range of the effort limit (which
    stays the force range); each actuated joint (of kind index `kinds[i]`) gets the
    net's joint mechanics in place of the MJCF's damping, friction loss and armature."""
    effort = np.abs(m.actuator_forcerange).max(axis=1)
    m.actuator_gainprm[:] = 0.0
    m.actuator_gainprm[:, 0] = 1.0
    m.actuator_biasprm[:] = 0.0
    m.actuator_ctrlrange[:] = np.stack([-effort, effort], axis=1)
    m.actuator_ctrllimited[:] = 1
    dofs = m.jnt_dofadr[m.actuator_trnid[:, 0]]
    kinds = np.asarray(kinds)
    m.dof_damping[dofs] = np.asarray(spec.viscous)[kinds]
    m.dof_frictionloss[dofs] = np.asarray(spec.coulomb)[kinds]
    m.dof_armature[dofs] = spec.rotor_inertia
