"""Shared core of both pipelines: physics, envs, rollouts, statistics and run plumbing.

Nothing in here imports `humanoid_es` or `ppo_amp`.
"""

import contextlib as _contextlib
import io as _io
import logging as _logging

# mujoco-mjx prints "Failed to import warp" to stdout on import wherever the optional
# warp extra is absent (every CPU machine). Our tools print JSON lines on stdout, so
# the import happens here once, with that text sent to the debug log instead.
with _contextlib.redirect_stdout(_io.StringIO()) as _captured:
    from mujoco import mjx as _mjx  # noqa: F401
if _captured.getvalue().strip():
    _logging.getLogger(__name__).debug("mujoco.mjx import: %s", _captured.getvalue().strip())
