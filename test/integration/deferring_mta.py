#!/usr/bin/env python3
"""test/integration/deferring_mta.py — a scripted receiving MTA that splits transactions by deferral.

What it is: one small process on loopback that stands where dotgate's `split` policy will stand
when a real sending MTA (Exim, Postfix: exim_client.py, postfix_client.py) delivers a message with
several recipients. It accepts the first `accept_per_transaction` RCPTs of each transaction and
answers every later RCPT with the configured deferral reply (by default
`451 4.5.3 Use PRDR or retry immediately, possibly in the same TCP connection, after DATA End of
data; retry=0`), so the sender must come back (same connection or later) for the others. When
the client says `MAIL FROM:<...> PRDR` (and PRDR is advertised), nothing is deferred: every RCPT
is accepted and, after the dot, it answers in the draft-hall-prdr-00 format: `353`, one reply per
recipient (`250`, or a scripted reply), then the final `250`.

Who drives it: a JSON config file (--config), read once at start; every key is optional:
  {
    "hostname": "deferring.example",
    "pipelining": true, "prdr": true, "enhancedstatuscodes": true, "size": 10240000,
    "accept_per_transaction": 1,            RCPTs accepted before the deferral starts (0: none)
    "defer_reply": "451 4.5.3 Use PRDR ...; retry=0",   the reply to the later RCPTs
    "defer_limit": null,                    null: defer forever; N: after N deferrals (over the
                                            whole run) accept every RCPT (a retry budget)
    "prdr_rcpt_replies": {"<a@b>": "550 5.7.1 not for you"},   per-recipient PRDR replies
                                            (default "250 2.1.5 <rcpt> content accepted")
    "data_reply": "250 2.0.0 Ok: queued as %(id)s",
    "dot_delay": 0                          seconds to hold the reply to the dot; when > 0, what
                                            arrived meanwhile is recorded (after_dot event)
  }

What it records (--record DIR): DIR/events.jsonl, one JSON object a line, flushed at once, each
with "t" (time.time()) and "conn" (1, 2, ... in accept order):
  connect / command {line} / reply {lines} / rcpt {addr, accepted: bool, txn} /
  message {txn, mail, prdr, accepted: [addr...] (the recipients this message was accepted for),
           deferred: [addr...]} / close {reason} /
  after_dot {early: text the client sent after the dot before our reply (a pipelined QUIT),
             peer_shutdown: the client had half-closed (shutdown SHUT_WR) by then}
"txn" counts transactions (MAIL commands) over the whole run. DIR/ready holds the pid once
listening. It runs until killed (SIGTERM); connection threads are daemons. Every read has a
timeout (IO_TIMEOUT) and the buffer is bounded, so a stuck client cannot hang it.
"""

import argparse
import json
import os
import re
import select
import socket
import sys
import threading
import time

from line_server import Close, LineConnection, serve

DEFAULT_DEFER = ("451 4.5.3 Use PRDR or retry immediately, possibly in the same TCP connection, "
                 "after DATA End of data; retry=0")
IO_TIMEOUT = 300.0
MAX_BUFFER = 16 * 1024 * 1024
END = re.compile(rb"\r\n\.\r\n")




class State:
    """Run-wide counters and the event file (shared by the connection threads)."""

    def __init__(self, directory, config):
        self.config = config
        self.lock = threading.Lock()
        self.events = open(os.path.join(directory, "events.jsonl"), "a", encoding="utf-8")
        self.txn = 0
        self.deferrals = 0
        self.queued = 0

    def event(self, **fields):
        fields["t"] = time.time()
        with self.lock:
            self.events.write(json.dumps(fields) + "\n")
            self.events.flush()

    def next_txn(self):
        with self.lock:
            self.txn += 1
            return self.txn

    def may_defer(self):
        """Count one deferral if the budget allows it."""
        limit = self.config.get("defer_limit")
        with self.lock:
            if limit is not None and self.deferrals >= limit:
                return False
            self.deferrals += 1
            return True

    def next_queue_id(self):
        with self.lock:
            self.queued += 1
            return "Q%04d" % self.queued


def angle_addr(arg):
    m = re.search(r"<([^>]*)>", arg)
    return m.group(1) if m else arg.strip()


class Connection(LineConnection):
    max_buffer = MAX_BUFFER

    def __init__(self, sock, index, state):
        super().__init__(sock, index)
        self.state = state
        self.cfg = state.config

    def read_data(self):
        while True:
            probe = b"\r\n" + self.buf
            m = END.search(probe)
            if m:
                body = probe[2:m.start() + 2] if m.start() >= 2 else b""
                self.buf = probe[m.end():]
                return body
            self.fill()

    def after_dot(self):
        """What the client sent after the dot before it had our reply (pipelined QUIT, half-close):
        wait dot_delay seconds, then look without consuming. Recorded as an `after_dot` event."""
        delay = float(self.cfg.get("dot_delay", 0) or 0)
        if delay <= 0:
            return
        time.sleep(delay)
        early = self.buf
        # poll, not a plain recv: a Python socket with a timeout waits for readability even with
        # MSG_DONTWAIT
        p = select.poll()
        rdhup = getattr(select, "POLLRDHUP", 0)
        p.register(self.sock, select.POLLIN | rdhup)
        events = 0
        for _, ev in p.poll(0):
            events |= ev
        if events & select.POLLIN:
            try:
                early += self.sock.recv(65536, socket.MSG_PEEK)
            except OSError:
                pass
        shutdown = bool(events & (rdhup | select.POLLHUP))
        self.state.event(conn=self.index, event="after_dot", early=early.decode("latin-1"),
                         peer_shutdown=shutdown)

    def reply(self, lines):
        if isinstance(lines, str):
            lines = [lines]
        self.state.event(conn=self.index, event="reply", lines=lines)
        self.sock.sendall(b"".join(l.encode("latin-1") + b"\r\n" for l in lines))

    def ehlo_lines(self):
        host = self.cfg.get("hostname", "deferring.example")
        kws = []
        if self.cfg.get("pipelining", True):
            kws.append("PIPELINING")
        if self.cfg.get("size", 10240000):
            kws.append("SIZE %d" % self.cfg.get("size", 10240000))
        kws.append("8BITMIME")
        if self.cfg.get("enhancedstatuscodes", True):
            kws.append("ENHANCEDSTATUSCODES")
        if self.cfg.get("prdr", True):
            kws.append("PRDR")
        lines = [host] + kws
        return ["250-" + l for l in lines[:-1]] + ["250 " + lines[-1]]

    def run(self):
        reason = "done"
        self.sock.settimeout(IO_TIMEOUT)
        host = self.cfg.get("hostname", "deferring.example")
        try:
            self.state.event(conn=self.index, event="connect")
            self.reply("220 %s ESMTP deferring_mta" % host)
            txn = None
            while True:
                line = self.readline()
                text = line.rstrip(b"\r\n").decode("latin-1")
                self.state.event(conn=self.index, event="command", line=text)
                verb = text.split(" ", 1)[0].upper()
                if verb == "EHLO":
                    txn = None
                    self.reply(self.ehlo_lines())
                elif verb == "HELO":
                    txn = None
                    self.reply("250 %s" % host)
                elif verb == "MAIL":
                    if txn is not None:
                        self.reply("503 5.5.1 Error: nested MAIL command")
                        continue
                    params = text.split(">", 1)[1].upper().split() if ">" in text else []
                    txn = {"id": self.state.next_txn(), "mail": text,
                           "prdr": bool(self.cfg.get("prdr", True)) and "PRDR" in params,
                           "accepted": [], "deferred": []}
                    self.reply("250 2.1.0 Ok")
                elif verb == "RCPT":
                    if txn is None:
                        self.reply("503 5.5.1 Error: need MAIL command")
                        continue
                    addr = angle_addr(text.split(":", 1)[1] if ":" in text else "")
                    first = len(txn["accepted"]) < int(self.cfg.get("accept_per_transaction", 1))
                    if txn["prdr"] or first or not self.state.may_defer():
                        txn["accepted"].append(addr)
                        self.state.event(conn=self.index, event="rcpt", addr=addr, accepted=True, txn=txn["id"])
                        self.reply("250 2.1.5 Ok")
                    else:
                        txn["deferred"].append(addr)
                        self.state.event(conn=self.index, event="rcpt", addr=addr, accepted=False, txn=txn["id"])
                        self.reply(self.cfg.get("defer_reply", DEFAULT_DEFER))
                elif verb == "DATA":
                    if txn is None:
                        self.reply("503 5.5.1 Error: need MAIL command")
                        continue
                    if not txn["accepted"]:
                        self.reply("554 5.5.1 Error: no valid recipients")
                        txn = None
                        continue
                    self.reply("354 End data with <CR><LF>.<CR><LF>")
                    body = self.read_data()
                    self.state.event(conn=self.index, event="command", line=".")
                    self.after_dot()
                    qid = self.state.next_queue_id()
                    accepted = list(txn["accepted"])
                    if txn["prdr"]:
                        self.reply("353 PRDR content analysis beginning")
                        per = self.cfg.get("prdr_rcpt_replies", {})
                        ok = []
                        for a in txn["accepted"]:
                            r = per.get("<%s>" % a) or per.get(a) or "250 2.1.5 <%s> content accepted" % a
                            self.reply(r)
                            if r.startswith("2"):
                                ok.append(a)
                        accepted = ok
                    self.state.event(conn=self.index, event="message", txn=txn["id"], mail=txn["mail"],
                                     prdr=txn["prdr"], accepted=accepted, deferred=txn["deferred"],
                                     size=len(body), queue_id=qid)
                    final = self.cfg.get("data_reply", "250 2.0.0 Ok: queued as %(id)s") % {"id": qid}
                    self.reply(final if accepted or not txn["prdr"] else "550 5.7.1 No recipient accepted the content")
                    txn = None
                elif verb == "RSET":
                    txn = None
                    self.reply("250 2.0.0 Ok")
                elif verb == "NOOP":
                    self.reply("250 2.0.0 Ok")
                elif verb == "QUIT":
                    self.reply("221 2.0.0 Bye")
                    raise Close("quit")
                else:
                    self.reply("502 5.5.2 Error: command not implemented")
        except Close as e:
            reason = str(e)
        except OSError as e:
            reason = "error: %s" % e
        finally:
            self.state.event(conn=self.index, event="close", reason=reason)
            try:
                self.sock.close()
            except OSError:
                pass


# ----------------------------------------------------------------------------------------------
# the test side: start it as a process and read what it recorded

class DeferringMta:
    """deferring_mta.py as a process on loopback (started through the test's start_proc, stopped by
    its pid), and queries over its events."""

    def __init__(self, tc, config=None, host="127.0.0.1"):
        import harness
        self.harness = harness
        self.tc = tc
        self.host = host
        self.port = harness.free_port(host)
        self.config = dict(config or {})
        self.dir = tc.make_dir("deferring-mta")
        self.proc = None

    def start(self):
        path = os.path.join(self.dir, "config.json")
        with open(path, "w") as f:
            json.dump(self.config, f)
        addr = ("[%s]" % self.host) if ":" in self.host else self.host
        self.proc = self.tc.start_proc("deferring_mta", [sys.executable, os.path.abspath(__file__), "--listen",
                                                         "%s:%d" % (addr, self.port), "--config", path,
                                                         "--record", self.dir])
        self.harness.wait_listening(self.port, self.proc, host=self.host)
        self.harness.wait_until(lambda: os.path.exists(os.path.join(self.dir, "ready")),
                                self.harness.START_TIMEOUT, what="deferring_mta ready")
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()

    def events(self):
        try:
            with open(os.path.join(self.dir, "events.jsonl"), encoding="utf-8") as f:
                return [json.loads(l) for l in f if l.strip().endswith("}")]
        except OSError:
            return []

    def messages(self):
        return [e for e in self.events() if e["event"] == "message"]

    def accepted(self):
        """Recipients of completed messages, in order, with repetitions (a duplicate is a bug)."""
        return [a for m in self.messages() for a in m["accepted"]]

    def after_dot(self):
        return [e for e in self.events() if e["event"] == "after_dot"]

    def connections(self):
        return sorted({e["conn"] for e in self.events() if e["event"] == "connect"})

    def transactions(self):
        """MAIL commands seen: [(conn, line)]."""
        return [(e["conn"], e["line"]) for e in self.events()
                if e["event"] == "command" and e["line"].upper().startswith("MAIL ")]

    def first_connect_time(self):
        ts = [e["t"] for e in self.events() if e["event"] == "connect"]
        return min(ts) if ts else None

    def acceptance_times(self):
        """{address: time of the end of DATA of the message that carried it}."""
        out = {}
        for m in self.messages():
            for a in m["accepted"]:
                out.setdefault(a, m["t"])
        return out

    def transcript(self, conn=None):
        """[(t, conn, direction, line)]: '<' command received, '>' reply line sent."""
        out = []
        for e in self.events():
            if conn is not None and e["conn"] != conn:
                continue
            if e["event"] == "command":
                out.append((e["t"], e["conn"], "<", e["line"]))
            elif e["event"] == "reply":
                out.extend((e["t"], e["conn"], ">", l) for l in e["lines"])
            elif e["event"] in ("connect", "close"):
                out.append((e["t"], e["conn"], "*", e["event"] + (" " + e["reason"] if "reason" in e else "")))
        return out

    def transcript_text(self):
        t0 = self.first_connect_time() or 0.0
        return "\n".join("%8.3f #%d %s %s" % (t - t0, c, d, l) for t, c, d, l in self.transcript())

    def wait_accepted(self, addresses, timeout):
        want = set(addresses)
        return self.harness.wait_until(lambda: want <= set(self.accepted()), timeout, interval=0.1,
                                       what="%s accepted at the deferring MTA; transcript:\n%s"
                                       % (sorted(want), self.transcript_text()[-4000:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="HOST:PORT (IPv6 in brackets)")
    ap.add_argument("--config", required=True)
    ap.add_argument("--record", required=True)
    args = ap.parse_args()
    with open(args.config, encoding="utf-8") as f:
        config = json.load(f)
    state = State(args.record, config)
    serve(args.listen, args.record, lambda sock, index: Connection(sock, index, state))

if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
