#!/usr/bin/env bash
# A real Slurm cluster of N nodes on this machine, all its state in one folder, for Cairn's tests and
# benchmarks: munged, slurmctld, and one `slurmd -N nX` per node (Debian's slurmd supports several per
# host). Needs root (the daemons run as root) and the slurm-wlm and munge packages.
#
#   tests/slurm/cluster.sh start DIR [NODES]   prints the SLURM_CONF to use; ready when it returns
#   tests/slurm/cluster.sh stop DIR            stops every daemon of that folder
set -euo pipefail

cmd=${1:?usage: cluster.sh start|stop DIR [NODES]}
dir=${2:?usage: cluster.sh start|stop DIR [NODES]}
nodes=${3:-2}

stop() {
  for f in "$dir"/slurmd.*.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do
    [[ -f $f ]] || continue
    pid=$(cat "$f" 2> /dev/null || true)
    [[ -n $pid ]] && kill "$pid" 2> /dev/null || true
  done
  # Wait for them to go, so a next start does not meet the old ones' sockets.
  for _ in $(seq 50); do
    alive=0
    for f in "$dir"/slurmd.*.pid "$dir"/slurmctld.pid "$dir"/munge/munged.pid; do
      [[ -f $f ]] && kill -0 "$(cat "$f" 2> /dev/null)" 2> /dev/null && alive=1
    done
    ((alive)) || break
    sleep 0.1
  done
}

if [[ $cmd == stop ]]; then
  stop
  exit 0
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# munged insists on a folder only its user may write, on a path everyone may traverse.
mkdir -p "$dir/munge" "$dir/state" "$dir/spool"
chmod 0755 "$dir"
chown munge:munge "$dir/munge"
chmod 0755 "$dir/munge"
runuser -u munge -- /usr/sbin/munged --socket="$dir/munge/munge.socket" --pid-file="$dir/munge/munged.pid" \
  --log-file="$dir/munge/munged.log" --seed-file="$dir/munge/munged.seed" --key-file=/etc/munge/munge.key \
  < /dev/null > /dev/null 2>&1

# Free ports for the controller and each node.
read -r -a ports <<< "$(/usr/bin/python3 - "$nodes" << 'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]) + 1)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
)"

conf="$dir/slurm.conf"
{
  echo "ClusterName=cairntest"
  echo "SlurmctldHost=localhost(127.0.0.1)"
  echo "SlurmctldPort=${ports[0]}"
  echo "AuthType=auth/munge"
  echo "AuthInfo=socket=$dir/munge/munge.socket"
  echo "CredType=cred/munge"
  echo "SlurmUser=root"
  echo "SlurmdUser=root"
  echo "StateSaveLocation=$dir/state"
  echo "SlurmdSpoolDir=$dir/spool/%n"
  echo "SlurmctldPidFile=$dir/slurmctld.pid"
  echo "SlurmdPidFile=$dir/slurmd.%n.pid"
  echo "SlurmctldLogFile=$dir/slurmctld.log"
  echo "SlurmdLogFile=$dir/slurmd.%n.log"
  echo "ProctrackType=proctrack/linuxproc"
  echo "TaskPlugin=task/none"
  echo "SelectType=select/cons_tres"
  echo "SelectTypeParameters=CR_CPU"
  echo "SlurmdParameters=config_overrides"
  echo "SchedulerParameters=batch_sched_delay=0,sched_min_interval=0"
  echo "AccountingStorageType=accounting_storage/none"
  echo "JobCompType=jobcomp/filetxt"
  echo "JobCompLoc=$dir/jobcomp.txt"
  echo "JobAcctGatherType=jobacct_gather/none"
  echo "MpiDefault=none"
  echo "ReturnToService=2"
  echo "SlurmdTimeout=6"
  echo "KillWait=2"
  echo "MinJobAge=60"
  echo "InactiveLimit=0"
  # GPUs as Slurm's gres: two on n1 only, stand-in device files (no GPU here); Slurm hands a job its
  # CUDA_VISIBLE_DEVICES from them.
  echo "GresTypes=gpu"
  for ((i = 1; i <= nodes; i++)); do
    gres=""
    [[ $i == 1 ]] && gres=" Gres=gpu:2"
    echo "NodeName=n$i NodeHostname=localhost NodeAddr=127.0.0.1 Port=${ports[i]} CPUs=4 RealMemory=2000$gres State=UNKNOWN"
  done
  echo "PartitionName=debug Nodes=n[1-$nodes] Default=YES MaxTime=INFINITE State=UP"
} > "$conf"

mkdir -p "$dir/dev"
# Character devices (/dev/null's and /dev/zero's numbers): Slurm takes a GPU's index from its device.
mknod "$dir/dev/nvidia0" c 1 3
mknod "$dir/dev/nvidia1" c 1 5
echo "NodeName=n1 Name=gpu File=$dir/dev/nvidia[0-1]" > "$dir/gres.conf"

export SLURM_CONF=$conf
# The daemons keep none of our descriptors: a caller reading our output would wait for them otherwise.
/usr/sbin/slurmctld -i < /dev/null > /dev/null 2>&1
for ((i = 1; i <= nodes; i++)); do
  /usr/sbin/slurmd -N "n$i" < /dev/null > /dev/null 2>&1
done
# Ready when every node is idle.
for _ in $(seq 100); do
  idle=$(sinfo -h -N -o "%t" 2> /dev/null | grep -c '^idle' || true)
  if [[ $idle == "$nodes" ]]; then
    echo "$conf"
    exit 0
  fi
  sleep 0.1
done
echo "cluster.sh: the nodes did not come up; see $dir/*.log" >&2
sinfo -N >&2 || true
exit 1
