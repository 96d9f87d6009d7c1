"""Contact forces read from MuJoCo `contact` sensors, the same on every MJX implementation.

MJX's JAX and Warp implementations keep contacts and constraint forces in private fields
that are laid out and named differently (`_impl.contact.geom` against
`_impl.contact__geom`), and `mjx.rne_postconstraint` runs on JAX only. A `contact` sensor
is public MuJoCo: both implementations (and MuJoCo C) fill `data.sensordata` with it. The
sensors are added to the model when it is loaded (the MJCF on disk stays as written):

* `add_force_sensors`: the normal force on each of a few geoms from one partner (the
  biped's feet on the floor);
* `add_wrench_sensors`: every contact of every geom that can collide, from which
  `external_wrenches` rebuilds `cfrc_ext` exactly as `mj_rnePostConstraint` does.

Each sensor reports its slots as seen from its own geom (MuJoCo flips a contact whose
first geom is the other one), and unused slots read zero, so sums need no mask.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax.numpy as jnp
import mujoco
import numpy as np
from jaxtyping import Array, Float
from mujoco import mjx

# Bits of a contact sensor's `data` attribute (MuJoCo's mjtConDataField order).
_FORCE, _TORQUE, _POS, _NORMAL, _TANGENT = 1 << 1, 1 << 2, 1 << 4, 1 << 5, 1 << 6
# Keep the strongest contacts when there are more than slots (they carry the force).
_MAXFORCE = 2
_WRENCH_SLOT = 15  # force 3, torque 3, pos 3, normal 3, tangent 3


def _contacts_per_pair(m: mujoco.MjModel, g1: int, g2: int) -> int:
    # MuJoCo's primitive colliders return at most 4 points, box-box and meshes up to 8.
    many = (mujoco.mjtGeom.mjGEOM_BOX, mujoco.mjtGeom.mjGEOM_MESH)
    return 8 if m.geom_type[g1] in many and m.geom_type[g2] in many else 4


def _partners(m: mujoco.MjModel, g: int) -> list[int]:
    """Geoms that `g` may touch: explicit pairs, then contype/conaffinity filtering."""
    found = set()
    for p in range(m.npair):
        a, b = int(m.pair_geom1[p]), int(m.pair_geom2[p])
        if g in (a, b):
            found.add(b if a == g else a)
    body = m.geom_bodyid[g]
    for o in range(m.ngeom):
        if o == g or m.geom_bodyid[o] == body:
            continue
        if (m.geom_contype[g] & m.geom_conaffinity[o]) or (m.geom_contype[o] & m.geom_conaffinity[g]):
            found.add(o)
    return sorted(found)


def _add(spec: mujoco.MjSpec, name: str, geom: str, partner: str | None, data: int, slots: int) -> None:
    kwargs = {"reftype": mujoco.mjtObj.mjOBJ_GEOM, "refname": partner} if partner else {}
    spec.add_sensor(name=name, type=mujoco.mjtSensor.mjSENS_CONTACT, objtype=mujoco.mjtObj.mjOBJ_GEOM,
                    objname=geom, intprm=[data, _MAXFORCE, slots], **kwargs)


def add_force_sensors(spec: mujoco.MjSpec, m: mujoco.MjModel, geoms: Sequence[str], partner: str) -> None:
    """A sensor `contact_force_<geom>` per geom: its contact forces from `partner`."""
    p = _geom_id(m, partner)
    for name in geoms:
        g = _geom_id(m, name)
        _add(spec, f"contact_force_{name}", name, partner, _FORCE, _contacts_per_pair(m, g, p))


def add_wrench_sensors(spec: mujoco.MjSpec, m: mujoco.MjModel) -> None:
    """A sensor `contact_wrench_<geom>` on every non-world geom that can collide."""
    for g in range(m.ngeom):
        if m.geom_bodyid[g] == 0:
            continue
        partners = _partners(m, g)
        if not partners:
            continue
        name = m.geom(g).name
        if not name:
            # The sensor needs a name to refer to the geom by.
            name = spec.geoms[g].name = f"geom_{g}"
        slots = sum(_contacts_per_pair(m, g, o) for o in partners)
        _add(spec, f"contact_wrench_{name}", name, None, _FORCE | _TORQUE | _POS | _NORMAL | _TANGENT, slots)


@dataclasses.dataclass(frozen=True)
class ForceSensors:
    """Where each `add_force_sensors` sensor sits in `sensordata` (static)."""

    adr: tuple[int, ...]
    slots: tuple[int, ...]

    @classmethod
    def of(cls, m: mujoco.MjModel, geoms: Sequence[str]) -> ForceSensors:
        ids = [_sensor_id(m, f"contact_force_{g}") for g in geoms]
        return cls(tuple(int(m.sensor_adr[i]) for i in ids), tuple(int(m.sensor_dim[i]) // 3 for i in ids))

    def normal_forces(self, data: mjx.Data) -> Float[Array, " geoms"]:
        """Total normal force (N) on each geom, summed over its contact points."""
        return jnp.stack([
            jnp.sum(data.sensordata[a:a + 3 * n].reshape(n, 3)[:, 0]) for a, n in zip(self.adr, self.slots)
        ])


@dataclasses.dataclass(frozen=True)
class WrenchSensors:
    """Where each `add_wrench_sensors` sensor sits in `sensordata`, and its body (static)."""

    adr: tuple[int, ...]
    slots: tuple[int, ...]
    body: tuple[int, ...]

    @classmethod
    def of(cls, m: mujoco.MjModel) -> WrenchSensors:
        ids = [i for i in range(m.nsensor) if (m.sensor(i).name or "").startswith("contact_wrench_")]
        return cls(
            adr=tuple(int(m.sensor_adr[i]) for i in ids),
            slots=tuple(int(m.sensor_dim[i]) // _WRENCH_SLOT for i in ids),
            body=tuple(int(m.geom_bodyid[m.sensor_objid[i]]) for i in ids),
        )

    def external_wrenches(self, model: mjx.Model, data: mjx.Data) -> Float[Array, "nbody 6"]:
        """`cfrc_ext`: per body, (torque, force) of contacts and `xfrc_applied` about its
        subtree's centre of mass, in world axes, as `mj_rnePostConstraint` computes it."""
        com = data.subtree_com[np.asarray(model.body_rootid)]
        applied = data.xfrc_applied
        torque = applied[:, 3:] + jnp.cross(data.xipos - com, applied[:, :3])
        wrench = jnp.concatenate([torque, applied[:, :3]], axis=1).at[0].set(0.0)
        for a, n, b in zip(self.adr, self.slots, self.body):
            s = data.sensordata[a:a + _WRENCH_SLOT * n].reshape(n, _WRENCH_SLOT)
            normal, tangent = s[:, 9:12], s[:, 12:15]
            frame = jnp.stack([normal, tangent, jnp.cross(normal, tangent)], axis=1)  # [n, 3, 3]
            force = jnp.einsum("nij,ni->nj", frame, s[:, 0:3])
            moment = jnp.einsum("nij,ni->nj", frame, s[:, 3:6]) + jnp.cross(s[:, 6:9] - com[b], force)
            # The sensor's force acts on the other geom; the body feels its opposite.
            wrench = wrench.at[b].add(-jnp.concatenate([jnp.sum(moment, 0), jnp.sum(force, 0)]))
        return wrench


def _geom_id(m: mujoco.MjModel, name: str) -> int:
    i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, name)
    if i < 0:
        raise ValueError(f"no geom named {name!r} to read contact forces from")
    return i


def _sensor_id(m: mujoco.MjModel, name: str) -> int:
    i = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_SENSOR, name)
    if i < 0:
        raise ValueError(f"the model has no sensor {name!r}: load it with the matching add_*_sensors")
    return i


def com_inertia(model: mjx.Model, data: mjx.Data) -> Float[Array, "nbody 10"]:
    """`cinert`: each body's inertia about its subtree's centre of mass, in world axes
    (xx, yy, zz, xy, xz, yz, mass x offset, mass), from public fields alone."""
    mass = model.body_mass
    dif = data.xipos - data.subtree_com[np.asarray(model.body_rootid)]
    rot = data.ximat
    full = jnp.einsum("bij,bj,bkj->bik", rot, model.body_inertia, rot)
    sq = dif * dif
    parallel = jnp.stack([
        sq[:, 1] + sq[:, 2], sq[:, 0] + sq[:, 2], sq[:, 0] + sq[:, 1],
        -dif[:, 0] * dif[:, 1], -dif[:, 0] * dif[:, 2], -dif[:, 1] * dif[:, 2],
    ], axis=1)
    rotational = jnp.stack([full[:, 0, 0], full[:, 1, 1], full[:, 2, 2], full[:, 0, 1], full[:, 0, 2], full[:, 1, 2]],
                           axis=1)
    return jnp.concatenate([rotational + mass[:, None] * parallel, mass[:, None] * dif, mass[:, None]], axis=1)
