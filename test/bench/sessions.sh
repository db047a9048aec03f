#!/usr/bin/env bash
# test/bench/sessions.sh — dotgate holding 10,000 slow sessions while normal mail still flows.
#
#   bash test/bench/sessions.sh [PATH-TO-DOTGATE]   (default: build-bench/proxy/dotgate, built
#                                                   with -Dbuildtype=release when missing)
#
# What a spam run does to an MX: thousands of clients connect and then talk as slowly as the
# server lets them. On loopback only, one dotgate (--workers BENCH_WORKERS, policies [limits])
# relays to one SMTP sink (uv_sink, below; it discards the mail), and this script
#   1. measures normal mail on the idle dotgate: smtp-source with BENCH_NORMAL_SESSIONS (4)
#      sessions, BENCH_MESSAGES (2000) 4 KiB messages (throughput), and one session sending
#      BENCH_LATENCY_MESSAGES (300) one after another (latency per message); the same, interleaved,
#      to a twin dotgate (the same binary and config on other ports, which never gets a slow
#      session) and to the sink directly, so that what the machine's drift and the load
#      generator's own CPU cost shows apart from what the slow sessions cost dotgate (the ratio
#      loaded / twin within a phase); BENCH_REPS (5) runs each, the median;
#   2. opens BENCH_SESSIONS (10000) sessions with test/bench/slow_sessions.py: connected in bursts
#      of 200, each greeted, then each sends `EHLO x`, then `MAIL FROM:<s@x>`, `RCPT TO:<r@x>`,
#      `RSET` over and over, one byte every BENCH_MIN_GAP..BENCH_MAX_GAP (2..5) seconds, waiting
#      for each reply. dotgate re-arms smtp.command_timeout (300 s) on every read, and the longest
#      command (17 octets) takes at most 85 s at 5 s a byte, within RFC 5321 4.5.3.2.7's 5 minutes
#      even for a server that times whole commands: no session may be closed. After BENCH_SETTLE
#      (90) seconds (the EHLOs are done by ~30 s, the MAILs come in from ~60 s on, so commands
#      reach the MTA while normal mail is measured):
#      dotgate's VmRSS and open descriptors (/proc/PID/fd) and its CPU share with only the slow
#      sessions;
#   3. measures normal mail again, the same runs, with the 10,000 talking: ratios to idle and to
#      the twin in the same phase;
#   4. fills dotgate up: smtp.max_connections is BENCH_SESSIONS + BENCH_ROOM (20, the room normal
#      mail used), and test/bench/limit_probe.py connects BENCH_ROOM + BENCH_OVER (50) clients one
#      after another: the first BENCH_ROOM must get 220, every one after 421 4.7.0 and a close;
#      meanwhile the slow sessions must go on; once the probe lets go, normal mail must flow
#      again (one more throughput run);
#   5. stops the slow sessions (each must have been open to the end, every reply 250) and checks
#      that dotgate's sessions and descriptors go back to the idle figures; then a second round of
#      as many sessions (a byte every 0.5-1 s, for 30 s): dotgate's VmRSS after it
#      must not pass the first round's by more than 10 % (a leak per session would); and the
#      sink's count of messages (uv_sink says it at exit) must be every normal message sent.
# CPU per normal message is dotgate's utime+stime over the normal runs less what the slow
# sessions alone cost it over the same time (measured in step 2), per message.
# It prints a table and the checks; exit status 1 when a check fails or a step fails.
#
# Limits: 10,000 sessions are 20,000 sockets in dotgate (client and downstream), 10,000 in
# the sink and 10,000 in the load generator. As root the script raises the hard open files limit
# of itself and so of every process it starts to BENCH_NOFILE (4 x BENCH_SESSIONS + 10000), when
# it may (root with CAP_SYS_RESOURCE); when it may not, it lowers BENCH_SESSIONS to what the hard
# limit holds in dotgate, (limit - 100) / 2 - BENCH_ROOM, and says so in the summary. dotgate
# itself is started with a soft limit of BENCH_DOTGATE_SOFT (1024, what many service managers
# give; empty: the script's own) to show that it raises its soft limit to the hard one at start
# (its log says "open files limit raised").
# The downstream is test/bench/uv_sink.c (built here with cc), an SMTP sink on libuv without
# timers: Postfix's smtp-sink walks a sorted list of every connection's timer on each command, so
# with 10,000 connections open it fell from ~3,500 to under 150 messages/s, direct as much as
# through dotgate, and the run measured smtp-sink. BENCH_SINK=smtp-sink uses it all the same,
# with -m (its connection cap) above the sessions and -t 600 (its default 100 s read timeout
# would close downstream connections that wait for a slow client's next command).
# Knobs: BENCH_SINK (uv_sink or smtp-sink), BENCH_SESSIONS, BENCH_ROOM, BENCH_OVER, BENCH_MIN_GAP,
# BENCH_MAX_GAP, BENCH_SETTLE, BENCH_NORMAL_SESSIONS, BENCH_MESSAGES, BENCH_LATENCY_MESSAGES,
# BENCH_REPS, BENCH_WORKERS (1), BENCH_NOFILE, BENCH_DOTGATE_SOFT, BENCH_LOG_LEVEL (dotgate's, info), BENCH_PORT_BASE (24025:
# dotgate, +1 the sink, +2 admin, +3 and +4 the twin's; below the ephemeral range, 32768+, that the clients use),
# BENCH_DIR (logs and configs; default a new /tmp/dotgate-sessions.XXXXXX).
# Every process it starts is stopped by its pid on exit (lib.sh); every step has a time limit.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

DOTGATE=${1:-${DOTGATE:-build-bench/proxy/dotgate}}
N=${BENCH_SESSIONS:-10000}
ROOM=${BENCH_ROOM:-20}
OVER=${BENCH_OVER:-50}
MIN_GAP=${BENCH_MIN_GAP:-2}
MAX_GAP=${BENCH_MAX_GAP:-5}
SETTLE=${BENCH_SETTLE:-90}
NORMAL_SESSIONS=${BENCH_NORMAL_SESSIONS:-4}
MESSAGES=${BENCH_MESSAGES:-2000}
LAT_MESSAGES=${BENCH_LATENCY_MESSAGES:-300}
REPS=${BENCH_REPS:-5}
WORKERS=${BENCH_WORKERS:-1}
NOFILE=${BENCH_NOFILE:-$((4 * N + 10000))}
DOTGATE_SOFT=${BENCH_DOTGATE_SOFT-1024}
LOG_LEVEL=${BENCH_LOG_LEVEL:-info}
SINK=${BENCH_SINK:-uv_sink}
BASE=${BENCH_PORT_BASE:-24025}
DOTGATE_PORT=$BASE
SINK_PORT=$((BASE + 1))
ADMIN_PORT=$((BASE + 2))
TWIN_PORT=$((BASE + 3))
TWIN_ADMIN_PORT=$((BASE + 4))
MAXCONN=$((N + ROOM))
SIZE=4096
HELO_NAME=bench.example
REUSE=()
WORK=${BENCH_DIR:-$(mktemp -d /tmp/dotgate-sessions.XXXXXX)}
mkdir -p "$WORK"
CLK_TCK=$(getconf CLK_TCK)

BENCH_NAME=sessions.sh
# shellcheck source=test/bench/lib.sh
source "$ROOT/test/bench/lib.sh"  # log, die, PIDS and their cleanup, port_open, run_source, ...

for tool in smtp-source python3 curl cc "$SINK"; do
  [ "$tool" = uv_sink ] && continue
  command -v "$tool" >/dev/null || die "$tool not found (apt-get install postfix python3 curl gcc libuv1-dev)"
done
note_load

# ---- the dotgate binary -------------------------------------------------------------------------
need_dotgate

# ---- limits -------------------------------------------------------------------------------------
hard=$(ulimit -Hn)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$NOFILE" ]; then
  # Root with CAP_SYS_RESOURCE may raise it (a container often lacks that capability).
  ulimit -Hn "$NOFILE" 2>/dev/null || log "warning: cannot raise the hard open files limit $hard to $NOFILE"
fi
ulimit -Sn "$(ulimit -Hn)"
log "open files limit for the processes started here: $(ulimit -Sn) (hard $(ulimit -Hn))"
LOWERED=
if [ "$(ulimit -Hn)" != unlimited ]; then
  # dotgate needs 2 per session plus its own; --check-config's rule is 2 x max_connections + 100.
  fit=$((($(ulimit -Hn) - 100) / 2 - ROOM))
  if [ "$fit" -lt "$N" ]; then
    [ "$fit" -ge 100 ] || die "the open files limit $(ulimit -Hn) leaves room for too few sessions ($fit)"
    log "warning: the hard open files limit $(ulimit -Hn) holds $fit sessions in dotgate (2 x ($fit + $ROOM) + 100), not $N: lowering BENCH_SESSIONS"
    LOWERED="BENCH_SESSIONS lowered from $N to $fit: the hard open files limit is $(ulimit -Hn) and cannot be raised here"
    N=$fit
    MAXCONN=$((N + ROOM))
  fi
fi
for p in "$DOTGATE_PORT" "$SINK_PORT" "$ADMIN_PORT" "$TWIN_PORT" "$TWIN_ADMIN_PORT"; do
  port_open "$p" && die "port $p is in use (set BENCH_PORT_BASE)"
done

# ---- smtp-sink and dotgate ----------------------------------------------------------------------
if [ "$SINK" = smtp-sink ]; then
  sink_user=()
  [ "$(id -u)" -eq 0 ] && sink_user=(-u nobody)
  smtp-sink "${sink_user[@]}" -m $((MAXCONN + OVER + 100)) -t 600 -h sink.bench 127.0.0.1:"$SINK_PORT" 4096 \
    >"$WORK/sink.log" 2>&1 &
else
  cc -O2 -o "$WORK/uv_sink" "$ROOT/test/bench/uv_sink.c" -luv || die "cannot build uv_sink (apt-get install gcc libuv1-dev)"
  "$WORK/uv_sink" "$SINK_PORT" >"$WORK/sink.log" 2>&1 &
fi
SINK_PID=$!; PIDS+=("$SINK_PID")
wait_port "$SINK_PORT" "$SINK_PID" sink

dotgate_config() {  # NAME PORT ADMIN_PORT: writes $WORK/NAME.json
  cat >"$WORK/$1.json" <<EOF
{
  "listeners": [{"address": "127.0.0.1", "port": $2}],
  "downstream": {"address": "127.0.0.1", "port": $SINK_PORT},
  "admin": {"address": "127.0.0.1", "port": $3, "enabled": true},
  "workers": $WORKERS,
  "log": {"format": "text", "level": "$LOG_LEVEL"},
  "smtp": {"max_connections": $MAXCONN},
  "spool": {"directory": "$WORK"},
  "policies": [{"type": "limits"}]
}
EOF
}
dotgate_config dotgate "$DOTGATE_PORT" "$ADMIN_PORT"
dotgate_config twin "$TWIN_PORT" "$TWIN_ADMIN_PORT"
if [ -n "$DOTGATE_SOFT" ]; then
  (ulimit -Sn "$DOTGATE_SOFT" && exec "$DOTGATE" --config "$WORK/dotgate.json") >"$WORK/dotgate.log" 2>&1 &
else
  "$DOTGATE" --config "$WORK/dotgate.json" >"$WORK/dotgate.log" 2>&1 &
fi
DOTGATE_PID=$!; PIDS+=("$DOTGATE_PID")
wait_port "$DOTGATE_PORT" "$DOTGATE_PID" dotgate
wait_port "$ADMIN_PORT" "$DOTGATE_PID" dotgate
# The twin: the same binary and config on other ports, never given a slow session. Normal mail
# runs to it are interleaved with those to the loaded dotgate, so the machine's drift (other work
# on it) hits both alike, and the ratio loaded / twin in one phase is dotgate's own.
"$DOTGATE" --config "$WORK/twin.json" >"$WORK/twin.log" 2>&1 &
TWIN_PID=$!; PIDS+=("$TWIN_PID")
wait_port "$TWIN_PORT" "$TWIN_PID" twin
DG_LIMIT=$(awk '/^Max open files/ { print $4 " (hard " $5 ")" }' "/proc/$DOTGATE_PID/limits")
log "dotgate: pid $DOTGATE_PID, max_connections $MAXCONN, open files limit $DG_LIMIT (started with soft ${DOTGATE_SOFT:-$(ulimit -Sn)})"

declare -A TARGET_PORT=([direct]=$SINK_PORT [dotgate]=$DOTGATE_PORT [twin]=$TWIN_PORT)
declare -A TARGET_PID=([dotgate]=$DOTGATE_PID)
declare -A CPU_TICKS=([dotgate]=0)
declare -A CPU_MSGS=([dotgate]=0)

fds() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
metric() {  # NAME: its value from dotgate's /metrics (summed over labels), or -
  curl -s --max-time 5 "http://127.0.0.1:$ADMIN_PORT/metrics" |
    awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $2; f = 1 } END { if (f) printf "%d\n", s; else print "-" }'
}
alive_or_die() { kill -0 "$DOTGATE_PID" 2>/dev/null || die "dotgate died (log: $WORK/dotgate.log)"; }

# normal_mail PHASE: REPS interleaved runs of throughput and latency, to dotgate and direct; sets
# RATE[PHASE,target] (msg/s, median), LAT[PHASE,target] (ms per message, median) and
# CPU[PHASE] (dotgate's CPU ms per message over the phase).
declare -A RATE LAT CPU
normal_mail() {
  local phase=$1 rep target secs v
  declare -A rr=() lr=()
  local elapsed=0
  CPU_TICKS[dotgate]=0; CPU_MSGS[dotgate]=0
  for rep in $(seq 1 "$REPS"); do
    for target in dotgate twin direct; do
      run_source "$target" "$NORMAL_SESSIONS" "$MESSAGES" 1; secs=$RUN_SECS
      if [ "$secs" = FAIL ]; then v=FAIL; else v=$(awk -v n="$MESSAGES" -v s="$secs" 'BEGIN { printf "%.0f\n", n / s }'); fi
      [ "$target" = dotgate ] && [ "$secs" != FAIL ] && elapsed=$(awk -v a="$elapsed" -v b="$secs" 'BEGIN { print a + b }')
      rr[$target]="${rr[$target]:-} $v"
      run_source "$target" 1 "$LAT_MESSAGES" 1; secs=$RUN_SECS
      if [ "$secs" = FAIL ]; then v=FAIL; else v=$(awk -v n="$LAT_MESSAGES" -v s="$secs" 'BEGIN { printf "%.3f\n", s * 1000 / n }'); fi
      [ "$target" = dotgate ] && [ "$secs" != FAIL ] && elapsed=$(awk -v a="$elapsed" -v b="$secs" 'BEGIN { print a + b }')
      lr[$target]="${lr[$target]:-} $v"
    done
    log "  $phase run $rep: dotgate ${rr[dotgate]##* } msg/s, ${lr[dotgate]##* } ms; twin ${rr[twin]##* } msg/s," \
        "${lr[twin]##* } ms; direct ${rr[direct]##* } msg/s, ${lr[direct]##* } ms"
  done
  for target in dotgate twin direct; do
    RATE[$phase,$target]=$(median <<<"${rr[$target]}")
    LAT[$phase,$target]=$(median <<<"${lr[$target]}")
  done
  # Less what the slow sessions alone cost over the same time (CPU_SLOW_PCT, 0 when idle).
  CPU[$phase]=$(awk -v t="${CPU_TICKS[dotgate]}" -v n="${CPU_MSGS[dotgate]}" -v hz="$CLK_TCK" \
                    -v bg="${CPU_SLOW_PCT:-0}" -v e="$elapsed" \
                'BEGIN { if (n == 0) print "-"; else printf "%.3f\n", (t / hz - bg / 100 * e) * 1000 / n }')
}

# ---- 1. idle --------------------------------------------------------------------------------
FAILS=()
fail() { FAILS+=("$*"); log "FAILED: $*"; }
sleep 1
RSS_IDLE=$(rss_kib "$DOTGATE_PID"); FD_IDLE=$(fds "$DOTGATE_PID")
log "idle dotgate: VmRSS $RSS_IDLE KiB, $FD_IDLE descriptors; normal mail: $NORMAL_SESSIONS sessions x $MESSAGES messages, 1 x $LAT_MESSAGES sequential, $REPS runs"
normal_mail idle
RSS_IDLE_AFTER=$(rss_kib "$DOTGATE_PID"); FD_IDLE_AFTER=$(fds "$DOTGATE_PID")
alive_or_die

# ---- 2. the slow sessions -----------------------------------------------------------------------
SLOW_FIFO="$WORK/slow.stdin"
rm -f "$SLOW_FIFO"; mkfifo "$SLOW_FIFO"
hold=$((SETTLE + 20 * REPS * (MESSAGES / 200 + LAT_MESSAGES / 100 + 10) + 900))
python3 "$ROOT/test/bench/slow_sessions.py" 127.0.0.1 "$DOTGATE_PORT" "$N" --connect-timeout 300 \
    --min-gap "$MIN_GAP" --max-gap "$MAX_GAP" --hold "$hold" --report 5 \
    <"$SLOW_FIFO" >"$WORK/slow.out" 2>"$WORK/slow.err" &
SLOW_PID=$!; PIDS+=("$SLOW_PID")
exec 7>"$SLOW_FIFO"  # closing it tells the load generator to stop
t0=$(date +%s)
for _ in $(seq 1 3000); do  # 300 s
  grep -q '^ready' "$WORK/slow.out" 2>/dev/null && break
  kill -0 "$SLOW_PID" 2>/dev/null || break
  sleep 0.1
done
READY=$(grep '^ready' "$WORK/slow.out" || echo "not ready")
CONNECT_SECS=$(($(date +%s) - t0))
log "slow sessions: $READY after ${CONNECT_SECS}s ($(cat "$WORK/slow.err" 2>/dev/null))"
[ "$READY" = "ready $N $N" ] || fail "not every slow session was greeted: $READY"
alive_or_die
c0=$(cpu_ticks "$DOTGATE_PID"); g0=$(cpu_ticks "$SLOW_PID"); w0=$(date +%s%N)
sleep "$SETTLE"
c1=$(cpu_ticks "$DOTGATE_PID"); g1=$(cpu_ticks "$SLOW_PID"); w1=$(date +%s%N)
CPU_SLOW=$(awk -v c="$((c1 - c0))" -v hz="$CLK_TCK" -v w="$((w1 - w0))" 'BEGIN { printf "%.1f\n", c / hz / (w / 1e9) * 100 }')
CPU_SLOW_PCT=$CPU_SLOW
CPU_GEN=$(awk -v c="$((g1 - g0))" -v hz="$CLK_TCK" -v w="$((w1 - w0))" 'BEGIN { printf "%.1f\n", c / hz / (w / 1e9) * 100 }')
RSS_LOADED=$(rss_kib "$DOTGATE_PID"); FD_LOADED=$(fds "$DOTGATE_PID"); OPEN_LOADED=$(metric dotgate_connections_open)
STATUS_LOADED=$(grep '^status' "$WORK/slow.out" | tail -n1)
log "with $N slow sessions: VmRSS $RSS_LOADED KiB, $FD_LOADED descriptors, dotgate_connections_open $OPEN_LOADED," \
    "dotgate CPU ${CPU_SLOW} %, load generator ${CPU_GEN} %; $STATUS_LOADED"

# ---- 3. normal mail beside them -----------------------------------------------------------------
normal_mail loaded
RSS_LOADED_END=$(rss_kib "$DOTGATE_PID"); FD_LOADED_END=$(fds "$DOTGATE_PID")
STATUS_AFTER_MAIL=$(grep '^status' "$WORK/slow.out" | tail -n1)
log "after the loaded runs: VmRSS $RSS_LOADED_END KiB, $FD_LOADED_END descriptors; $STATUS_AFTER_MAIL"
alive_or_die

# ---- 4. past max_connections --------------------------------------------------------------------
sleep 2  # the normal sessions' closes are counted before the probe (each close frees its slot)
OPEN_BEFORE_PROBE=$(metric dotgate_connections_open)
REFUSED_BEFORE=$(metric dotgate_connections_refused_total)
PROBE_FIFO="$WORK/probe.stdin"
rm -f "$PROBE_FIFO"; mkfifo "$PROBE_FIFO"
python3 "$ROOT/test/bench/limit_probe.py" 127.0.0.1 "$DOTGATE_PORT" $((ROOM + OVER)) --timeout 20 --hold 600 \
    <"$PROBE_FIFO" >"$WORK/probe.out" 2>"$WORK/probe.err" &
PROBE_PID=$!; PIDS+=("$PROBE_PID")
exec 8>"$PROBE_FIFO"
for _ in $(seq 1 1800); do  # 180 s
  grep -q '^ready' "$WORK/probe.out" 2>/dev/null && break
  kill -0 "$PROBE_PID" 2>/dev/null || break
  sleep 0.1
done
PROBE=$(grep '^replies' "$WORK/probe.out" || echo "no tally ($(cat "$WORK/probe.err"))")
PROBE_AFTER=$(sed -n 's/^refused_after=//p' "$WORK/probe.out")
sleep $((MAX_GAP * 2))  # the slow sessions keep talking while dotgate is full
OPEN_FULL=$(metric dotgate_connections_open)
REFUSED_FULL=$(metric dotgate_connections_refused_total)
STATUS_FULL=$(grep '^status' "$WORK/slow.out" | tail -n1)
exec 8>&-
wait "$PROBE_PID" 2>/dev/null || true
log "past max_connections $MAXCONN ($OPEN_BEFORE_PROBE open before, $OPEN_FULL while full): $PROBE," \
    "first refusal after ${PROBE_AFTER:-?} admitted; refused_total $REFUSED_BEFORE -> $REFUSED_FULL; $STATUS_FULL"
[ "$OPEN_FULL" = "$MAXCONN" ] || fail "dotgate_connections_open while full: $OPEN_FULL, not max_connections $MAXCONN"
[ "$PROBE" = "replies 220=$ROOM 421/4.7.0=$OVER other=0" ] || fail "past max_connections: $PROBE (expected 220=$ROOM 421/4.7.0=$OVER other=0)"
sleep 2
run_source dotgate "$NORMAL_SESSIONS" "$MESSAGES" 1
if [ "$RUN_SECS" = FAIL ]; then AFTER_RATE=FAIL; fail "normal mail after the refusals"
else AFTER_RATE=$(awk -v n="$MESSAGES" -v s="$RUN_SECS" 'BEGIN { printf "%.0f\n", n / s }'); fi
log "normal mail once the probe let go: $AFTER_RATE msg/s"
alive_or_die

# ---- 5. the end of the slow sessions ------------------------------------------------------------
exec 7>&-
for _ in $(seq 1 300); do  # 30 s
  grep -q '^done' "$WORK/slow.out" 2>/dev/null && break
  sleep 0.1
done
SLOW_DONE=$(grep '^done' "$WORK/slow.out" || echo "no final line")
stop_pid "$SLOW_PID" || true
log "slow sessions: $SLOW_DONE"
case "$SLOW_DONE" in
  "done open=$N closed=0 "*" bad=0 "*) ;;
  *) fail "slow sessions closed early or answered badly: $SLOW_DONE" ;;
esac
OPEN_END=-
for _ in $(seq 1 300); do  # 30 s
  OPEN_END=$(metric dotgate_connections_open)
  [ "$OPEN_END" = 0 ] && break
  sleep 0.1
done
sleep 1
RSS_END=$(rss_kib "$DOTGATE_PID"); FD_END=$(fds "$DOTGATE_PID")
log "all closed: dotgate_connections_open $OPEN_END, VmRSS $RSS_END KiB, $FD_END descriptors"
[ "$OPEN_END" = 0 ] || fail "sessions left open in dotgate: $OPEN_END"
# A second round of as many sessions, talking faster for a while: memory that a closed session
# leaked would show as growth over the first round's figure (what glibc keeps after the first
# round's frees is reused, not grown).
timeout 600 python3 "$ROOT/test/bench/slow_sessions.py" 127.0.0.1 "$DOTGATE_PORT" "$N" --connect-timeout 300 \
    --min-gap 0.5 --max-gap 1 --hold 30 --report 5 </dev/null >"$WORK/slow2.out" 2>"$WORK/slow2.err" || true
SLOW2=$(grep '^done' "$WORK/slow2.out" || echo "no final line ($(cat "$WORK/slow2.err"))")
for _ in $(seq 1 300); do  # 30 s
  [ "$(metric dotgate_connections_open)" = 0 ] && break
  sleep 0.1
done
sleep 1
RSS_END2=$(rss_kib "$DOTGATE_PID"); FD_END2=$(fds "$DOTGATE_PID")
log "second round: $SLOW2; then VmRSS $RSS_END2 KiB, $FD_END2 descriptors"
case "$SLOW2" in "done open=$N closed=0 "*" bad=0 "*) ;; *) fail "second round: $SLOW2" ;; esac
awk -v a="$RSS_END" -v b="$RSS_END2" 'BEGIN { exit !(b <= a * 1.10) }' ||
  fail "VmRSS grew by more than 10 % over a second round of sessions: $RSS_END -> $RSS_END2 KiB"
[ "$FD_END" -le $((FD_IDLE_AFTER + 4)) ] || fail "descriptors left open: $FD_END against $FD_IDLE_AFTER before the slow sessions"
alive_or_die

# Every normal message the clients were told 250 for reached the sink (uv_sink counts them).
SINK_COUNT=-
if [ "$SINK" = uv_sink ]; then
  stop_pid "$SINK_PID" || true
  SINK_COUNT=$(sed -n 's/^messages //p' "$WORK/sink.log")
  # two phases x REPS x three targets (dotgate, twin, direct) x both runs, and the run after the probe
  expected=$((2 * REPS * 3 * (MESSAGES + LAT_MESSAGES) + MESSAGES))
  [ "$SINK_COUNT" = "$expected" ] || fail "the sink received ${SINK_COUNT:-?} messages, not the $expected sent"
fi

# ---- summary ------------------------------------------------------------------------------------
KIB_PER=$(awk -v a="$RSS_IDLE_AFTER" -v b="$RSS_LOADED" -v n="$N" 'BEGIN { printf "%.1f\n", (b - a) / n }')
KIB_PER_END=$(awk -v a="$RSS_IDLE_AFTER" -v b="$RSS_LOADED_END" -v n="$N" 'BEGIN { printf "%.1f\n", (b - a) / n }')
FD_PER=$(awk -v a="$FD_IDLE_AFTER" -v b="$FD_LOADED" -v n="$N" 'BEGIN { printf "%.2f\n", (b - a) / n }')
echo
echo "sessions benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), load average at start $LOAD_AT_START, at the end $(cut -d' ' -f1-3 /proc/loadavg)"
echo "sink: $SINK; dotgate: $DOTGATE, --workers $WORKERS, policies [limits], max_connections $MAXCONN, open files $DG_LIMIT (started with soft ${DOTGATE_SOFT:-$(ulimit -Sn)})"
echo "slow sessions: $N, a byte every $MIN_GAP-$MAX_GAP s (EHLO, then MAIL, RCPT, RSET), connected in ${CONNECT_SECS}s, measured from ${SETTLE}s on;" \
     "normal mail: smtp-source, $NORMAL_SESSIONS sessions x $MESSAGES and 1 x $LAT_MESSAGES sequential, 4 KiB, median of $REPS"
echo
printf '%-34s %12s %12s %8s\n' "" idle "$N slow" ratio
printf '%-34s %12s %12s %8s\n' "dotgate VmRSS KiB" "$RSS_IDLE_AFTER" "$RSS_LOADED" -
printf '%-34s %12s %12s %8s\n' "dotgate descriptors" "$FD_IDLE_AFTER" "$FD_LOADED" -
printf '%-34s %12s %12s %8s\n' "normal mail msg/s via dotgate" "${RATE[idle,dotgate]}" "${RATE[loaded,dotgate]}" "$(ratio "${RATE[loaded,dotgate]}" "${RATE[idle,dotgate]}")"
printf '%-34s %12s %12s %8s\n' "normal mail msg/s via idle twin" "${RATE[idle,twin]}" "${RATE[loaded,twin]}" "$(ratio "${RATE[loaded,twin]}" "${RATE[idle,twin]}")"
printf '%-34s %12s %12s %8s\n' "normal mail msg/s direct" "${RATE[idle,direct]}" "${RATE[loaded,direct]}" "$(ratio "${RATE[loaded,direct]}" "${RATE[idle,direct]}")"
printf '%-34s %12s %12s %8s\n' "latency ms/msg via dotgate" "${LAT[idle,dotgate]}" "${LAT[loaded,dotgate]}" "$(ratio "${LAT[loaded,dotgate]}" "${LAT[idle,dotgate]}")"
printf '%-34s %12s %12s %8s\n' "latency ms/msg via idle twin" "${LAT[idle,twin]}" "${LAT[loaded,twin]}" "$(ratio "${LAT[loaded,twin]}" "${LAT[idle,twin]}")"
printf '%-34s %12s %12s %8s\n' "latency ms/msg direct" "${LAT[idle,direct]}" "${LAT[loaded,direct]}" "$(ratio "${LAT[loaded,direct]}" "${LAT[idle,direct]}")"
printf '%-34s %12s %12s %8s\n' "msg/s dotgate / idle twin" "$(ratio "${RATE[idle,dotgate]}" "${RATE[idle,twin]}")" \
  "$(ratio "${RATE[loaded,dotgate]}" "${RATE[loaded,twin]}")" -
printf '%-34s %12s %12s %8s\n' "latency dotgate / idle twin" "$(ratio "${LAT[idle,dotgate]}" "${LAT[idle,twin]}")" \
  "$(ratio "${LAT[loaded,dotgate]}" "${LAT[loaded,twin]}")" -
printf '%-34s %12s %12s %8s\n' "msg/s dotgate / direct" "$(ratio "${RATE[idle,dotgate]}" "${RATE[idle,direct]}")" \
  "$(ratio "${RATE[loaded,dotgate]}" "${RATE[loaded,direct]}")" -
printf '%-34s %12s %12s %8s\n' "latency dotgate / direct" "$(ratio "${LAT[idle,dotgate]}" "${LAT[idle,direct]}")" \
  "$(ratio "${LAT[loaded,dotgate]}" "${LAT[loaded,direct]}")" -
printf '%-34s %12s %12s %8s\n' "dotgate CPU ms/normal msg (net)" "${CPU[idle]}" "${CPU[loaded]}" "$(ratio "${CPU[loaded]}" "${CPU[idle]}")"
echo
echo "per slow session: $KIB_PER KiB of dotgate's VmRSS ($KIB_PER_END after the loaded runs), $FD_PER descriptors"
echo "dotgate CPU with only the slow sessions talking: $CPU_SLOW % of a core (the load generator: $CPU_GEN %)"
echo "slow sessions at the end: $SLOW_DONE"
echo "normal messages at the sink: $SINK_COUNT (direct, via dotgate and via its twin; every one sent)"
echo "past max_connections: $PROBE (first refusal after ${PROBE_AFTER:-?}); normal mail afterwards $AFTER_RATE msg/s"
echo "after every session closed: VmRSS $RSS_END KiB, $FD_END descriptors, dotgate_connections_open $OPEN_END;" \
     "after a second round of $N: VmRSS $RSS_END2 KiB, $FD_END2 descriptors"
[ -n "$LOWERED" ] && echo "note: $LOWERED"
echo "logs and configs: $WORK"
if [ ${#FAILS[@]} -gt 0 ]; then
  echo "FAILED:"; printf '  %s\n' "${FAILS[@]}"
  exit 1
fi
echo "every check passed"
