#!/bin/bash
# A real one-node Slurm on this machine, for the `slurm` tests and CI:
#
#   bash scripts/local_slurm.sh up      # install (apt) if needed, start munge, slurmctld, slurmd
#   bash scripts/local_slurm.sh status  # one line: up or down
#   bash scripts/local_slurm.sh down    # stop them and remove what `up` wrote
#
# The node takes the machine's CPUs and memory, declares one GPU as a generic resource
# with no device file (so the launchers' `#SBATCH --gpus=1` is accepted and the job runs
# JAX on CPU), and carries the feature `h200` that run_h200.sh asks for. One partition,
# `local`. Needs root and, where Slurm is not installed, apt. Anything in the way ends
# with one line on stderr and exit status 1, before anything is started.
set -euo pipefail

STATE=${LOCAL_SLURM_DIR:-/var/lib/local_slurm}
CONF_DIR=/etc/slurm
MARK="# written by scripts/local_slurm.sh"
PORTS=(6817 6818)  # slurmctld, slurmd

die() { echo "local_slurm: $*" >&2; exit 1; }

ours() { [ -f "$CONF_DIR/slurm.conf" ] && head -1 "$CONF_DIR/slurm.conf" | grep -qF "$MARK"; }

listening() {  # port -> true if something listens on it (IPv4 or IPv6)
  local hex
  hex=$(printf '%04X' "$1")
  awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

is_up() { ours && sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; }

install() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null \
    && command -v sbatch >/dev/null && return 0
  command -v apt-get >/dev/null || die "Slurm is not installed and there is no apt-get to install it (need slurm-wlm and munge)"
  echo "local_slurm: installing slurm-wlm and munge with apt-get"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null \
    || die "apt-get install slurm-wlm munge failed"
}

start_munge() {
  if [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null >/dev/null 2>&1; then return 0; fi
  [ -f /etc/munge/munge.key ] || { mungekey --create --force >/dev/null 2>&1 || die "cannot create /etc/munge/munge.key"; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged --force || die "munged did not start (see /var/log/munge/munged.log)"
  touch "$STATE/munge.started"
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc --all)
  # The node offers what the machine has, less 1 GiB for the daemons and the OS.
  mem=$(awk '/MemTotal/ { printf "%d", $2 / 1024 - 1024 }' /proc/meminfo)
  mkdir -p "$STATE/ctld" "$STATE/d" "$STATE/log"
  cat >"$CONF_DIR/slurm.conf" <<EOF
$MARK; removed by its 'down'
ClusterName=local
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits this long before it may start again (Slurm's default: 120 s).
AuthInfo=cred_expire=30
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=${PORTS[0]}
SlurmdPort=${PORTS[1]}
# No cgroups here (containers): processes are tracked by their parent ids.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
GresTypes=gpu
MpiDefault=none
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=30
InactiveLimit=0
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem Gres=gpu:1 Feature=h200 State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
  # Slurm 22.05's slurmd drops a GPU with no device file from what it reports, so the one
  # GPU names /dev/null: jobs see no CUDA device behind it and JAX runs on CPU.
  cat >"$CONF_DIR/gres.conf" <<EOF
$MARK
NodeName=$host Name=gpu File=/dev/null
EOF
}

up() {
  [ "$(id -u)" = 0 ] || die "needs root (it installs packages, writes $CONF_DIR and starts daemons)"
  if is_up; then echo "local_slurm: already up ($(sinfo -h -o '%N %c CPUs %m MB %G %f'))"; return 0; fi
  if [ -f "$CONF_DIR/slurm.conf" ] && ! ours; then
    die "$CONF_DIR/slurm.conf exists and is not ours: an installed Slurm is configured here; use it or move it away"
  fi
  for port in "${PORTS[@]}"; do
    if listening "$port" && ! ours; then die "port $port is taken (another slurmctld or slurmd?)"; fi
  done
  install
  mkdir -p "$STATE"
  start_munge
  write_conf
  pkill -x slurmctld 2>/dev/null || true
  pkill -x slurmd 2>/dev/null || true
  slurmctld -c -i >/dev/null 2>&1 || die "slurmctld did not start (see $STATE/log/slurmctld.log)"
  slurmd >/dev/null 2>&1 || die "slurmd did not start (see $STATE/log/slurmd.log)"
  for _ in $(seq 60); do
    if is_up; then
      echo "local_slurm: up ($(sinfo -h -o '%N: %c CPUs, %m MB, %G, features %f, partition %P'))"
      return 0
    fi
    sleep 0.5
  done
  scontrol update nodename="$(hostname -s)" state=resume >/dev/null 2>&1 || true
  sleep 1
  is_up || die "the node did not come up within 30 s: $(sinfo -h -o '%T %E' 2>&1 | head -1) (logs in $STATE/log)"
  echo "local_slurm: up"
}

down() {
  [ "$(id -u)" = 0 ] || die "needs root"
  if ! ours; then echo "local_slurm: not up (no $CONF_DIR/slurm.conf of ours)"; return 0; fi
  scancel --full --quiet --user=root 2>/dev/null || true
  for pidfile in "$STATE/slurmd.pid" "$STATE/slurmctld.pid"; do
    if [ -f "$pidfile" ]; then kill "$(cat "$pidfile")" 2>/dev/null || true; fi
  done
  for _ in $(seq 40); do
    pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break
    sleep 0.25
  done
  pkill -9 -x slurmctld 2>/dev/null || true
  pkill -9 -x slurmd 2>/dev/null || true
  if [ -f "$STATE/munge.started" ] && [ -f /run/munge/munged.pid ]; then
    kill "$(cat /run/munge/munged.pid)" 2>/dev/null || true
  fi
  rm -f "$CONF_DIR/slurm.conf" "$CONF_DIR/gres.conf"
  rm -rf "$STATE"
  echo "local_slurm: down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) if is_up; then echo "local_slurm: up"; else echo "local_slurm: down"; exit 1; fi ;;
  *) die "usage: bash scripts/local_slurm.sh up|down|status" ;;
esac
