#!/bin/bash
# Quick end-to-end check (minutes): `sbatch test_run.sh` on the cluster, `bash test_run.sh` anywhere.
#SBATCH --job-name=humanoid-test
#SBATCH --nodes=1
#SBATCH --ntasks=1
#SBATCH --gpus=1
#SBATCH --cpus-per-task=8
#SBATCH --mem=32G
#SBATCH --time=00:30:00
#SBATCH --output=logs/%x-%j.out
#SBATCH --error=logs/%x-%j.err
#SBATCH --open-mode=append

REPO_ROOT=${SLURM_SUBMIT_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
cd "$REPO_ROOT"
source scripts/env.sh

set -e
# Five ES iterations of 32 pairs; results under test_results/es/<run_name>/. Arguments
# are ES config overrides.
python -m experiments.es --config=configs/es_test.py "$@"
# Three PPO+AMP iterations of 16 envs; results under test_results/ppo_amp/ppo_amp_test/.
python -m experiments.ppo_amp --config=configs/ppo_amp_test.py
