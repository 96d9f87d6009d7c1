# Preemption handling for Slurm launchers; source after scripts/env.sh.
#
# `run_preemptible CMD...` runs CMD in the background and forwards SIGUSR1/SIGTERM to it
# (Slurm sends them before a time limit or preemption, see `--signal=B:USR1@N`). CMD is
# expected to checkpoint and exit; if the job was signalled it is then requeued, and the
# same command with the same run name resumes.

run_preemptible() {
  local child status signalled=0
  "$@" &
  child=$!
  trap 'signalled=1; kill -USR1 "$child" 2>/dev/null' USR1
  trap 'signalled=1; kill -TERM "$child" 2>/dev/null' TERM
  while true; do
    set +e
    wait "$child"
    status=$?
    set -e
    # `wait` returns >128 when interrupted by a trapped signal: keep waiting for the child.
    if kill -0 "$child" 2>/dev/null; then continue; fi
    break
  done
  trap - USR1 TERM
  if [ "$signalled" = 1 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    echo "preempted: requeueing job $SLURM_JOB_ID"
    scontrol requeue "$SLURM_JOB_ID"
  fi
  return "$status"
}
