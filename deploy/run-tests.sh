#!/usr/bin/env bash
# deploy/run-tests.sh — the README's test command; .ci/run calls it.
#
# On Debian 12 (root, or a user with sudo) it installs the build and test packages (skipped when
# they are all present), then runs, from the repository root:
#   1. build/       meson setup + meson test (unit and integration tests)
#   2. build-asan/  the same tests under AddressSanitizer + UndefinedBehaviorSanitizer
#   3. build-fuzz/  clang libFuzzer targets, test/fuzz/run.sh 60 build-fuzz (when run.sh exists)
# Every stage runs even when an earlier one failed. The totals come from meson's testlog.json:
# OK/EXPECTEDFAIL pass; FAIL/TIMEOUT/ERROR/UNEXPECTEDPASS fail; SKIP is skipped. A stage that
# cannot configure or compile counts as one failure, and so does a fuzz run that found a crash.
# The last line is always `N passed, N failed, N skipped`; the exit status is 1 when N failed > 0.
#
# Environment (all optional):
#   BUILD_DIR, ASAN_BUILD_DIR, FUZZ_BUILD_DIR   build directories (build, build-asan, build-fuzz)
#   FUZZ_SECONDS                                seconds per fuzz target (60)
#   STAGES                                      the stages to run ("tests asan fuzz"; CI runs all)
#   SKIP_APT=1                                  never call apt-get
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2

BUILD_DIR=${BUILD_DIR:-build}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
STAGES=" ${STAGES:-tests asan fuzz} "

# haproxy: test_proxy_protocol.py runs it in front of dotgate (relay.sh measures against it too).
# liblmdb-dev, libhiredis-dev, redis-server: the state store and its tests; libpcre2-dev: reply
# rewriting; libssl-dev, openssl, libnet-ssleay-perl, libio-socket-ssl-perl: TLS (swaks --tls).
# libsystemd-dev: sd_notify
# (the daemon links it). iproute2 (ip netns, veth): test_inline_appliance.py's three hosts. python3-yaml, prometheus (promtool) and systemd (systemd-analyze):
# test_deploy.py reads the Kubernetes manifests, checks the alert rules and verifies the unit.
PACKAGES=(meson ninja-build pkg-config g++ libuv1-dev nlohmann-json3-dev libspdlog-dev doctest-dev
          node-llhttp libgmime-3.0-dev libsystemd-dev postfix swaks python3 python3-yaml rspamd clang
          libclang-rt-14-dev prometheus systemd
          liblmdb-dev libhiredis-dev redis-server libpcre2-dev libssl-dev openssl
          libnet-ssleay-perl libio-socket-ssl-perl haproxy iproute2)

PASSED=0
FAILED=0
SKIPPED=0
SUMMARY=()

log() { printf '==> %s\n' "$*"; }

note() {  # a line for the summary printed at the end
  SUMMARY+=("$*")
  log "$*"
}

stage_failed() {  # one failure that is not a test: a stage that could not configure or compile
  FAILED=$((FAILED + 1))
  note "FAILED: $*"
}

print_totals() {
  echo
  echo "==================== summary ===================="
  local line
  for line in "${SUMMARY[@]}"; do echo "  $line"; done
  echo "${PASSED} passed, ${FAILED} failed, ${SKIPPED} skipped"
}

on_signal() {
  trap - TERM INT
  stage_failed "interrupted by a signal (time limit?) before the end of the run"
  print_totals
  exit 1
}
trap on_signal TERM INT

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "run-tests.sh: not root and no sudo; cannot run: $*" >&2
    return 1
  fi
}

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
      missing+=("$p")
    fi
  done
  if [ "${#missing[@]}" -eq 0 ]; then
    log "packages: all ${#PACKAGES[@]} present, apt-get not needed"
    return 0
  fi
  if [ "${SKIP_APT:-0}" = 1 ]; then
    log "packages missing but SKIP_APT=1: ${missing[*]}"
    return 0
  fi
  log "packages: installing ${missing[*]}"
  # We only use Postfix's smtp-sink and smtp-source: no main.cf, and no daemon started. A
  # policy-rc.d that answers 101 ("action forbidden") keeps invoke-rc.d from starting any service
  # that this one apt-get run installs; it is removed right after (unless one was there before).
  echo 'postfix postfix/main_mailer_type select No configuration' | as_root debconf-set-selections
  local made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null &&
      as_root chmod 755 /usr/sbin/policy-rc.d && made_policy=1
  fi
  local rc=0
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update </dev/null || rc=$?
  if [ "$rc" -eq 0 ]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" </dev/null || rc=$?
  fi
  if [ "$made_policy" = 1 ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
  return "$rc"
}

# count_results DIR LABEL STATUS: add DIR/meson-logs/testlog.json to the totals; list the failures.
# STATUS is meson test's exit status: without a log, 0 means "no tests defined", else a failure.
count_results() {
  local dir=$1 label=$2 status=$3 counts
  if [ ! -s "$dir/meson-logs/testlog.json" ]; then
    if [ "$status" -eq 0 ]; then
      note "$label: no tests defined"
    else
      stage_failed "$label: meson test failed (exit $status) and wrote no test log"
    fi
    return
  fi
  counts=$(python3 - "$dir/meson-logs/testlog.json" <<'EOF'
import json, sys
passed = failed = skipped = 0
bad = []
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        line = line.strip()
        if not line:
            continue
        t = json.loads(line)
        r = t.get("result", "")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:  # FAIL, TIMEOUT, ERROR, UNEXPECTEDPASS, anything new: not a pass
            failed += 1
            bad.append(f'{t.get("name", "?")}={r}')
print(passed, failed, skipped, " ".join(bad))
EOF
  ) || { stage_failed "$label: could not read $dir/meson-logs/testlog.json"; return; }
  local p f s bad
  read -r p f s bad <<<"$counts"
  PASSED=$((PASSED + p))
  FAILED=$((FAILED + f))
  SKIPPED=$((SKIPPED + s))
  note "$label: $p passed, $f failed, $s skipped${bad:+ — failed: $bad}"
}

# setup_dir DIR ARGS...: configure DIR (or reconfigure it when it already exists).
setup_dir() {
  local dir=$1; shift
  if [ -f "$dir/meson-private/coredata.dat" ]; then
    # A directory from another meson version (or a broken one) cannot always be reconfigured:
    # then start it over.
    meson setup --reconfigure "$dir" "$@" || meson setup --wipe "$dir" "$@"
  else
    rm -rf "$dir"
    meson setup "$dir" "$@"
  fi
}

# meson_stage DIR LABEL [TEST-ARGS -- SETUP-ARGS]: configure, build, test, count.
meson_stage() {
  local dir=$1 label=$2; shift 2
  local test_args=() setup_args=()
  while [ "$#" -gt 0 ] && [ "$1" != -- ]; do test_args+=("$1"); shift; done
  [ "$#" -gt 0 ] && shift
  setup_args=("$@")
  log "$label: meson setup $dir ${setup_args[*]}"
  if ! setup_dir "$dir" "${setup_args[@]}"; then
    stage_failed "$label: meson setup failed"
    return
  fi
  log "$label: ninja -C $dir"
  if ! ninja -C "$dir"; then
    stage_failed "$label: build failed"
    return
  fi
  # A stale log from an earlier run must never be counted as this run's result.
  rm -f "$dir/meson-logs/testlog.json"
  log "$label: meson test -C $dir ${test_args[*]}"
  local status=0
  meson test -C "$dir" --print-errorlogs "${test_args[@]}" || status=$?
  log "$label: meson test exit status $status"
  count_results "$dir" "$label" "$status"
}

fuzz_stage() {
  if [ ! -f test/fuzz/meson.build ] || [ ! -f test/fuzz/run.sh ]; then
    note "fuzz: not run (test/fuzz/meson.build or test/fuzz/run.sh not present yet)"
    return
  fi
  log "fuzz: meson setup $FUZZ_BUILD_DIR -Dfuzz=true (clang)"
  if ! CC=clang CXX=clang++ setup_dir "$FUZZ_BUILD_DIR" -Dfuzz=true; then
    stage_failed "fuzz: meson setup failed"
    return
  fi
  # Only the fuzz targets: the rest of the tree is built and tested by the stages above, and a
  # second clang build of it would cost CI minutes for nothing.
  local targets
  targets=$(ninja -C "$FUZZ_BUILD_DIR" -t targets all 2>/dev/null |
            awk -F': ' '$1 ~ /^test\/fuzz\/[^\/]+$/ && $2 ~ /_LINKER$/ { print $1 }')
  # shellcheck disable=SC2086  # one target per word
  if ! ninja -C "$FUZZ_BUILD_DIR" $targets; then
    stage_failed "fuzz: build failed"
    return
  fi
  # run.sh's interface: run.sh [SECONDS] [BUILD-DIR] (relative to the repository root).
  log "fuzz: test/fuzz/run.sh $FUZZ_SECONDS $FUZZ_BUILD_DIR"
  if sh test/fuzz/run.sh "$FUZZ_SECONDS" "$FUZZ_BUILD_DIR"; then
    PASSED=$((PASSED + 1))
    note "fuzz: no crash in ${FUZZ_SECONDS}s per target (counted as 1 passed)"
  else
    stage_failed "fuzz: test/fuzz/run.sh reported a crash or an error (see above)"
  fi
}

START=$SECONDS
if ! install_packages; then
  stage_failed "apt-get could not install the packages"
fi

# 1. the plain build: what the README and the quickstart use
if [[ "$STAGES" == *" tests "* ]]; then
  meson_stage "$BUILD_DIR" "tests"
else
  note "tests: not run (STAGES=$STAGES)"
fi

# 2. the same tests under ASan + UBSan. Leaks, errors and UB abort the process: the test fails.
if [[ "$STAGES" != *" asan "* ]]; then
  note "asan: not run (STAGES=$STAGES)"
else
  export ASAN_OPTIONS="halt_on_error=1:print_stacktrace=1:detect_leaks=1:abort_on_error=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
  export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
  # Sanitized code runs 2-5x slower: give each test more time rather than flake.
  # --no-suite clients: Exim and Postfix against a Python server, no dotgate to sanitize; and the
  # real-MTA cases of test_profiles.py (their time is the MTAs' retry waits) run in stage 1 only.
  export DOTGATE_SKIP_REAL_MTAS=1
  # --buildtype=debug (-O0): with -O2 the sanitized build took 9.5 minutes of CI's 30 here, with
  # -O0 under 3; the tests wait on sockets far more than they compute.
  meson_stage "$ASAN_BUILD_DIR" "asan" --timeout-multiplier 3 --no-suite clients -- \
    --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
fi

# 3. fuzzers
if [[ "$STAGES" != *" fuzz "* ]]; then
  note "fuzz: not run (STAGES=$STAGES)"
else
  fuzz_stage
fi

note "took $((SECONDS - START)) s"
trap - TERM INT
print_totals
[ "$FAILED" -eq 0 ]
