"""Test session setup: CPU only, four forced host devices, shared compiled functions.

MJX compiles each function in 10-30 s on CPU, so envs and jitted steps are session
fixtures reused across tests, at a few fixed small shapes; every compile of the run
(in process, in both workers, and in the command lines, multi-process runs and Slurm
jobs the tests start) goes through one persistent cache, `$TEST_COMPILE_CACHE`, which
`run_tests.sh` creates. XLA compiles at its lowest backend optimisation level: the tests
check behaviour, not speed, and MJX compiles about a third faster (BENCHMARKS.md, "Test
suite").
"""

import os
import tempfile

# What the command lines that tests start run with: CPU, one device, the same XLA
# flags everywhere so that their compiles share cache entries.
CLI_XLA_FLAGS = "--xla_backend_optimization_level=0"
# Must be set before JAX initialises its backend.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " " + CLI_XLA_FLAGS
# pytest run directly (not through run_tests.sh): a cache for this process alone.
COMPILE_CACHE = os.environ.get("TEST_COMPILE_CACHE") or tempfile.mkdtemp(prefix="test-xla-cache-")

import equinox as eqx  # noqa: E402
import jax  # noqa: E402
import pytest  # noqa: E402

from common import compile_cache, envs  # noqa: E402

compile_cache.enable(COMPILE_CACHE)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def set_fields(config, fields: dict):
    """`config` with each dotted field of `fields` (`"policy.size"`) set; returns it."""
    for name, value in fields.items():
        node = config
        *parents, leaf = name.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return config


def cli_env(**overrides: str) -> dict[str, str]:
    """The environment of a command line a test starts: CPU, one device, `CLI_XLA_FLAGS`."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=CLI_XLA_FLAGS)
    env.update(overrides)
    return env


def cache_flag() -> str:
    """The config override that points a training or benchmark command at the run's cache."""
    return f"--config.compile_cache_dir={COMPILE_CACHE}"


def final_state(run: str) -> list:
    """The float leaves (NumPy) of the latest checkpoint of the run in `run`, restored as
    evaluation does: what "ends where an uninterrupted run ends" compares."""
    import numpy as np

    from common import host_loop
    from experiments import pipelines

    saved = pipelines.open_run(run)
    _, state = host_loop.restore_latest(run, saved.config, saved.pipeline)
    return [np.asarray(x) for x in jax.tree.leaves(state) if np.issubdtype(np.asarray(x).dtype, np.floating)]


def assert_same_leaves(expected, actual, rtol: float = 0.0, atol: float = 0.0) -> None:
    """Asserts two pytrees (a list of leaves is one) match leaf by leaf: same structure,
    shapes and dtypes, values exactly equal when both tolerances are 0, else close.

    Refuses an empty comparison and mismatched structures, where a `zip` over the leaves
    would pass whatever the trees held. Typed PRNG keys compare by their key data.
    """
    import numpy as np

    def host(x):
        if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        return np.asarray(x)

    paths_e, tree_e = jax.tree_util.tree_flatten_with_path(expected)
    leaves_a, tree_a = jax.tree.flatten(actual)
    assert tree_e == tree_a, f"tree structures differ:\nexpected {tree_e}\nactual   {tree_a}"
    assert paths_e, "no leaves to compare"
    for (path, e), a in zip(paths_e, leaves_a):
        e, a = host(e), host(a)
        where = f"leaf {jax.tree_util.keystr(path)} of {len(paths_e)}"
        assert (e.shape, e.dtype) == (a.shape, a.dtype), f"{where}: expected {e.shape} {e.dtype}, got {a.shape} {a.dtype}"
        if rtol == 0 and atol == 0:
            np.testing.assert_array_equal(a, e, err_msg=where)
        else:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=where)


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


# The default suite's longest files (a minute or more each on 2 cores: BENCHMARKS.md,
# "Test suite"), handed to the two workers first: whole files go to whichever worker is
# free, so long ones left to the end would run alone while the other worker idles.
LONGEST_FIRST = ("test_ppo_amp_cli.py", "test_rollout.py", "test_ppo_amp_train.py", "test_es_train.py",
                 "test_parity.py", "test_auto_reset.py", "test_fast_profile.py", "test_compile_cache.py",
                 "test_robustness.py", "test_actuator.py", "test_biped_walk.py", "test_guard.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept otherwise
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
