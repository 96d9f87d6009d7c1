"""Config validation: every rule is checked before anything compiles.

A broken rule raises `ConfigError` whose message is one line naming the field and the
rule; entry points print it and exit non-zero.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import ml_collections

from common.errors import UserError


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


def to_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
    """A plain, JSON-ready dict of the resolved config (tuples become lists)."""
    return json.loads(config.to_json_best_effort(sort_keys=True))


def fingerprint(config: dict[str, Any], ignore: tuple[str, ...] = ()) -> str:
    """Short stable hash of the config, leaving out `ignore` (top-level names)."""
    kept = {k: v for k, v in config.items() if k not in ignore}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:10]
