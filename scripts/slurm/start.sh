#!/usr/bin/env bash
# Start a throwaway single-node SLURM cluster on this machine: munged, slurmctld and
# slurmd, started directly (no systemd), state, logs and PID files in one directory.
# For trying and testing the SLURM profile (profiles/slurm) without a real cluster.
# Needs root and the Debian packages (scripts/slurm/install.sh). Stop it with
# scripts/slurm/stop.sh (by PID).
#
#   scripts/slurm/start.sh        # prints the directory and the node once it is idle
#
# Environment: PSEUDOSUP_SLURM_DIR (default /tmp/pseudosup-slurm): state, logs, PIDs.
#
# Why it looks like this (SLURM 22.05 from Debian, in containers):
# - slurm.conf is written to the default path /etc/slurm/slurm.conf: the executor
#   plugin's job step drops SLURM_CONF, so a config elsewhere would not be found inside
#   jobs. An existing slurm.conf that this script did not write is never overwritten.
# - no cgroups in containers: proctrack/linuxproc and task/none; memory limits are
#   enforced by sampling (jobacct_gather/linux every second + OverMemoryKill), so a job
#   over its mem_mb is killed by SLURM as on a real cluster.
# - no accounting daemon: `sacct` cannot answer, so the profile queries job states with
#   `squeue`, and MinJobAge keeps finished jobs visible to it (>= 3 x the plugin's first
#   status-check delay); every finished job is also written to jobcomp.log.
set -euo pipefail
DIR=${PSEUDOSUP_SLURM_DIR:-/tmp/pseudosup-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by pseudosup scripts/slurm/start.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

die() { echo "error: $*" >&2; exit 2; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

[ "$(id -u)" = 0 ] || die "starting slurmctld/slurmd/munged needs root"
for c in munged slurmctld slurmd scontrol sinfo; do
  command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || die "$c not found: run scripts/slurm/install.sh"
done
export PATH="$PATH:/usr/sbin"

if alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" && alive "$DIR/munge/munged.pid"; then
  echo "already running (PIDs in $DIR)"
  exit 0
fi
if [ -e "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
  die "$CONF exists and was not written by this script: this machine has a SLURM setup of its own; not touching it"
fi
"$HERE/stop.sh" --quiet  # leftovers of an earlier, interrupted start

mkdir -p "$DIR/ctld" "$DIR/spool" "$DIR/munge"
rm -f "$DIR/jobcomp.log"  # a new cluster: only its own jobs in the completion log
# munged insists on a socket directory owned by its own user, writable by no one
# else, and open (x) to all so that clients can reach the socket
chown munge:munge "$DIR/munge" && chmod 755 "$DIR/munge"
key=/etc/munge/munge.key
if [ ! -s "$key" ]; then  # the munge package makes one; make our own if it did not
  key="$DIR/munge/munge.key"
  [ -s "$key" ] || { dd if=/dev/urandom of="$key" bs=1024 count=1 status=none; }
  chown munge:munge "$key" && chmod 400 "$key"
fi
runuser -u munge -- munged --socket="$DIR/munge/munge.socket" --key-file="$key" \
  --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" --seed-file="$DIR/munge/munged.seed"

node=$(slurmd -C | head -n 1)          # NodeName=<host> CPUs=.. ... RealMemory=..
name=$(sed -E 's/^NodeName=([^ ]+).*/\1/' <<<"$node")
mkdir -p "$(dirname "$CONF")"
cat > "$CONF.tmp" <<CONF
$MARK (a throwaway single-node cluster for tests; scripts/slurm/stop.sh removes it)
ClusterName=pseudosup
SlurmctldHost=$name(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/ctld
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=1
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.log
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MinJobAge=3600
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
KillWait=5
InactiveLimit=0
$node State=UNKNOWN
PartitionName=debug Nodes=$name Default=YES MaxTime=INFINITE State=UP
CONF
mv "$CONF.tmp" "$CONF"

slurmctld -i     # -i: ignore state left by an earlier cluster in $DIR/ctld
slurmd
for _ in $(seq 60); do
  state=$(sinfo -h -n "$name" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  sleep 0.5
done
if [ "$state" != idle ]; then
  tail -n 20 "$DIR/slurmctld.log" "$DIR/slurmd.log" "$DIR/munge/munged.log" >&2 || true
  die "the node did not become idle within 30 s (state: '${state:-none}'); logs above, in $DIR"
fi
echo "SLURM running: node $name idle, partition debug; state, logs, PIDs in $DIR"
