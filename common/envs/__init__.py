"""Registry of tasks: `make(name, **overrides)` builds every env the same way.

Overrides are config field names (`physics`, `xml_path`, `solver_iterations`, ...);
an unknown name is an error that lists the accepted ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import mujoco

from common import contact, physics, robots
from common.envs import biped
from common.envs.base import Env, State
from common.envs.humanoid import Humanoid, HumanoidConfig

__all__ = ["Env", "State", "make", "names", "config_for"]


def _make_humanoid(config: HumanoidConfig) -> Humanoid:
    mj_model = config.load_mj_model()
    if mj_model.nu == 0 or mj_model.nq < 7 or mj_model.jnt_type[0] != 0:
        raise robots.ModelError(
            f"xml_path: {config.xml_path!r} must have a free root joint first and actuators"
        )
    return Humanoid(model=physics.put_model(mj_model, config.impl), config=config,
                    wrenches=contact.WrenchSensors.of(mj_model), root_body=int(mj_model.jnt_bodyid[0]),
                    stand_height=_stand_height(mj_model, config))


def _stand_height(mj_model: mujoco.MjModel, config: HumanoidConfig) -> float:
    """The root's height in the default pose lowered until the lowest foot meets the floor."""
    data = mujoco.MjData(mj_model)
    mujoco.mj_forward(mj_model, data)
    floor = mj_model.geom(config.floor_geom).id
    gaps = [mujoco.mj_geomDistance(mj_model, data, mj_model.geom(g).id, floor, 10.0, None)
            for g in config.contact_geoms]
    return float(mj_model.qpos0[2] - min(gaps))


_REGISTRY: dict[str, tuple[type, Callable[[Any], Env]]] = {
    "humanoid": (HumanoidConfig, _make_humanoid),
    "biped_walk": (biped.BipedWalkConfig, biped.make),
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def _frozen(value: Any) -> Any:
    """Lists (a config.json's tuples) back to tuples, nested ones included: env configs hash."""
    return tuple(_frozen(v) for v in value) if isinstance(value, (list, tuple)) else value


def config_for(name: str, **overrides: Any) -> Any:
    """The env's frozen config with `overrides` applied (`None` values are ignored)."""
    if name not in _REGISTRY:
        raise KeyError(f"env: unknown name {name!r}; registered: {names()}")
    config_cls, _ = _REGISTRY[name]
    fields = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise TypeError(f"env {name!r}: unknown override(s) {unknown}; accepted: {sorted(fields)}")
    given = {k: _frozen(v) for k, v in overrides.items() if v is not None}
    return dataclasses.replace(config_cls(), **given)


def make(name: str, **overrides: Any) -> Env:
    """Builds the registered env `name` with config `overrides`."""
    config = config_for(name, **overrides)
    return _REGISTRY[name][1](config)
