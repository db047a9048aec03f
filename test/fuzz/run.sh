#!/bin/sh
# test/fuzz/run.sh — runs every libFuzzer target for N seconds (default 60) from a fresh corpus.
#
# Usage: test/fuzz/run.sh [seconds] [build-dir]   (build-dir default: build-fuzz, set up with
#   CXX=clang++ CC=clang meson setup build-fuzz -Dfuzz=true && ninja -C build-fuzz)
# Each target starts from a corpus seeded with a few inputs in a temporary directory (removed on
# exit; crash reproducers are copied to ./fuzz-crashes/). Exits non-zero if any target crashed.
set -u
seconds=${1:-60}
build=${2:-build-fuzz}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
case $build in /*) ;; *) build=$root/$build ;; esac
work=$(mktemp -d "${TMPDIR:-/tmp}/dotgate-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
trap 'kill $pids 2>/dev/null; exit 130' INT TERM  # stop the targets; the EXIT trap cleans up

seed() {  # seed TARGET NAME BYTES (printf format)
  mkdir -p "$work/$1/corpus"
  printf "$3" > "$work/$1/corpus/$2"
}
# data_stream_fuzz: 4 header bytes (mode/limits, line limit, two split points), then DATA bytes.
seed data_stream_fuzz plain '\000\000\003\011Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n'
seed data_stream_fuzz bare '\001\000\005\012a\n.\nMAIL FROM:<e@x>\r\n\r\n.\r\n'
seed data_stream_fuzz smuggle '\000\000\002\007x\r\n.\rRCPT\r\n\r\n\000.\r\n.\000\r\n.\r\n'
seed data_stream_fuzz limits '\006\010\001\002..stuffed\r\nlong line here\r\n.\r\n'
# command_fuzz: max line, split point, then client bytes.
seed command_fuzz session '\077\011EHLO a\r\nMAIL FROM:<a@b> SIZE=1\r\nRCPT TO:<c@d>\r\nDATA\r\n'
seed command_fuzz odd '\010\003mail from: <"q>x"@b> BODY=8BITMIME\nQUIT x\r\nNO\rOP\r\n'
# reply_fuzz: split point, then downstream bytes.
seed reply_fuzz ehlo '\005250-mx\r\n250-SIZE 100\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n'
seed reply_fuzz mixed '\003220 hi\r\n354 go\n550 5.1.1 no\r\n25x\r\n'
# proxy_header_fuzz: split point, then the connection's first bytes (v1 lines, v2 blocks).
seed proxy_header_fuzz v1 '\011PROXY TCP4 192.0.2.1 198.51.100.2 5678 25\r\nEHLO x\r\n'
seed proxy_header_fuzz v1six '\005PROXY TCP6 2001:db8::1 ::2 1 65535\r\n'
seed proxy_header_fuzz unknown '\003PROXY UNKNOWN ff::1 ::2 1 2\r\n'
seed proxy_header_fuzz v2 '\007\r\n\r\n\000\r\nQUIT\n\041\021\000\024\300\000\002\001\306\063\144\002\026\056\000\031\001\000\005hello'
seed proxy_header_fuzz v2six '\020\r\n\r\n\000\r\nQUIT\n\041\041\000\044\040\001\015\270\000\000\000\000\000\000\000\000\000\000\000\001\040\001\015\270\000\000\000\000\000\000\000\000\000\000\000\002\377\377\000\031'
seed proxy_header_fuzz local '\002\r\n\r\n\000\r\nQUIT\n\040\000\000\000EHLO'
# exemption_list_fuzz: a greylist exemption list file.
seed exemption_list_fuzz list '# c\nnetwork 192.0.2.0/24\nhelo *.example.net # x\nsender_domain @Example.com\r\n'
# reply_template_fuzz: template length, template, then NUL-separated groups (also read as replies).
seed reply_template_fuzz groups '\015<$1> $$ ${2}x\000550 5.1.1 no\000mx.example\r\n'
seed reply_template_fuzz replies '\002$0220-mx.example ESMTP\r\n220 Postfix\r\n550 no such user\r\n354 go\r\n250-mx\r\n250 SIZE\r\n'
seed reply_template_fuzz domain '\017mail.example $0550-5.7.1 a\r\n550 b\r\n521 x\r\n250 ok\r\n'

# xforward_fuzz: flags (bit i: command i inside a transaction; 0xff: reset after each), then
# LF-separated XFORWARD arguments.
seed xforward_fuzz postfix '\000NAME=spike.example ADDR=168.100.189.2 PORT=4711\nHELO=spike.example IDENT=Q1 PROTO=ESMTP SOURCE=REMOTE\n'
seed xforward_fuzz odd '\002ADDR=IPV6:2001:db8::1 PORT=[unavailable]\nHELO=a+20b+0D+0A NAME=x\nADDR=999.1.1.1\n\nFOO=bar\n'
seed xforward_fuzz reset '\377ADDR=192.0.2.7\nPORT=25\n'

# received_header_fuzz: flags (EHLO, TLS, AUTH, IPv6, long hostname), then the HELO argument.
seed received_header_fuzz plain '\003client.example'
seed received_header_fuzz hostile '\017evil) by x; (\\\r\n.\r\nMAIL FROM:<a>\000\177\200'
seed received_header_fuzz long '\023aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'

# tls_record_fuzz: mode (0 first flight, 1 mid-handshake, 2 after it, 3 client side, 4 plaintext),
# piece size, then bytes.
seed tls_record_fuzz hello '\000\000\026\003\001\000\005\001\000\000\001\003'
seed tls_record_fuzz plain '\000\007EHLO client.example\r\n'
seed tls_record_fuzz mid '\001\003\024\003\003\000\001\001\026\003\003\000\004\024\000\000\000'
seed tls_record_fuzz record '\002\000\027\003\003\000\020abcdefghijklmnop'
seed tls_record_fuzz server '\003\011\026\003\003\000\006\002\000\000\002\003\003'
seed tls_record_fuzz data '\004\005MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n'

# The targets run side by side (each for the full N seconds): CI pays N seconds, not 7N.
run_target() {  # run_target TARGET: exit status 0 when it ran without a crash
  target=$1
  exe=$build/test/fuzz/$target
  if [ ! -x "$exe" ]; then
    echo "run.sh: $exe not built" > "$work/$target/log"
    return 1
  fi
  mkdir -p "$work/$target/artifacts"
  "$exe" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/$target/artifacts/" \
    "$work/$target/corpus" > "$work/$target/log" 2>&1
}

targets="command_fuzz reply_fuzz data_stream_fuzz proxy_header_fuzz exemption_list_fuzz reply_template_fuzz tls_record_fuzz xforward_fuzz received_header_fuzz"
pids=""
for target in $targets; do
  echo "== $target: ${seconds}s"
  run_target "$target" &
  pids="$pids $!"
done

status=0
set -- $pids
for target in $targets; do
  pid=$1; shift
  if ! wait "$pid"; then
    echo "run.sh: $target FAILED" >&2
    tail -n 40 "$work/$target/log" >&2
    mkdir -p fuzz-crashes && cp "$work/$target/artifacts/"* fuzz-crashes/ 2>/dev/null
    status=1
  else
    echo "== $target:"
    grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+.*DONE)' "$work/$target/log"
    echo "   corpus: $(ls "$work/$target/corpus" | wc -l) inputs"
  fi
done
exit $status
