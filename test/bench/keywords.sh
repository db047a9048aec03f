#!/usr/bin/env bash
# test/bench/keywords.sh — what the keywords policy costs per message (decoding included).
#
#   bash test/bench/keywords.sh [BUILD-DIR]    (default build-kw-release, set up with
#                                               --buildtype=release when missing)
#
# Builds dotgate's libraries in BUILD-DIR with meson, compiles test/bench/keywords_bench.cc against
# them with the same optimisation (-O3, NDEBUG; it is no meson target, so a plain build or test
# run never pays for it), and runs it: 5,000 phrases against a 1 MiB multipart message (base64
# text/plain, quoted-printable text/html, RFC 2047 headers), 50 runs, median and p90 of ms per
# message in total and per stage (unstuff, GMime decoding, folding, the automaton).
# Knobs: KW_WORDS (5000), KW_RUNS (50), KW_SIZE (1048576). Target: median < 5 ms.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
BUILD=${1:-build-kw-release}

if [ ! -f "$BUILD/build.ninja" ]; then
  meson setup "$BUILD" --buildtype=release >&2
fi
buildtype=$(meson introspect "$BUILD" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]=="buildtype"][0])')
[ "$buildtype" = release ] || echo "keywords.sh: warning: $BUILD is a $buildtype build, not release" >&2
ninja -C "$BUILD" lib/libdotgate_lib.a policies/libpolicies.a libllhttp.a >&2

WORK=$(mktemp -d /tmp/dotgate-kwbench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
# shellcheck disable=SC2046
c++ -std=c++20 -O3 -DNDEBUG -I"$ROOT" test/bench/keywords_bench.cc \
  "$BUILD/policies/libpolicies.a" "$BUILD/lib/libdotgate_lib.a" "$BUILD/libllhttp.a" \
  $(pkg-config --cflags --libs gmime-3.0 glib-2.0 libuv spdlog nlohmann_json) -pthread \
  -o "$WORK/keywords_bench"

echo "keywords benchmark — $(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, $(uname -r), build $BUILD ($buildtype)," \
     "load average $(cut -d' ' -f1 /proc/loadavg)"
"$WORK/keywords_bench" --words "${KW_WORDS:-5000}" --runs "${KW_RUNS:-50}" --size "${KW_SIZE:-1048576}"
