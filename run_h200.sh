#!/bin/bash
# Production ES on H200s: `sbatch run_h200.sh [--config.x=...]`; also runs with plain bash.
# More GPUs: `sbatch --ntasks=G --gpus-per-node=G run_h200.sh` on one node (or `--nodes=N
# --ntasks-per-node=G --gpus-per-node=G` on N), one
# process per GPU (README, "Several GPUs and nodes").
#SBATCH --job-name=humanoid-es
#SBATCH --nodes=1
#SBATCH --gpus-per-node=1
#SBATCH --constraint=h200
#SBATCH --cpus-per-task=16
#SBATCH --mem=128G
#SBATCH --time=24:00:00
#SBATCH --output=logs/%x-%j.out
#SBATCH --error=logs/%x-%j.err
#SBATCH --open-mode=append
#SBATCH --requeue
#SBATCH --signal=B:USR1@180

REPO_ROOT=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
cd "$REPO_ROOT"
source scripts/env.sh
source scripts/slurm.sh

# Production ES (8192 pairs in chunks of 2048). Without --config.run_name the run is
# named after its config's hash, so a requeued job (same arguments) resumes it. The
# scaling study expects `--config.pairs=2048` to need 1/3-1/4 of the GPU time (README).
run_preemptible python -m experiments.es --config=configs/es.py "$@"
