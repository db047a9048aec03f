#!/usr/bin/env bash
# test/bench/postfix.sh — what dotgate costs in front of a real Postfix, against haproxy and none.
#
#   bash test/bench/postfix.sh [PATH-TO-DOTGATE]   (default: build-bench/proxy/dotgate, built with
#                                                    -Dbuildtype=release when missing; needs root:
#                                                    a private Postfix instance, as the tests')
#
# A private Postfix (its own main.cf/master.cf, queue and data directories under BENCH_DIR; the
# installed binaries, /usr/lib/postfix/sbin/master run in the foreground as this script's child,
# as test/integration/postfix_client.py does) runs one smtpd on 127.0.0.1 that accepts everything
# (no restrictions, no connection count or rate limits, in_flow_delay 0) and queues each message
# for real (cleanup writes and fsyncs the queue file, qmgr picks it up), then delivers it to the
# discard transport. In one run, interleaved, Postfix's smtp-source sends to five targets:
#   direct    smtp-source → Postfix smtpd
#   haproxy   smtp-source → haproxy (mode tcp, nbthread BENCH_HAPROXY_THREADS: nproc) → smtpd
#   dotgate   smtp-source → dotgate, the default config (listener, downstream, spool directory and
#             the limits policy; every other key its default: workers one per core, no pool) → smtpd
#   pool2     the default config plus the pool the deployment configs recommend (deploy/
#             dotgate.example.json's downstream.pool: size 2, one client per MTA connection)
#   tuned     the same binary configured for speed: downstream.pool size BENCH_TUNED_POOL (20) and
#             max_sessions BENCH_TUNED_MAX_SESSIONS (100: several clients per MTA connection),
#             busy_poll_us BENCH_TUNED_BUSY_POLL (0)
# BENCH_SESSIONS (20) parallel sessions, BENCH_SIZE (4096)-byte messages, BENCH_RCPTS (1) recipients,
# one connection per message (BENCH_REUSE=1: smtp-source -d, one per session), BENCH_MESSAGES
# (5000) per run, BENCH_REPS (3) runs. Between runs it waits (at most 120 s) for Postfix's queue to
# empty, so one target's deliveries do not slow the next one's run.
# Prints msg/s (median), the ratio to direct and to haproxy, CPU ms per message of the proxy and
# of the whole Postfix instance (from /proc/PID/stat: the processes of master's process group,
# smtpd, cleanup, qmgr, discard, ..., plus master's cutime + cstime, what its children that have
# exited used), the machine's busy share, and at the end checks that every message a
# client was given 250 for was delivered (the discard transport's "status=sent" lines in the
# instance's maillog = messages sent × recipients), and the targets: dotgate >= 0.90 of direct and
# above haproxy.
# Knobs (besides those above): BENCH_PORT_BASE (25525: smtpd; +1 haproxy, +2/+3 dotgate and its
# admin, +4/+5 tuned, +6/+7 pool2; below the ephemeral range), BENCH_LOG_LEVEL (dotgate's, info), BENCH_DIR.
# Every process it starts is stopped by its pid on exit (Postfix: master by its pid, then what is
# left of its process group, by that group's id); every step has a time limit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

DOTGATE=${1:-${DOTGATE:-build-bench/proxy/dotgate}}
MESSAGES=${BENCH_MESSAGES:-5000}
REPS=${BENCH_REPS:-3}
SESSIONS=${BENCH_SESSIONS:-20}
SIZE=${BENCH_SIZE:-4096}
RCPTS=${BENCH_RCPTS:-1}
BASE=${BENCH_PORT_BASE:-25525}
SMTPD_PORT=$BASE
HAPROXY_PORT=$((BASE + 1))
DOTGATE_PORT=$((BASE + 2))
ADMIN_PORT=$((BASE + 3))
TUNED_PORT=$((BASE + 4))
TUNED_ADMIN_PORT=$((BASE + 5))
POOL2_PORT=$((BASE + 6))
POOL2_ADMIN_PORT=$((BASE + 7))
HAPROXY_THREADS=${BENCH_HAPROXY_THREADS:-$(nproc)}
TUNED_POOL=${BENCH_TUNED_POOL:-20}
TUNED_MAX_SESSIONS=${BENCH_TUNED_MAX_SESSIONS:-100}
TUNED_BUSY_POLL=${BENCH_TUNED_BUSY_POLL:-0}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
HELO_NAME=bench.example
MAXCONN=2000
WORK=${BENCH_DIR:-$(mktemp -d /tmp/dotgate-bench-postfix.XXXXXX)}
mkdir -p "$WORK"
chmod 755 "$WORK"  # Postfix's daemons (user postfix) go through it to their queue
CLK_TCK=$(getconf CLK_TCK)
REUSE=()
[ "${BENCH_REUSE:-0}" = 1 ] && REUSE=(-d)

BENCH_NAME=postfix.sh
# shellcheck source=test/bench/lib.sh
source "$ROOT/test/bench/lib.sh"  # log, die, PIDS and their cleanup, port_open, run_source, ...

PF_DAEMONS=/usr/lib/postfix/sbin
for tool in smtp-source haproxy "$PF_DAEMONS/master"; do
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install postfix haproxy)"
done
[ "$(id -u)" -eq 0 ] || die "a private Postfix instance needs root (its queue directories belong to postfix)"
getent passwd postfix >/dev/null && getent group postdrop >/dev/null || die "no postfix user or postdrop group"

note_load

need_dotgate
for p in $(seq "$BASE" $((BASE + 7))); do
  port_open "$p" && die "port $p is in use (set BENCH_PORT_BASE)"
done

# ---- the private Postfix -----------------------------------------------------------------------
PF=$WORK/postfix
PF_CONF=$PF/conf
PF_QUEUE=$PF/queue
PF_LOG=$PF/maillog
MASTER_PID=
rm -rf "$PF"
mkdir -p "$PF_CONF" "$PF_QUEUE" "$PF/data"
chmod 755 "$PF" "$PF_QUEUE"
chown postfix:postfix "$PF/data"; chmod 700 "$PF/data"
for d in active bounce corrupt defer deferred flush hold incoming private saved trace; do
  install -d -o postfix -g root -m 700 "$PF_QUEUE/$d"
done
install -d -o postfix -g postdrop -m 730 "$PF_QUEUE/maildrop"
install -d -o postfix -g postdrop -m 710 "$PF_QUEUE/public"
install -d -o root -g root -m 755 "$PF_QUEUE/pid"
cat >"$PF_CONF/main.cf" <<EOF
# written by test/bench/postfix.sh: accept everything from loopback, queue it, discard it
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $PF/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mta.bench.example
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
syslog_name = postfix-bench
maillog_file = $PF_LOG
maillog_file_prefixes = $PF
alias_maps =
alias_database =
biff = no
smtputf8_enable = no
# every message is queued (cleanup fsyncs it), then delivered to nothing
default_transport = discard:bench
relay_transport = discard:bench
local_transport = discard:bench
# no restrictions and no limits that 20 sessions from one address would hit
smtpd_client_restrictions =
smtpd_helo_restrictions =
smtpd_sender_restrictions =
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_error_sleep_time = 0
in_flow_delay = 0s
default_process_limit = 200
EOF
cat >"$PF_CONF/master.cf" <<EOF
# written by test/bench/postfix.sh
127.0.0.1:$SMTPD_PORT inet n - n - 200 smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF

# master in the foreground, in a session of its own (setsid execs it in place: $! is master), so
# that what it leaves behind can be stopped by its process group id.
stop_postfix() {
  [ -n "$MASTER_PID" ] || return 0
  kill -TERM "$MASTER_PID" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$MASTER_PID" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$MASTER_PID" 2>/dev/null || true
  wait "$MASTER_PID" 2>/dev/null || true
  MASTER_PID=
}
trap 'stop_postfix; cleanup' EXIT
setsid env -i MAIL_CONFIG="$PF_CONF" "$PF_DAEMONS/master" -c "$PF_CONF" -s >"$WORK/postfix-master.log" 2>&1 &
MASTER_PID=$!
for _ in $(seq 1 200); do
  port_open "$SMTPD_PORT" && [ -S "$PF_QUEUE/public/pickup" ] && break
  kill -0 "$MASTER_PID" 2>/dev/null || die "Postfix master exited: $(cat "$WORK/postfix-master.log")"
  sleep 0.1
done
port_open "$SMTPD_PORT" || die "Postfix does not listen on $SMTPD_PORT after 20 s (log: $PF_LOG)"

# pf_ticks: CPU ticks of every process in master's process group now (smtpd, cleanup, qmgr, ...),
# and of master's children that have exited (its cutime + cstime: an smtpd exits after max_use).
pf_ticks() {
  # a process may exit between the glob and its read: cat fails then, which pipefail must not see
  { cat /proc/[0-9]*/stat 2>/dev/null || true; } | awk -v g="$MASTER_PID" '{ pid = $1; sub(/^.*\) /, "")
    if ($3 == g) sum += $12 + $13 + (pid == g ? $14 + $15 : 0) } END { print sum + 0 }'
}
queue_files() { find "$PF_QUEUE/incoming" "$PF_QUEUE/active" "$PF_QUEUE/deferred" "$PF_QUEUE/maildrop" -type f 2>/dev/null | wc -l; }
wait_queue_empty() {
  local n
  for _ in $(seq 1 1200); do
    n=$(queue_files)
    [ "$n" -eq 0 ] && return 0
    sleep 0.1
  done
  log "warning: Postfix's queue still holds $n messages after 120 s"
}
delivered_count() { grep -c ' status=sent ' "$PF_LOG" 2>/dev/null || true; }

# ---- the proxies -------------------------------------------------------------------------------
declare -A TARGET_PORT=([direct]=$SMTPD_PORT) TARGET_PID=() CPU_TICKS=() CPU_MSGS=()
TARGETS=(direct)
add_target() { TARGET_PORT[$1]=$2; TARGET_PID[$1]=$3; TARGETS+=("$1"); CPU_TICKS[$1]=0; CPU_MSGS[$1]=0; }

haproxy_tcp_config "$WORK/haproxy.cfg" "$HAPROXY_PORT" "$SMTPD_PORT" "$HAPROXY_THREADS" "$MAXCONN"
haproxy -db -q -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
pid=$!; PIDS+=("$pid")
wait_port "$HAPROXY_PORT" "$pid" haproxy
add_target haproxy "$HAPROXY_PORT" "$pid"

# start_dotgate NAME PORT ADMIN_PORT EXTRA: EXTRA: more top-level members, each ending in a comma.
start_dotgate() {
  local name=$1 port=$2 admin=$3 extra=$4 pid
  cat >"$WORK/$name.json" <<EOF
{
  "listeners": [{"address": "127.0.0.1", "port": $port}],
  "admin": {"address": "127.0.0.1", "port": $admin, "enabled": true}, $extra
  "log": {"format": "text", "level": "$LOG_LEVEL"},
  "spool": {"directory": "$WORK"},
  "policies": [{"type": "limits"}]
}
EOF
  timeout 10 "$DOTGATE" --config "$WORK/$name.json" --check-config >"$WORK/$name.check" 2>&1 ||
    die "$name: --check-config refused $WORK/$name.json: $(cat "$WORK/$name.check")"
  "$DOTGATE" --config "$WORK/$name.json" >"$WORK/$name.log" 2>&1 &
  pid=$!; PIDS+=("$pid")
  wait_port "$port" "$pid" "$name"
  add_target "$name" "$port" "$pid"
}
start_dotgate dotgate "$DOTGATE_PORT" "$ADMIN_PORT" \
  "\"downstream\": {\"address\": \"127.0.0.1\", \"port\": $SMTPD_PORT},"
start_dotgate pool2 "$POOL2_PORT" "$POOL2_ADMIN_PORT" \
  "\"downstream\": {\"address\": \"127.0.0.1\", \"port\": $SMTPD_PORT, \"pool\": {\"size\": 2, \"max_idle\": 60}},"
TUNED_JSON="\"downstream\": {\"address\": \"127.0.0.1\", \"port\": $SMTPD_PORT, \"pool\": {\"size\": $TUNED_POOL, \"max_sessions\": $TUNED_MAX_SESSIONS}},"
[ "$TUNED_BUSY_POLL" != 0 ] && TUNED_JSON="$TUNED_JSON \"busy_poll_us\": $TUNED_BUSY_POLL,"
start_dotgate tuned "$TUNED_PORT" "$TUNED_ADMIN_PORT" "$TUNED_JSON"
sleep 1  # the tuned pool's connections greeted

# ---- the runs ----------------------------------------------------------------------------------
declare -A runs=() PF_CPU=() SRC_CPU=() BUSY_RUNS=()
SENT=0
# One short unmeasured run per target first: Postfix spawns its smtpd processes, the pools fill.
for target in "${TARGETS[@]}"; do
  run_source "$target" "$SESSIONS" $((SESSIONS * 10)) "$RCPTS"
  [ "$RUN_SECS" = FAIL ] || SENT=$((SENT + SESSIONS * 10))
done
for target in "${TARGETS[@]}"; do CPU_TICKS[$target]=0; CPU_MSGS[$target]=0; done
log "throughput: $SESSIONS sessions, $MESSAGES messages of $SIZE bytes, $RCPTS rcpt, $REPS runs${REUSE[*]:+, connections reused (-d)}"
for rep in $(seq 1 "$REPS"); do
  for target in "${TARGETS[@]}"; do
    wait_queue_empty
    p0=$(pf_ticks)
    run_source "$target" "$SESSIONS" "$MESSAGES" "$RCPTS"; secs=$RUN_SECS
    wait_queue_empty  # its deliveries are part of what Postfix spent on this target
    p1=$(pf_ticks)
    PF_CPU[$target]=$((${PF_CPU[$target]:-0} + p1 - p0))
    SRC_CPU[$target]=$((${SRC_CPU[$target]:-0} + RUN_SOURCE_TICKS))
    BUSY_RUNS[$target]="${BUSY_RUNS[$target]:-} $RUN_BUSY_PCT"
    if [ "$secs" = FAIL ]; then rate=FAIL; else
      rate=$(awk -v n="$MESSAGES" -v s="$secs" 'BEGIN { printf "%.0f\n", n / s }')
      SENT=$((SENT + MESSAGES))
    fi
    runs[$target]="${runs[$target]:-} $rate"
    log "  run $rep, $target: $rate msg/s (machine busy $RUN_BUSY_PCT %)"
  done
done
sleep 1  # postlogd's last lines
DELIVERED=$(delivered_count)
for target in "${TARGETS[@]}"; do
  [ "$target" = direct ] || kill -0 "${TARGET_PID[$target]}" 2>/dev/null || die "$target died during the benchmark (log: $WORK/$target.log)"
done

# ---- summary -----------------------------------------------------------------------------------
declare -A RATE
for target in "${TARGETS[@]}"; do RATE[$target]=$(median <<<"${runs[$target]}"); done
per_msg() { awk -v t="$1" -v n="$((REPS * MESSAGES))" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f\n", t * 1000 / hz / n }'; }
echo
echo "postfix benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), load average at start $LOAD_AT_START, at end $(cut -d' ' -f1 /proc/loadavg)"
echo "Postfix $(postconf -d -h mail_version) smtpd (queue on $(df -T "$PF_QUEUE" | awk 'NR == 2 { print $2 }'), discard transport);" \
     "smtp-source: $SESSIONS sessions, $SIZE-byte messages, $RCPTS rcpt, $MESSAGES per run, median of $REPS runs;" \
     "$([ ${#REUSE[@]} -gt 0 ] && echo "connections reused (-d)" || echo "one connection per message")"
echo "haproxy $(haproxy -v | head -n1 | awk '{ print $3 }') nbthread $HAPROXY_THREADS; dotgate: $DOTGATE, default config; pool2: pool size 2;" \
     "tuned: downstream.pool size $TUNED_POOL max_sessions $TUNED_MAX_SESSIONS, busy_poll_us $TUNED_BUSY_POLL"
echo
printf '%-8s %8s %9s %10s %14s %16s %15s %6s\n' target "msg/s" "/direct" "/haproxy" "proxy CPU ms" "Postfix CPU ms" "source CPU ms" "busy%"
for target in "${TARGETS[@]}"; do
  pcpu=-
  [ -n "${TARGET_PID[$target]:-}" ] && pcpu=$(per_msg "${CPU_TICKS[$target]}")
  printf '%-8s %8s %9s %10s %14s %16s %15s %6s\n' "$target" "${RATE[$target]}" \
    "$(ratio "${RATE[$target]}" "${RATE[direct]}")" "$(ratio "${RATE[$target]}" "${RATE[haproxy]}")" \
    "$pcpu" "$(per_msg "${PF_CPU[$target]}")" "$(per_msg "${SRC_CPU[$target]}")" "$(median <<<"${BUSY_RUNS[$target]}")"
done
echo "(CPU ms per message; Postfix's: every process of its instance, for the run and its queue's delivery;"
echo " source: smtp-source's, this shell's waited-for children)"
echo
echo "every accepted message delivered: $DELIVERED 'status=sent' lines, $((SENT * RCPTS)) expected"
echo "targets:"
for t in dotgate pool2 tuned; do
  d=${RATE[$t]} x=${RATE[direct]} h=${RATE[haproxy]}
  if [[ "$d$x$h" == *FAIL* ]]; then check "$t: >= 0.90 of direct and above haproxy" "n/a (a run failed)"; continue; fi
  check "$t >= 0.90 of direct ($(ratio "$d" "$x"))" "$(verdict "$d >= 0.9 * $x")"
  check "$t above haproxy ($d vs $h)" "$(verdict "$d > $h")"
done
check "delivered = accepted ($DELIVERED vs $((SENT * RCPTS)))" "$(verdict "$DELIVERED == $SENT * $RCPTS")"
echo
echo "logs and configs: $WORK"
[ "$DELIVERED" -eq $((SENT * RCPTS)) ] || exit 1
