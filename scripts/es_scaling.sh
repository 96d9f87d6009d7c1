#!/bin/bash
# ES population-scaling study on the CPU: configs/es_cpu.py's learning settings at PAIRS
# antithetic pairs, a constant learning rate (each LR in turn), ITERATIONS iterations,
# 20-episode evaluations every 5 iterations; no env-step budget.
#
#   bash scripts/es_scaling.sh PAIRS ITERATIONS SEED LR [LR]...
#   bash scripts/es_scaling.sh 64 150 0 0.0005 0.001 0.002
#
# Runs land in results/screen/es/scale-pPAIRS-lrLR-sSEED; compare them against iterations
# and env steps with `python -m experiments.curves --runs=... --iterations=50,100
# --reach=1000 --x=iteration --plot=...` (BENCHMARKS.md, "ES population scaling").
set -uo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PAIRS=$1; ITERATIONS=$2; SEED=$3; shift 3
ARGS=()
for LR in "$@"; do
  ARGS+=("scale-p$PAIRS-lr$LR" "--config.pairs=$PAIRS --config.num_iterations=$ITERATIONS \
--config.eval_every_env_steps=0 --config.learning_rate=$LR --config.learning_rate_final=$LR \
--config.learning_rate_schedule=constant --config.schedule_env_steps=0 --config.video_seconds=0 \
--config.checkpoint_every=10")
done
exec bash "$REPO_ROOT/scripts/es_screen.sh" 0 "$SEED" "${ARGS[@]}"
