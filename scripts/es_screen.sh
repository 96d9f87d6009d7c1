#!/bin/bash
# One-change-at-a-time ES screens on the CPU: each variant is configs/es_cpu.py plus its
# overrides, run to a budget of env steps with 20-episode evaluations (every 500K env
# steps, es_cpu's `eval_every_env_steps`; every 5 iterations where an override sets it to 0).
#
#   bash scripts/es_screen.sh BUDGET SEED NAME "OVERRIDES" [NAME "OVERRIDES"]...
#   bash scripts/es_screen.sh 3000000 0 base "--config.num_iterations=75" \
#        accurate "--config.num_iterations=75 --config.physics=accurate"
#
# Runs land in results/screen/es/NAME-sSEED (logs beside them in results/screen/logs);
# compare them with `python -m experiments.curves --runs=... --budgets=...`.
set -uo pipefail
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO_ROOT"
source scripts/env.sh
BUDGET=$1; SEED=$2; shift 2
mkdir -p results/screen/logs
while [ $# -gt 1 ]; do
  NAME=$1; OVERRIDES=$2; shift 2
  LOG=results/screen/logs/$NAME-s$SEED.log
  echo "=== $NAME seed $SEED: $OVERRIDES ($(date +%T))"
  # shellcheck disable=SC2086  # the overrides are separate words
  python -m experiments.es --config=configs/es_cpu.py --config.results_dir=results/screen \
    --config.run_name="$NAME-s$SEED" --config.seed="$SEED" --config.max_env_steps="$BUDGET" \
    --config.eval_every=5 --config.eval_episodes=20 $OVERRIDES > "$LOG" 2>&1
  echo "rc $? ($(date +%T)): $(grep -o 'done: .*' "$LOG")"
done
