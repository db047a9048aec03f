#!/usr/bin/env python3
"""test/bench/slow_sessions.py — N SMTP sessions that talk as slowly as a spam run's clients.

Called by test/bench/sessions.sh. It connects N sockets to HOST:PORT (non-blocking, at most
--burst connects in flight, so the listen backlog never overflows), reads each greeting, prints
`ready OPEN GREETED`, and then every greeted session talks, one byte at a time with a pause drawn
from [--min-gap, --max-gap] seconds before each byte (the first pause spread over the same range,
so the sessions do not tick together):

    EHLO x\\r\\n, then over and over: MAIL FROM:<s@x>\\r\\n, RCPT TO:<r@x>\\r\\n, RSET\\r\\n

one command at a time (no pipelining: the next command's first byte waits for the reply, then
its pause). Each reply must be 250 (the EHLO's last line included); anything else is counted as
bad, by code. The longest command is 17 octets: at a byte every 5 s it takes 85 s, within the
5 minutes RFC 5321 4.5.3.2.7 gives a server waiting for a command, so a session stays open
whether the server times a command out from its first byte or from its last.

Every --report seconds it prints `status SECONDS open=… closed=… bytes=… replies=… bad=…`; at the
end `done open=… closed=… bytes=… replies=… bad=… p50_ms=… p99_ms=… codes=…` (closed: sessions
the server closed or reset after their greeting; p50/p99: from a command's last byte to its
reply). It stops when its stdin is closed, on SIGTERM, or after --hold seconds, and closes every
socket (by the kernel if not before). Exit status 0 when every session was greeted and none was
closed or got a bad reply, 1 otherwise. Loopback only; every loop is bounded in time.
"""
import argparse
import heapq
import random
import selectors
import signal
import socket
import sys
import time

# Short, as a bot's are: at 3.5 s a byte on average the EHLO takes ~28 s and the MAIL ~60 s, so
# that within a couple of minutes every session has commands relayed to the MTA.
SCRIPT_START = [b"EHLO x\r\n"]
SCRIPT_LOOP = [b"MAIL FROM:<s@x>\r\n", b"RCPT TO:<r@x>\r\n", b"RSET\r\n"]


class Session:
    __slots__ = ("sock", "index", "step", "command", "pos", "inbuf", "waiting", "sent_at", "alive")

    def __init__(self, sock, index):
        self.sock = sock
        self.index = index
        self.step = 0         # commands sent so far
        self.command = b""
        self.pos = 0          # bytes of self.command sent
        self.inbuf = b""
        self.waiting = False  # the command is complete and its reply is awaited
        self.sent_at = 0.0    # when its last byte left
        self.alive = True

    def next_command(self):
        if self.step == 0:
            self.command = SCRIPT_START[0]
        else:
            self.command = SCRIPT_LOOP[(self.step - 1) % len(SCRIPT_LOOP)]
        self.step += 1
        self.pos = 0


def final_reply(buf):
    """(code, rest) once buf holds a whole reply (its last line is 'ddd ' or 'ddd'), else None."""
    start = 0
    while True:
        end = buf.find(b"\r\n", start)
        if end < 0:
            return None
        line = buf[start:end]
        if len(line) < 4 or line[3:4] != b"-":
            return line[:3], line, buf[end + 2:]
        start = end + 2


def connect_all(args):
    """Opens args.count sessions and reads their greetings; returns (sessions, greeted, bad)."""
    sel = selectors.DefaultSelector()
    pending = {}
    greeted = []
    bad = 0
    started = 0
    deadline = time.monotonic() + args.connect_timeout
    while len(greeted) + bad < args.count and time.monotonic() < deadline:
        while started < args.count and len(pending) < args.burst:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((args.host, args.port))
            sel.register(s, selectors.EVENT_READ)
            pending[s] = b""
            started += 1
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(s)
                del pending[s]
                s.close()
                bad += 1
                continue
            pending[s] += data
            got = final_reply(pending[s])
            if got is None:
                continue
            sel.unregister(s)
            del pending[s]
            if got[0] == b"220":
                greeted.append(Session(s, len(greeted)))
            else:
                s.close()
                bad += 1
    for s in pending:
        s.close()
    sel.close()
    return greeted, started, bad


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--burst", type=int, default=200, help="connects in flight at once")
    ap.add_argument("--connect-timeout", type=float, default=120.0, help="seconds to get all greetings")
    ap.add_argument("--min-gap", type=float, default=2.0, help="shortest pause before a byte, seconds")
    ap.add_argument("--max-gap", type=float, default=5.0, help="longest pause before a byte, seconds")
    ap.add_argument("--hold", type=float, default=900.0, help="seconds to talk at most")
    ap.add_argument("--report", type=float, default=5.0, help="seconds between status lines")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    rng = random.Random(args.seed)
    sessions, started, refused = connect_all(args)
    print(f"ready {started} {len(sessions)}", flush=True)
    if len(sessions) != args.count:
        print(f"slow_sessions: {len(sessions)}/{args.count} greeted, {refused} refused or closed",
              file=sys.stderr, flush=True)

    sel = selectors.DefaultSelector()
    try:
        sel.register(sys.stdin, selectors.EVENT_READ, None)
    except OSError:  # a regular file or /dev/null cannot be polled: --hold and SIGTERM end the run
        pass
    by_fd = {}
    due = []  # (time, index): the next byte of that session
    now = time.monotonic()
    for s in sessions:
        sel.register(s.sock, selectors.EVENT_READ, s)
        by_fd[s.sock.fileno()] = s
        s.next_command()
        due.append((now + rng.uniform(0, args.max_gap), s.index))
    heapq.heapify(due)

    closed = bytes_sent = replies = bad = 0
    codes = {}
    latencies = []
    t0 = now
    end = now + args.hold
    next_report = now + args.report

    def lose(s):
        nonlocal closed
        if s.alive:
            s.alive = False
            closed += 1
            sel.unregister(s.sock)
            s.sock.close()

    while not stop:
        now = time.monotonic()
        if now >= end:
            break
        while due and due[0][0] <= now:
            _, i = heapq.heappop(due)
            s = sessions[i]
            if not s.alive:
                continue
            try:
                n = s.sock.send(s.command[s.pos:s.pos + 1])
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                lose(s)
                continue
            bytes_sent += n
            s.pos += n
            if n == 0:  # the socket's buffer is full (it cannot be with one byte in 2 s): retry soon
                heapq.heappush(due, (now + 0.1, i))
            elif s.pos < len(s.command):
                heapq.heappush(due, (now + rng.uniform(args.min_gap, args.max_gap), i))
            else:
                s.waiting = True
                s.sent_at = now
        if now >= next_report:
            alive = len(sessions) - closed
            print(f"status {now - t0:.0f} open={alive} closed={closed} bytes={bytes_sent} "
                  f"replies={replies} bad={bad}", flush=True)
            next_report += args.report
        timeout = min(end, next_report, due[0][0] if due else end) - now
        for key, _ in sel.select(timeout=max(0.0, min(timeout, 1.0))):
            if key.data is None:  # stdin: closed means the caller is done
                if not sys.stdin.buffer.read1(4096):
                    stop.append(1)
                continue
            s = key.data
            try:
                data = s.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:
                lose(s)
                continue
            s.inbuf += data
            while True:
                got = final_reply(s.inbuf)
                if got is None:
                    break
                code, line, s.inbuf = got
                replies += 1
                if code != b"250" or not s.waiting:
                    bad += 1
                    key_text = line[:9].decode("ascii", "replace")
                    codes[key_text] = codes.get(key_text, 0) + 1
                if s.waiting:
                    t = time.monotonic()
                    latencies.append((t - s.sent_at) * 1000.0)
                    s.waiting = False
                    s.next_command()
                    heapq.heappush(due, (t + rng.uniform(args.min_gap, args.max_gap), s.index))

    alive = len(sessions) - closed
    latencies.sort()
    code_text = ",".join(f"{k.strip()}:{v}" for k, v in sorted(codes.items())) or "-"
    print(f"done open={alive} closed={closed} bytes={bytes_sent} replies={replies} bad={bad} "
          f"p50_ms={percentile(latencies, 0.5):.1f} p99_ms={percentile(latencies, 0.99):.1f} codes={code_text}",
          flush=True)
    for s in sessions:
        if s.alive:
            s.sock.close()
    ok = len(sessions) == args.count and closed == 0 and bad == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
