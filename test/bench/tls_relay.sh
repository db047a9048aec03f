#!/usr/bin/env bash
# test/bench/tls_relay.sh — what TLS with the client costs dotgate, over real sockets, against the
# same dotgate without TLS and against haproxy terminating TLS (issue 17).
#
#   bash test/bench/tls_relay.sh [PATH-TO-DOTGATE]   (default: build-bench/proxy/dotgate, built
#                                                     with -Dbuildtype=release when missing)
#
# The client is test/bench/smtp_tls_load.cc (compiled here with c++ -O2 against the system's
# OpenSSL): one code path for plain text, STARTTLS and implicit TLS, so the ratios compare TLS with
# its absence and nothing else. Postfix's smtp-source has no TLS. In one run, on loopback only,
# every target ends at the same smtp-sink (which discards the mail):
#   direct       client → smtp-sink, plain (the client's own ceiling)
#   dotgate      client → dotgate, listener tls "off" → smtp-sink
#   dg_starttls  client → dotgate, listener tls "starttls": EHLO, STARTTLS, handshake, EHLO again
#   dg_implicit  client → dotgate, listener tls "implicit" (port 465 style)
#   haproxy      client → haproxy (mode tcp, nbthread 1), plain: the blind relay of relay.sh
#   haproxy_tls  client → haproxy (mode tcp, nbthread 1, `bind ... ssl crt`) → smtp-sink, plain
#                behind it: the reference for implicit TLS (haproxy cannot speak STARTTLS)
# The three dotgates are separate processes (`--workers 1`, relay.sh's dotgate config: policies
# [limits], downstream.pool size BENCH_POOL) whose configs differ only in the listener's `tls`;
# all three carry the same `tls` certificate. Every TLS target serves the same certificate, made
# here by the openssl command (self-signed, EC P-256 or RSA 2048: BENCH_KEY).
#
# It prints:
#   1. messages/s: BENCH_SESSIONS (20) parallel sessions, BENCH_SIZE (4096)-byte messages, one
#      recipient, one connection per message (connect, greeting, EHLO, [STARTTLS, handshake,
#      EHLO], MAIL, RCPT, DATA, message, QUIT), BENCH_MESSAGES (5000) per run, median of
#      BENCH_REPS (3) runs, the six targets interleaved in each run so drift hits all; the ratios
#      dotgate STARTTLS / dotgate plain, dotgate implicit / dotgate plain, dotgate implicit (and
#      STARTTLS) / haproxy TLS, haproxy TLS / haproxy plain, dotgate plain / haproxy plain; CPU ms per message of the proxy process
#      (utime+stime from /proc/PID/stat, over all its runs) and of the client;
#   2. connections and TLS handshakes per second on one worker: BENCH_HANDSHAKES (3000) sessions
#      per run, BENCH_HS_SESSIONS (20) in parallel, no mail (smtp_tls_load --no-mail): plain
#      (greeting, QUIT), implicit (handshake, greeting, QUIT), STARTTLS (greeting, EHLO, STARTTLS,
#      handshake, QUIT), median of BENCH_REPS; the proxy's CPU ms per connection, and per TLS
#      handshake (TLS connection minus plain connection, same proxy), and 1 / CPU per connection:
#      the rate one worker would reach with a core to itself (here the client takes the other);
#      and the time one connection takes with one session alone: the median connection of
#      BENCH_SEQ_HANDSHAKES (300) one after the other (median of BENCH_REPS runs; the median, not
#      the mean, as on a busy machine a few connections wait tens of ms for a core);
#   3. VmRSS per idle session (BENCH_IDLE (2000) sessions open and idle after greeting and EHLO,
#      or after TLS and EHLO again; (VmRSS with them − VmRSS before) / N, each with its downstream
#      connection) for each dotgate and for haproxy_tls; BENCH_IDLE=0 leaves it out.
# Checks: every session of every run must end with the expected replies (every message 250), or
# the run counts as FAIL; at the end smtp-sink's message counter (-c) must equal the messages the
# client saw accepted. On a 2-core machine the client's own TLS (its half of every handshake) takes
# a core: the handshake rate is the machine's, so the proxy's CPU per handshake is the steadier figure.
# Exit status 0 when both checks hold.
#
# Knobs: BENCH_MESSAGES (5000), BENCH_REPS (3), BENCH_SESSIONS (20), BENCH_SIZE (4096),
# BENCH_KEY (ec: EC P-256; rsa: RSA 2048), BENCH_TLS_VERSION (empty: what both sides pick, TLS 1.3
# with OpenSSL 3; 1.2 or 1.3 forces it on the client), BENCH_REUSE_SESSION (0; 1: each client
# thread resumes its previous session from its ticket, instead of a full handshake per
# connection as a fresh MX client pays), BENCH_HANDSHAKES (3000; 0 leaves part 2 out),
# BENCH_HS_SESSIONS (20), BENCH_SEQ_HANDSHAKES (300; 0 leaves the one-session runs out),
# BENCH_IDLE (2000; 0 leaves part 3 out), BENCH_POOL (2: downstream.pool.size; 0: no pool),
# BENCH_LOG_LEVEL (dotgate's, info), BENCH_PORT_BASE (23025; ports BASE..BASE+9 must be free and
# below the ephemeral range, 32768+, which the clients use), BENCH_DIR (logs and configs; default a
# fresh /tmp/dotgate-tlsbench.XXXXXX).
# Every process it starts is stopped by its pid on exit (lib.sh's trap); every step has a time limit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

DOTGATE=${1:-${DOTGATE:-build-bench/proxy/dotgate}}
MESSAGES=${BENCH_MESSAGES:-5000}
REPS=${BENCH_REPS:-3}
SESSIONS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-4096}
KEY=${BENCH_KEY:-ec}
TLS_VERSION=${BENCH_TLS_VERSION:-}
REUSE_SESSION=${BENCH_REUSE_SESSION:-0}
HANDSHAKES=${BENCH_HANDSHAKES:-3000}
HS_SESSIONS=${BENCH_HS_SESSIONS:-20}
SEQ_HANDSHAKES=${BENCH_SEQ_HANDSHAKES:-300}
IDLE=${BENCH_IDLE:-2000}
POOL=${BENCH_POOL:-2}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
BASE=${BENCH_PORT_BASE:-23025}
SINK_PORT=$BASE
DG_PORT=$((BASE + 1)); DG_ADMIN=$((BASE + 2))
DG_STARTTLS_PORT=$((BASE + 3)); DG_STARTTLS_ADMIN=$((BASE + 4))
DG_IMPLICIT_PORT=$((BASE + 5)); DG_IMPLICIT_ADMIN=$((BASE + 6))
HAPROXY_PORT=$((BASE + 7))
HAPROXY_TLS_PORT=$((BASE + 8))
WORK=${BENCH_DIR:-$(mktemp -d /tmp/dotgate-tlsbench.XXXXXX)}
mkdir -p "$WORK"
CLK_TCK=$(getconf CLK_TCK)

BENCH_NAME=tls_relay.sh
# shellcheck source=test/bench/lib.sh
source "$ROOT/test/bench/lib.sh"  # log, die, PIDS and their cleanup, port_open, wait_port, cpu_ticks, ...

for tool in smtp-sink haproxy openssl c++ pkg-config; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install postfix haproxy openssl g++ pkg-config libssl-dev)"
done
case $KEY in ec|rsa) ;; *) die "BENCH_KEY is ec or rsa, not $KEY" ;; esac
case $TLS_VERSION in ""|1.2|1.3) ;; *) die "BENCH_TLS_VERSION is empty, 1.2 or 1.3, not $TLS_VERSION" ;; esac

note_load

# ---- the dotgate binary and the client ----------------------------------------------------------
need_dotgate
LOAD="$WORK/smtp_tls_load"
# shellcheck disable=SC2046  # pkg-config's flags are words
timeout 300 c++ -std=c++20 -O2 -DNDEBUG -Wall -Wextra "$ROOT/test/bench/smtp_tls_load.cc" \
  $(pkg-config --cflags --libs openssl) -lpthread -o "$LOAD" || die "cannot build smtp_tls_load (apt-get install g++ libssl-dev)"
LOAD_ARGS=()
[ -n "$TLS_VERSION" ] && LOAD_ARGS+=(--tls-version "$TLS_VERSION")
[ "$REUSE_SESSION" = 1 ] && LOAD_ARGS+=(--reuse-session)

# ---- limits: each idle session is a client and a downstream socket in the proxy -----------------
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -ge 65536 ]; then ulimit -n 65536; else ulimit -n "$hard"; fi
need=$((2 * IDLE + 1000))
if [ "$(ulimit -n)" -lt "$need" ]; then
  IDLE=$((($(ulimit -n) - 1000) / 2))
  log "warning: open files limit $(ulimit -n) < $need; BENCH_IDLE lowered to $IDLE"
fi
MAXCONN=$((IDLE + 1000))
for p in $(seq "$BASE" $((BASE + 9))); do
  port_open "$p" && die "port $p is in use (set BENCH_PORT_BASE)"
done

# ---- the certificate: one for every TLS target ---------------------------------------------------
if [ "$KEY" = ec ]; then KEY_ARGS=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1); KEY_NAME="EC P-256"
else KEY_ARGS=(-newkey rsa:2048); KEY_NAME="RSA 2048"; fi
timeout 60 openssl req -x509 "${KEY_ARGS[@]}" -nodes -keyout "$WORK/key.pem" -out "$WORK/cert.pem" \
  -days 2 -subj /CN=mx.bench.example >"$WORK/openssl.log" 2>&1 || die "openssl req failed (log: $WORK/openssl.log)"
cat "$WORK/cert.pem" "$WORK/key.pem" >"$WORK/haproxy.pem"  # haproxy wants both in one file

# ---- smtp-sink, counting messages (-c) so the end can check what arrived -------------------------
sink_user=()
[ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
smtp-sink "${sink_user[@]}" -c -m "$MAXCONN" -h sink.bench 127.0.0.1:"$SINK_PORT" 4096 >"$WORK/smtp-sink.log" 2>&1 &
SINK_PID=$!; PIDS+=("$SINK_PID")
wait_port "$SINK_PORT" "$SINK_PID" smtp-sink
sink_messages() { tr '\r' '\n' <"$WORK/smtp-sink.log" | awk '/mesg=/ { for (i = 1; i <= NF; i++) if ($i ~ /^mesg=/) m = substr($i, 6) } END { print m + 0 }'; }

# ---- haproxy: one process, one thread, a plain and a TLS frontend --------------------------------
cat >"$WORK/haproxy.cfg" <<EOF
# The blind relay (plain) and TLS termination in front of the same sink. One thread, as dotgate
# gets one worker. haproxy's defaults otherwise (its session cache and tickets: unused unless the
# client resumes, BENCH_REUSE_SESSION=1).
global
    nbthread 1
    maxconn $MAXCONN
    tune.ssl.default-dh-param 2048
defaults
    mode tcp
    timeout connect 10s
    timeout client 600s
    timeout server 600s
    maxconn $MAXCONN
frontend plain_in
    bind 127.0.0.1:$HAPROXY_PORT
    default_backend smtp_sink
frontend tls_in
    bind 127.0.0.1:$HAPROXY_TLS_PORT ssl crt $WORK/haproxy.pem
    default_backend smtp_sink
backend smtp_sink
    server sink 127.0.0.1:$SINK_PORT maxconn $MAXCONN
EOF
haproxy -db -q -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
HAPROXY_PID=$!; PIDS+=("$HAPROXY_PID")
wait_port "$HAPROXY_PORT" "$HAPROXY_PID" haproxy
wait_port "$HAPROXY_TLS_PORT" "$HAPROXY_PID" haproxy

# ---- the three dotgates ---------------------------------------------------------------------------
POOL_JSON=""
[ "$POOL" != 0 ] && POOL_JSON=", \"pool\": {\"size\": $POOL, \"max_idle\": 60}"
declare -A TARGET_PORT=([direct]=$SINK_PORT [haproxy]=$HAPROXY_PORT [haproxy_tls]=$HAPROXY_TLS_PORT)
declare -A TARGET_MODE=([direct]=plain [dotgate]=plain [dg_starttls]=starttls [dg_implicit]=implicit
                        [haproxy]=plain [haproxy_tls]=implicit)
declare -A TARGET_PID=([haproxy]=$HAPROXY_PID [haproxy_tls]=$HAPROXY_PID)
start_dotgate() {  # NAME PORT ADMIN_PORT LISTENER_TLS
  local name=$1 port=$2 admin=$3 tls=$4 pid
  cat >"$WORK/$name.json" <<EOF
{
  "listeners": [{"address": "127.0.0.1", "port": $port, "tls": "$tls"}],
  "downstream": {"address": "127.0.0.1", "port": $SINK_PORT$POOL_JSON},
  "admin": {"address": "127.0.0.1", "port": $admin, "enabled": true},
  "workers": 1,
  "tls": {"cert_file": "$WORK/cert.pem", "key_file": "$WORK/key.pem"},
  "log": {"format": "text", "level": "$LOG_LEVEL"},
  "smtp": {"max_connections": $MAXCONN},
  "spool": {"directory": "$WORK"},
  "policies": [{"type": "limits"}]
}
EOF
  "$DOTGATE" --config "$WORK/$name.json" --workers 1 >"$WORK/$name.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_port "$port" "$pid" "$name"
  TARGET_PORT[$name]=$port
  TARGET_PID[$name]=$pid
}
start_dotgate dotgate "$DG_PORT" "$DG_ADMIN" off
start_dotgate dg_starttls "$DG_STARTTLS_PORT" "$DG_STARTTLS_ADMIN" starttls
start_dotgate dg_implicit "$DG_IMPLICIT_PORT" "$DG_IMPLICIT_ADMIN" implicit
TARGETS=(direct dotgate dg_starttls dg_implicit haproxy haproxy_tls)

# run_load TARGET COUNT SESSIONS [ARGS...]: one smtp_tls_load run; sets RUN_RATE (sessions/s, or
# FAIL) and RUN_P50 (the median session's ms); adds the proxy's CPU ticks to CPU_TICKS[TARGET,KIND]
# and the client's CPU ms to CLIENT_MS[TARGET,KIND] (KIND: the global RUN_KIND: mail, hs, seq);
# counts the accepted messages in ACCEPTED. Not called in a $(subshell): the counters must survive.
declare -A CPU_TICKS=() CPU_N=() CLIENT_MS=()
ACCEPTED=0
RUN_RATE=
RUN_P50=
run_load() {
  local target=$1 count=$2 sessions=$3 pid=${TARGET_PID[$1]:-} c0=0 c1=0 out
  shift 3
  [ -n "$pid" ] && c0=$(cpu_ticks "$pid")
  if ! out=$(timeout 300 "$LOAD" --port "${TARGET_PORT[$target]}" --mode "${TARGET_MODE[$target]}" \
               --count "$count" --sessions "$sessions" --size "$SIZE" "${LOAD_ARGS[@]}" "$@" 2>>"$WORK/load.err"); then
    log "  $target: smtp_tls_load failed: ${out:-no output} (see $WORK/load.err)"
    RUN_RATE=FAIL
    RUN_P50=FAIL
    return
  fi
  [ -n "$pid" ] && c1=$(cpu_ticks "$pid")
  echo "$RUN_KIND $target $out" >>"$WORK/load.out"
  RUN_RATE=$(sed -n 's/.* rate=\([0-9.]*\) .*/\1/p' <<<"$out" | awk '{ printf "%.0f\n", $1 }')
  RUN_P50=$(sed -n 's/.* p50_ms=\([0-9.]*\) .*/\1/p' <<<"$out")
  CPU_TICKS[$target,$RUN_KIND]=$(( ${CPU_TICKS[$target,$RUN_KIND]:-0} + c1 - c0 ))
  CPU_N[$target,$RUN_KIND]=$(( ${CPU_N[$target,$RUN_KIND]:-0} + count ))
  CLIENT_MS[$target,$RUN_KIND]=$(awk -v a="${CLIENT_MS[$target,$RUN_KIND]:-0}" \
    -v b="$(sed -n 's/.*self_cpu_ms=\([0-9.]*\).*/\1/p' <<<"$out")" 'BEGIN { print a + b }')
  [ "$RUN_KIND" = mail ] && ACCEPTED=$((ACCEPTED + count))
  return 0
}
per_ms() {  # TICKS-OR-MS N [ticks]: milliseconds per unit
  awk -v t="$1" -v n="$2" -v hz="$CLK_TCK" -v ticks="${3:-}" \
    'BEGIN { if (n == 0 || t == "") print "-"; else printf "%.3f\n", (ticks ? t * 1000 / hz : t) / n }'
}
tls_info() {  # KIND TARGET: the protocol and cipher the client negotiated, from load.out
  awk -v k="$1" -v t="$2" '$1 == k && $2 == t { for (i = 3; i <= NF; i++) if ($i ~ /^tls=/) v = substr($i, 5) } END { print v }' \
    "$WORK/load.out" 2>/dev/null
}

# ---- 1. throughput ------------------------------------------------------------------------------
declare -A RATE
RUN_KIND=mail
log "throughput: $SESSIONS sessions, $MESSAGES messages of $SIZE bytes per run, $REPS runs, $KEY_NAME"
declare -A runs=()
for rep in $(seq 1 "$REPS"); do
  for target in "${TARGETS[@]}"; do
    run_load "$target" "$MESSAGES" "$SESSIONS"
    runs[$target]="${runs[$target]:-} $RUN_RATE"
    log "  run $rep, $target: $RUN_RATE msg/s"
  done
done
for target in "${TARGETS[@]}"; do RATE[$target]=$(median <<<"${runs[$target]}"); done

# ---- 2. connections and handshakes per second ---------------------------------------------------
declare -A HS_RATE HS_MS
HS_TARGETS=(dotgate dg_implicit dg_starttls haproxy haproxy_tls)
if [ "$HANDSHAKES" -gt 0 ]; then
  RUN_KIND=hs
  log "handshakes: $HS_SESSIONS sessions, $HANDSHAKES connections per run, no mail, $REPS runs"
  declare -A hruns=()
  for rep in $(seq 1 "$REPS"); do
    for target in "${HS_TARGETS[@]}"; do
      run_load "$target" "$HANDSHAKES" "$HS_SESSIONS" --no-mail
      hruns[$target]="${hruns[$target]:-} $RUN_RATE"
      log "  run $rep, $target: $RUN_RATE connections/s"
    done
  done
  for target in "${HS_TARGETS[@]}"; do HS_RATE[$target]=$(median <<<"${hruns[$target]}"); done
  if [ "$SEQ_HANDSHAKES" -gt 0 ]; then
    # One session, one connection after the other: the time a connection takes, free of queueing
    # behind the other sessions.
    RUN_KIND=seq
    log "sequential: 1 session, $SEQ_HANDSHAKES connections per run, no mail, $REPS runs"
    declare -A sruns=()
    for rep in $(seq 1 "$REPS"); do
      for target in "${HS_TARGETS[@]}"; do
        run_load "$target" "$SEQ_HANDSHAKES" 1 --no-mail
        sruns[$target]="${sruns[$target]:-} $RUN_P50"
        log "  run $rep, $target: $RUN_P50 ms per connection (median), $RUN_RATE connections/s"
      done
    done
    for target in "${HS_TARGETS[@]}"; do HS_MS[$target]=$(median <<<"${sruns[$target]}"); done
  fi
fi

# ---- 3. RSS per idle session ----------------------------------------------------------------------
declare -A IDLE_KIB
IDLE_TARGETS=(dotgate dg_starttls dg_implicit haproxy_tls)
# idle_rss TARGET: sets IDLE_KIB[TARGET] (KiB per idle session, or FAIL). Not called in a
# $(subshell): the client's pid must be in PIDS, for the trap.
idle_rss() {
  local target=$1 pid=${TARGET_PID[$1]} before with ready fifo client
  fifo="$WORK/idle.$target.stdin"
  rm -f "$fifo"; mkfifo "$fifo"
  sleep 1
  before=$(rss_kib "$pid")
  # The fifo is the client's stdin: closing our end (fd 7) tells it to close its sessions.
  "$LOAD" --port "${TARGET_PORT[$target]}" --mode "${TARGET_MODE[$target]}" --idle "$IDLE" --sessions 20 \
      --hold 180 "${LOAD_ARGS[@]}" <"$fifo" >"$WORK/idle.$target.out" 2>"$WORK/idle.$target.err" &
  client=$!; PIDS+=("$client")
  exec 7>"$fifo"
  for _ in $(seq 1 1200); do
    grep -q '^ready' "$WORK/idle.$target.out" 2>/dev/null && break
    kill -0 "$client" 2>/dev/null || break
    sleep 0.1
  done
  sleep 1  # let the last replies' buffers settle
  with=$(rss_kib "$pid")
  ready=$(cat "$WORK/idle.$target.out" 2>/dev/null || true)
  exec 7>&-
  stop_pid "$client" >/dev/null 2>&1 || true
  rm -f "$fifo"
  log "  $target: VmRSS $before KiB before, $with KiB with $IDLE sessions ($ready)"
  if [ "$ready" != "ready $IDLE $IDLE" ]; then
    log "  $target: not every idle session opened: $(head -c 500 "$WORK/idle.$target.err")"
    IDLE_KIB[$target]=FAIL
    return
  fi
  IDLE_KIB[$target]=$(awk -v a="$before" -v b="$with" -v n="$IDLE" 'BEGIN { printf "%.1f\n", (b - a) / n }')
}
if [ "$IDLE" -gt 0 ]; then
  log "memory: $IDLE idle sessions, each after EHLO (TLS: after the handshake and EHLO again)"
  for target in "${IDLE_TARGETS[@]}"; do
    idle_rss "$target"
    sleep 2  # let the closed sessions go before the next target
  done
fi

for name in dotgate dg_starttls dg_implicit; do
  kill -0 "${TARGET_PID[$name]}" 2>/dev/null || die "$name died during the benchmark (log: $WORK/$name.log)"
done
kill -0 "$HAPROXY_PID" 2>/dev/null || die "haproxy died during the benchmark (log: $WORK/haproxy.log)"
sleep 1  # smtp-sink updates its counter as each DATA completes; the last one may still be in flight
SINK_MESSAGES=$(sink_messages)

# ---- summary --------------------------------------------------------------------------------------
LOAD_AT_END=$(cut -d' ' -f1-3 /proc/loadavg)
echo
echo "tls relay benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r)," \
     "load average $LOAD_AT_START at start, $LOAD_AT_END at end"
echo "$(openssl version | cut -d' ' -f1-2), haproxy $(haproxy -v | head -n1 | awk '{ print $3 }') (mode tcp, nbthread 1);" \
     "dotgate: $DOTGATE, --workers 1, policies [limits], downstream.pool size $POOL, log level $LOG_LEVEL"
echo "certificate: $KEY_NAME, self-signed; client TLS: $(tls_info mail dg_starttls) (dotgate)," \
     "$(tls_info mail haproxy_tls) (haproxy); $([ "$REUSE_SESSION" = 1 ] && echo "sessions resumed" || echo "full handshake per connection")"
echo "TLS sessions resumed: $(awk '{ for (i = 3; i <= NF; i++) if ($i ~ /^resumed=/) r += substr($i, 9) } END { print r + 0 }' "$WORK/load.out")" \
     "(BENCH_REUSE_SESSION=$REUSE_SESSION)"
echo "smtp_tls_load: $SESSIONS sessions, $SIZE-byte messages, 1 recipient, one connection per message," \
     "$MESSAGES per run, median of $REPS runs"
echo
printf '%-12s %-34s %7s %8s %12s %13s\n' target path "msg/s" "×direct" "proxy CPU" "client CPU"
printf '%-12s %-34s %7s %8s %12s %13s\n' "" "" "" "" "ms/msg" "ms/msg"
declare -A PATH_OF=([direct]="plain → smtp-sink" [dotgate]="plain → dotgate" [dg_starttls]="STARTTLS → dotgate"
                    [dg_implicit]="implicit TLS → dotgate" [haproxy]="plain → haproxy (tcp)"
                    [haproxy_tls]="TLS → haproxy (ssl crt, tcp)")
for target in "${TARGETS[@]}"; do
  cpu=-; [ "$target" != direct ] && cpu=$(per_ms "${CPU_TICKS[$target,mail]:-}" "${CPU_N[$target,mail]:-0}" ticks)
  printf '%-12s %-34s %7s %8s %12s %13s\n' "$target" "${PATH_OF[$target]}" "${RATE[$target]}" \
    "$(ratio "${RATE[$target]}" "${RATE[direct]}")" "$cpu" "$(per_ms "${CLIENT_MS[$target,mail]:-}" "${CPU_N[$target,mail]:-0}")"
done
echo
echo "ratios (throughput):"
check "dotgate STARTTLS / dotgate plain" "$(ratio "${RATE[dg_starttls]}" "${RATE[dotgate]}")"
check "dotgate implicit TLS / dotgate plain" "$(ratio "${RATE[dg_implicit]}" "${RATE[dotgate]}")"
check "dotgate implicit TLS / haproxy TLS" "$(ratio "${RATE[dg_implicit]}" "${RATE[haproxy_tls]}")"
check "dotgate STARTTLS / haproxy TLS" "$(ratio "${RATE[dg_starttls]}" "${RATE[haproxy_tls]}")"
check "haproxy TLS / haproxy plain" "$(ratio "${RATE[haproxy_tls]}" "${RATE[haproxy]}")"
check "dotgate plain / haproxy plain" "$(ratio "${RATE[dotgate]}" "${RATE[haproxy]}")"

if [ "$HANDSHAKES" -gt 0 ]; then
  echo
  echo "connections without mail, one worker: $HS_SESSIONS sessions, $HANDSHAKES per run, median of $REPS"
  printf '%-12s %-40s %8s %10s %10s %14s %11s %11s\n' target "what each connection does" "conn/s" "proxy CPU" "1 / CPU" "TLS handshake" "client CPU" "1 session"
  printf '%-12s %-40s %8s %10s %10s %14s %11s %11s\n' "" "" "" "ms/conn" "conn/s" "proxy CPU ms" "ms/conn" "ms/conn"
  declare -A HS_WHAT=([dotgate]="greeting, QUIT" [dg_implicit]="handshake, greeting, QUIT"
                      [dg_starttls]="greeting, EHLO, STARTTLS, handshake, QUIT" [haproxy]="greeting, QUIT"
                      [haproxy_tls]="handshake, greeting, QUIT")
  declare -A HS_PLAIN=([dg_implicit]=dotgate [dg_starttls]=dotgate [haproxy_tls]=haproxy)
  for target in "${HS_TARGETS[@]}"; do
    cpu=$(per_ms "${CPU_TICKS[$target,hs]:-}" "${CPU_N[$target,hs]:-0}" ticks)
    hs=-
    if [ -n "${HS_PLAIN[$target]:-}" ]; then
      plain_cpu=$(per_ms "${CPU_TICKS[${HS_PLAIN[$target]},hs]:-}" "${CPU_N[${HS_PLAIN[$target]},hs]:-0}" ticks)
      hs=$(awk -v a="$cpu" -v b="$plain_cpu" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.3f\n", a - b }')
    fi
    cap=$(awk -v c="$cpu" 'BEGIN { if (c == "-" || c == 0) print "-"; else printf "%.0f\n", 1000 / c }')
    printf '%-12s %-40s %8s %10s %10s %14s %11s %11s\n' "$target" "${HS_WHAT[$target]}" "${HS_RATE[$target]}" "$cpu" "$cap" "$hs" \
      "$(per_ms "${CLIENT_MS[$target,hs]:-}" "${CPU_N[$target,hs]:-0}")" "${HS_MS[$target]:--}"
  done
  check "TLS handshakes/s, dotgate implicit / haproxy TLS" "$(ratio "${HS_RATE[dg_implicit]}" "${HS_RATE[haproxy_tls]}")"
fi

if [ "$IDLE" -gt 0 ]; then
  echo
  echo "VmRSS per idle session ($IDLE sessions, each with its downstream connection), KiB:"
  for target in "${IDLE_TARGETS[@]}"; do check "$target (${TARGET_MODE[$target]})" "${IDLE_KIB[$target]}"; done
  check "TLS on top of plain, dotgate (STARTTLS − plain)" \
    "$(awk -v a="${IDLE_KIB[dg_starttls]}" -v b="${IDLE_KIB[dotgate]}" 'BEGIN { if (a == "FAIL" || b == "FAIL") print "-"; else printf "%.1f\n", a - b }')"
fi

echo
echo "checks:"
fails=0
for target in "${TARGETS[@]}"; do [ "${RATE[$target]}" = FAIL ] && fails=$((fails + 1)); done
check "every message run ended with every message accepted (250)" "$([ "$fails" = 0 ] && echo yes || echo "NO ($fails targets failed)")"
check "smtp-sink received what the client saw accepted ($SINK_MESSAGES of $ACCEPTED)" \
  "$([ "$SINK_MESSAGES" = "$ACCEPTED" ] && echo yes || echo NO)"
echo
echo "logs and configs: $WORK"
[ "$fails" = 0 ] && [ "$SINK_MESSAGES" = "$ACCEPTED" ]
