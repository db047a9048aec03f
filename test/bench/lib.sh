# test/bench/lib.sh — what the shell benchmarks share; sourced by relay.sh, relay_webhook.sh,
# webhook.sh, tls_relay.sh, postfix.sh and sessions.sh (after `set -euo pipefail`), never run.
#
# The caller sets BENCH_NAME (its file name, for die) before sourcing, and WORK (the directory for
# logs and configs) before it starts anything. What this file owns: PIDS, every process a bench
# started (start it with `cmd & X_PID=$!; PIDS+=("$X_PID")`); the EXIT trap stops each of them by
# its pid (TERM, 3 s, then KILL), so nothing outlives the bench, and INT/TERM exit through it.
# run_source reads the caller's TARGET_PORT and TARGET_PID (associative arrays by target name),
# CPU_TICKS and CPU_MSGS (the same, added to), SIZE, HELO_NAME and REUSE.

# shellcheck shell=bash disable=SC2034  # what is set here (RUN_SECS, SINK_PID, ...) the caller reads
log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "${BENCH_NAME:-bench}" "$*" >&2; exit 1; }

# ---- processes: every one started is recorded and stopped by pid --------------------------------
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  PIDS=()
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# stop_pid PID: stops one of PIDS now (TERM, 3 s, then KILL) and returns its exit status.
stop_pid() {
  local pid=$1 rc=0 p kept=()
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || rc=$?
  for p in "${PIDS[@]}"; do [ "$p" = "$pid" ] || kept+=("$p"); done
  PIDS=("${kept[@]}")
  return "$rc"
}

# port_open PORT: is something listening there? From /proc/net/tcp (state 0A = LISTEN), not by
# connecting: a probe connection would be one more session in the proxies' counters.
port_open() {
  awk -v p=":$(printf '%04X' "$1")" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
wait_port() {  # PORT PID NAME
  for _ in $(seq 1 100); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited before listening on port $1 (log: $WORK/$3.log)"
    sleep 0.1
  done
  die "$3 does not listen on port $1 after 10 s"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }          # utime + stime, clock ticks
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# note_load: sets LOAD_AT_START. Other work on the machine skews every figure (a proxy adds two
# wake-ups per exchange): say so.
note_load() {
  LOAD_AT_START=$(cut -d' ' -f1 /proc/loadavg)
  if awk -v l="$LOAD_AT_START" -v n="$(nproc)" 'BEGIN { exit !(l > n / 2) }'; then
    log "warning: load average $LOAD_AT_START on $(nproc) cores: the figures will be noisy; run on an idle machine"
  fi
}

# need_dotgate: the binary in $DOTGATE; the default one, build-bench/proxy/dotgate, is built
# (release) when missing, only that target, not the test suite.
need_dotgate() {
  if [ ! -x "$DOTGATE" ] && [ "$DOTGATE" = build-bench/proxy/dotgate ]; then
    log "building $DOTGATE (release)"
    [ -f build-bench/meson-private/coredata.dat ] || meson setup build-bench -Dbuildtype=release >&2
    timeout 1200 ninja -C build-bench proxy/dotgate >&2
  fi
  [ -x "$DOTGATE" ] || die "no dotgate binary at $DOTGATE"
}

# haproxy_tcp_config FILE PORT BACKEND_PORT NBTHREAD MAXCONN [BIND_EXTRA]: haproxy as a blind byte
# relay (mode tcp) from 127.0.0.1:PORT to 127.0.0.1:BACKEND_PORT, what an SMTP-unaware proxy costs;
# BIND_EXTRA is added to the bind line (e.g. "ssl crt FILE" to terminate TLS).
haproxy_tcp_config() {
  cat >"$1" <<EOF
global
    nbthread $4
    maxconn $5
defaults
    mode tcp
    timeout connect 10s
    timeout client 600s
    timeout server 600s
    maxconn $5
frontend smtp_in
    bind 127.0.0.1:$2 ${6:-}
    default_backend downstream
backend downstream
    server mta 127.0.0.1:$3 maxconn $5
EOF
}

# start_sink PORT MAXCONN: smtp-sink on loopback, discarding the mail; sets SINK_PID.
# -m raises its concurrency cap (default 256) above the idle sessions; as root it must drop
# privileges (-u). Backlog 4096 (net.core.somaxconn caps it anyway).
start_sink() {
  local sink_user=()
  [ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
  smtp-sink "${sink_user[@]}" -m "$2" -h sink.bench 127.0.0.1:"$1" 4096 >"$WORK/smtp-sink.log" 2>&1 &
  SINK_PID=$!; PIDS+=("$SINK_PID")
  wait_port "$1" "$SINK_PID" smtp-sink
}

# children_ticks: CPU ticks (user + system) of this shell's children that have been waited for
# (cutime + cstime of /proc/$$/stat): across one smtp-source run, that run's CPU (timeout waits
# for smtp-source, this shell for timeout; the few awk and date children add a tick or so).
children_ticks() { awk '{ print $16 + $17 }' "/proc/$$/stat"; }
# machine_ticks: "BUSY TOTAL" clock ticks of all cores from /proc/stat (busy: all but idle and
# iowait). Over a run: how much of the machine was in use, by anything (it may be shared).
machine_ticks() { awk '$1 == "cpu" { t = 0; for (i = 2; i <= 9; i++) t += $i; print t - $5 - $6, t; exit }' /proc/stat; }

# run_source TARGET SESSIONS MESSAGES RCPTS: sets RUN_SECS (elapsed seconds, or FAIL) and adds the
# proxy's CPU ticks to CPU_TICKS. Not called in a $(subshell): the counters must survive.
# Also sets, for the run: RUN_SOURCE_TICKS (smtp-source's CPU), RUN_SINK_TICKS (SINK_PID's, when
# the caller started a sink) and RUN_BUSY_PCT (the machine's busy share, 0-100, all cores).
RUN_SECS=
RUN_SOURCE_TICKS=0
RUN_SINK_TICKS=0
RUN_BUSY_PCT=0
run_source() {
  local target=$1 sessions=$2 messages=$3 rcpts=$4 pid=${TARGET_PID[$1]:-} t0 t1 c0=0 c1=0
  local s0 s1 k0=0 k1=0 m0 m1
  [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
  [ -n "${SINK_PID:-}" ] && k0=$(cpu_ticks "$SINK_PID")
  s0=$(children_ticks)
  m0=$(machine_ticks)
  t0=$(date +%s%N)
  if ! timeout 300 smtp-source "${REUSE[@]}" -s "$sessions" -m "$messages" -l "$SIZE" -r "$rcpts" \
      -M "$HELO_NAME" -f sender@bench.example -t rcpt@bench.example \
      127.0.0.1:"${TARGET_PORT[$target]}" >>"$WORK/smtp-source.log" 2>&1; then
    log "smtp-source to $target failed (see $WORK/smtp-source.log)"
    RUN_SECS=FAIL
    return
  fi
  t1=$(date +%s%N)
  m1=$(machine_ticks)
  s1=$(children_ticks)
  [ -n "${SINK_PID:-}" ] && k1=$(cpu_ticks "$SINK_PID")
  RUN_SOURCE_TICKS=$((s1 - s0))
  RUN_SINK_TICKS=$((k1 - k0))
  RUN_BUSY_PCT=$(awk -v a="$m0" -v b="$m1" 'BEGIN { split(a, x, " "); split(b, y, " ");
    t = y[2] - x[2]; if (t <= 0) print 0; else printf "%.0f\n", (y[1] - x[1]) * 100 / t }')
  if [ -n "$pid" ]; then
    c1=$(cpu_ticks "$pid")
    CPU_TICKS[$target]=$((CPU_TICKS[$target] + c1 - c0))
    CPU_MSGS[$target]=$((CPU_MSGS[$target] + messages))
  fi
  RUN_SECS=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", (b - a) / 1e9 }')
}

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "FAIL"; else if (v[1] == "FAIL") print "FAIL"; else print v[int((NR + 1) / 2)] }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "FAIL" || b == "FAIL" || b == 0) print "-"; else printf "%.2f\n", a / b }'; }
check() {  # NAME OK-EXPRESSION-RESULT
  printf '  %-58s %s\n' "$1" "$2"
}
verdict() { awk "BEGIN { if ($1) print \"met\"; else print \"NOT met\" }"; }

# meson_option BUILD NAME: the value of a meson option of that build directory.
meson_option() {
  meson introspect "$1" --buildoptions |
    python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]==sys.argv[1]][0])' "$2"
}

# build_webhook_server BUILD OUT: compiles test/bench/webhook_server.cc (libuv + the llhttp that
# BUILD compiled, strict mode) to OUT. BUILD must have built libllhttp.a.
build_webhook_server() {
  # shellcheck disable=SC2046  # pkg-config's flags are words
  c++ -std=c++20 -O2 -DNDEBUG -I"$(meson_option "$1" llhttp_include_dir)" "$ROOT/test/bench/webhook_server.cc" \
    "$1/libllhttp.a" $(pkg-config --cflags --libs libuv) -o "$2"
}
