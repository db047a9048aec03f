#!/usr/bin/env bash
# test/bench/relay.sh — what dotgate costs compared with no proxy and with a blind TCP relay.
#
#   bash test/bench/relay.sh [PATH-TO-DOTGATE]     (default: build-bench/proxy/dotgate, built
#                                                   with -Dbuildtype=release when missing)
#
# In one run, on loopback only, Postfix's smtp-source sends to three targets that all end at the
# same smtp-sink (which discards the mail):
#   direct    smtp-source → smtp-sink
#   haproxy   smtp-source → haproxy (mode tcp, nbthread 1; BENCH_WORKERS) → smtp-sink
#   dotgate   smtp-source → dotgate (--workers 1 (BENCH_WORKERS), policies: limits, downstream.pool)
#             → smtp-sink
#   tuned     the same dotgate binary, configured for speed: downstream.pool size 20 and
#             max_sessions 100 (MTA connections carried from one client to the next), busy_poll_us
#             100 (the worker polls 100 µs after each read instead of sleeping)
# and prints:
#   - messages/s with 20 parallel sessions, 4 KiB messages, 1 and 5 recipients, and the ratio to
#     direct (median of BENCH_REPS runs, the targets interleaved in each run so drift hits all);
#   - per-message latency with one session sending sequentially, and its ratio to direct;
#   - CPU ms per message of the proxy process (utime+stime from /proc/PID/stat, over its runs);
#   - RSS per idle session: (VmRSS with 5,000 sessions open and greeted - VmRSS before) / 5,000,
#     for dotgate and for haproxy (each session is a client and a downstream connection).
# smtp-source opens one connection per message (the default; an MX sees mostly that); BENCH_REUSE=1
# sends all of a session's messages over one connection (smtp-source -d) instead.
#
# dotgate keeps BENCH_POOL (2) pre-greeted downstream connections (downstream.pool.size; 0: off, and
# no "pool" key, so a dotgate from before the pool runs too). BENCH_POOL_EHLO=1 adds
# downstream.pool.ehlo "bench.example"; BENCH_MAX_SESSIONS=N sets downstream.pool.max_sessions. The ehlo one does not pay here: smtp-source says HELO, not EHLO, so
# every speculated connection is dropped for a fresh one. See README.md, "Downstream connection pool".
# BENCH_UVRELAY=1 adds a fifth target, uvrelay: test/bench/uv_relay.c (built here with cc), a blind
# byte relay on libuv, to tell what the event library costs from what dotgate's own work costs.
# BENCH_BASELINE=PATH adds two more targets, base and base_tuned: another dotgate binary (an
# earlier commit's) with the dotgate and tuned configs, so a change is measured before and after
# in one interleaved run.
# BENCH_TUNED=0 leaves the tuned target out; BENCH_TUNED_POOL (20), BENCH_TUNED_MAX_SESSIONS (100),
# BENCH_TUNED_BUSY_POLL (100) are its settings.
# BENCH_WORKERS=N runs dotgate and tuned with --workers N and haproxy with nbthread N (default 1).
# BENCH_CORES=1 is the two-core mode: the targets are direct, haproxy (nbthread 1), haproxy2
# (nbthread 2), dotgate (--workers 1), dotgate2 (--workers 2), tuned and tuned2 (BENCH_TUNED=0: no
# tuned ones), interleaved in each run; it measures throughput only (no latency, no idle RSS) and
# prints each one's 2/1 ratio, the CPU per message of the proxy AND of the load generator
# (smtp-source: this shell's waited-for children, /proc/$$/stat cutime+cstime; smtp-sink: its
# /proc/PID/stat), the machine's busy share during the runs (/proc/stat, every process on it), and
# how the two workers of dotgate2/tuned2 shared the work (CPU ticks of each "dotgate-wN" thread).
# Knobs: BENCH_MESSAGES (10000 per throughput run), BENCH_REPS (3), BENCH_LATENCY_MESSAGES (1000),
# BENCH_IDLE (5000), BENCH_PORT_BASE (22025; keep it below the ephemeral range, 32768+, which the bench's own clients use), BENCH_LOG_LEVEL (dotgate's log level, info), BENCH_DIR.
# Every process it starts is stopped by its pid on exit; every step has a time limit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

DOTGATE=${1:-${DOTGATE:-build-bench/proxy/dotgate}}
MESSAGES=${BENCH_MESSAGES:-10000}
REPS=${BENCH_REPS:-3}
LAT_MESSAGES=${BENCH_LATENCY_MESSAGES:-1000}
IDLE=${BENCH_IDLE:-5000}
SESSIONS=20
SIZE=4096
BASE=${BENCH_PORT_BASE:-22025}
DOTGATE_PORT=$BASE
SINK_PORT=$((BASE + 1))
HAPROXY_PORT=$((BASE + 2))
ADMIN_PORT=$((BASE + 3))
TUNED_PORT=$((BASE + 4))
TUNED_ADMIN_PORT=$((BASE + 5))
UVRELAY_PORT=$((BASE + 6))
UVRELAY=${BENCH_UVRELAY:-0}
BASELINE=${BENCH_BASELINE:-}
BASE_PORT=$((BASE + 7))
BASE_ADMIN_PORT=$((BASE + 8))
BASE_TUNED_PORT=$((BASE + 9))
BASE_TUNED_ADMIN_PORT=$((BASE + 10))
TUNED=${BENCH_TUNED:-1}
WORKERS=${BENCH_WORKERS:-1}
CORES=${BENCH_CORES:-0}
NEXT_PORT=$((BASE + 11))  # the cores mode's second targets take ports from here on
TUNED_POOL_JSON="{\"size\": ${BENCH_TUNED_POOL:-20}, \"max_idle\": 60, \"max_sessions\": ${BENCH_TUNED_MAX_SESSIONS:-100}}"
TUNED_BUSY_POLL=${BENCH_TUNED_BUSY_POLL:-100}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
POOL=${BENCH_POOL:-2}
POOL_EHLO=${BENCH_POOL_EHLO:-0}
MAX_SESSIONS=${BENCH_MAX_SESSIONS:-1}
HELO_NAME=bench.example
POOL_JSON=off  # BENCH_POOL=0: no "pool" key at all, so a dotgate from before the pool runs too
if [ "$POOL" != 0 ]; then
  POOL_JSON="{\"size\": $POOL, \"max_idle\": 60"
  [ "$POOL_EHLO" = 1 ] && POOL_JSON="$POOL_JSON, \"ehlo\": \"$HELO_NAME\""
  [ "$MAX_SESSIONS" != 1 ] && POOL_JSON="$POOL_JSON, \"max_sessions\": $MAX_SESSIONS"
  POOL_JSON="$POOL_JSON}"
fi
WORK=${BENCH_DIR:-$(mktemp -d /tmp/dotgate-bench.XXXXXX)}
mkdir -p "$WORK"
CLK_TCK=$(getconf CLK_TCK)
REUSE=()
[ "${BENCH_REUSE:-0}" = 1 ] && REUSE=(-d)

BENCH_NAME=relay.sh
# shellcheck source=test/bench/lib.sh
source "$ROOT/test/bench/lib.sh"  # log, die, PIDS and their cleanup, port_open, run_source, ...

for tool in smtp-sink smtp-source haproxy python3; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install postfix haproxy python3)"
done

note_load

# ---- the dotgate binary -------------------------------------------------------------------------
need_dotgate

# ---- limits: 5,000 idle sessions are 5,000 client + 5,000 downstream sockets in dotgate ----------
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi
need=$((2 * IDLE + 1000))
if [ "$(ulimit -n)" -lt "$need" ]; then
  log "warning: open files limit $(ulimit -n) < $need; lowering BENCH_IDLE"
  IDLE=$((($(ulimit -n) - 1000) / 2))
fi
MAXCONN=$((IDLE + 1000))
for p in "$DOTGATE_PORT" "$SINK_PORT" "$HAPROXY_PORT" "$ADMIN_PORT" "$TUNED_PORT" "$TUNED_ADMIN_PORT" "$UVRELAY_PORT" \
         $([ "$CORES" = 1 ] && seq "$NEXT_PORT" $((NEXT_PORT + 5)) || true); do
  port_open "$p" && die "port $p is in use (set BENCH_PORT_BASE)"
done

# ---- start the three: sink, haproxy, dotgate ----------------------------------------------------
start_sink "$SINK_PORT" "$MAXCONN"

# start_haproxy NAME PORT NBTHREAD: a blind byte relay, what an SMTP-unaware proxy costs; nbthread
# as many as dotgate gets workers. Registers target NAME (add_target, below).
start_haproxy() {
  local name=$1 port=$2 threads=$3 pid
  haproxy_tcp_config "$WORK/$name.cfg" "$port" "$SINK_PORT" "$threads" "$MAXCONN"
  haproxy -db -q -f "$WORK/$name.cfg" >"$WORK/$name.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_port "$port" "$pid" "$name"
  add_target "$name" "$port" "$pid"
}

# add_target NAME PORT PID: a proxy the runs below measure (throughput, latency, CPU, idle RSS).
add_target() {
  TARGET_PORT[$1]=$2
  TARGET_PID[$1]=$3
  TARGETS+=("$1")
  PROXIES+=("$1")
  CPU_TICKS[$1]=0; CPU_MSGS[$1]=0
}

# start_dotgate NAME PORT ADMIN_PORT POOL_JSON EXTRA [BINARY [WORKERS]]: writes $WORK/NAME.json
# (POOL_JSON: the downstream.pool object, or "off" for none; EXTRA: more top-level members, each
# ending in a comma), starts dotgate (or BINARY) on it with --workers WORKERS (BENCH_WORKERS),
# registers it as target NAME.
start_dotgate() {
  local name=$1 port=$2 admin=$3 pool=$4 extra=$5 binary=${6:-$DOTGATE} workers=${7:-$WORKERS} pid
  cat >"$WORK/$name.json" <<EOF
{
  "listeners": [{"address": "127.0.0.1", "port": $port}],
  "downstream": {"address": "127.0.0.1", "port": $SINK_PORT$([ "$pool" != off ] && echo ", \"pool\": $pool" || true)},
  "admin": {"address": "127.0.0.1", "port": $admin, "enabled": true},
  "workers": $workers, $extra
  "log": {"format": "text", "level": "$LOG_LEVEL"},
  "smtp": {"max_connections": $MAXCONN},
  "spool": {"directory": "$WORK"},
  "policies": [{"type": "limits"}]
}
EOF
  "$binary" --config "$WORK/$name.json" --workers "$workers" >"$WORK/$name.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_port "$port" "$pid" "$name"
  add_target "$name" "$port" "$pid"
}

declare -A TARGET_PORT=([direct]=$SINK_PORT)
declare -A TARGET_PID=()
TARGETS=(direct)
PROXIES=()
declare -A CPU_TICKS=() CPU_MSGS=() SRC_TICKS=() SINKCPU_TICKS=() BUSY_RUNS=()
[ "$CORES" = 1 ] && WORKERS=1  # the cores mode's first targets have one worker, its second two
start_haproxy haproxy "$HAPROXY_PORT" "$WORKERS"
[ "$CORES" = 1 ] && { start_haproxy haproxy2 "$NEXT_PORT" 2; NEXT_PORT=$((NEXT_PORT + 1)); }
start_dotgate dotgate "$DOTGATE_PORT" "$ADMIN_PORT" "$POOL_JSON" ""
DOTGATE_PID=${TARGET_PID[dotgate]}
if [ "$CORES" = 1 ]; then
  start_dotgate dotgate2 "$NEXT_PORT" $((NEXT_PORT + 1)) "$POOL_JSON" "" "$DOTGATE" 2
  NEXT_PORT=$((NEXT_PORT + 2))
fi
if [ "$TUNED" = 1 ]; then
  start_dotgate tuned "$TUNED_PORT" "$TUNED_ADMIN_PORT" "$TUNED_POOL_JSON" "\"busy_poll_us\": $TUNED_BUSY_POLL,"
  TUNED_PID=${TARGET_PID[tuned]}
  if [ "$CORES" = 1 ]; then
    start_dotgate tuned2 "$NEXT_PORT" $((NEXT_PORT + 1)) "$TUNED_POOL_JSON" "\"busy_poll_us\": $TUNED_BUSY_POLL," "$DOTGATE" 2
    NEXT_PORT=$((NEXT_PORT + 2))
  fi
fi
if [ -n "$BASELINE" ]; then
  [ -x "$BASELINE" ] || die "BENCH_BASELINE=$BASELINE is not an executable"
  start_dotgate base "$BASE_PORT" "$BASE_ADMIN_PORT" "$POOL_JSON" "" "$BASELINE"
  if [ "$TUNED" = 1 ]; then
    start_dotgate base_tuned "$BASE_TUNED_PORT" "$BASE_TUNED_ADMIN_PORT" "$TUNED_POOL_JSON" \
      "\"busy_poll_us\": $TUNED_BUSY_POLL," "$BASELINE"
  fi
fi
if [ "$UVRELAY" = 1 ]; then
  # The reference point: a blind relay on the same event library (test/bench/uv_relay.c).
  cc -O2 -o "$WORK/uv_relay" "$ROOT/test/bench/uv_relay.c" -luv || die "cannot build uv_relay (apt-get install gcc libuv1-dev)"
  "$WORK/uv_relay" "$UVRELAY_PORT" "$SINK_PORT" >"$WORK/uvrelay.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_port "$UVRELAY_PORT" "$pid" uvrelay
  add_target uvrelay "$UVRELAY_PORT" "$pid"
fi

# ---- throughput: 20 sessions, 1 and 5 recipients -----------------------------------------------
declare -A RATE RUN_TIME
log "throughput: $SESSIONS sessions, $MESSAGES messages of $SIZE bytes per run, $REPS runs${REUSE[*]:+, connections reused (-d)}"
for rcpts in 1 5; do
  declare -A runs=()
  for rep in $(seq 1 "$REPS"); do
    for target in "${TARGETS[@]}"; do
      run_source "$target" "$SESSIONS" "$MESSAGES" "$rcpts"; secs=$RUN_SECS
      if [ "$secs" = FAIL ]; then rate=FAIL; else rate=$(awk -v n="$MESSAGES" -v s="$secs" 'BEGIN { printf "%.0f\n", n / s }'); fi
      runs[$target]="${runs[$target]:-} $rate"
      SRC_TICKS[$target]=$((${SRC_TICKS[$target]:-0} + RUN_SOURCE_TICKS))
      SINKCPU_TICKS[$target]=$((${SINKCPU_TICKS[$target]:-0} + RUN_SINK_TICKS))
      BUSY_RUNS[$target]="${BUSY_RUNS[$target]:-} $RUN_BUSY_PCT"
      [ "$secs" != FAIL ] && RUN_TIME[$target]=$(awk -v a="${RUN_TIME[$target]:-0}" -v b="$secs" 'BEGIN { print a + b }')
      log "  run $rep, $rcpts rcpt, $target: $rate msg/s (machine busy $RUN_BUSY_PCT %)"
    done
  done
  for target in "${TARGETS[@]}"; do RATE[$target,$rcpts]=$(median <<<"${runs[$target]}"); done
  unset runs
done

if [ "$CORES" = 1 ]; then
  # shellcheck source=test/bench/relay_cores.sh
  source "$ROOT/test/bench/relay_cores.sh"  # the two-core summary; then the EXIT trap stops all
  exit 0
fi

# ---- latency: one session, sequential ----------------------------------------------------------
declare -A LAT
log "latency: 1 session, $LAT_MESSAGES messages, 1 recipient"
declare -A lruns=()
for rep in $(seq 1 "$REPS"); do
  for target in "${TARGETS[@]}"; do
    run_source "$target" 1 "$LAT_MESSAGES" 1; secs=$RUN_SECS
    if [ "$secs" = FAIL ]; then ms=FAIL; else ms=$(awk -v n="$LAT_MESSAGES" -v s="$secs" 'BEGIN { printf "%.3f\n", s * 1000 / n }'); fi
    lruns[$target]="${lruns[$target]:-} $ms"
    log "  run $rep, $target: $ms ms/message"
  done
done
for target in "${TARGETS[@]}"; do LAT[$target]=$(median <<<"${lruns[$target]}"); done

# ---- CPU per message (over all of the proxy's throughput and latency runs) ----------------------
declare -A CPU
for target in "${PROXIES[@]}"; do
  CPU[$target]=$(awk -v t="${CPU_TICKS[$target]}" -v n="${CPU_MSGS[$target]}" -v hz="$CLK_TCK" \
                 'BEGIN { if (n == 0) print "-"; else printf "%.3f\n", t * 1000 / hz / n }')
done

# ---- RSS per idle session ----------------------------------------------------------------------
declare -A IDLE_KIB
idle_rss() {  # TARGET: prints KiB per idle session, or FAIL
  local target=$1 pid=${TARGET_PID[$1]} before with ready fifo client
  fifo="$WORK/idle.$target.stdin"
  rm -f "$fifo"; mkfifo "$fifo"
  sleep 1
  before=$(rss_kib "$pid")
  # The fifo is the client's stdin: closing our end (fd 7) tells it to close its sessions.
  python3 "$ROOT/test/bench/idle_sessions.py" 127.0.0.1 "${TARGET_PORT[$target]}" "$IDLE" \
      --timeout 90 --hold 180 <"$fifo" >"$WORK/idle.$target.out" 2>"$WORK/idle.$target.err" &
  client=$!; PIDS+=("$client")
  exec 7>"$fifo"
  for _ in $(seq 1 1000); do
    grep -q '^ready' "$WORK/idle.$target.out" 2>/dev/null && break
    kill -0 "$client" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1  # let the last greetings' buffers settle
  with=$(rss_kib "$pid")
  ready=$(cat "$WORK/idle.$target.out" 2>/dev/null || true)
  exec 7>&-
  wait "$client" 2>/dev/null || true
  rm -f "$fifo"
  log "  $target: VmRSS $before KiB before, $with KiB with $IDLE sessions ($ready)"
  if [ "$ready" != "ready $IDLE $IDLE" ]; then
    log "  $target: not every idle session was greeted: $(cat "$WORK/idle.$target.err")"
    echo FAIL
    return
  fi
  awk -v a="$before" -v b="$with" -v n="$IDLE" 'BEGIN { printf "%.1f\n", (b - a) / n }'
}
log "memory: $IDLE idle sessions, each greeted, then idle"
for target in "${PROXIES[@]}"; do
  IDLE_KIB[$target]=$(idle_rss "$target")
  sleep 2  # let the closed sessions go before the next target
done
log "dotgate after the idle test: VmRSS $(rss_kib "$DOTGATE_PID") KiB"
kill -0 "$DOTGATE_PID" 2>/dev/null || die "dotgate died during the benchmark (log: $WORK/dotgate.log)"
if [ "$TUNED" = 1 ]; then
  kill -0 "$TUNED_PID" 2>/dev/null || die "the tuned dotgate died during the benchmark (log: $WORK/tuned.log)"
fi

# ---- summary ------------------------------------------------------------------------------------
echo
echo "relay benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), load average at start $LOAD_AT_START"
echo "smtp-source: $SESSIONS sessions, $SIZE-byte messages, $MESSAGES per run, median of $REPS runs;" \
     "$([ ${#REUSE[@]} -gt 0 ] && echo "connections reused (-d)" || echo "one connection per message")"
echo "haproxy: $(haproxy -v | head -n1 | awk '{ print $3 }'), mode tcp, nbthread $WORKERS;" \
     "dotgate: $DOTGATE, --workers $WORKERS, log level $LOG_LEVEL, policies [limits], downstream.pool $POOL_JSON"
if [ "$TUNED" = 1 ]; then echo "tuned: the same dotgate, downstream.pool $TUNED_POOL_JSON, busy_poll_us $TUNED_BUSY_POLL"; fi
if [ "$UVRELAY" = 1 ]; then echo "uvrelay: test/bench/uv_relay.c, a blind byte relay on libuv (no SMTP, timers, logs or pool)"; fi
echo
printf '%-8s %11s %6s %11s %6s %12s %6s %11s %15s\n' \
  target "msg/s 1rcpt" ratio "msg/s 5rcpt" ratio "latency ms" ratio "CPU ms/msg" "KiB/idle sess"
for target in "${TARGETS[@]}"; do
  printf '%-8s %11s %6s %11s %6s %12s %6s %11s %15s\n' "$target" \
    "${RATE[$target,1]}" "$(ratio "${RATE[$target,1]}" "${RATE[direct,1]}")" \
    "${RATE[$target,5]}" "$(ratio "${RATE[$target,5]}" "${RATE[direct,5]}")" \
    "${LAT[$target]}" "$(ratio "${LAT[$target]}" "${LAT[direct]}")" \
    "${CPU[$target]:--}" "${IDLE_KIB[$target]:--}"
done
echo
# Issue 3's targets for dotgate with one worker, in each configuration.
targets() {  # TARGET
  local t=$1 d1=${RATE[$1,1]} d5=${RATE[$1,5]} h1=${RATE[haproxy,1]} h5=${RATE[haproxy,5]} lr ik
  echo "targets ($t, --workers $WORKERS):"
  if [[ "$d1$d5$h1$h5" == *FAIL* ]]; then
    check "throughput >= haproxy's (1 and 5 recipients)" "n/a (a run failed)"
  else
    check "throughput >= haproxy's (1 rcpt: $d1 vs $h1, 5 rcpt: $d5 vs $h5)" "$(verdict "$d1 >= $h1 && $d5 >= $h5")"
  fi
  lr=$(ratio "${LAT[$t]}" "${LAT[direct]}")
  if [ "$lr" = - ]; then check "sequential latency <= 1.5x direct" "n/a"
  else check "sequential latency <= 1.5x direct (${lr}x)" "$(verdict "$lr <= 1.5")"; fi
  ik=${IDLE_KIB[$t]}
  if [ "$ik" = FAIL ]; then check "RSS < 16 KiB per idle session" "n/a (idle test failed)"
  else check "RSS < 16 KiB per idle session ($ik KiB)" "$(verdict "$ik < 16")"; fi
}
targets dotgate
if [ "$TUNED" = 1 ]; then targets tuned; fi
echo
echo "logs and configs: $WORK"
