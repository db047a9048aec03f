#!/usr/bin/env bash
# deploy/quickstart.sh — the README's first command: try dotgate on one machine in a minute.
#
# On Debian 12 (root, or a user with sudo) it installs the packages it needs (skipped when present),
# builds build/proxy/dotgate and nothing else (not the test suite), then starts on loopback:
#   smtp-sink  127.0.0.1:2526  the downstream "MTA"; it keeps every message it receives in
#                              /tmp/dotgate-quickstart/mail/ (QUICKSTART_DIR to change)
#   dotgate    127.0.0.1:2525  with deploy/dotgate.example.json (its policies: limits, a keyword
#                              list, a script refusing executable attachments; their files, which
#                              the example names under /etc/dotgate/, come from deploy/examples/);
#                              admin/metrics on 127.0.0.1:8025
# and waits in the foreground. Ctrl-C (or SIGTERM) stops both, by their pids.
#
#   bash deploy/quickstart.sh           interactive: prints the swaks lines to try
#   bash deploy/quickstart.sh --check   sends a clean message (delivered), one with a listed phrase
#                                       and one with an .exe attachment (both refused with 550,
#                                       nothing delivered), stops everything; exit 0 when all three
#                                       went as expected, 1 otherwise
#   (QUICKSTART_CHECK=1 is the same as --check.)
set -euo pipefail

cd "$(dirname "$0")/.."

CHECK=${QUICKSTART_CHECK:-0}
case "${1:-}" in
  --check) CHECK=1 ;;
  "") ;;
  -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

WORK=${QUICKSTART_DIR:-/tmp/dotgate-quickstart}
MAIL_DIR=$WORK/mail
EXAMPLE=deploy/dotgate.example.json
CONFIG=$WORK/dotgate.json
DOTGATE=build/proxy/dotgate
LISTEN=127.0.0.1:2525
SINK=127.0.0.1:2526
ADMIN=127.0.0.1:8025
PACKAGES=(meson ninja-build pkg-config g++ libuv1-dev nlohmann-json3-dev libspdlog-dev doctest-dev
          node-llhttp libgmime-3.0-dev libsystemd-dev libpcre2-dev liblmdb-dev libhiredis-dev libssl-dev
          postfix swaks python3)

log() { printf '==> %s\n' "$*"; }
die() { printf 'quickstart: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "not root and no sudo; cannot run: $*"
  fi
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  [ "${#missing[@]}" -eq 0 ] && return 0
  log "installing ${missing[*]}"
  # Only Postfix's smtp-sink and swaks are used: no Postfix configuration, no daemon started
  # (policy-rc.d answers 101 "action forbidden" to invoke-rc.d for the packages of this run).
  echo 'postfix postfix/main_mailer_type select No configuration' | as_root debconf-set-selections
  local made_policy=0 rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null &&
      as_root chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null &&
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" </dev/null ||
    rc=$?
  [ "$made_policy" = 1 ] && as_root rm -f /usr/sbin/policy-rc.d
  [ "$rc" -eq 0 ] || die "apt-get failed (exit $rc)"
}

# port_open HOST:PORT: is something listening there? Read from /proc/net/tcp (state 0A = LISTEN)
# rather than by connecting: a probe connection would be a session in dotgate's metrics and logs.
port_open() {
  local port_hex
  port_hex=$(printf '%04X' "${1##*:}")
  awk -v p=":$port_hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' \
    /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

wait_port() {  # wait_port HOST:PORT PID NAME: until it accepts, or the process died, or 10 s passed
  for _ in $(seq 1 100); do
    port_open "$1" && return 0
    kill -0 "$2" 2>/dev/null || die "$3 exited before listening on $1 (see above)"
    sleep 0.1
  done
  die "$3 does not listen on $1 after 10 s"
}

SINK_PID=
DOTGATE_PID=
stop_all() {
  local pid
  for pid in $DOTGATE_PID $SINK_PID; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in $DOTGATE_PID $SINK_PID; do
    # dotgate drains on SIGTERM (up to drain_grace); give it a few seconds, then insist.
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  DOTGATE_PID=''
  SINK_PID=
}
trap 'stop_all' EXIT
trap 'echo; log "stopping"; stop_all; exit 0' INT TERM

# 1. packages and build: the daemon only (the test suite's hundred-odd targets are
#    deploy/run-tests.sh's business, not a first try's)
install_packages
[ -f "$EXAMPLE" ] || die "$EXAMPLE is missing"
if [ ! -f build/meson-private/coredata.dat ]; then
  meson setup build
fi
ninja -C build proxy/dotgate
[ -x "$DOTGATE" ] || die "$DOTGATE was not built"
# The example names its policy files where the Docker image installs them; here they are in
# deploy/examples/.
mkdir -p "$WORK"
sed "s#/etc/dotgate/#$PWD/deploy/examples/#g" "$EXAMPLE" > "$CONFIG"
"$DOTGATE" --config "$CONFIG" --check-config >/dev/null || die "$CONFIG does not pass --check-config"

for addr in "$LISTEN" "$SINK" "$ADMIN"; do
  port_open "$addr" && die "$addr is already in use (another quickstart still running?)"
done

# 2. smtp-sink: as root it must drop privileges (-u); the dump directory must be writable by it.
mkdir -p "$MAIL_DIR"
sink_user=()
if [ "$(id -u)" -eq 0 ]; then
  sink_user=(-u nobody)
  chown nobody "$MAIL_DIR"
fi
# -d: one file per message, named by the strftime template plus a random suffix.
smtp-sink "${sink_user[@]}" -h sink.quickstart -d "$MAIL_DIR/%Y%m%d-%H%M%S." "$SINK" 128 &
SINK_PID=$!
wait_port "$SINK" "$SINK_PID" smtp-sink

# 3. dotgate
if [ "$CHECK" = 1 ]; then
  "$DOTGATE" --config "$CONFIG" >"$WORK/dotgate.log" 2>&1 &
else
  "$DOTGATE" --config "$CONFIG" &
fi
DOTGATE_PID=$!
wait_port "$LISTEN" "$DOTGATE_PID" dotgate

if [ "$CHECK" = 1 ]; then
  token="quickstart-$(date +%s)-$$"
  failed=0
  log "1/3 a clean message (token $token): delivered"
  swaks --server "$LISTEN" --from sender@example.org --to user@example.com \
        --header "Subject: dotgate quickstart $token" --body "Hello through dotgate. $token" ||
    { cat "$WORK/dotgate.log" >&2; die "swaks failed"; }
  found=
  for _ in $(seq 1 50); do
    found=$(grep -rl -- "$token" "$MAIL_DIR" 2>/dev/null | head -n1 || true)
    [ -n "$found" ] && break
    sleep 0.1
  done
  [ -n "$found" ] && log "OK: the sink received it: $found" || { log "FAILED: no message with $token in $MAIL_DIR"; failed=1; }

  # refused MESSAGE-TOKEN WHAT SWAKS-ARGS...: swaks must see 550 at the dot, the sink nothing.
  refused() {
    local tok=$1 what=$2 out; shift 2
    out=$(swaks --server "$LISTEN" --from sender@example.org --to user@example.com \
                --header "Subject: dotgate quickstart $tok" "$@" 2>&1 || true)
    sleep 0.5
    if grep -q '^<\*\* *550 5.7.1' <<<"$out" && ! grep -rq -- "$tok" "$MAIL_DIR" 2>/dev/null; then
      log "OK: $what: $(grep -m1 '^<\*\* *550' <<<"$out" | sed 's/^<\*\* *//')"
    else
      log "FAILED: $what was not refused with 550 5.7.1 (or reached the sink):"; echo "$out" | tail -n 5 >&2
      failed=1
    fi
  }
  log "2/3 a message with a listed phrase: refused by the keywords policy"
  refused "$token-kw" "keywords" --body "Your casino bonus is waiting. $token-kw"
  log "3/3 a message with an .exe attachment: refused by the script policy"
  refused "$token-exe" "attachments" --attach-type application/octet-stream --attach-name invoice.exe \
          --attach - <<<"MZ not really a program $token-exe"

  metrics=$(python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())' \
            "http://$ADMIN/metrics" 2>/dev/null || true)
  if grep -q '^dotgate_connections_total' <<<"$metrics"; then
    log "metrics: $(grep -E '^dotgate_(connections_total|transactions_total)' <<<"$metrics" | tr '\n' ' ')"
  else
    log "warning: http://$ADMIN/metrics did not answer with dotgate metrics"
  fi
  stop_all
  if [ "$failed" = 0 ]; then
    log "OK: dotgate relayed the clean message and refused the other two"
    exit 0
  fi
  echo "--- dotgate log ---" >&2
  cat "$WORK/dotgate.log" >&2
  die "FAILED (see above)"
fi

cat <<EOF

dotgate is running (pid $DOTGATE_PID) on $LISTEN, relaying to smtp-sink (pid $SINK_PID) on $SINK.

  Send a test message (delivered):
    swaks --server $LISTEN --from sender@example.org --to user@example.com
  One the keywords policy refuses (550 5.7.1):
    swaks --server $LISTEN --from sender@example.org --to user@example.com --body "casino bonus"

  Received mail lands in:   $MAIL_DIR/   (one file per message, with smtp-sink's X-* headers)
  Metrics:                  http://$ADMIN/metrics   (also /healthz, /readyz)
  Configuration:            $CONFIG  (from $EXAMPLE)

Ctrl-C stops both.
EOF

# Wait until Ctrl-C / SIGTERM (trap above) or until one of the two exits on its own.
set +e
wait -n "$DOTGATE_PID" "$SINK_PID"
rc=$?
log "a process exited on its own (status $rc); stopping the other"
exit 1
