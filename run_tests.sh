#!/bin/bash
# The test suite on CPU: `bash run_tests.sh [pytest args]` (sets up the venv on first use).
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$REPO_ROOT"
source scripts/env.sh
export JAX_PLATFORMS=cpu
python -m pytest "$@"
