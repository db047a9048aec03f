#!/usr/bin/env bash
# test/bench/soak.sh — the long soak (issue 15): 30 minutes of mail under load and faults through
# dotgate into a real private Postfix, every message reconciled.
#
#   sudo bash test/bench/soak.sh [PATH-TO-DOTGATE]    (default: build-bench/proxy/dotgate, built
#                                                      with -Dbuildtype=release when missing)
#
# The driver is test/bench/soak.py (its header says what runs, which faults, and how each message
# is reconciled); the CI variant, two minutes with a fixed seed, is test/integration/test_soak.py.
# It prints the reconciliation table (sent, accepted, refused, cut, in the RFC 1047 window,
# delivered, lost, duplicated, unexpected deliveries, faults by kind, the drain, dotgate's RSS and
# file descriptors early/peak/last) and exits 1 on any lost, duplicated or unexpectedly delivered
# message, an unanswered dot, a policy escape or a failed drain.
# Needs root (a private Postfix instance: alternate config and queue directories, postdrop).
# Knobs (environment):
#   SOAK_DURATION   seconds of load (1800)
#   SOAK_SEED       the seed of the faults' times and kinds and of every client's messages (15)
#   SOAK_CLIENTS    Python client threads (8)
#   SOAK_BULK       smtp-source parallel sessions as background load, 0 = none (2)
#   SOAK_FAULT_GAP  mean seconds between two faults (20)
#   SOAK_THINK      a client's pause between its sessions, at most, seconds (0.1)
#   SOAK_DRAIN      dotgate's drain_grace at the final SIGTERM, seconds (5)
#   SOAK_VERBOSE    1: a progress line every 2 s and each fault as it happens (1)
# Every process is started and stopped by pid by the driver (test/integration/harness.py).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${1:-}
if [ -z "$BIN" ]; then
  BIN=$ROOT/build-bench/proxy/dotgate
  if [ ! -x "$BIN" ]; then
    [ -d "$ROOT/build-bench" ] || meson setup "$ROOT/build-bench" "$ROOT" -Dbuildtype=release >/dev/null
    ninja -C "$ROOT/build-bench" proxy/dotgate >/dev/null
  fi
fi
[ -x "$BIN" ] || { echo "soak.sh: $BIN is not an executable" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "soak.sh: needs root (a private Postfix instance)" >&2; exit 1; }

echo "==> load at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
verbose=()
[ "${SOAK_VERBOSE:-1}" = 1 ] && verbose=(--verbose)
rc=0
DOTGATE_BIN=$BIN python3 "$ROOT/test/bench/soak.py" \
  --duration "${SOAK_DURATION:-1800}" --seed "${SOAK_SEED:-15}" --clients "${SOAK_CLIENTS:-8}" \
  --bulk-sessions "${SOAK_BULK:-2}" --fault-gap "${SOAK_FAULT_GAP:-20}" --think "${SOAK_THINK:-0.1}" \
  --drain-grace "${SOAK_DRAIN:-5}" "${verbose[@]}" || rc=$?
echo "==> load at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
exit "$rc"
