#!/usr/bin/env bash
# A throwaway single-node Slurm cluster for tests and the Slurm demo, from
# Debian's packages (slurm-wlm 22.05), run as plain processes.
#
#   scripts/testing/slurm.sh start DIR [GPUS] [TYPE]  # prints DIR/slurm.conf
#   scripts/testing/slurm.sh stop DIR                 # stops it and removes DIR
#
# `start` writes DIR/slurm.conf for one node, cvnode1 (address 127.0.0.1,
# 32 CPUs whatever the machine has), with GPUS fake GPUs of gres type TYPE
# (default 4 × h100) in the partition `gpu`, and starts slurmctld and
# slurmd in the foreground mode (-D) under setsid, logging to DIR. No munge:
# auth/none and cred/none. The fake GPUs are character devices DIR/dev/nvidiaN
# made as clones of /dev/null (c 1 3), so jobs get CUDA_VISIBLE_DEVICES.
# Slurm's client commands find the cluster through SLURM_CONF=DIR/slurm.conf.
# It must run as root (slurmd starts jobs as their users).
set -euo pipefail

usage() {
  echo "usage: $0 start DIR [GPUS] [TYPE] | stop DIR" >&2
  exit 2
}
[ $# -ge 2 ] || usage
command="$1"
dir="$2"

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

stop_pid_file() {
  local f="$1"
  [ -f "$f" ] || return 0
  local pid
  pid="$(cat "$f")"
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

case "$command" in
  start)
    gpus="${3:-4}"
    type="${4:-h100}"
    if [ "$(id -u)" -ne 0 ]; then
      echo "slurm.sh: must run as root" >&2
      exit 1
    fi
    for p in slurmctld slurmd sbatch; do
      command -v "$p" >/dev/null || {
        echo "slurm.sh: $p not found (install slurmctld slurmd slurm-client)" >&2
        exit 1
      }
    done
    mkdir -p "$dir/state" "$dir/spool" "$dir/dev"
    chmod 755 "$dir"
    # slurmd keeps each job's script under DIR and runs it as the job's
    # user: every directory above DIR must let others through.
    if ! runuser -u nobody -- test -x "$dir/spool"; then
      echo "slurm.sh: $dir is not reachable by other users (a parent directory without o+x?); jobs could not start" >&2
      exit 1
    fi
    last=$((gpus - 1))
    for i in $(seq 0 "$last"); do
      [ -e "$dir/dev/nvidia$i" ] || mknod "$dir/dev/nvidia$i" c 1 3
      chmod 666 "$dir/dev/nvidia$i"
    done
    ctld_port="$(free_port)"
    slurmd_port="$(free_port)"
    cat >"$dir/slurm.conf" <<CONF
ClusterName=cvtest
SlurmctldHost=$(hostname -s)(127.0.0.1)
MailProg=/bin/true
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
GresTypes=gpu
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=cvnode1 NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=32 RealMemory=64000 Gres=gpu:$type:$gpus State=UNKNOWN
PartitionName=gpu Nodes=cvnode1 Default=YES MaxTime=INFINITE State=UP
CONF
    cat >"$dir/gres.conf" <<CONF
AutoDetect=off
NodeName=cvnode1 Name=gpu Type=$type File=$dir/dev/nvidia[0-$last]
CONF
    export SLURM_CONF="$dir/slurm.conf"
    setsid slurmctld -D -i -f "$SLURM_CONF" >"$dir/slurmctld.out" 2>&1 </dev/null &
    echo $! >"$dir/slurmctld.pid.launch"
    setsid slurmd -D -N cvnode1 -f "$SLURM_CONF" >"$dir/slurmd.out" 2>&1 </dev/null &
    echo $! >"$dir/slurmd.pid.launch"
    # Up when the node takes jobs.
    for _ in $(seq 300); do
      state="$(timeout 5 sinfo -h -n cvnode1 -o '%t' 2>/dev/null || true)"
      case "$state" in
        idle|mix|alloc) echo "$SLURM_CONF"; exit 0 ;;
      esac
      sleep 0.1
    done
    echo "slurm.sh: the node did not come up (state \"$state\")" >&2
    tail -20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
    exit 1
    ;;
  stop)
    export SLURM_CONF="$dir/slurm.conf"
    if [ -f "$SLURM_CONF" ]; then
      timeout 5 scancel --full --quiet -p gpu 2>/dev/null || true
    fi
    stop_pid_file "$dir/slurmd.pid.launch"
    stop_pid_file "$dir/slurmctld.pid.launch"
    rm -rf "$dir"
    ;;
  *)
    usage
    ;;
esac
