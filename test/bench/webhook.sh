#!/usr/bin/env bash
# test/bench/webhook.sh — the HTTP verdict round trip over loopback keep-alive (issue 4: median
# under 200 µs).
#
#   bash test/bench/webhook.sh [BUILD-DIR]    (default build-bench, the release build relay.sh
#                                              uses; set up with -Dbuildtype=release when missing)
#
# Builds dotgate's libraries in BUILD-DIR with meson, compiles test/bench/webhook_bench.cc against
# them and test/bench/webhook_server.cc against libuv and BUILD-DIR's llhttp (c++ -O2 -DNDEBUG;
# they are no meson targets, so a plain build or test run never pays for them), starts
# webhook_server on loopback and runs the bench against it: N requests in sequence on one
# keep-alive connection, 4 KiB message as the body, through a blocking socket (the floor),
# dotgate's http::Client and the `http` policy's data_end; median, p90, p99, mean µs, requests/s,
# CPU µs per request of the bench process. The server is stopped by its pid at the end.
# Knobs: WEBHOOK_REQUESTS (20000), WEBHOOK_WARMUP (1000, at most a tenth of the requests),
# WEBHOOK_SIZE (4096), WEBHOOK_DELAY_US (0: the server's --delay-us), WEBHOOK_SKIP ("", or any of
# socket,client,policy), BENCH_PORT_BASE (22060: the server's port), BENCH_JOBS (ninja -j; ninja's
# default when unset), BENCH_DIR.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${1:-build-bench}
PORT=${BENCH_PORT_BASE:-22060}
REQUESTS=${WEBHOOK_REQUESTS:-20000}
WORK=${BENCH_DIR:-$(mktemp -d /tmp/dotgate-webhook-bench.XXXXXX)}
mkdir -p "$WORK"

BENCH_NAME=webhook.sh
# shellcheck source=test/bench/lib.sh
source "$ROOT/test/bench/lib.sh"

port_open "$PORT" && die "port $PORT is in use (set BENCH_PORT_BASE)"
note_load

if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" -Dbuildtype=release >&2
fi
buildtype=$(meson_option "$BUILD" buildtype)
[ "$buildtype" = release ] || log "warning: $BUILD is a $buildtype build, not release"
ninja -C "$BUILD" ${BENCH_JOBS:+-j "$BENCH_JOBS"} lib/libdotgate_lib.a policies/libpolicies.a libllhttp.a >&2

log "compiling webhook_server and webhook_bench"
build_webhook_server "$BUILD" "$WORK/webhook_server"
# shellcheck disable=SC2046  # pkg-config's flags are words
c++ -std=c++20 -O2 -DNDEBUG -I"$ROOT" -I"$(meson_option "$BUILD" llhttp_include_dir)" test/bench/webhook_bench.cc \
  "$BUILD/policies/libpolicies.a" "$BUILD/lib/libdotgate_lib.a" "$BUILD/libllhttp.a" \
  $(pkg-config --cflags --libs gmime-3.0 glib-2.0 libuv spdlog nlohmann_json) -pthread \
  -o "$WORK/webhook_bench"

"$WORK/webhook_server" --listen 127.0.0.1:"$PORT" --delay-us "${WEBHOOK_DELAY_US:-0}" >"$WORK/webhook_server.log" 2>&1 &
SERVER_PID=$!; PIDS+=("$SERVER_PID")
wait_port "$PORT" "$SERVER_PID" webhook_server

echo "webhook benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), build $BUILD ($buildtype)," \
     "load average at start $LOAD_AT_START; server delay ${WEBHOOK_DELAY_US:-0} µs"
rc=0
args=(--url "http://127.0.0.1:$PORT/verdict" --requests "$REQUESTS" --size "${WEBHOOK_SIZE:-4096}")
[ -n "${WEBHOOK_WARMUP:-}" ] && args+=(--warmup "$WEBHOOK_WARMUP")
[ -n "${WEBHOOK_SKIP:-}" ] && args+=(--skip "$WEBHOOK_SKIP")
# 20,000 round trips take seconds; 10 minutes means something is stuck.
timeout 600 "$WORK/webhook_bench" "${args[@]}" || rc=$?
stop_pid "$SERVER_PID" || { log "webhook_server did not stop cleanly (log: $WORK/webhook_server.log)"; rc=1; }
tail -n 1 "$WORK/webhook_server.log"
echo "logs and binaries: $WORK"
exit "$rc"
