#!/usr/bin/env bash
# Stop the single-node SLURM cluster of scripts/slurm/start.sh: slurmd, slurmctld and
# munged, each by the PID in its PID file (nothing else is touched), then remove the
# slurm.conf that start.sh wrote. Safe to run when nothing is running.
#
#   scripts/slurm/stop.sh [--quiet]
set -uo pipefail
DIR=${PSEUDOSUP_SLURM_DIR:-/tmp/pseudosup-slurm}
CONF=/etc/slurm/slurm.conf
MARK="# written by pseudosup scripts/slurm/start.sh"
quiet=${1:-}

say() { [ "$quiet" = --quiet ] || echo "$@"; }

stop_pid() {  # $1 name, $2 PID file: SIGTERM, wait up to 10 s, then SIGKILL
  local pid
  [ -s "$2" ] || return 0
  pid=$(cat "$2")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    say "stopped $1 (PID $pid)"
  fi
  rm -f "$2"
}

# jobs still running would be orphaned by slurmd: cancel them while slurmctld is up
if [ -s "$DIR/slurmctld.pid" ] && kill -0 "$(cat "$DIR/slurmctld.pid")" 2>/dev/null; then
  scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
  for _ in $(seq 30); do  # until their processes are gone (slurmstepd outlives slurmd)
    [ -z "$(squeue -h -t RUNNING,COMPLETING,PENDING -o %i 2>/dev/null)" ] && break
    sleep 0.5
  done
fi
stop_pid slurmd "$DIR/slurmd.pid"
stop_pid slurmctld "$DIR/slurmctld.pid"
stop_pid munged "$DIR/munge/munged.pid"
if [ -e "$CONF" ] && grep -qF "$MARK" "$CONF"; then
  rm -f "$CONF"
fi
exit 0
