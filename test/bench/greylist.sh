#!/usr/bin/env bash
# test/bench/greylist.sh — what greylisting costs: decisions per second against each store, and
# relay throughput with greylisting on (every triplet already passed) against the same dotgate
# without it.
#
#   bash test/bench/greylist.sh [BUILD-DIR]    (default build-bench, set up with
#                                               --buildtype=release when missing)
#
# In one run, on loopback only:
#   1. test/bench/greylist_bench.cc (compiled here against BUILD-DIR's libraries, -O3): one loop,
#      GL_INFLIGHT (64) decisions in flight, GL_TRIPLETS (20000) triplets, three rounds (new,
#      passed, known), for LMDB (a temp directory) and for Redis (a redis-server started here on
#      a free port, stopped by its pid; with 64 in flight the commands are pipelined).
#   2. relay throughput: smtp-source (20 sessions, 4 KiB, 1 recipient, one connection per message)
#      to two dotgates (--workers 1) in front of one smtp-sink: "plain" (policies: limits) and
#      "greylist" (limits + greylist on LMDB, defaults but delay 1 s). The one triplet
#      smtp-source uses is passed first (one refused attempt, then a retry after the delay), so
#      every RCPT of the run is a known triplet: two LMDB reads, no write. Median of BENCH_REPS
#      (3) runs of BENCH_MESSAGES (10000), the two targets interleaved. Target: ratio >= 0.9.
# Every process it starts is stopped by its pid on exit (lib.sh); every step has a time limit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${1:-build-bench}
MESSAGES=${BENCH_MESSAGES:-10000}
REPS=${BENCH_REPS:-3}
SESSIONS=20
SIZE=4096
HELO_NAME=bench.example
REUSE=()
BASE=${BENCH_PORT_BASE:-23025}
SINK_PORT=$BASE
PLAIN_PORT=$((BASE + 1))
GREY_PORT=$((BASE + 2))
REDIS_PORT=$((BASE + 3))
WORK=${BENCH_DIR:-$(mktemp -d /tmp/dotgate-glbench.XXXXXX)}
mkdir -p "$WORK"

BENCH_NAME=greylist.sh
# shellcheck source=test/bench/lib.sh
source "$ROOT/test/bench/lib.sh"

for tool in smtp-sink smtp-source redis-server python3; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install postfix redis-server python3)"
done
note_load
for p in "$SINK_PORT" "$PLAIN_PORT" "$GREY_PORT" "$REDIS_PORT" $((BASE + 4)) $((BASE + 5)); do
  port_open "$p" && die "port $p is in use (set BENCH_PORT_BASE)"
done

# ---- build ----------------------------------------------------------------------------------------
if [ ! -f "$BUILD/build.ninja" ]; then meson setup "$BUILD" --buildtype=release >&2; fi
buildtype=$(meson_option "$BUILD" buildtype)
ninja -C "$BUILD" proxy/dotgate lib/libdotgate_lib.a policies/libpolicies.a libllhttp.a >&2
DOTGATE=$BUILD/proxy/dotgate
# shellcheck disable=SC2046  # pkg-config's flags are words
c++ -std=c++20 -O3 -DNDEBUG -I"$ROOT" -I"$(meson_option "$BUILD" llhttp_include_dir)" test/bench/greylist_bench.cc \
  "$BUILD/policies/libpolicies.a" "$BUILD/lib/libdotgate_lib.a" "$BUILD/libllhttp.a" \
  $(pkg-config --cflags --libs gmime-3.0 glib-2.0 libuv spdlog nlohmann_json lmdb hiredis libpcre2-8 openssl) -pthread \
  -o "$WORK/greylist_bench"

echo "greylist benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), build $BUILD ($buildtype)," \
     "load average at start $LOAD_AT_START"
echo

# ---- 1. decisions per second ------------------------------------------------------------------------
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!; PIDS+=("$REDIS_PID")
wait_port "$REDIS_PORT" "$REDIS_PID" redis
echo "decisions (test/bench/greylist_bench.cc):"
timeout 300 "$WORK/greylist_bench" --backend lmdb --path "$WORK/lmdb-bench" --triplets "${GL_TRIPLETS:-20000}" \
  --inflight "${GL_INFLIGHT:-64}" | tee "$WORK/decisions-lmdb.txt"
timeout 300 "$WORK/greylist_bench" --backend redis --port "$REDIS_PORT" --triplets "${GL_TRIPLETS:-20000}" \
  --inflight "${GL_INFLIGHT:-64}" | tee "$WORK/decisions-redis.txt"
LMDB_RATE=$(awk '/^RESULT/ { print $4 }' "$WORK/decisions-lmdb.txt")
REDIS_RATE=$(awk '/^RESULT/ { print $4 }' "$WORK/decisions-redis.txt")
echo

# ---- 2. relay throughput with and without greylisting ----------------------------------------------
start_sink "$SINK_PORT" 1000
declare -A TARGET_PORT=([plain]=$PLAIN_PORT [greylist]=$GREY_PORT)
declare -A TARGET_PID=()
declare -A CPU_TICKS=([plain]=0 [greylist]=0) CPU_MSGS=([plain]=0 [greylist]=0)
start_target() {  # NAME PORT ADMIN POLICIES
  cat >"$WORK/$1.json" <<JSON
{
  "listeners": [{"address": "127.0.0.1", "port": $2}],
  "downstream": {"address": "127.0.0.1", "port": $SINK_PORT},
  "admin": {"address": "127.0.0.1", "port": $3, "enabled": true},
  "workers": 1,
  "log": {"format": "text", "level": "info"},
  "spool": {"directory": "$WORK"},
  "store": {"backend": "lmdb", "lmdb": {"path": "$WORK/lmdb-relay"}},
  "policies": $4
}
JSON
  "$DOTGATE" --config "$WORK/$1.json" --workers 1 >"$WORK/$1.log" 2>&1 &
  local pid=$!; PIDS+=("$pid")
  wait_port "$2" "$pid" "$1"
  TARGET_PID[$1]=$pid
}
start_target plain "$PLAIN_PORT" $((BASE + 4)) '[{"type": "limits"}]'
start_target greylist "$GREY_PORT" $((BASE + 5)) '[{"type": "limits"}, {"type": "greylist", "delay": 1}]'

# Pass smtp-source's one triplet (127.0.0.1, sender@bench.example, rcpt@bench.example): refused
# once, passed after the delay. From then on every RCPT is a known triplet.
timeout 30 python3 - "$GREY_PORT" <<'PY'
import smtplib, sys, time
port = int(sys.argv[1])
for attempt in range(10):
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.sendmail("sender@bench.example", ["rcpt@bench.example"], b"Subject: warm-up\r\n\r\nx\r\n")
        sys.exit(0)
    except smtplib.SMTPRecipientsRefused:
        time.sleep(0.6)
sys.exit("the triplet never passed greylisting")
PY

log "throughput: $SESSIONS sessions, $MESSAGES messages of $SIZE bytes per run, $REPS runs"
declare -A runs=()
for rep in $(seq 1 "$REPS"); do
  for target in plain greylist; do
    run_source "$target" "$SESSIONS" "$MESSAGES" 1; secs=$RUN_SECS
    if [ "$secs" = FAIL ]; then rate=FAIL; else rate=$(awk -v n="$MESSAGES" -v s="$secs" 'BEGIN { printf "%.0f\n", n / s }'); fi
    runs[$target]="${runs[$target]:-} $rate"
    log "  run $rep, $target: $rate msg/s"
  done
done
PLAIN=$(median <<<"${runs[plain]}")
GREY=$(median <<<"${runs[greylist]}")
RATIO=$(ratio "$GREY" "$PLAIN")
grey_metrics=$(curl -s "http://127.0.0.1:$((BASE + 5))/metrics" 2>/dev/null || python3 -c "import urllib.request,sys; print(urllib.request.urlopen('http://127.0.0.1:%d/metrics' % $((BASE + 5))).read().decode())")
passed=$(awk '/^dotgate_greylist_outcomes_total\{.*stage="rcpt".*outcome="passed"/ { print $2 }' <<<"$grey_metrics")
refused=$(awk '/^dotgate_greylist_outcomes_total\{.*stage="rcpt".*outcome="(new|early_retry)"/ { s += $2 } END { print s + 0 }' <<<"$grey_metrics")

echo "relay throughput (smtp-source $SESSIONS sessions, $SIZE bytes, 1 recipient, one connection per message, median of $REPS):"
printf '  %-9s %8s msg/s   CPU %s ms/msg\n' plain "$PLAIN" \
  "$(awk -v t="${CPU_TICKS[plain]}" -v n="${CPU_MSGS[plain]}" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n == 0) print "-"; else printf "%.3f", t * 1000 / hz / n }')"
printf '  %-9s %8s msg/s   CPU %s ms/msg   (greylist passed %s, deferred %s)\n' greylist "$GREY" \
  "$(awk -v t="${CPU_TICKS[greylist]}" -v n="${CPU_MSGS[greylist]}" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (n == 0) print "-"; else printf "%.3f", t * 1000 / hz / n }')" \
  "${passed:-?}" "$refused"
echo
echo "targets:"
check "LMDB decisions/s, known triplets ($LMDB_RATE)" "reported"
check "Redis decisions/s, known triplets, pipelined ($REDIS_RATE)" "reported"
# CPU per message is the steadier figure on a busy machine (throughput swings with the load).
cpu_plain=$(awk -v t="${CPU_TICKS[plain]}" -v n="${CPU_MSGS[plain]}" 'BEGIN { if (n == 0) print 0; else print t / n }')
cpu_grey=$(awk -v t="${CPU_TICKS[greylist]}" -v n="${CPU_MSGS[greylist]}" 'BEGIN { if (n == 0) print 0; else print t / n }')
check "CPU per message, plain / greylist ($(ratio "$cpu_plain" "$cpu_grey")x)" "reported"
if [ "$RATIO" = - ]; then check "relay with greylisting >= 0.9x without" "n/a (a run failed)"
else check "relay with greylisting >= 0.9x without (${RATIO}x)" "$(verdict "$RATIO >= 0.9")"; fi
echo
echo "logs and configs: $WORK"
