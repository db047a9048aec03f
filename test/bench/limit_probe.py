#!/usr/bin/env python3
"""test/bench/limit_probe.py — connect N clients one after another and tally their first reply.

Called by test/bench/sessions.sh to show what clients past smtp.max_connections get. It opens N
connections to HOST:PORT one at a time (each waits up to --timeout for its first reply, a whole
possibly multi-line reply, before the next connects, so the order of admission is the order of
connection), keeps every one that was greeted with 220 open, and prints

    replies 220=A 421/4.7.0=B other=C
    refused_after=K        (how many 220s came before the first 421; -1 if none was refused)

then `ready`. A refused client's connection must also be closed by the server after its 421:
one left open counts as `other`. It then holds the admitted sessions, reading nothing, until its
stdin is closed, SIGTERM, or --hold seconds, and closes them. Exit status 0 always (the caller
judges the tally). Loopback only; bounded in count and time.
"""
import argparse
import select
import signal
import socket
import sys
import time


def first_reply(sock, timeout):
    """(code, enhanced, closed_after) of the first reply, or (None, None, closed) on EOF/timeout."""
    sock.settimeout(timeout)
    buf = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(4096)
        except OSError:
            return None, None, True
        if not data:
            return None, None, True
        buf += data
        lines = buf.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b"-":
                continue
            parts = line.decode("ascii", "replace").split(" ")
            enhanced = parts[1] if len(parts) > 1 else ""
            return parts[0][:3], enhanced, False
    return None, None, False


def closed_by_server(sock, timeout):
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except OSError as e:
        return not isinstance(e, socket.timeout)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("host")
    ap.add_argument("port", type=int)
    ap.add_argument("count", type=int)
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds for each first reply")
    ap.add_argument("--hold", type=float, default=300.0, help="seconds to hold the admitted at most")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    admitted = []
    greeted = refused = other = 0
    refused_after = -1
    for _ in range(args.count):
        s = socket.create_connection((args.host, args.port), timeout=args.timeout)
        code, enhanced, _closed = first_reply(s, args.timeout)
        if code == "220":
            greeted += 1
            admitted.append(s)
        elif code == "421" and enhanced == "4.7.0" and closed_by_server(s, args.timeout):
            refused += 1
            if refused_after < 0:
                refused_after = greeted
            s.close()
        else:
            other += 1
            s.close()
    print(f"replies 220={greeted} 421/4.7.0={refused} other={other}", flush=True)
    print(f"refused_after={refused_after}", flush=True)
    print("ready", flush=True)
    end = time.monotonic() + args.hold
    while time.monotonic() < end:
        r, _, _ = select.select([sys.stdin], [], [], 1.0)
        if r and not sys.stdin.buffer.read1(4096):
            break
    for s in admitted:
        s.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
