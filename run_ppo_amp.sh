#!/bin/bash
# Production PPO+AMP on H200s: `sbatch run_ppo_amp.sh [--config.x=...]`; also runs with
# plain bash. More GPUs as for run_h200.sh (README, "Several GPUs and nodes").
#SBATCH --job-name=biped-ppo-amp
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

# PPO+AMP at 4096 envs (configs/ppo_amp.py); a requeued job resumes the same run.
run_preemptible python -m experiments.ppo_amp --config=configs/ppo_amp.py "$@"
