"""JAX's persistent compilation cache, a timed warm-up compile and its marker file.

The cache key covers shapes, static values, jaxlib/backend versions and XLA_FLAGS, so a
second run of the same shape loads executables instead of compiling them; tracing and
lowering still run each time. The marker written next to the cache records what was
warmed up, with which versions on which backend, and how long it took.

Anyone who can write the cache directory can run code in your jobs: it is created
private to the user, and a directory that others can write is refused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from typing import Any

import jax

from common import launch
from common.errors import UserError

_lock = threading.Lock()
_events: dict[str, float] = {"cache_hits": 0.0, "cache_misses": 0.0, "compile_time_saved_sec": 0.0}
_listening = False


def _on_event(event: str, **_: Any) -> None:
    name = event.rsplit("/", 1)[-1]
    if name in ("cache_hits", "cache_misses"):
        with _lock:
            _events[name] += 1


def _on_duration(event: str, duration: float, **_: Any) -> None:
    if event.endswith("compile_time_saved_sec"):
        with _lock:
            _events["compile_time_saved_sec"] += duration


def counters() -> dict[str, float]:
    """Persistent-cache hits, misses and compile seconds saved, since this process started."""
    with _lock:
        return dict(_events)


class CacheDirError(UserError):
    """A cache directory that is not safe or not usable."""


def enable(cache_dir: str) -> str:
    """Turns on the persistent cache at `cache_dir` (created 0700); returns its absolute path."""
    global _listening
    path = os.path.abspath(cache_dir)
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.stat(path)
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise CacheDirError(
            f"compile_cache_dir: {path} is writable by other users, who could then run code "
            f"in your jobs; run `chmod go-w {path}` or choose another directory"
        )
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise CacheDirError(f"compile_cache_dir: {path} belongs to another user; choose your own directory")
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    if not _listening:
        jax.monitoring.register_event_listener(_on_event)
        jax.monitoring.register_event_duration_secs_listener(_on_duration)
        _listening = True
    return path


@dataclasses.dataclass(frozen=True)
class WarmupReport:
    """`compile_seconds` is the whole wait (trace, lower, compile); `xla_seconds` is the
    XLA compile alone, the part a persistent-cache hit replaces with a load."""

    name: str
    compile_seconds: float
    xla_seconds: float
    cache_hits: float
    cache_misses: float


def warm_up(name: str, fn: Callable[..., Any], *args: Any, cache_dir: str | None, shape: dict[str, Any]) -> tuple[Any, WarmupReport]:
    """Lowers and compiles `fn(*args)` (a `jax.jit`/`eqx.filter_jit` function), timing it.

    Returns the compiled executable and a report; with `cache_dir`, writes
    `<cache_dir>/<name>.marker.json` recording the shape, versions and backend.
    """
    before = counters()
    start = time.perf_counter()
    lowered = fn.lower(*args)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    end = time.perf_counter()
    seconds, xla_seconds = end - start, end - lowered_at
    after = counters()
    report = WarmupReport(
        name=name,
        compile_seconds=seconds,
        xla_seconds=xla_seconds,
        cache_hits=after["cache_hits"] - before["cache_hits"],
        cache_misses=after["cache_misses"] - before["cache_misses"],
    )
    logging.info(
        "compiled %s in %.1f s, %.1f s of it in XLA (persistent cache: %d hit(s), %d miss(es))",
        name, seconds, xla_seconds, report.cache_hits, report.cache_misses,
    )
    if cache_dir is not None:
        marker = {
            "name": name,
            "shape": shape,
            "versions": launch.versions(),
            "backend": jax.default_backend(),
            "devices": [str(d) for d in jax.devices()],
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
            "compile_seconds": seconds,
            "xla_seconds": xla_seconds,
            "cache_hits": report.cache_hits,
            "cache_misses": report.cache_misses,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        tmp = os.path.join(cache_dir, f".{name}.marker.json.tmp{os.getpid()}")  # processes may race
        with open(tmp, "w") as f:
            json.dump(marker, f, indent=2)
        os.replace(tmp, os.path.join(cache_dir, f"{name}.marker.json"))
    return compiled, report
