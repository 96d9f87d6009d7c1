# Environment boilerplate shared by every launcher (run_h200.sh, test_run.sh, run_tests.sh).
# Source it from the repository root: it picks a Python, makes or reuses a versioned venv,
# installs the pinned wheels, selects CPU or GPU for JAX and prints what the job runs on.
#
#   REPO_ROOT   repository root (set by the caller)
#   VENV_DIR    override the venv location (default: $REPO_ROOT/.venv_py3XX)

set -euo pipefail

# --- Python: 3.11 first; 3.10 is refused (mujoco 4.x ships no 3.10 wheels); then python3.
pick_python() {
  local candidate version rejected=""
  for candidate in python3.11 python3.10 python3; do
    command -v "$candidate" >/dev/null 2>&1 || continue
    version=$("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null) || continue
    case "$version" in
      3.11|3.12|3.13) PYTHON_BIN=$(command -v "$candidate"); PYTHON_VERSION=$version; return 0 ;;
      *) rejected="$rejected $candidate=$version" ;;
    esac
  done
  echo "error: no supported Python found (need 3.11-3.13; mujoco 4.x has no wheels for 3.10; found:${rejected:- none})" >&2
  return 1
}
pick_python

# --- Cluster modules and GPU detection.
if command -v module >/dev/null 2>&1; then
  module load cuda/12.8 >/dev/null 2>&1 || echo "warning: 'module load cuda/12.8' failed; using the CUDA wheels alone" >&2
fi
HAS_GPU=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  HAS_GPU=1
fi

# --- Versioned venv with the pinned set (wheels only); reinstalled only when the pins change.
VENV_DIR=${VENV_DIR:-"$REPO_ROOT/.venv_py${PYTHON_VERSION/./}"}
if [ ! -x "$VENV_DIR/bin/python" ]; then
  echo "creating $VENV_DIR with $PYTHON_BIN ($PYTHON_VERSION)"
  "$PYTHON_BIN" -m venv "$VENV_DIR"
fi
EXTRAS="test"
[ "$HAS_GPU" = 1 ] && EXTRAS="test,cuda12"
STAMP="$VENV_DIR/.installed"
WANT=$(cat "$REPO_ROOT/constraints.txt" "$REPO_ROOT/setup.cfg" | sha256sum | cut -c1-16)-$EXTRAS
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "installing the pinned set into $VENV_DIR (extras: $EXTRAS)"
  "$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade "pip>=23.2"
  "$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
    -c "$REPO_ROOT/constraints.txt" -e "$REPO_ROOT[$EXTRAS]"
  echo "$WANT" > "$STAMP"
fi
# shellcheck disable=SC1091
source "$VENV_DIR/bin/activate"

# --- Runtime settings.
export MUJOCO_GL=egl PYOPENGL_PLATFORM=egl OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export PYTHONUNBUFFERED=1
if [ "$HAS_GPU" = 1 ]; then
  unset JAX_PLATFORMS
  export JAX_PLATFORM_NAME=cuda
else
  export JAX_PLATFORMS=cpu
  unset JAX_PLATFORM_NAME
fi

python - <<'PY'
import platform, jax, mujoco
print(f"python {platform.python_version()} | jax {jax.__version__} | mujoco {mujoco.__version__} "
      f"| backend {jax.default_backend()} | devices {jax.devices()}", flush=True)
PY
