"""Command lines of every entry point: absl flags whose mistakes end in one line.

`cli.run(main)` stands for `absl.app.run(main)`. Before absl parses anything it checks
each `--config.a.b=...` override against the config file the command names, so a
mistyped field ends in one line naming it and the field meant, with status 2, before
JAX starts; absl's own flag errors (an unknown flag, a value of the wrong type) and the
`UserError`s that `main` raises end the same way.
"""

from __future__ import annotations

import difflib
import functools
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence

import ml_collections
from absl import app, flags
from ml_collections.config_flags.config_flags import is_config_flag

from common.errors import UserError

# Index suffixes (`--config.ranges[0]=...`) address an element, not a field.
_INDEX = re.compile(r"\[[^\]]*\]")


class _DropTpuProbe(logging.Filter):
    """JAX logs its failed TPU probe on every machine without one; it tells a user nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Unable to initialize backend 'tpu'" not in record.getMessage()


def field_paths(config: ml_collections.ConfigDict, prefix: str = "") -> Iterator[str]:
    """Every dotted field path of `config`, nested sections and their fields included."""
    for key, value in config.items():
        yield prefix + key
        if isinstance(value, ml_collections.ConfigDict):
            yield from field_paths(value, f"{prefix}{key}.")


def unknown_field_message(config: ml_collections.ConfigDict, path: str, flag: str, source: str) -> str | None:
    """The one-line error for override `path` of `config`, or None when the field exists."""
    known = list(field_paths(config))
    field = _INDEX.sub("", path)
    if field in known:
        return None
    # The closest path, or the closest among paths sharing the mistyped one's section.
    close = difflib.get_close_matches(field, known, n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else ""
    return f"--{flag}.{path}: {source} has no field `{field}`{hint}"


def _named_config(argv: Sequence[str], flag: flags.Flag) -> tuple[ml_collections.ConfigDict | None, str]:
    """The config the last `--<flag>=PATH` (or `--<flag> PATH`) loads, else the flag's default.

    ml_collections defers a file's load error to the config's first use, deep in a run;
    here it becomes the command line's one error.
    """
    path = None
    for i, arg in enumerate(argv):
        match = re.match(rf"^--?{re.escape(flag.name)}(=(.*))?$", arg)
        if match:
            path = match.group(2) if match.group(1) else (argv[i + 1] if i + 1 < len(argv) else "")
    if path is None:
        return flag.default, str(flag.default_as_str).strip("'")
    if not os.path.isfile(path.split(":")[0]):
        raise UserError(f"--{flag.name}={path}: no such config file")
    try:
        config = flag.parser.parse(path)
        config.keys()
    except Exception as e:  # pylint: disable=broad-except  # the file's own error, in one line
        raise UserError(f"--{flag.name}={path}: cannot load it ({type(e).__name__}: "
                        f"{' '.join(str(e).split())})") from None
    return config, path


def check_config_overrides(argv: Sequence[str]) -> None:
    """Raises `UserError` for a config file that does not load or the first `--config.x=...`
    override naming no field of its config."""
    for flag in {id(f): f for f in flags.FLAGS._flags().values()}.values():  # pylint: disable=protected-access
        if not is_config_flag(flag):
            continue
        prefix = re.compile(rf"^--?{re.escape(flag.name)}\.([^=]+)")
        overrides = [m.group(1) for m in map(prefix.match, argv[1:]) if m]
        config, source = _named_config(argv[1:], flag)
        if config is None and overrides:
            raise UserError(f"--{flag.name}.{overrides[0]}: needs --{flag.name}=<config file> first")
        for path in overrides:
            message = unknown_field_message(config, path, flag.name, source)
            if message:
                raise UserError(message)


def parse_flags(argv: Sequence[str]) -> list[str]:
    """absl's flags parser with one-line errors: config fields first, then absl's own rules."""
    try:
        check_config_overrides(argv)
        return flags.FLAGS(argv)
    except (flags.Error, UserError) as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)


def user_errors_exit(main: Callable[[Sequence[str]], None]) -> Callable[[Sequence[str]], None]:
    """Wraps an absl `main` so that bad input ends the run with one line and status 2."""

    @functools.wraps(main)
    def wrapped(argv: Sequence[str]) -> None:
        try:
            main(argv)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            sys.exit(2)

    return wrapped


def run(main: Callable[[Sequence[str]], None]) -> None:
    """`absl.app.run(main)` with one-line errors for bad flags and for `UserError`s."""
    logging.getLogger("jax._src.xla_bridge").addFilter(_DropTpuProbe())
    app.run(user_errors_exit(main), flags_parser=parse_flags)


def parse_command(text: str) -> tuple[float, float, float]:
    """`--command`'s 'vx,vy,wz' -> three finite floats, or one line naming the flag."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise UserError(f"--command: must be three numbers 'vx,vy,wz' (m/s, m/s, rad/s), got {text!r}")
    return values
