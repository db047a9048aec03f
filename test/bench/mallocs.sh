#!/usr/bin/env bash
# test/bench/mallocs.sh — malloc calls per message, for one or more dotgate binaries.
#
#   bash test/bench/mallocs.sh BINARY [BINARY...]
#
# Each binary runs alone (--workers 1, policies: limits, pool off, log level BENCH_LOG_LEVEL) in
# front of smtp-sink on loopback; smtp-source sends BENCH_MESSAGES (2000) messages of 4 KiB, one
# recipient, one connection each, from 4 sessions. A uprobe on libc's malloc (perf probe; needs
# root and tracefs, mounted here if it is not) counts the calls the dotgate process makes during
# the run; printed per message, after subtracting nothing (start-up is before the count starts).
# Every process it starts is stopped by its pid on exit; every step has a time limit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
[ "$#" -ge 1 ] || { echo "usage: $0 BINARY [BINARY...]" >&2; exit 2; }
MESSAGES=${BENCH_MESSAGES:-2000}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
BASE=${BENCH_PORT_BASE:-23025}
SINK_PORT=$((BASE + 1))
SIZE=4096
HELO_NAME=bench.example
REUSE=()
WORK=${BENCH_DIR:-$(mktemp -d /tmp/dotgate-mallocs.XXXXXX)}
mkdir -p "$WORK"
BENCH_NAME=mallocs.sh
# shellcheck source=test/bench/lib.sh
source "$ROOT/test/bench/lib.sh"
declare -A TARGET_PORT=() TARGET_PID=() CPU_TICKS=() CPU_MSGS=()

command -v perf >/dev/null || die "perf is needed (apt-get install linux-perf)"
[ -d /sys/kernel/tracing/events ] || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null ||
  die "tracefs is not available: uprobes cannot count malloc here"
LIBC=$(ldd "$1" | awk '/libc\.so/ { print $3 }')
perf probe -q -d probe_libc:malloc 2>/dev/null || true
perf probe -q -x "$LIBC" malloc >/dev/null 2>&1 || die "perf probe on $LIBC malloc failed"
trap 'perf probe -q -d probe_libc:malloc 2>/dev/null || true; cleanup' EXIT

start_sink "$SINK_PORT" 100
n=0
for binary in "$@"; do
  n=$((n + 1))
  port=$((BASE + 10 + n))
  cat >"$WORK/dotgate-$n.json" <<JSON
{ "listeners": [{"address": "127.0.0.1", "port": $port}],
  "downstream": {"address": "127.0.0.1", "port": $SINK_PORT},
  "admin": {"enabled": false}, "workers": 1,
  "log": {"format": "text", "level": "$LOG_LEVEL"},
  "spool": {"directory": "$WORK"}, "policies": [{"type": "limits"}] }
JSON
  "$binary" --config "$WORK/dotgate-$n.json" --workers 1 >"$WORK/dotgate-$n.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_port "$port" "$pid" "dotgate-$n"
  TARGET_PORT[t$n]=$port
  run_source "t$n" 4 50 1  # warm-up: first allocations of every pool and buffer
  timeout 120 perf stat -x, -e probe_libc:malloc -p "$pid" -o "$WORK/perf-$n.txt" -- sleep 600 &
  perf_pid=$!
  sleep 0.5
  run_source "t$n" 4 "$MESSAGES" 1
  kill -INT "$perf_pid" 2>/dev/null || true
  wait "$perf_pid" 2>/dev/null || true
  calls=$(awk -F, '/probe_libc:malloc/ { print $1 }' "$WORK/perf-$n.txt")
  printf '%s\t%s malloc calls\t%.1f per message\n' "$binary" "$calls" "$(awk -v c="$calls" -v m="$MESSAGES" 'BEGIN { print c / m }')"
  stop_pid "$pid" || true
done
