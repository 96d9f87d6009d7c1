"""The persistent compile cache: a second identical process loads instead of compiling."""

import json
import os
import stat
import subprocess
import sys

import pytest

from common import compile_cache
from tests.conftest import REPO_ROOT, cli_env

_SCRIPT = r"""
import json, sys, jax
from common import compile_cache, envs
cache = compile_cache.enable(sys.argv[1])
env = envs.make("humanoid")
keys = jax.random.split(jax.random.PRNGKey(0), 2)
# A batched reset: an MJX program (forward kinematics, the observation) that compiles in
# seconds, where the step's solver takes ~15 s and shows nothing more about the cache.
fn = jax.jit(lambda k: jax.vmap(env.reset)(k).obs)
compiled, report = compile_cache.warm_up("test_step", fn, keys, cache_dir=cache, shape={"batch": 2})
print(json.dumps({"seconds": report.compile_seconds, "xla": report.xla_seconds, "hits": report.cache_hits}))
"""


def _run(cache_dir):
    env = cli_env()
    proc = subprocess.run([sys.executable, "-c", _SCRIPT, cache_dir], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_second_run_hits_the_cache(tmp_path):
    cache_dir = str(tmp_path / "cache")
    first = _run(cache_dir)
    second = _run(cache_dir)
    assert first["hits"] == 0
    assert second["hits"] >= 1
    # Tracing and lowering run in both processes and swing with the load on the machine
    # (the other test worker compiles beside this one); only the XLA compile is cached.
    assert second["xla"] < 0.25 * first["xla"], (first, second)
    marker = json.load(open(os.path.join(cache_dir, "test_step.marker.json")))
    assert marker["shape"] == {"batch": 2} and marker["backend"] == "cpu"
    assert {"jax", "mujoco", "mujoco-mjx"} <= set(marker["versions"])
    assert stat.S_IMODE(os.stat(cache_dir).st_mode) & 0o077 == 0


def test_cache_dir_writable_by_others_is_refused(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    with pytest.raises(compile_cache.CacheDirError, match="writable by other users"):
        compile_cache.enable(str(shared))
