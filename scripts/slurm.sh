# Running a training command under Slurm (or plain bash); source after scripts/env.sh.
#
# `run_preemptible CMD...` runs CMD, as one process per Slurm task through `srun` inside a
# job (one process per GPU; they join through jax.distributed, common/launch.py) or as is
# outside one, and passes SIGUSR1/SIGTERM on to it: Slurm sends them to the batch shell
# before a time limit or a preemption (`--signal=B:USR1@N`). `srun` does not forward
# SIGUSR1, so inside a job the signal goes to the job's steps through `scancel`. CMD
# checkpoints and exits; if the job was signalled it is then requeued, and the same
# command with the same run name resumes. A command that fails on its own (bad config:
# exit status 2, one line in the .err file) is not requeued.

in_slurm_job() { [ -n "${SLURM_JOB_ID:-}" ] && command -v srun >/dev/null 2>&1; }

run_preemptible() {
  local child status signalled=0
  if in_slurm_job; then
    # --kill-on-bad-exit: one failing task ends the others rather than leaving them
    # waiting in a collective.
    srun --kill-on-bad-exit=1 --quiet "$@" &
  else
    "$@" &
  fi
  child=$!
  forward() {
    signalled=1
    if in_slurm_job; then
      scancel --signal="$1" "$SLURM_JOB_ID" 2>/dev/null || kill -"$1" "$child" 2>/dev/null
    else
      kill -"$1" "$child" 2>/dev/null
    fi
  }
  trap 'forward USR1' USR1
  trap 'forward TERM' TERM
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
