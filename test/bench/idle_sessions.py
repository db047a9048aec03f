#!/usr/bin/env python3
"""test/bench/idle_sessions.py — open N SMTP sessions, read each greeting, then sit idle.

Called by test/bench/relay.sh to measure a proxy's memory per idle session. It connects N sockets
to HOST:PORT (non-blocking, at most --burst connects in flight so the listen backlog never
overflows), reads each one's greeting up to the end of its last line, and then prints one line
`ready OPEN GREETED` to stdout. It then keeps every socket open, reading nothing more, until its
stdin is closed, it receives SIGTERM, or --hold seconds pass. Exit status: 0 when every session
got a 220 greeting, 1 otherwise. Everything it opened is closed on exit (by the kernel if not
before).
"""
import argparse
import selectors
import signal
import socket
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--burst", type=int, default=200, help="connects in flight at once")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds to get all greetings")
    ap.add_argument("--hold", type=float, default=120.0, help="seconds to stay idle at most")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel = selectors.DefaultSelector()
    buf: dict[socket.socket, bytes] = {}
    greeted = 0
    bad = 0
    started = 0
    in_flight = 0
    deadline = time.monotonic() + args.timeout
    keep: list[socket.socket] = []

    while greeted + bad < args.count and time.monotonic() < deadline:
        while started < args.count and in_flight < args.burst:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((args.host, args.port))
            sel.register(s, selectors.EVENT_READ)
            buf[s] = b""
            keep.append(s)
            started += 1
            in_flight += 1
        for key, _ in sel.select(timeout=0.5):
            s = key.fileobj
            try:
                data = s.recv(4096)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                data = b""
            if not data:  # closed (or refused) before a full greeting
                sel.unregister(s)
                bad += 1
                in_flight -= 1
                continue
            buf[s] += data
            # A greeting ends with a line "ddd " (last line of a possibly multi-line reply).
            lines = buf[s].split(b"\r\n")
            done = [ln for ln in lines[:-1] if len(ln) >= 4 and ln[3:4] == b" "]
            if done:
                sel.unregister(s)
                in_flight -= 1
                if done[0].startswith(b"220"):
                    greeted += 1
                else:
                    bad += 1
                del buf[s]

    print(f"ready {started} {greeted}", flush=True)
    if greeted != args.count:
        print(f"idle_sessions: {greeted}/{args.count} greeted, {bad} refused or closed",
              file=sys.stderr, flush=True)
    # Idle: wait for stdin to close (the caller is done measuring), a signal, or --hold.
    stdin_sel = selectors.DefaultSelector()
    stdin_sel.register(sys.stdin, selectors.EVENT_READ)
    end = time.monotonic() + args.hold
    while time.monotonic() < end:
        if stdin_sel.select(timeout=max(0.0, min(1.0, end - time.monotonic()))):
            if not sys.stdin.buffer.read1(4096):
                break
    for s in keep:
        s.close()
    return 0 if greeted == args.count else 1


if __name__ == "__main__":
    sys.exit(main())
