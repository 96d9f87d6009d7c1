#!/bin/bash
# GPU readiness check: `sbatch scripts/gpu_check.sh` or `bash scripts/gpu_check.sh [flags]`.
# Prints one JSON line per figure as it is measured (experiments/gpu_check.py lists them):
# the production ES iteration (jax and, where it installs, warp), its compile and cached
# start, peak memory, a PPO+AMP iteration at 4,096 envs, then 5 minutes of production ES.
#
# Python: with a folder of wheels ($GPU_CHECK_WHEELS, default .whl/, filled by
# `bash scripts/gpu_wheels.sh` on a machine with network) the check runs on the
# machine's own Python and JAX, which may be newer than the pins, and installs only the
# carried wheels (mujoco, mujoco-mjx, evosax, ml-collections, warp-lang, ...) beside them,
# without network. Without wheels it uses the project's venv (scripts/env.sh).
#SBATCH --job-name=gpu-check
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus=1
#SBATCH --cpus-per-task=16
#SBATCH --mem=64G
#SBATCH --time=00:20:00
#SBATCH --output=logs/%x-%j.out
#SBATCH --error=logs/%x-%j.err
set -euo pipefail
REPO_ROOT=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
cd "$REPO_ROOT"
WHEELS=${GPU_CHECK_WHEELS:-$REPO_ROOT/.whl}

if compgen -G "$WHEELS/*.whl" >/dev/null; then
  PYTHON=${PYTHON:-python3}
  SITE=${TMPDIR:-/tmp}/gpu_check_site
  "$PYTHON" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$WHEELS"/*.whl
  export PYTHONPATH="$SITE:$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}"
  export PYTHONUNBUFFERED=1 MUJOCO_GL=egl
  "$PYTHON" -c 'import jax, mujoco; print(f"python with carried wheels | jax {jax.__version__} | mujoco {mujoco.__version__} | devices {jax.devices()}", flush=True)'
else
  source scripts/env.sh
  PYTHON=python
fi
exec "$PYTHON" -m experiments.gpu_check "$@"
