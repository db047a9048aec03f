# test/bench/relay_cores.sh — the summary of relay.sh's two-core mode (BENCH_CORES=1); sourced by
# relay.sh after its throughput runs, never run.
#
# Reads relay.sh's TARGETS, TARGET_PID, RATE, CPU_TICKS, CPU_MSGS, SRC_TICKS, SINKCPU_TICKS,
# BUSY_RUNS, RUN_TIME, CLK_TCK, MESSAGES, REPS, SESSIONS, SIZE, POOL_JSON, TUNED_POOL_JSON,
# TUNED_BUSY_POLL and LOAD_AT_START. Prints, per target: throughput (1 and 5 recipients), the CPU
# per message of the proxy, of smtp-source and of smtp-sink, the cores each of them kept busy while
# that target ran (ticks over the run's wall time), and the machine's median busy share; then
# each proxy's 2/1 ratio (target: dotgate >= 1.7x), and how dotgate2's two worker threads shared
# the work (their CPU ticks, /proc/PID/task/TID/stat, the threads named dotgate-wN).
# shellcheck shell=bash

# per_msg TICKS: ms of CPU per message over all of a target's throughput runs (2 x REPS runs).
per_msg() { awk -v t="$1" -v n="$((2 * REPS * MESSAGES))" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f\n", t * 1000 / hz / n }'; }
# cores TICKS SECS: how many cores that CPU time kept busy over that wall time.
cores_of() { awk -v t="$1" -v s="$2" -v hz="$CLK_TCK" 'BEGIN { if (s <= 0) print "-"; else printf "%.2f\n", t / hz / s }'; }

# worker_shares PID: "w0 51 % / w1 49 %" from the CPU ticks of the process's dotgate-wN threads.
worker_shares() {
  local pid=$1 task line=""
  for task in /proc/"$pid"/task/*; do
    [[ "$(cat "$task/comm" 2>/dev/null)" == dotgate-w* ]] || continue
    line="$line $(cat "$task/comm") $(awk '{ print $14 + $15 }' "$task/stat")"
  done
  awk -v l="$line" 'BEGIN { n = split(l, f, " "); t = 0; for (i = 2; i <= n; i += 2) t += f[i];
    if (t == 0) { print "no dotgate-wN threads found (a binary from before they were named?)"; exit }
    out = ""; for (i = 1; i <= n; i += 2) out = out sprintf("%s%s %.0f %% (%d ticks)", out == "" ? "" : ", ", f[i], f[i + 1] * 100 / t, f[i + 1]);
    print out }'
}

echo
echo "relay benchmark, two-core mode — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), load average at start $LOAD_AT_START, at end $(cut -d' ' -f1 /proc/loadavg)"
echo "smtp-source: $SESSIONS sessions, $SIZE-byte messages, $MESSAGES per run, median of $REPS runs, 1 and 5 recipients"
echo "haproxy/haproxy2: nbthread 1/2; dotgate/dotgate2: --workers 1/2, downstream.pool $POOL_JSON;" \
     "tuned/tuned2: --workers 1/2, downstream.pool $TUNED_POOL_JSON, busy_poll_us $TUNED_BUSY_POLL"
echo "CPU ms/msg over all of a target's runs; 'cores': that CPU over the runs' wall time; busy: the whole machine (shared: other work counts)"
echo
printf '%-9s %9s %9s %10s %10s %10s %7s %7s %7s %6s\n' \
  target "1rcpt/s" "5rcpt/s" "proxy ms" "source ms" "sink ms" "proxy" "source" "sink" "busy%"
printf '%-9s %9s %9s %10s %10s %10s %7s %7s %7s %6s\n' "" "" "" "CPU/msg" "CPU/msg" "CPU/msg" cores cores cores ""
for target in "${TARGETS[@]}"; do
  secs=${RUN_TIME[$target]:-0}
  proxy_ms=-; proxy_cores=-
  if [ -n "${TARGET_PID[$target]:-}" ]; then
    proxy_ms=$(per_msg "${CPU_TICKS[$target]}")   # throughput runs only in this mode
    proxy_cores=$(cores_of "${CPU_TICKS[$target]}" "$secs")
  fi
  printf '%-9s %9s %9s %10s %10s %10s %7s %7s %7s %6s\n' "$target" "${RATE[$target,1]}" "${RATE[$target,5]}" \
    "$proxy_ms" "$(per_msg "${SRC_TICKS[$target]}")" "$(per_msg "${SINKCPU_TICKS[$target]}")" \
    "$proxy_cores" "$(cores_of "${SRC_TICKS[$target]}" "$secs")" "$(cores_of "${SINKCPU_TICKS[$target]}" "$secs")" \
    "$(median <<<"${BUSY_RUNS[$target]}")"
done
echo
echo "2/1 ratios (the same proxy with two threads against one, same run):"
pairs=("haproxy haproxy2" "dotgate dotgate2")
[ -n "${RATE[tuned,1]:-}" ] && pairs+=("tuned tuned2")
for pair in "${pairs[@]}"; do
  read -r one two <<<"$pair"
  printf '  %-18s 1 rcpt %5sx   5 rcpt %5sx\n' "$two/$one" \
    "$(ratio "${RATE[$two,1]}" "${RATE[$one,1]}")" "$(ratio "${RATE[$two,5]}" "${RATE[$one,5]}")"
done
echo "against haproxy2 (both on two threads): dotgate2 $(ratio "${RATE[dotgate2,1]}" "${RATE[haproxy2,1]}") / $(ratio "${RATE[dotgate2,5]}" "${RATE[haproxy2,5]}")$([ -n "${RATE[tuned2,1]:-}" ] && echo ", tuned2 $(ratio "${RATE[tuned2,1]}" "${RATE[haproxy2,1]}") / $(ratio "${RATE[tuned2,5]}" "${RATE[haproxy2,5]}")")"
echo
echo "how the two workers shared the work (CPU ticks per worker thread, all runs):"
echo "  dotgate2: $(worker_shares "${TARGET_PID[dotgate2]}")"
[ -n "${TARGET_PID[tuned2]:-}" ] && echo "  tuned2:   $(worker_shares "${TARGET_PID[tuned2]}")"
echo
r1=$(ratio "${RATE[dotgate2,1]}" "${RATE[dotgate,1]}")
if [ "$r1" = - ]; then check "dotgate --workers 2 >= 1.7x --workers 1 (1 rcpt)" "n/a (a run failed)"
else check "dotgate --workers 2 >= 1.7x --workers 1 (1 rcpt: ${r1}x)" "$(verdict "$r1 >= 1.7")"; fi
echo "  (on 2 cores the load generator shares them: see the source and sink cores above)"
for target in "${PROXIES[@]}"; do
  kill -0 "${TARGET_PID[$target]}" 2>/dev/null || die "$target died during the benchmark (log: $WORK/$target.log)"
done
echo
echo "logs and configs: $WORK"
