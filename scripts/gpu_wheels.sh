#!/bin/bash
# Downloads the wheels `scripts/gpu_check.sh` installs on a GPU node without network:
# the project's dependencies that a JAX-with-CUDA image usually lacks, at the pinned
# versions of constraints.txt, for that node's Python (default 3.12, x86-64 Linux).
#
#   bash scripts/gpu_wheels.sh [PYTHON_VERSION] [DEST] [--no-warp]   # e.g. 3.12 .whl
#
# All of them come to ~180 MB, 149 MB of it warp-lang; --no-warp leaves it out (~34 MB),
# and the check then reports impl=warp as skipped.
set -euo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
PYV=${1:-3.12}
DEST=${2:-.whl}
# mujoco 4 is a meta-package over mujoco-core and mujoco-studio; the rest are what these
# import that a JAX image lacks (trimesh for mjx, pyopengl and glfw for mujoco, websockets
# for mujoco-studio, dotmap for evosax).
NAMES=(mujoco mujoco-core mujoco-studio mujoco-mjx evosax ml-collections glfw trimesh pyopengl websockets dotmap)
[ "${3:-}" = "--no-warp" ] || NAMES+=(warp-lang)
pin() {
  local v
  v=$(grep -iE "^${1//[-_]/[-_]}==" constraints.txt | head -1 | cut -d= -f3) || true
  if [ -n "$v" ]; then echo "$1==$v"; else echo "$1"; fi
}
mkdir -p "$DEST"
for name in "${NAMES[@]}"; do
  python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$PYV" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any -d "$DEST" "$(pin "$name")"
done
ls -la "$DEST"
