"""Loading MJCF robots and applying a physics profile before MJX sees the model.

A profile fixes the settings that decide MJX's speed (contacts, integrator, solver and
its iteration counts). They are compile-time constants in MJX, so they are applied to
the `mujoco.MjModel` once, here, and never change inside a run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Mapping, Sequence

import mujoco

from common.errors import UserError

ASSETS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "assets")
HUMANOID_XML = os.path.join(ASSETS_DIR, "humanoid.xml")
# The 12-DOF biped of the PPO+AMP task (`common.envs.make("biped_walk")`).
BIPED_XML = os.path.join(ASSETS_DIR, "biped.xml")

_INTEGRATORS = {
    "euler": mujoco.mjtIntegrator.mjINT_EULER,
    "rk4": mujoco.mjtIntegrator.mjINT_RK4,
    "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
}
CONTACTS = ("all", "pairs", "feet", "floor", "self")
INTEGRATORS = tuple(_INTEGRATORS)
_SOLVERS = {"cg": mujoco.mjtSolver.mjSOL_CG, "newton": mujoco.mjtSolver.mjSOL_NEWTON}


class ModelError(UserError):
    """An MJCF file that is missing, malformed or lacks what the task needs."""


@dataclasses.dataclass(frozen=True)
class PhysicsProfile:
    """Settings applied on top of an MJCF; `None` keeps what the file says.

    Attributes:
      contacts: "all" keeps the file's contype/conaffinity (every geom may collide);
        "pairs" switches those off and adds explicit pairs `contact_geoms` x floor and
        the robot's `self_pairs` (`load_model`); "feet" adds only `contact_geoms` x floor;
        "floor" adds every named geom but the floor x floor, and the `self_pairs`;
        "self" adds `contact_geoms` x floor and every pair of the robot's geoms that
        MuJoCo itself would collide under "all" (`_own_self_pairs`).
      integrator: "euler", "rk4" or "implicitfast".
      solver: "cg" or "newton".
      iterations: constraint solver iterations.
      ls_iterations: line-search iterations.
    """

    contacts: str = "all"
    integrator: str | None = None
    solver: str | None = None
    iterations: int | None = None
    ls_iterations: int | None = None


# `fast` was chosen by measurement (BENCHMARKS.md, "Choosing the fast profile"): the
# quickest setting in which a standing humanoid stays up, falls like a body under
# random torques, and whose velocities stay bounded over long random rollouts.
PROFILES: dict[str, PhysicsProfile] = {
    "gym": PhysicsProfile(contacts="all"),
    "fast": PhysicsProfile(
        contacts="pairs", integrator="euler", solver="newton", iterations=1, ls_iterations=4
    ),
    # Closer to Gymnasium's dynamics at a fraction of its cost: every body meets the
    # floor, the implicit integrator damps joints stably, Newton converges in 4 steps.
    "accurate": PhysicsProfile(
        contacts="floor", integrator="implicitfast", solver="newton", iterations=4, ls_iterations=4
    ),
}


def _read_spec(xml_path: str) -> mujoco.MjSpec:
    if not os.path.isfile(xml_path):
        raise ModelError(f"xml_path: MJCF file not found: {xml_path!r}")
    try:
        return mujoco.MjSpec.from_file(xml_path)
    except Exception as e:  # mujoco raises a bare ValueError with the parser's text
        raise ModelError(f"xml_path: cannot parse MJCF {xml_path!r}: {e}") from None


def _geom_names(spec: mujoco.MjSpec) -> set[str]:
    return {g.name for g in spec.geoms if g.name}


def _compile(spec: mujoco.MjSpec, xml_path: str) -> mujoco.MjModel:
    try:
        return spec.compile()
    except Exception as e:  # mujoco raises a bare ValueError with the compiler's text
        raise ModelError(f"xml_path: MJCF {xml_path!r} does not compile: {e}") from None


def _own_self_pairs(spec: mujoco.MjSpec, m: mujoco.MjModel) -> list[tuple[str, str]]:
    """The robot-robot geom pairs MuJoCo's own collision filter admits: contype/conaffinity
    match, different weld bodies, neither welded to the other's parent (unless that is the
    world, or the model disables the parent filter), and no <exclude> between them; pairs
    the MJCF already declares with <pair> are left to it. `m` is `spec` compiled."""
    declared = {frozenset((p.geomname1, p.geomname2)) for p in spec.pairs}
    weld = m.body_weldid
    filter_parent = not m.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_FILTERPARENT
    excluded = {frozenset((e.bodyname1, e.bodyname2)) for e in spec.excludes}
    pairs = []
    for i in range(m.ngeom):
        for j in range(i + 1, m.ngeom):
            w1, w2 = weld[m.geom_bodyid[i]], weld[m.geom_bodyid[j]]
            if 0 in (w1, w2) or w1 == w2:
                continue
            if not (m.geom_contype[i] & m.geom_conaffinity[j] or m.geom_contype[j] & m.geom_conaffinity[i]):
                continue
            p1, p2 = weld[m.body_parentid[w1]], weld[m.body_parentid[w2]]
            if filter_parent and (p1 == w2 or p2 == w1):
                continue
            bodies = frozenset(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_BODY, m.geom_bodyid[g]) for g in (i, j))
            if bodies in excluded:
                continue
            names = tuple(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in (i, j))
            if None in names:
                raise ModelError('contacts: the "self" mode needs every colliding geom of the robot named')
            if frozenset(names) not in declared:
                pairs.append(names)
    return pairs


def _add_pairs(spec: mujoco.MjSpec, pairs: Sequence[tuple[str, str]]) -> None:
    """Replaces implicit collisions by the explicit geom-geom `pairs`."""
    by_name = {g.name: g for g in spec.geoms if g.name}
    for g in spec.geoms:
        g.contype = 0
        g.conaffinity = 0
    for name1, name2 in pairs:
        g1, g2 = by_name[name1], by_name[name2]
        # Mirror MuJoCo's own mixing rules for a geom-geom contact so that a pair
        # behaves like the implicit contact it replaces: the larger friction and condim,
        # the sum of the margins and of the gaps (tests/test_contact.py checks them).
        slide, spin, roll = (max(a, b) for a, b in zip(g1.friction, g2.friction))
        spec.add_pair(
            name=f"{name1}_{name2}",
            geomname1=name1,
            geomname2=name2,
            condim=max(g1.condim, g2.condim),
            friction=[slide, slide, spin, roll, roll],
            margin=g1.margin + g2.margin,
            gap=g1.gap + g2.gap,
        )


def load_model(
    xml_path: str,
    physics: str,
    *,
    contact_geoms: Sequence[str] = (),
    floor_geom: str = "floor",
    self_pairs: Sequence[tuple[str, str]] = (),
    solver_iterations: int | None = None,
    ls_iterations: int | None = None,
    integrator: str | None = None,
    contacts: str | None = None,
    max_contact_points: int | None = None,
    profiles: Mapping[str, PhysicsProfile] = PROFILES,
    sensors: Callable[[mujoco.MjSpec, mujoco.MjModel], None] | None = None,
) -> mujoco.MjModel:
    """Compiles `xml_path` under the physics profile named `physics` in `profiles`.

    `solver_iterations` / `ls_iterations` override both the file and the profile;
    `integrator` and `contacts` override the profile's (see `PhysicsProfile`).
    `self_pairs` are geom pairs of the robot that collide with each other in the
    "pairs" and "floor" contact modes ("all" keeps the file's; "feet" has none).
    `max_contact_points` caps MJX's contacts of each contact dimension at the deepest
    ones (MJX's `max_contact_points` numeric; MuJoCo C ignores it).
    A file that asks for PGS (which MJX cannot run) is switched to CG with a warning.
    `sensors(spec, model)` may then add sensors, knowing the compiled contacts
    (`common.contact`); the model is compiled again with them.
    """
    if physics not in profiles:
        raise ModelError(f"physics: must be one of {sorted(profiles)}, got {physics!r}")
    profile = profiles[physics]
    if integrator is not None:
        if integrator not in _INTEGRATORS:
            raise ModelError(f"integrator: must be one of {sorted(_INTEGRATORS)}, got {integrator!r}")
        profile = dataclasses.replace(profile, integrator=integrator)
    if contacts is not None:
        if contacts not in CONTACTS:
            raise ModelError(f"contacts: must be one of {CONTACTS}, got {contacts!r}")
        profile = dataclasses.replace(profile, contacts=contacts)
    spec = _read_spec(xml_path)
    names = _geom_names(spec)
    if profile.contacts == "floor":
        # The same explicit pairs, for every named geom but the floor.
        contact_geoms = tuple(g.name for g in spec.geoms if g.name and g.name != floor_geom)
    if profile.contacts in ("pairs", "feet", "floor", "self"):
        if profile.contacts == "feet":
            robot_pairs = ()
        elif profile.contacts == "self":
            robot_pairs = tuple(_own_self_pairs(spec, _compile(spec, xml_path)))
        else:
            robot_pairs = tuple(self_pairs)
        missing = [n for n in (floor_geom, *contact_geoms, *(g for p in robot_pairs for g in p)) if n not in names]
        if missing:
            raise ModelError(
                f"xml_path: {xml_path!r} has no geom named {missing} "
                f"(needed for the {physics!r} profile's contact pairs)"
            )
        if not contact_geoms:
            raise ModelError(f"contact_geoms: the {profile.contacts!r} contact mode needs at least one geom")
        _add_pairs(spec, [*((g, floor_geom) for g in contact_geoms), *robot_pairs])

    if max_contact_points is not None:
        spec.add_numeric(name="max_contact_points", data=[float(max_contact_points)])
    opt = spec.option
    if opt.solver == mujoco.mjtSolver.mjSOL_PGS:
        logging.warning("%s asks for the PGS solver, which MJX cannot run: using CG.", xml_path)
        opt.solver = mujoco.mjtSolver.mjSOL_CG
    if profile.integrator is not None:
        opt.integrator = _INTEGRATORS[profile.integrator]
    if profile.solver is not None:
        opt.solver = _SOLVERS[profile.solver]
    for field, value in (
        ("iterations", solver_iterations if solver_iterations is not None else profile.iterations),
        ("ls_iterations", ls_iterations if ls_iterations is not None else profile.ls_iterations),
    ):
        if value is not None:
            setattr(opt, field, int(value))
    model = _compile(spec, xml_path)
    if sensors is None:
        return model
    try:
        sensors(spec, model)
    except ValueError as e:
        raise ModelError(f"xml_path: {xml_path!r}: {e}") from None
    return spec.compile()
