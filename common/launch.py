"""Start-of-job helpers: versions, devices and the CPU device count (several processes: common/processes.py)."""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import signal
import subprocess

import jax


_PACKAGES = ("jax", "jaxlib", "mujoco", "mujoco-mjx", "equinox", "optax", "evosax", "orbax-checkpoint")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def code_commit() -> str | None:
    """The repository's commit (with "-dirty" for uncommitted changes), None outside a git checkout."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        sha = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if sha.returncode != 0:
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def device_summary() -> dict[str, object]:
    return {
        "backend": jax.default_backend(),
        "devices": [str(d) for d in jax.devices()],
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "host": platform.node(),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }


_HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"


def request_cpu_devices(n: int) -> None:
    """Asks XLA to split the host CPU into `n` devices (0: leave JAX's default of one).

    On CPU one XLA device keeps about one core busy on MJX rollouts; with one device per
    core the sharded population runs on all of them (BENCHMARKS.md). The flag only shapes
    the host platform, so on a GPU node it changes nothing. It must be set before any
    backend starts; a flag already in XLA_FLAGS (the user's, or the tests') wins.
    """
    flags_now = os.environ.get("XLA_FLAGS", "")
    if n > 0 and _HOST_DEVICES_FLAG not in flags_now:
        os.environ["XLA_FLAGS"] = f"{flags_now} {_HOST_DEVICES_FLAG}={n}".strip()


def check_cpu_devices(n: int) -> None:
    """Warns where the CPU backend did not get the `n` devices asked for."""
    if n > 0 and jax.default_backend() == "cpu" and jax.local_device_count() != n:
        logging.warning(
            "cpu_devices=%d was asked for, but the CPU backend has %d device(s) "
            "(XLA_FLAGS=%r, or JAX started before the request)",
            n, jax.local_device_count(), os.environ.get("XLA_FLAGS", ""),
        )


def log_banner() -> None:
    v = versions()
    d = device_summary()
    logging.info(
        "python %s | jax %s | mujoco %s | mujoco-mjx %s | backend %s | devices %s",
        v["python"], v["jax"], v["mujoco"], v["mujoco-mjx"], d["backend"], d["devices"],
    )


class StopFlag:
    """Set by SIGTERM/SIGUSR1; the loop checkpoints and returns at the next iteration."""

    def __init__(self):
        self.signal: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame):
        self.signal = signum
        logging.warning("received %s: checkpointing and stopping after this iteration",
                        signal.Signals(signum).name)

    def __exit__(self, *_):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def format_eta(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
