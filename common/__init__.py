"""Shared core of both pipelines: physics, envs, rollouts, statistics and run plumbing.

Nothing in here imports `humanoid_es` or `ppo_amp`.
"""

import contextlib as _contextlib
import io as _io
import logging as _logging
import os as _os

# XLA's CPU runtime deadlocks on MJX rollouts at batch >= 128 with its concurrency-
# optimised scheduler (jaxlib 0.10.2, 2 cores: every thread idle, the step never
# returns; measured in BENCHMARKS.md). The flag only touches the CPU backend and must
# be set before JAX starts a backend, which no code path does before importing this.
_NO_DEADLOCK = "--xla_cpu_enable_concurrency_optimized_scheduler=false"
if "xla_cpu_enable_concurrency_optimized_scheduler" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = f"{_os.environ.get('XLA_FLAGS', '')} {_NO_DEADLOCK}".strip()

# Videos render offscreen. MuJoCo picks its GL backend once, when first imported (just
# below), and its Linux default (GLFW) needs a display; EGL needs none. A user's own
# MUJOCO_GL (osmesa, glfw) is kept.
if _os.uname().sysname == "Linux":
    _os.environ.setdefault("MUJOCO_GL", "egl")

# mujoco-mjx prints "Failed to import warp" to stdout on import wherever the optional
# warp extra is absent (every CPU machine). Our tools print JSON lines on stdout, so
# the import happens here once, with that text sent to the debug log instead.
with _contextlib.redirect_stdout(_io.StringIO()) as _captured:
    from mujoco import mjx as _mjx  # noqa: F401
if _captured.getvalue().strip():
    _logging.getLogger(__name__).debug("mujoco.mjx import: %s", _captured.getvalue().strip())
