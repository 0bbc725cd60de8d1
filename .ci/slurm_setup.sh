#!/usr/bin/env bash
# A real single-node SLURM cluster for the slurm executor's tests (Debian packages; root only).
#   .ci/slurm_setup.sh start   install if needed (idempotent, fast when installed), configure, start the daemons
#   .ci/slurm_setup.sh stop    stop the daemons this script started (and only those)
# Accounting goes through slurmdbd + MariaDB because submitit's status watcher calls sacct.
set -euo pipefail

STATE=/run/clbench-slurm          # pid files of the daemons *we* started
NODE="$(hostname)"                 # must resolve to 127.0.0.1 (it does on the CI machine)
LOG=/var/log/slurm

started() { mkdir -p "$STATE"; echo "$2" > "$STATE/$1.pid"; }
running() { pgrep -x "$1" >/dev/null 2>&1; }
wait_for() {  # wait_for SECONDS CMD...: poll until CMD succeeds
  local limit=$1; shift
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "slurm_setup: timed out waiting for: $*" >&2; return 1
}

install() {
  local missing=()
  for cmd in sbatch slurmctld slurmd slurmdbd munged mysqld_safe; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "slurm_setup: installing slurm-wlm slurmdbd munge mariadb-server (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q slurm-wlm slurmdbd munge mariadb-server >/dev/null
  fi
}

configure() {
  local cpus mem
  cpus=$(nproc)
  mem=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) * 3 / 4 ))
  mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd "$LOG" /run/munge
  cat > /etc/slurm/slurm.conf <<EOF
ClusterName=clbench
SlurmctldHost=$NODE
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
MpiDefault=none
ReturnToService=2
JobRequeue=1
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
NodeName=$NODE CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  cat > /etc/slurm/slurmdbd.conf <<EOF
AuthType=auth/munge
DbdHost=localhost
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=clbench
StorageLoc=slurm_acct_db
PidFile=/run/slurmdbd.pid
LogFile=$LOG/slurmdbd.log
EOF
  chmod 600 /etc/slurm/slurmdbd.conf
  chown munge:munge /run/munge 2>/dev/null || true
  [ -s /etc/munge/munge.key ] || /usr/sbin/mungekey --create --force 2>/dev/null || \
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
}

start() {
  install
  configure
  if ! running munged; then
    runuser -u munge -- /usr/sbin/munged
    wait_for 10 test -s /run/munge/munged.pid  # the daemon's own pid, not a pre-fork one
    started munged "$(cat /run/munge/munged.pid)"
  fi
  if ! running mariadbd && ! running mysqld; then
    mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld
    (mysqld_safe --bind-address=127.0.0.1 >/dev/null 2>&1 &)
    wait_for 60 mysqladmin ping
    started mysqld_safe "$(pgrep -f -o mysqld_safe)"
  fi
  mysql -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'clbench';
            GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"
  if ! running slurmdbd; then
    rm -f /run/slurmdbd.pid  # a stale one would pass the wait below
    /usr/sbin/slurmdbd
    wait_for 10 test -s /run/slurmdbd.pid  # recorded before waiting for it: a start that fails leaves it to stop
    started slurmdbd "$(cat /run/slurmdbd.pid)"
    wait_for 30 sacctmgr -n list cluster
  fi
  sacctmgr -n list cluster format=cluster | grep -qw clbench || sacctmgr -i add cluster clbench >/dev/null
  if running slurmctld; then
    scontrol reconfigure >/dev/null  # pick up a rewritten slurm.conf
  else
    rm -f /run/slurmctld.pid
    /usr/sbin/slurmctld
    wait_for 10 test -s /run/slurmctld.pid
    started slurmctld "$(cat /run/slurmctld.pid)"
    wait_for 30 scontrol ping
  fi
  if ! running slurmd; then
    rm -f /run/slurmd.pid
    /usr/sbin/slurmd
    wait_for 30 test -s /run/slurmd.pid  # the daemon's own pid (pgrep right away can catch the pre-fork one)
    started slurmd "$(cat /run/slurmd.pid)"
  fi
  scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
  wait_for 30 bash -c "sinfo -h -o %t | grep -qE '^(idle|mix|alloc)'"
  echo "slurm_setup: single-node cluster up ($NODE, $(nproc) CPUs, partition debug)"
}

stop() {
  [ -d "$STATE" ] || return 0
  for daemon in slurmd slurmctld slurmdbd mysqld_safe munged; do
    local f="$STATE/$daemon.pid"
    [ -f "$f" ] || continue
    local pid
    pid=$(cat "$f")
    if [ "$daemon" = mysqld_safe ]; then
      mysqladmin shutdown >/dev/null 2>&1 || true  # mysqld_safe exits when the server shuts down cleanly
    else
      kill "$pid" 2>/dev/null || true
    fi
    # wait for the exit: a start right after must not find a dying daemon "running" (munged, slurmdbd)
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    rm -f "$f"
  done
  rmdir "$STATE" 2>/dev/null || true
  echo "slurm_setup: stopped the daemons it had started"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
