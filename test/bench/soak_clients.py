"""test/bench/soak_clients.py — the soak's load: Python SMTP clients and smtp-source.

What it is: the half of test/bench/soak.py that sends mail. Clients runs --clients threads, each a
loop of SMTP sessions (raw sockets, harness.RawClient) of 1-3 messages whose kinds, sizes and
recipients come from the seed; every message has its own Message-ID and a Message record of the
reply it got at each phase and how it ended: accepted (2xx at the dot, with Postfix's "queued as"
ID), refused, cut (the client vanished before the dot: before MAIL, after RCPT, mid-DATA), window
(vanished right after the dot, before reading the reply: RFC 1047), unanswered (no reply to a dot:
dotgate owes one), not_connected. BulkLoad runs smtp-source again and again in the background.
What it owns: its threads (daemon threads, each loop bounded; they stop on `stop`) and the
smtp-source processes it runs (each with a time limit, in its own session).
"""

import collections
import hashlib
import itertools
import os
import random
import re
import subprocess
import threading
import time

import harness
from harness import LOOPBACK, ConnectionClosed, RawClient, ReplyTimeout

SMTP_SOURCE = "/usr/sbin/smtp-source"
CLIENT_TIMEOUT = 60.0      # a client's wait for any one reply: far above dotgate's own timeouts
SPAM_PHRASE = "cheap pills"
LIMIT_SIZE = 150000        # limits.max_message_size
BULK_SENDER = "bulk@load.example"
SLOW_DOT_SENDER = "slowdot@soak.example"   # Postfix holds this sender's dot 3 s (the drain probe)

# Message kinds and their weights; the policies must never let EXPECT_REFUSED through.
KINDS = [("clean", 52), ("spam", 7), ("oversize", 3), ("hook_reject", 5), ("hook_tempfail", 2),
         ("cut_before_mail", 4), ("cut_after_rcpt", 5), ("cut_mid_data", 6), ("window", 8)]
EXPECT_REFUSED = {"spam", "oversize", "hook_reject", "hook_tempfail"}


class Message:
    """One Python client's message: what was sent, what the client saw at each phase."""

    def __init__(self, msgid, kind, rcpts, body):
        self.msgid, self.kind, self.rcpts, self.body = msgid, kind, rcpts, body
        self.sha = hashlib.sha256(body.replace(b"\r\n", b"\n")).hexdigest()
        self.replies = []          # [(phase, code or None, first line)]
        self.accepted_rcpts = []
        self.outcome = None        # accepted, refused, cut, window, unanswered, not_connected
        self.queue_id = None       # from "queued as X" in a 2xx at the dot
        self.cut_phase = None
        self.t_dot = self.t_reply = None

    def saw(self, phase, reply):
        self.replies.append((phase, reply.code if reply else None, reply.lines[0] if reply and reply.lines else ""))

    def final_reply(self):
        return self.replies[-1] if self.replies else (None, None, "")


def make_message(rng, msgid, kind):
    rcpts = ["r%d@dest.example" % rng.randint(1, 50) for _ in range(rng.choice([1, 1, 1, 2]))]
    rcpts = sorted(set(rcpts))
    lines = []
    size = rng.choice([200, 800, 3000, 8000, 20000]) if kind != "oversize" else LIMIT_SIZE + 10000
    n = 0
    while sum(len(l) + 2 for l in lines) < size:
        n += 1
        if rng.random() < 0.05:
            lines.append(".line %d starts with a dot" % n)      # dot-stuffing, both ways
        else:
            lines.append("line %d %s" % (n, "".join(rng.choice("abcdefghij klmnop") for _ in range(rng.randint(10, 70)))))
    if kind == "spam":
        lines.insert(rng.randint(0, len(lines)), "buy %s now, %s for everyone" % (SPAM_PHRASE, SPAM_PHRASE))
    headers = ["From: <sender@soak.example>", "To: <%s>" % rcpts[0], "Subject: soak %s %s" % (kind, msgid),
               "Date: Fri, 04 Dec 2026 12:00:00 +0000", "Message-ID: <%s>" % msgid]
    if kind == "hook_reject":
        headers.append("X-Soak-Webhook: reject")
    if kind == "hook_tempfail":
        headers.append("X-Soak-Webhook: tempfail")
    body = ("\r\n".join(lines) + "\r\n").encode()
    head = ("\r\n".join(headers) + "\r\n\r\n").encode()
    m = Message(msgid, kind, rcpts, body)
    m.wire = head + body
    return m


class Clients:
    def __init__(self, port, params):
        self.port, self.p = port, params
        self.messages = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.sessions = itertools.count(1)
        self.threads = []
        self.errors = []

    def start(self):
        for i in range(self.p.clients):
            t = threading.Thread(target=self.loop, name="soak-client-%d" % i, daemon=True)
            t.start()
            self.threads.append(t)

    def loop(self):
        for _ in range(10 ** 7):   # bounded; ends on stop long before
            if self.stop.is_set():
                return
            n = next(self.sessions)
            rng = random.Random(self.p.seed * 1000003 + n)
            try:
                self.session(rng, n)
            except Exception as e:  # a bug in the driver: reported, never silent
                with self.lock:
                    self.errors.append("session %d: %r" % (n, e))
            self.stop.wait(rng.uniform(0, self.p.think))

    def add(self, m):
        with self.lock:
            self.messages.append(m)

    def session(self, rng, n):
        count = rng.choice([1, 1, 1, 2, 2, 3])
        kinds = [rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0] for _ in range(count)]
        pipelined = rng.random() < 0.3
        first = make_message(rng, "soak-%d-%d-1@soak.example" % (self.p.seed, n), kinds[0])
        self.add(first)
        try:
            c = RawClient(self.port, timeout=CLIENT_TIMEOUT)
        except OSError as e:
            first.outcome = "not_connected"
            first.replies.append(("connect", None, str(e)))
            return
        try:
            self.converse(c, rng, n, kinds, first, pipelined)
        finally:
            c.close()

    def converse(self, c, rng, n, kinds, first, pipelined):
        m = first
        try:
            r = c.greeting()
            m.saw("greeting", r)
            if r.code != 220:
                m.outcome = "refused"
                self.stop.wait(rng.uniform(0.2, 0.6))  # as an MTA would: not straight back
                return
            r = c.ehlo("soak-client.example")
            m.saw("ehlo", r)
            if r.code != 250:
                m.outcome = "refused"
                return
        except (ConnectionClosed, ReplyTimeout, OSError) as e:
            m.outcome = "refused"
            m.replies.append(("greeting", None, "closed: %s" % e))
            return
        for k, kind in enumerate(kinds):
            if k > 0:
                m = make_message(rng, "soak-%d-%d-%d@soak.example" % (self.p.seed, n, k + 1), kind)
                self.add(m)
            go_on = self.transaction(c, rng, m, pipelined)
            if not go_on:
                return
        try:
            c.converse("QUIT", timeout=10)
        except (ConnectionClosed, ReplyTimeout, OSError):
            pass

    def transaction(self, c, rng, m, pipelined):
        """One message on an open session; False when the session is over."""
        if m.kind == "cut_before_mail":
            m.outcome, m.cut_phase = "cut", "before MAIL"
            return False
        try:
            if pipelined and m.kind != "cut_after_rcpt":
                cmds = ["MAIL FROM:<sender@soak.example>"] + ["RCPT TO:<%s>" % r for r in m.rcpts] + ["DATA"]
                c.send("".join(x + "\r\n" for x in cmds))
                replies = [c.read_reply() for _ in cmds]
                m.saw("mail", replies[0])
                for rcpt, r in zip(m.rcpts, replies[1:-1]):
                    m.saw("rcpt", r)
                    if r.code and r.code // 100 == 2:
                        m.accepted_rcpts.append(rcpt)
                m.saw("data", replies[-1])
                if replies[-1].code != 354:
                    m.outcome = "refused"
                    return self.after_refusal(c, replies)
            else:
                r = c.converse("MAIL FROM:<sender@soak.example>")
                m.saw("mail", r)
                if r.code != 250:
                    m.outcome = "refused"
                    return self.after_refusal(c, [r])
                for rcpt in m.rcpts:
                    r = c.converse("RCPT TO:<%s>" % rcpt)
                    m.saw("rcpt", r)
                    if r.code == 421:
                        m.outcome = "refused"
                        return False
                    if (r.code or 0) // 100 == 2:
                        m.accepted_rcpts.append(rcpt)
                if m.kind == "cut_after_rcpt":
                    m.outcome, m.cut_phase = "cut", "after RCPT"
                    return False
                if not m.accepted_rcpts:
                    m.outcome = "refused"
                    return self.after_refusal(c, [])
                r = c.converse("DATA")
                m.saw("data", r)
                if r.code != 354:
                    m.outcome = "refused"
                    return self.after_refusal(c, [r])
            wire = harness.stuff(m.wire)
            if m.kind == "cut_mid_data":
                c.send(wire[:rng.randint(1, len(wire) - 1)])
                m.outcome, m.cut_phase = "cut", "mid-DATA"
                return False
            c.send(wire + b".\r\n")
            m.t_dot = time.monotonic()
            if m.kind == "window":
                m.outcome, m.cut_phase = "window", "after the dot"
                return False
        except (ConnectionClosed, ReplyTimeout, OSError) as e:
            m.outcome = "refused"   # the server ended the session before the dot
            m.replies.append(("before dot", None, "closed: %s" % e))
            return False
        try:
            r = c.read_reply()
        except (ConnectionClosed, ReplyTimeout, OSError) as e:
            m.outcome = "unanswered"
            m.t_reply = time.monotonic()
            m.replies.append(("dot", None, "no reply: %s" % e))
            return False
        m.t_reply = time.monotonic()
        m.saw("dot", r)
        if (r.code or 0) // 100 == 2:
            m.outcome = "accepted"
            q = re.search(r"queued as (\w+)", r.text)
            m.queue_id = q.group(1) if q else None
        else:
            m.outcome = "refused"
        return r.code != 421

    @staticmethod
    def after_refusal(c, replies):
        if any(r.code == 421 for r in replies):
            return False
        try:
            r = c.converse("RSET")
            return r.code == 250
        except (ConnectionClosed, ReplyTimeout, OSError):
            return False


class BulkLoad:
    """smtp-source in the background, one bounded run after another; counted in aggregate."""

    def __init__(self, port, params):
        self.port, self.p = port, params
        self.stop = threading.Event()
        self.runs = collections.Counter()
        self.thread = None

    def start(self):
        if self.p.bulk_sessions <= 0 or not os.access(SMTP_SOURCE, os.X_OK):
            return
        self.thread = threading.Thread(target=self.loop, name="soak-bulk", daemon=True)
        self.thread.start()

    def loop(self):
        for _ in range(10 ** 6):
            if self.stop.is_set():
                return
            argv = [SMTP_SOURCE, "-A", "-s", str(self.p.bulk_sessions), "-m", str(self.p.bulk_sessions * 5),
                    "-l", "1500", "-f", BULK_SENDER, "-t", "bulk-rcpt@dest.example", "-M", "load.example",
                    "%s:%d" % (LOOPBACK, self.port)]
            try:
                p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=120, start_new_session=True)
                self.runs["rc=%d" % p.returncode] += 1
            except subprocess.TimeoutExpired:
                self.runs["timeout"] += 1
            self.stop.wait(0.5)

    def join(self):
        if self.thread:
            self.thread.join(150)
