#!/usr/bin/env bash
# test/bench/relay_webhook.sh — relay throughput with a webhook policy on, as a ratio to the same
# relay without policies (issue 4: at least 0.8).
#
#   bash test/bench/relay_webhook.sh [PATH-TO-DOTGATE]   (default: build-bench/proxy/dotgate, the
#                                                         release build relay.sh uses, brought up
#                                                         to date with ninja first)
#
# In one run, on loopback only, Postfix's smtp-source sends to two dotgate instances, both with
# --workers 1 and the downstream pool of relay.sh, both relaying to the same smtp-sink:
#   plain     dotgate with "policies": []
#   webhook   dotgate with one `http` policy whose URL is test/bench/webhook_server (one thread,
#             answers every POST at once with {"action":"accept"}; BENCH_WEBHOOK_DELAY_US holds
#             each answer that long)
# and prints, the two interleaved in each run so drift hits both:
#   - messages/s with 20 parallel sessions, 4 KiB messages, 1 recipient (median of BENCH_REPS
#     runs), and the ratio webhook / plain: the target;
#   - per-message latency with one session sending sequentially, and its ratio;
#   - CPU ms per message of each dotgate (utime+stime from /proc/PID/stat), and of webhook_server.
# It checks that the webhook was asked once per message of the webhook runs (webhook_server counts
# its requests) and that no verdict failed (dotgate logs each failure); a run where either is off
# says so and meets no target.
# Knobs: BENCH_MESSAGES (10000 per throughput run), BENCH_REPS (3), BENCH_LATENCY_MESSAGES (1000),
# BENCH_WEBHOOK_DELAY_US (0), BENCH_WEBHOOK_CONNECTIONS (the policy's max_connections: 8, its
# default), BENCH_POOL (2; 0: no pool), BENCH_REUSE (1: smtp-source -d), BENCH_PORT_BASE (22045;
# six ports from there, below the ephemeral range), BENCH_LOG_LEVEL (info), BENCH_BUILD
# (build-bench: where webhook_server's llhttp comes from), BENCH_JOBS (ninja -j), BENCH_DIR.
# Every process it starts is stopped by its pid on exit; every step has a time limit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

BUILD=${BENCH_BUILD:-build-bench}
DOTGATE=${1:-${DOTGATE:-$BUILD/proxy/dotgate}}
MESSAGES=${BENCH_MESSAGES:-10000}
REPS=${BENCH_REPS:-3}
LAT_MESSAGES=${BENCH_LATENCY_MESSAGES:-1000}
DELAY_US=${BENCH_WEBHOOK_DELAY_US:-0}
WEBHOOK_CONNECTIONS=${BENCH_WEBHOOK_CONNECTIONS:-8}
SESSIONS=20
SIZE=4096
BASE=${BENCH_PORT_BASE:-22045}
PLAIN_PORT=$BASE
SINK_PORT=$((BASE + 1))
WEBHOOK_PORT=$((BASE + 2))
PLAIN_ADMIN_PORT=$((BASE + 3))
WEBHOOK_ADMIN_PORT=$((BASE + 4))
SERVER_PORT=$((BASE + 5))
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
POOL=${BENCH_POOL:-2}
HELO_NAME=bench.example
POOL_JSON=off  # BENCH_POOL=0: no "pool" key at all
if [ "$POOL" != 0 ]; then POOL_JSON="{\"size\": $POOL, \"max_idle\": 60}"; fi
WORK=${BENCH_DIR:-$(mktemp -d /tmp/dotgate-bench-webhook.XXXXXX)}
mkdir -p "$WORK"
CLK_TCK=$(getconf CLK_TCK)
REUSE=()
[ "${BENCH_REUSE:-0}" = 1 ] && REUSE=(-d)
MAXCONN=1000

BENCH_NAME=relay_webhook.sh
# shellcheck source=test/bench/lib.sh
source "$ROOT/test/bench/lib.sh"  # log, die, PIDS and their cleanup, port_open, run_source, ...

for tool in smtp-sink smtp-source meson ninja c++ pkg-config python3; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install postfix meson ninja-build g++ pkg-config python3)"
done
note_load
for p in "$PLAIN_PORT" "$SINK_PORT" "$WEBHOOK_PORT" "$PLAIN_ADMIN_PORT" "$WEBHOOK_ADMIN_PORT" "$SERVER_PORT"; do
  port_open "$p" && die "port $p is in use (set BENCH_PORT_BASE)"
done

# ---- build: dotgate (when it is the default binary) and webhook_server --------------------------
[ -f "$BUILD/meson-private/coredata.dat" ] || meson setup "$BUILD" -Dbuildtype=release >&2
targets=(libllhttp.a)
[ "$DOTGATE" = "$BUILD/proxy/dotgate" ] && targets+=(proxy/dotgate)
log "building ${targets[*]} in $BUILD ($(meson_option "$BUILD" buildtype)) and webhook_server"
ninja -C "$BUILD" ${BENCH_JOBS:+-j "$BENCH_JOBS"} "${targets[@]}" >&2
[ -x "$DOTGATE" ] || die "no dotgate binary at $DOTGATE"
build_webhook_server "$BUILD" "$WORK/webhook_server"

# ---- start: sink, webhook_server, the two dotgates ----------------------------------------------
start_sink "$SINK_PORT" "$MAXCONN"

"$WORK/webhook_server" --listen 127.0.0.1:"$SERVER_PORT" --delay-us "$DELAY_US" >"$WORK/webhook_server.log" 2>&1 &
SERVER_PID=$!; PIDS+=("$SERVER_PID")
wait_port "$SERVER_PORT" "$SERVER_PID" webhook_server

# dotgate_config NAME PORT ADMIN-PORT POLICIES-JSON: writes $WORK/NAME.json.
dotgate_config() {
  mkdir -p "$WORK/spool-$1"
  cat >"$WORK/$1.json" <<EOF
{
  "listeners": [{"address": "127.0.0.1", "port": $2}],
  "downstream": {"address": "127.0.0.1", "port": $SINK_PORT$([ "$POOL" != 0 ] && echo ", \"pool\": $POOL_JSON" || true)},
  "admin": {"address": "127.0.0.1", "port": $3, "enabled": true},
  "workers": 1,
  "log": {"format": "text", "level": "$LOG_LEVEL"},
  "smtp": {"max_connections": $MAXCONN},
  "spool": {"directory": "$WORK/spool-$1"},
  "policies": $4
}
EOF
}
dotgate_config plain "$PLAIN_PORT" "$PLAIN_ADMIN_PORT" '[]'
dotgate_config webhook "$WEBHOOK_PORT" "$WEBHOOK_ADMIN_PORT" \
  "[{\"type\": \"http\", \"url\": \"http://127.0.0.1:$SERVER_PORT/verdict\", \"timeout\": 10, \"max_connections\": $WEBHOOK_CONNECTIONS}]"

"$DOTGATE" --config "$WORK/plain.json" --workers 1 >"$WORK/dotgate-plain.log" 2>&1 &
PLAIN_PID=$!; PIDS+=("$PLAIN_PID")
wait_port "$PLAIN_PORT" "$PLAIN_PID" dotgate-plain
"$DOTGATE" --config "$WORK/webhook.json" --workers 1 >"$WORK/dotgate-webhook.log" 2>&1 &
WEBHOOK_PID=$!; PIDS+=("$WEBHOOK_PID")
wait_port "$WEBHOOK_PORT" "$WEBHOOK_PID" dotgate-webhook

declare -A TARGET_PORT=([plain]=$PLAIN_PORT [webhook]=$WEBHOOK_PORT)
declare -A TARGET_PID=([plain]=$PLAIN_PID [webhook]=$WEBHOOK_PID)
TARGETS=(plain webhook)
declare -A CPU_TICKS=([plain]=0 [webhook]=0) CPU_MSGS=([plain]=0 [webhook]=0)
SERVER_TICKS0=$(cpu_ticks "$SERVER_PID")

# ---- throughput: 20 sessions, 1 recipient --------------------------------------------------------
log "throughput: $SESSIONS sessions, $MESSAGES messages of $SIZE bytes per run, 1 recipient, $REPS runs${REUSE[*]:+, connections reused (-d)}"
declare -A runs=() RATE=()
for rep in $(seq 1 "$REPS"); do
  for target in "${TARGETS[@]}"; do
    run_source "$target" "$SESSIONS" "$MESSAGES" 1; secs=$RUN_SECS
    if [ "$secs" = FAIL ]; then rate=FAIL; else rate=$(awk -v n="$MESSAGES" -v s="$secs" 'BEGIN { printf "%.0f\n", n / s }'); fi
    runs[$target]="${runs[$target]:-} $rate"
    log "  run $rep, $target: $rate msg/s"
  done
done
for target in "${TARGETS[@]}"; do RATE[$target]=$(median <<<"${runs[$target]}"); done

# ---- latency: one session, sequential ------------------------------------------------------------
log "latency: 1 session, $LAT_MESSAGES messages, 1 recipient"
declare -A lruns=() LAT=()
for rep in $(seq 1 "$REPS"); do
  for target in "${TARGETS[@]}"; do
    run_source "$target" 1 "$LAT_MESSAGES" 1; secs=$RUN_SECS
    if [ "$secs" = FAIL ]; then ms=FAIL; else ms=$(awk -v n="$LAT_MESSAGES" -v s="$secs" 'BEGIN { printf "%.3f\n", s * 1000 / n }'); fi
    lruns[$target]="${lruns[$target]:-} $ms"
    log "  run $rep, $target: $ms ms/message"
  done
done
for target in "${TARGETS[@]}"; do LAT[$target]=$(median <<<"${lruns[$target]}"); done

# ---- CPU per message; did every webhook message reach the webhook? -------------------------------
declare -A CPU
for target in "${TARGETS[@]}"; do
  CPU[$target]=$(awk -v t="${CPU_TICKS[$target]}" -v n="${CPU_MSGS[$target]}" -v hz="$CLK_TCK" \
                 'BEGIN { if (n == 0) print "-"; else printf "%.3f\n", t * 1000 / hz / n }')
done
SERVER_CPU=$(awk -v t="$(($(cpu_ticks "$SERVER_PID") - SERVER_TICKS0))" -v n="${CPU_MSGS[webhook]}" -v hz="$CLK_TCK" \
             'BEGIN { if (n == 0) print "-"; else printf "%.3f\n", t * 1000 / hz / n }')
for target in "${TARGETS[@]}"; do
  kill -0 "${TARGET_PID[$target]}" 2>/dev/null || die "dotgate ($target) died during the benchmark (log: $WORK/dotgate-$target.log)"
done
stop_pid "$SERVER_PID" || log "webhook_server did not stop cleanly (log: $WORK/webhook_server.log)"
SERVED=$(sed -n 's/^webhook_server: \([0-9]*\) requests on .*/\1/p' "$WORK/webhook_server.log")
SERVED=${SERVED:-0}
# Connections the policy opened: its keep-alive pool (one per worker) lives while some session
# that used it is open, so a sender whose sessions never overlap pays a connect per message.
SERVER_CONNS=$(sed -n 's/^webhook_server: [0-9]* requests on \([0-9]*\) connections.*/\1/p' "$WORK/webhook_server.log")
EXPECTED=${CPU_MSGS[webhook]}
FAILED_VERDICTS=$(grep -c 'http policy: verdict service failed' "$WORK/dotgate-webhook.log" || true)
WEBHOOK_OK=1
if [ "$SERVED" != "$EXPECTED" ] || [ "$FAILED_VERDICTS" != 0 ]; then
  WEBHOOK_OK=0
  log "webhook_server answered $SERVED requests for $EXPECTED messages; $FAILED_VERDICTS verdicts failed (logs: $WORK)"
fi

# ---- summary ------------------------------------------------------------------------------------
echo
echo "relay benchmark with a webhook — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), load average at start $LOAD_AT_START"
echo "smtp-source: $SESSIONS sessions, $SIZE-byte messages, 1 recipient, $MESSAGES per run, median of $REPS runs;" \
     "$([ ${#REUSE[@]} -gt 0 ] && echo "connections reused (-d)" || echo "one connection per message")"
echo "dotgate: $DOTGATE, --workers 1, log level $LOG_LEVEL, downstream.pool $POOL_JSON;" \
     "plain: policies []; webhook: policies [http, max_connections $WEBHOOK_CONNECTIONS] → webhook_server (delay $DELAY_US µs)"
echo
printf '%-8s %11s %6s %12s %6s %11s\n' target "msg/s 1rcpt" ratio "latency ms" ratio "CPU ms/msg"
for target in "${TARGETS[@]}"; do
  printf '%-8s %11s %6s %12s %6s %11s\n' "$target" \
    "${RATE[$target]}" "$(ratio "${RATE[$target]}" "${RATE[plain]}")" \
    "${LAT[$target]}" "$(ratio "${LAT[$target]}" "${LAT[plain]}")" "${CPU[$target]}"
done
echo "webhook_server: $SERVED requests for $EXPECTED webhook messages on ${SERVER_CONNS:-?} connections," \
     "CPU $SERVER_CPU ms/msg; failed verdicts: $FAILED_VERDICTS"
echo
echo "target (issue 4, dotgate with one worker):"
tr=$(ratio "${RATE[webhook]}" "${RATE[plain]}")
if [ "$tr" = - ] || [ "$WEBHOOK_OK" = 0 ]; then
  check "throughput with a webhook >= 0.8x without policies" "n/a (a run failed or the webhook was not asked)"
else
  check "throughput with a webhook >= 0.8x without policies (${tr}x)" "$(verdict "$tr >= 0.8")"
fi
echo
echo "logs and configs: $WORK"
