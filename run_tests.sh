#!/bin/bash
# The test suite on CPU: `bash run_tests.sh [pytest args]` (sets up the venv on first use).
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$REPO_ROOT"
source scripts/env.sh
export JAX_PLATFORMS=cpu
# Two workers, one per core: most of the suite is XLA compiling MJX, mostly on one
# thread, so two files compile side by side. Each worker keeps its own fixtures.
python -m pytest -n 2 --dist loadfile "$@"
