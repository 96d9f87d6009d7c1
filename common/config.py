"""Config validation: every rule is checked before anything compiles.

A broken rule raises `ConfigError` whose message is one line naming the field and the
rule; entry points print it and exit non-zero.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

import ml_collections

from common import physics
from common.errors import UserError

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ConfigError(UserError):
    """A config value that breaks a rule; the message names the field."""


def require(ok: bool, field: str, rule: str, value: Any = None) -> None:
    if not ok:
        got = "" if value is None else f" (got {value!r})"
        raise ConfigError(f"config.{field}: {rule}{got}")


def positive_int(config: ml_collections.ConfigDict, *fields: str) -> None:
    for f in fields:
        v = config[f]
        require(isinstance(v, int) and not isinstance(v, bool) and v > 0, f, "must be a positive integer", v)


def non_negative_int(config: ml_collections.ConfigDict, *fields: str) -> None:
    for f in fields:
        v = config[f]
        require(isinstance(v, int) and not isinstance(v, bool) and v >= 0, f, "must be an integer >= 0", v)


def number(config: ml_collections.ConfigDict, *fields: str, prefix: str = "", above: float | None = None,
           at_least: float | None = None) -> None:
    """Each of `fields` is a real number (not a bool), `> above` and `>= at_least` where given.

    `prefix` names the section `config` is (`"ppo."`), so the message names the full field.
    """
    for f in fields:
        v = config[f]
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        rule = "must be a number"
        if above is not None:
            ok, rule = ok and v > above, f"{rule} > {above}"
        if at_least is not None:
            ok, rule = ok and v >= at_least, f"{rule} >= {at_least}"
        require(ok, prefix + f, rule, v)


def validate_run(config: ml_collections.ConfigDict) -> None:
    """The rules of the fields every run has, whichever pipeline trains it.

    Loop lengths, seed, devices, MJX implementation, solver overrides, the MJCF path and
    where results go; each pipeline then checks only its own fields.
    """
    positive_int(config, "num_iterations", "horizon", "eval_every", "eval_episodes", "checkpoint_every",
                 "checkpoints_to_keep")
    non_negative_int(config, "max_env_steps")
    require(isinstance(config.seed, int) and not isinstance(config.seed, bool), "seed", "must be an integer",
            config.seed)
    require(isinstance(config.cpu_devices, int) and config.cpu_devices >= 0, "cpu_devices",
            "must be 0 (JAX's default) or a positive number of CPU devices", config.cpu_devices)
    try:
        physics.check_impl(config.impl)
    except physics.ImplError as e:
        raise ConfigError(f"config.{e}") from None
    for field in ("solver_iterations", "ls_iterations"):
        value = config[field]
        require(value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0), field,
                "must be a positive integer or None (keep the profile's value)", value)
    if config.xml_path is not None:
        require(os.path.isfile(config.xml_path), "xml_path", "MJCF file not found", config.xml_path)
    require(bool(config.results_dir), "results_dir", "must be a directory path", config.results_dir)
    require(config.run_name is None or bool(_RUN_NAME.match(config.run_name)), "run_name",
            "must be letters, digits, '.', '_' or '-' (no path separators)", config.run_name)


def with_defaults(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`config` with every field it lacks taken from `defaults`, nested ones included.

    A run's config.json holds the fields of its day; fields added later read their
    defaults, which keep the behaviour the run was trained with.
    """
    merged = ml_collections.ConfigDict(to_dict(defaults))

    def fill(dst: ml_collections.ConfigDict, src: ml_collections.ConfigDict) -> None:
        for k, v in src.items():
            if isinstance(v, ml_collections.ConfigDict) and isinstance(dst.get(k), ml_collections.ConfigDict):
                fill(dst[k], v)
            else:
                dst[k] = v

    with merged.unlocked():
        fill(merged, config)
    return merged


def under_profile(config: ml_collections.ConfigDict, physics: str | None,
                  overrides: tuple[str, ...]) -> ml_collections.ConfigDict:
    """A copy of a run's `config` under the profile `physics` as defined (None: as it ran).

    A named profile drops the run's own physics `overrides`: es_cpu's Newton 2 would
    otherwise be laid over Gymnasium's 50 CG iterations and reported as `gym`.
    """
    config = ml_collections.ConfigDict(config.to_dict())
    if physics is not None:
        config.physics = physics
        for field in overrides:
            config[field] = None
    return config


def to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """A plain, JSON-ready dict of the resolved config (tuples become lists)."""
    return json.loads(config.to_json_best_effort(sort_keys=True))


def fingerprint(config: dict[str, Any], ignore: tuple[str, ...] = ()) -> str:
    """Short stable hash of the config, leaving out `ignore` (top-level names)."""
    kept = {k: v for k, v in config.items() if k not in ignore}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:10]
