"""Test session setup: CPU only, four forced host devices, shared compiled functions.

MJX compiles each function in 10-30 s on CPU, so envs and jitted steps are session
fixtures reused across tests, at a few fixed small shapes.
"""

import os

# Must be set before JAX initialises its backend.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

from common import envs  # noqa: E402

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def final_state(run: str) -> list:
    """The float leaves (NumPy) of the latest checkpoint of the run in `run`, restored as
    evaluation does: what "ends where an uninterrupted run ends" compares."""
    import numpy as np

    from common import host_loop
    from experiments import saved_run

    saved = saved_run.open_run(run)
    _, state = host_loop.restore_latest(run, saved.config, saved.pipeline)
    return [np.asarray(x) for x in jax.tree.leaves(state) if np.issubdtype(np.asarray(x).dtype, np.floating)]


@pytest.fixture(scope="session")
def fast_env():
    return envs.make("humanoid", physics="fast")


@pytest.fixture(scope="session")
def gym_env():
    return envs.make("humanoid", physics="gym")


@pytest.fixture(scope="session")
def fast_batch_fns(fast_env):
    """Batched reset and step of the `fast` humanoid, compiled once."""
    reset = eqx.filter_jit(lambda env, keys: jax.vmap(env.reset)(keys))
    step = eqx.filter_jit(lambda env, s, a: jax.vmap(env.step)(s, a))
    return (lambda keys: reset(fast_env, keys)), (lambda s, a: step(fast_env, s, a))


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", help="also run the tests marked slow (.ci/run does)")


# Markers whose tests run only when `-m` names them: they need a cluster or start extra
# processes, and .ci/run runs them in passes of their own.
OWN_PASS = {"slurm": "bash scripts/local_slurm.sh up, then -m slurm", "multiprocess": "-m multiprocess"}


def pytest_collection_modifyitems(config, items):
    markexpr = config.getoption("-m") or ""
    for item in items:
        for marker, how in OWN_PASS.items():
            if marker in item.keywords and marker not in markexpr:
                item.add_marker(pytest.mark.skip(reason=f"{marker}: run with {how} (.ci/run does)"))
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (.ci/run does)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
