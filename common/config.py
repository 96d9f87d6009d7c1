"""Config validation: every rule is checked before anything compiles.

A broken rule raises `ConfigError` whose message is one line naming the field and the
rule; entry points print it and exit non-zero.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import types
import typing
from typing import Any

import ml_collections
from ml_collections import config_dict

from common.errors import UserError
from common.physics import ImplError, check_impl

_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ConfigError(UserError):
    """A config value that breaks a rule; the message names the field."""


def require(ok: bool, field: str, rule: str, value: Any = None) -> None:
    if not ok:
        got = "" if value is None else f" (got {value!r})"
        raise ConfigError(f"config.{field}: {rule}{got}")


def positive_int(config: ml_collections.ConfigDict, *fields: str, prefix: str = "") -> None:
    for f in fields:
        v = config[f]
        require(isinstance(v, int) and not isinstance(v, bool) and v > 0, prefix + f, "must be a positive integer", v)


def non_negative_int(config: ml_collections.ConfigDict, *fields: str, prefix: str = "") -> None:
    for f in fields:
        v = config[f]
        require(isinstance(v, int) and not isinstance(v, bool) and v >= 0, prefix + f, "must be an integer >= 0", v)


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


def run_fields() -> ml_collections.ConfigDict:
    """The defaults of the fields every run has beside its pipeline's own, which
    `validate_run` checks (loop lengths, evaluation and checkpoint cadence stay with the
    pipeline: they differ between them)."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Also stop once this many env steps are done (after the iteration that crosses it,
    # which is evaluated); 0 means no limit. Schedules run over num_iterations unless a
    # pipeline sets them over env steps (ES: `schedule_env_steps`).
    c.max_env_steps = 0
    # If > 0, evaluate at the first iteration at or past each multiple of this many env steps,
    # in place of every `eval_every` iterations: an ES iteration's steps grow tenfold as
    # episodes lengthen, so a cadence in iterations thins out exactly when it matters.
    c.eval_every_env_steps = 0
    # On the CPU backend, split the host into this many XLA devices, one per core (0
    # keeps JAX's single CPU device; no effect on GPU).
    c.cpu_devices = 0
    # Orbax checkpoints kept (the latest ones).
    c.checkpoints_to_keep = 3
    # Also keep every checkpoint whose iteration is a multiple of this: points of a long
    # run that later runs branch from (ES `init_from=<run>@<iteration>`); 0 keeps only the
    # latest `checkpoints_to_keep`.
    c.checkpoints_keep_every = 0
    # Seconds of the final policy rendered to videos/final.mp4 when the run ends; 0: none.
    c.video_seconds = 10.0
    # TensorBoard event files beside metrics.jsonl, same names (`tensorboard --logdir results`).
    c.tensorboard = True
    # Results go to results_dir/<experiment>/run_name/; None names the run after the
    # config's hash. The same command with the same run name resumes the run.
    c.results_dir = "results"
    c.run_name = config_dict.placeholder(str)
    # JAX persistent compilation cache; "" turns it off.
    c.compile_cache_dir = "jax_compile_cache"
    return c


def validate_run(config: ml_collections.ConfigDict) -> None:
    """The rules of the fields every run has, whichever pipeline trains it.

    Loop lengths, seed, devices, MJX implementation, solver overrides, the MJCF path and
    where results go; each pipeline then checks only its own fields.
    """
    positive_int(config, "num_iterations", "horizon", "eval_every", "eval_episodes", "checkpoint_every",
                 "checkpoints_to_keep")
    non_negative_int(config, "max_env_steps", "eval_every_env_steps", "checkpoints_keep_every")
    require(isinstance(config.seed, int) and not isinstance(config.seed, bool), "seed", "must be an integer",
            config.seed)
    require(isinstance(config.cpu_devices, int) and config.cpu_devices >= 0, "cpu_devices",
            "must be 0 (JAX's default) or a positive number of CPU devices", config.cpu_devices)
    try:
        check_impl(config.impl)
    except ImplError as e:
        raise ConfigError(f"config.{e}") from None
    # What None means for each; only the humanoid's configs have max_contact_points.
    for field, none_means in (("solver_iterations", "the profile's value"), ("ls_iterations", "the profile's value"),
                              ("max_contact_points", "every contact")):
        if field == "max_contact_points" and field not in config:
            continue
        value = config[field]
        require(value is None or (isinstance(value, int) and not isinstance(value, bool) and value > 0), field,
                f"must be a positive integer or None ({none_means})", value)
    if config.xml_path is not None:
        require(os.path.isfile(config.xml_path), "xml_path", "MJCF file not found", config.xml_path)
    number(config, "video_seconds", at_least=0.0)
    require(math.isfinite(config.video_seconds), "video_seconds", "must be finite", config.video_seconds)
    require(isinstance(config.tensorboard, bool), "tensorboard", "must be true or false", config.tensorboard)
    require(bool(config.results_dir), "results_dir", "must be a directory path", config.results_dir)
    require(config.run_name is None or bool(_RUN_NAME.match(config.run_name)), "run_name",
            "must be letters, digits, '.', '_' or '-' (no path separators)", config.run_name)


def completed(saved: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """`saved` with every field it lacks taken from `defaults`, nested sections included.

    A run's config.json holds the fields of its day; fields added later read their
    defaults, which keep the behaviour the run was trained with.
    """
    out = dict(defaults)
    for k, v in saved.items():
        out[k] = completed(v, out[k]) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def with_defaults(config: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """`config` with every field it lacks taken from `defaults` (see `completed`)."""
    return ml_collections.ConfigDict(completed(config.to_dict(), defaults.to_dict()))


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


# Env fields a run's config holds at its top level, under the same names, in both
# pipelines (the physics of a run); the env's `episode_length` is the run's `horizon`
# and its `xml_path` is the run's, where None means the bundled model.
TOP_LEVEL_ENV_FIELDS = ("physics", "impl", "solver_iterations", "ls_iterations", "integrator", "contacts",
                        "max_contact_points")


def _field_type(hint: Any) -> type:
    """`int` for `int | None`, `tuple` for `tuple[float, float]`: what a placeholder holds."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return _field_type(args[0])
    return typing.get_origin(hint) or hint


def dataclass_fields(config_cls: type, *, only: tuple[str, ...] | None = None, exclude: tuple[str, ...] = (),
                     rename: dict[str, str] | None = None) -> ml_collections.ConfigDict:
    """A config section of the dataclass `config_cls`'s fields at their defaults.

    The dataclass (an env's, a policy's) is the one place a default is written; a config
    holds its fields (`only` these, less `exclude`, `rename`d {field: config name}) and
    sets only its deliberate departures. A None default becomes a typed placeholder that
    the command line can fill.
    """
    hints = typing.get_type_hints(config_cls)
    defaults = config_cls()
    rename = rename or {}
    section = ml_collections.ConfigDict()
    for field in dataclasses.fields(config_cls):
        if (only is not None and field.name not in only) or field.name in exclude:
            continue
        value = getattr(defaults, field.name)
        name = rename.get(field.name, field.name)
        section[name] = config_dict.placeholder(_field_type(hints[field.name])) if value is None else value
    return section


def env_overrides(config: ml_collections.ConfigDict, sections: dict[str, dict[str, str]]) -> dict[str, Any]:
    """The `common.envs.make` overrides a run's config holds: its top-level env fields,
    `horizon`, `xml_path` and each of `sections` {name: {config name: env field}}."""
    out: dict[str, Any] = {f: config[f] for f in TOP_LEVEL_ENV_FIELDS if f in config}
    out["episode_length"] = config.horizon
    if config.xml_path is not None:
        out["xml_path"] = config.xml_path
    for name, rename in sections.items():
        for key, value in config[name].items():
            out[rename.get(key, key)] = value
    return out
