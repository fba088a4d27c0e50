#!/usr/bin/env bash
# Install the Debian packages of a single-node SLURM cluster (slurm-wlm: slurmctld,
# slurmd and the client commands; munge: authentication). Idempotent and quiet: does
# nothing when they are already installed. Needs root and apt-get (Debian/Ubuntu).
#
#   scripts/slurm/install.sh
set -euo pipefail
PKGS=(slurm-wlm munge)
need=(slurmctld slurmd sbatch squeue sinfo scontrol munged)

have_all() { local c; for c in "${need[@]}"; do command -v "$c" >/dev/null || [ -x "/usr/sbin/$c" ] || return 1; done; }

if have_all; then
  echo "slurm-wlm and munge already installed"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "error: installing ${PKGS[*]} needs root and apt-get (Debian/Ubuntu); install them yourself" >&2
  exit 2
fi
# Package scripts must not try to start services (there is no systemd here; start.sh
# starts the daemons itself): policy-rc.d exit 101 = "not allowed".
made_policy=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1
fi
trap '[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! apt-get install -y -q --no-install-recommends "${PKGS[@]}" >"$log" 2>&1; then
  # a fresh machine may have no package lists yet
  apt-get update -q >>"$log" 2>&1 || true
  apt-get install -y -q --no-install-recommends "${PKGS[@]}" >>"$log" 2>&1 \
    || { cat "$log" >&2; echo "error: apt-get install ${PKGS[*]} failed (log above)" >&2; exit 2; }
fi
rm -f "$log"
have_all || { echo "error: ${PKGS[*]} installed but some of ${need[*]} are missing" >&2; exit 2; }
echo "installed ${PKGS[*]} ($(dpkg-query -W -f '${Version}' slurmctld))"
