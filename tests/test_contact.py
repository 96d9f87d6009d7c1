"""Contact forces and body inertias from public fields and sensors, against MuJoCo C's own."""

import types

import jax.numpy as jnp
import mujoco
import numpy as np
import pytest

from common import contact, robots
from common.envs import humanoid as envs_humanoid
from common.envs.biped.config import PROFILES, BipedWalkConfig


def _as_jax(m, d):
    """MuJoCo C's model and data, as the few MJX fields the readers use."""
    model = types.SimpleNamespace(body_rootid=m.body_rootid, body_mass=jnp.asarray(m.body_mass),
                                  body_inertia=jnp.asarray(m.body_inertia))
    data = types.SimpleNamespace(**{f: jnp.asarray(getattr(d, f)) for f in (
        "sensordata", "subtree_com", "xipos", "xfrc_applied")}, ximat=jnp.asarray(d.ximat.reshape(-1, 3, 3)))
    return model, data


@pytest.mark.parametrize("physics", ["gym", "accurate"])
def test_wrenches_and_inertias_equal_mujoco_c(physics):
    m = robots.load_model(robots.HUMANOID_XML, physics, contact_geoms=("right_foot", "left_foot"),
                          sensors=contact.add_wrench_sensors)
    d = mujoco.MjData(m)
    rng = np.random.default_rng(0)
    for _ in range(400):  # long enough to fall: head, hands and hips meet the floor
        d.ctrl[:] = rng.uniform(-0.4, 0.4, m.nu)
        mujoco.mj_step(m, d)
    d.xfrc_applied[3] = [5.0, -3.0, 20.0, 0.5, 0.2, -0.1]  # a push adds to cfrc_ext as well
    # The sensors and the contacts of one and the same forward pass (RK4 steps end on
    # another stage's contacts).
    mujoco.mj_forward(m, d)
    mujoco.mj_rnePostConstraint(m, d)
    assert d.ncon >= 3 and np.abs(d.cfrc_ext).max() > 50.0
    model, data = _as_jax(m, d)
    wrenches = np.asarray(contact.WrenchSensors.of(m).external_wrenches(model, data))
    np.testing.assert_allclose(wrenches, d.cfrc_ext, atol=1e-3 * np.abs(d.cfrc_ext).max())
    np.testing.assert_allclose(np.asarray(contact.com_inertia(model, data)), d.cinert, atol=1e-5, rtol=1e-5)


def test_foot_normal_forces_equal_mujoco_c():
    config = BipedWalkConfig()
    m = config.load_mj_model()
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, config.keyframe))
    for _ in range(200):
        mujoco.mj_step(m, d)
    mujoco.mj_forward(m, d)
    expected = np.zeros(2)
    force = np.zeros(6)
    feet = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in config.contact_geoms]
    for i in range(d.ncon):
        mujoco.mj_contactForce(m, d, i, force)
        for k, g in enumerate(feet):
            expected[k] += force[0] * (g in d.contact[i].geom)
    sensors = contact.ForceSensors.of(m, config.contact_geoms)
    got = np.asarray(sensors.normal_forces(types.SimpleNamespace(sensordata=jnp.asarray(d.sensordata))))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # Standing still, the feet carry the robot's weight.
    assert got.sum() == pytest.approx(m.body_mass.sum() * 9.81, rel=0.05)


def test_a_missing_foot_is_one_clear_error():
    with pytest.raises(robots.ModelError, match="no geom named 'left_toe'"):
        robots.load_model(robots.BIPED_XML, "mjcf", profiles=PROFILES, sensors=lambda spec, m: contact.add_force_sensors(
            spec, m, geoms=("left_toe",), partner="floor"))


def _contacts(m, d, pairs):
    """{(geom, geom): (dist, frame, friction, condim)} of the contacts of the named `pairs`."""
    ids = {tuple(sorted(mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, n) for n in p)) for p in pairs}
    return {tuple(sorted(c.geom)): (c.dist, c.frame.copy(), c.friction.copy(), c.dim)
            for c in d.contact[:d.ncon] if tuple(sorted(c.geom)) in ids}


def _assert_same_contacts(got, want):
    assert got.keys() == want.keys()
    for pair, (dist, frame, friction, dim) in want.items():
        np.testing.assert_allclose(got[pair][0], dist, atol=1e-9)
        np.testing.assert_allclose(got[pair][1], frame, atol=1e-9)
        np.testing.assert_allclose(got[pair][2], friction)
        assert got[pair][3] == dim


def test_leg_and_feet_pairs_collide_as_every_geom_contacts_do():
    """The humanoid's `pairs` contacts are Gymnasium's every-geom ones, for the pairs they name."""
    config = envs_humanoid.HumanoidConfig()
    feet = [(g, config.floor_geom) for g in config.contact_geoms]
    models = {c: robots.load_model(config.xml_path, "fast", contact_geoms=config.contact_geoms,
                                   self_pairs=config.self_pairs, contacts=c) for c in ("all", "pairs", "feet")}
    assert models["feet"].npair == 2 and models["pairs"].npair == 2 + len(config.self_pairs) == 15
    rng = np.random.default_rng(0)
    found = {"legs": 0, "feet": 0}
    m_all = models["all"]
    hinge = m_all.jnt_type == mujoco.mjtJoint.mjJNT_HINGE
    datas = {c: mujoco.MjData(m) for c, m in models.items()}
    for _ in range(200):  # random poses in the joints' ranges: crossed legs, a heel at the butt
        qpos = m_all.qpos0.copy()
        qpos[2] = rng.uniform(0.9, 1.2)  # low enough for a foot to reach the floor
        lo, hi = m_all.jnt_range[hinge].T
        qpos[m_all.jnt_qposadr[hinge]] = rng.uniform(lo, hi)
        for c, d in datas.items():
            d.qpos[:] = qpos
            mujoco.mj_forward(models[c], d)
        want = _contacts(m_all, datas["all"], [*config.self_pairs, *feet])
        got = _contacts(models["pairs"], datas["pairs"], [*config.self_pairs, *feet])
        _assert_same_contacts(got, want)
        assert not _contacts(models["feet"], datas["feet"], config.self_pairs)
        floor_contacts = len(_contacts(m_all, datas["all"], feet))
        found["feet"] += floor_contacts
        found["legs"] += len(want) - floor_contacts
    assert found["legs"] >= 20 and found["feet"] >= 20, found  # the poses did bring geoms together


def test_a_self_pair_naming_a_missing_geom_is_one_clear_error():
    with pytest.raises(robots.ModelError, match="no geom named \\['left_knee_cap'\\]"):
        robots.load_model(robots.HUMANOID_XML, "fast", contact_geoms=("right_foot",),
                          self_pairs=(("left_knee_cap", "right_shin1"),))
    # Feet-only contacts add no self pair, so they do not ask for its geoms.
    m = robots.load_model(robots.HUMANOID_XML, "fast", contact_geoms=("right_foot",),
                          self_pairs=(("left_knee_cap", "right_shin1"),), contacts="feet")
    assert m.npair == 1


def test_self_contacts_are_every_geom_contacts_but_the_floor_under_the_body():
    """`contacts="self"`: Gymnasium's every-geom contacts, all of them, less the floor under
    anything but the feet; the same distances, frames, friction and dimension."""
    config = envs_humanoid.HumanoidConfig()
    models = {c: robots.load_model(config.xml_path, "fast", contact_geoms=config.contact_geoms, contacts=c)
              for c in ("all", "self")}
    m_all, m_self = models["all"], models["self"]
    # The feet on the floor; every pair of bodies neither welded to the other nor its parent.
    assert m_self.npair == 2 + 109
    floor = mujoco.mj_name2id(m_all, mujoco.mjtObj.mjOBJ_GEOM, config.floor_geom)
    feet = {mujoco.mj_name2id(m_all, mujoco.mjtObj.mjOBJ_GEOM, g) for g in config.contact_geoms}

    def contacts(m, d):
        return {tuple(sorted(c.geom)): (c.dist, c.frame.copy(), c.friction.copy(), c.dim) for c in d.contact[:d.ncon]
                if floor not in c.geom or feet & set(c.geom)}

    rng = np.random.default_rng(1)
    hinge = m_all.jnt_type == mujoco.mjtJoint.mjJNT_HINGE
    datas = {c: mujoco.MjData(m) for c, m in models.items()}
    seen = set()
    for _ in range(200):  # random poses in the joints' ranges: arms across the chest, a knee at the waist
        qpos = m_all.qpos0.copy()
        qpos[2] = rng.uniform(0.9, 1.2)
        lo, hi = m_all.jnt_range[hinge].T
        qpos[m_all.jnt_qposadr[hinge]] = rng.uniform(lo, hi)
        for c, d in datas.items():
            d.qpos[:] = qpos
            mujoco.mj_forward(models[c], d)
        want, got = contacts(m_all, datas["all"]), contacts(m_self, datas["self"])
        _assert_same_contacts(got, want)
        seen |= want.keys()
    assert len(seen) >= 30, len(seen)  # the poses brought many different geoms together


def test_self_contacts_keep_the_files_excludes_and_bitmasks(tmp_path):
    xml = tmp_path / "three.xml"
    xml.write_text("""<mujoco><worldbody><geom name="floor" type="plane" size="1 1 .1"/>
      <body name="a" pos="0 0 1"><freejoint/><geom name="ga" size=".1"/>
        <body name="b"><joint type="hinge"/><geom name="gb" size=".1"/></body></body>
      <body name="c" pos="0 0 1"><freejoint/><geom name="gc" size=".1"/></body>
      <body name="d" pos="0 0 1"><freejoint/><geom name="gd" size=".1" contype="2" conaffinity="2"/></body>
      <body name="e" pos="0 0 1"><freejoint/><geom name="ge" size=".1"/></body>
    </worldbody><contact><exclude body1="c" body2="e"/><pair geom1="gb" geom2="ge"/></contact></mujoco>""")
    m = robots.load_model(str(xml), "gym", contact_geoms=("ga",), contacts="self")
    pairs = {frozenset((m.pair_geom1[i], m.pair_geom2[i])) for i in range(m.npair)}
    named = {frozenset(mujoco.mj_id2name(m, mujoco.mjtObj.mjOBJ_GEOM, g) for g in p) for p in pairs}
    # a-b: parent and child; c-e: excluded; d: another bitmask than everyone else.
    assert named == {frozenset(p) for p in (("ga", "floor"), ("ga", "gc"), ("ga", "ge"), ("gb", "gc"), ("gb", "ge"))}
    assert m.npair == 5  # the file's own <pair> b-e is not doubled


def test_self_contacts_of_a_file_that_does_not_compile_is_one_clear_error(tmp_path):
    xml = tmp_path / "broken.xml"
    xml.write_text("""<mujoco><worldbody><geom name="floor" type="plane" size="1 1 .1"/>
      <body name="a"><freejoint/><geom name="ga" type="mesh" mesh="nope"/></body></worldbody></mujoco>""")
    with pytest.raises(robots.ModelError, match=r"^xml_path: MJCF .*broken.xml' does not compile: .*mesh 'nope'"):
        robots.load_model(str(xml), "gym", contact_geoms=("ga",), contacts="self")


def test_a_contact_cap_keeps_every_touching_pair_of_a_pose():
    """`max_contact_points=8` leaves MJX 8 body-body contacts and both feet in place of
    109 + 2, and over random poses the touching ones (distance < 0) are the same."""
    import jax
    from mujoco import mjx
    from mujoco.mjx._src import collision_driver

    config = envs_humanoid.HumanoidConfig()
    models = {k: robots.load_model(config.xml_path, "fast", contact_geoms=config.contact_geoms, contacts="self",
                                   max_contact_points=k) for k in (None, 8)}
    dims = {k: list(collision_driver.make_condim(m)) for k, m in models.items()}
    assert (dims[None].count(1), dims[None].count(3)) == (109, 2) and (dims[8].count(1), dims[8].count(3)) == (8, 2)
    m_c = models[None]
    hinge = m_c.jnt_type == mujoco.mjtJoint.mjJNT_HINGE
    rng = np.random.default_rng(2)
    qpos = np.tile(m_c.qpos0, (64, 1))
    qpos[:, 2] = rng.uniform(0.9, 1.2, 64)
    lo, hi = m_c.jnt_range[hinge].T
    qpos[:, m_c.jnt_qposadr[hinge]] = rng.uniform(lo, hi, (64, hinge.sum()))

    def touching(mj_model):
        model = mjx.put_model(mj_model)

        @jax.vmap
        def contacts(q):
            d = mjx.kinematics(model, mjx.make_data(model).replace(qpos=q))
            c = mjx.collision(model, d)._impl.contact
            return c.dist, c.geom

        dist, geom = map(np.asarray, jax.jit(contacts)(qpos))
        return [sorted(tuple(sorted(g)) for g, x in zip(gs, ds) if x < 0) for gs, ds in zip(geom, dist)]

    full, capped = touching(models[None]), touching(models[8])
    assert full == capped
    assert sum(len(t) for t in full) >= 40  # the poses did bring parts together
