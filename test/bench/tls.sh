#!/usr/bin/env bash
# test/bench/tls.sh — TLS handshakes per second on one thread and the memory of an idle TLS
# session (test/bench/tls_bench.cc says what each figure is).
#
#   bash test/bench/tls.sh [BUILD-DIR] [HANDSHAKES] [SESSIONS]   (defaults build-tls-release, 2000, 10000)
#
# Builds dotgate's library in BUILD-DIR with meson (set up --buildtype=release when missing) and
# compiles tls_bench.cc against it with -O3 (no meson target: a plain build never pays for it).
# The time is nearly all in the system's libcrypto, so any build type of ours gives the same
# handshake figures within noise.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${1:-build-tls-release}
HANDSHAKES=${2:-2000}
SESSIONS=${3:-10000}

if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" --buildtype=release >&2
fi
ninja -C "$BUILD" lib/libdotgate_lib.a libllhttp.a >&2

WORK=$(mktemp -d /tmp/dotgate-tlsbench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# shellcheck disable=SC2046
c++ -std=c++20 -O3 -DNDEBUG -I"$ROOT" test/bench/tls_bench.cc \
  "$BUILD/lib/libdotgate_lib.a" "$BUILD/libllhttp.a" \
  $(pkg-config --libs openssl libuv spdlog gmime-3.0 glib-2.0) -lpthread -o "$WORK/tls_bench"
"$WORK/tls_bench" "$HANDSHAKES" "$SESSIONS"
