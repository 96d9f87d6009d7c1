#!/bin/bash
# The test suite on CPU: `bash run_tests.sh [pytest args]` (sets up the venv on first use).
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$REPO_ROOT"
source scripts/env.sh
export JAX_PLATFORMS=cpu
# One persistent XLA compile cache for the run, shared by both workers and every command
# line, multi-process run and Slurm job the tests start (tests/conftest.py). `.ci/run`
# passes one for all its passes; otherwise this run makes its own and removes it.
if [ -z "${TEST_COMPILE_CACHE:-}" ]; then
  TEST_COMPILE_CACHE=$(mktemp -d -t test-xla-cache.XXXXXX)
  trap 'rm -rf "$TEST_COMPILE_CACHE"' EXIT
fi
export TEST_COMPILE_CACHE
# Two workers, one per core: most of the suite is XLA compiling MJX, mostly on one
# thread, so two files compile side by side. Each worker keeps its own fixtures.
python -m pytest -n 2 --dist loadfile "$@"
