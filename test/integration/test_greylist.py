#!/usr/bin/env python3
"""test/integration/test_greylist.py — greylisting end to end (issue 14), with real clients, a real
smtp-sink behind dotgate and, for the shared store, a real redis-server started here.

    client (smtplib, raw socket, Postfix) ─► dotgate (greylist policy) ─► smtp-sink

What each test shows (what the client saw AND what smtp-sink received):
- smtplib: a new triplet gets 450 4.7.1 saying how long to wait, an early retry 450 again, a retry
  after the delay goes through; the sink has exactly one copy; metrics and the transaction line
  name the outcomes.
- per recipient: under PRDR and under the deferral split, a greylisted recipient is refused alone;
  the others are delivered in the same transaction.
- Postfix's own smtp client queues the deferred message and delivers it on its own retry.
- the embedded store (LMDB) across a dotgate restart (SIGTERM) and after SIGKILL: the triplet
  seen before the restart passes after it.
- two dotgate instances on one redis-server: a triplet first seen by one passes through the
  other; Redis killed mid-test: mail flows per on_error (accept), nothing hangs; Redis started
  again: the shared view is back (a new triplet is greylisted again by one, passed by the other).
Delays are 2 s here (the minimum is 1 s). Postfix needs root; that test skips with the reason.
Run alone: DOTGATE_BIN=build/proxy/dotgate python3 test/integration/test_greylist.py
"""

import os
import re
import shutil
import signal
import smtplib
import socket
import time

import harness
from harness import IntegrationTest, RawClient, free_port, main, metric, stuff, wait_listening, wait_until
from postfix_client import Postfix, skip_unless_postfix

DELAY = 2
SENDER = "alice@sender.example"
MESSAGE = (b"From: Alice <alice@sender.example>\r\nTo: bob@rcpt.example\r\nSubject: greylisted\r\n\r\n"
           b"Hello Bob,\r\nthis waits for its retry.\r\n")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def greylist_policy(**over):
    p = {"type": "greylist", "delay": DELAY, "window": 120, "builtin_exemptions": True,
         "auto_allow": {"after": 0}}
    p.update(over)
    return p


def transaction_lines(dg):
    return [l for l in dg.log_lines() if "transaction" in l and '"name":"greylist"' in l]


class BoundClient(RawClient):
    """A raw client from a chosen loopback source address: dotgate sees it as the client's."""

    def __init__(self, port, source, **kw):
        self.source = source
        super().__init__(port, **kw)

    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout,
                                             source_address=(self.source, 0))
        return self


class GreylistBase(IntegrationTest):

    def store_dir(self):
        return os.path.join(self.make_dir("store"), "lmdb")

    def start(self, sink_port, store=None, policy=None, extra=None):
        cfg = {"store": store or {"backend": "lmdb", "lmdb": {"path": self.lmdb_path}},
               "policies": [policy or greylist_policy()]}
        cfg.update(extra or {})
        return self.dotgate(sink_port, cfg)

    def send(self, port, rcpts, source="127.0.0.1", prdr=False):
        """One transaction from `source`: (RCPT replies, DATA/dot reply or None)."""
        c = BoundClient(port, source)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo("mx.sender.example"), 250)
        self.assertReply(c.converse("MAIL FROM:<%s>%s" % (SENDER, " PRDR" if prdr else "")), 250)
        replies = [c.converse("RCPT TO:<%s>" % r) for r in rcpts]
        for r in replies:
            self.assertValidReply(r)
        final = None
        if any(r.code == 250 for r in replies):
            self.assertReply(c.converse("DATA"), 354)
            c.send(stuff(MESSAGE) + b".\r\n")
            final = c.read_reply()
            if prdr and final.code == 353:
                final = [final] + [c.read_reply() for r in replies if r.code == 250] + [c.read_reply()]
        c.converse("QUIT")
        return replies, final


class GreylistEmbeddedTest(GreylistBase):

    def setUp(self):
        super().setUp()
        self.lmdb_path = self.store_dir()

    def test_smtplib_retries_after_the_delay(self):
        sink = self.sink()
        dg = self.start(sink.port)
        seen = []
        t0 = time.monotonic()
        for attempt in range(10):  # bounded: the retry passes at the third or fourth attempt
            try:
                with smtplib.SMTP(harness.LOOPBACK, dg.port, timeout=10) as s:
                    s.sendmail(SENDER, ["bob@rcpt.example"], MESSAGE)
                seen.append(250)
                break
            except smtplib.SMTPRecipientsRefused as e:
                code, text = e.recipients["bob@rcpt.example"]
                seen.append((code, text.decode()))
                time.sleep(1.0)
        self.assertEqual(seen[0], (450, "4.7.1 Greylisted, try again in %d seconds" % DELAY), seen)
        self.assertEqual(seen[1][0], 450, seen)
        self.assertRegex(seen[1][1], r"^4\.7\.1 Greylisted, try again in 1 seconds$")  # early retry
        self.assertEqual(seen[-1], 250, seen)
        self.assertGreaterEqual(time.monotonic() - t0, DELAY)
        got = sink.wait_for(1)
        self.assertEqual(len(got), 1)
        self.assertEqual(got[0].rcpts, ["<bob@rcpt.example>"])
        self.assertIn(b"this waits for its retry.", got[0].content)
        self.assertEqual(len(sink.settle()), 1)  # the deferred attempts queued nothing

        m = dg.metrics()
        self.assertEqual(metric(m, "dotgate_greylist_outcomes_total", stage="rcpt", outcome="new"), 1)
        self.assertGreaterEqual(metric(m, "dotgate_greylist_outcomes_total", stage="rcpt", outcome="early_retry"), 1)
        self.assertEqual(metric(m, "dotgate_greylist_outcomes_total", stage="rcpt", outcome="passed"), 1)
        self.assertGreaterEqual(metric(m, "dotgate_store_latency_seconds_count", backend="lmdb", op="get"), len(seen))
        self.assertGreaterEqual(metric(m, "dotgate_store_latency_seconds_count", backend="lmdb", op="set"), 2)
        # the delivered transaction's line names the greylist outcome of its recipient
        lines = dg.wait_log(r'transaction.*"detail":"passed".*"name":"greylist".*"rcpt":"bob@rcpt.example"')
        self.assertIn("outcome=accepted", lines[-1])

    def test_each_recipient_judged_alone_under_prdr_and_the_split(self):
        sink = self.sink()
        profiles = {"profiles": [{"name": "grey", "policies": ["greylist"]}, {"name": "plain", "policies": []}],
                    "recipients": [{"match": "*@plain.example", "profile": "plain"},
                                   {"match": "*", "profile": "grey"}]}
        dg = self.start(sink.port, extra=profiles)
        # Seen once, so that after the delay a passes and b is new.
        replies, final = self.send(dg.port, ["a@rcpt.example"])
        self.assertReply(replies[0], 450, "4.7.1")
        self.assertIsNone(final)
        time.sleep(DELAY + 0.3)
        # PRDR: a passes, b is greylisted; the message goes to a only; the client hears 250 for a.
        replies, final = self.send(dg.port, ["a@rcpt.example", "b@rcpt.example"], prdr=True)
        self.assertReply(replies[0], 250)
        self.assertReply(replies[1], 450, "4.7.1")
        codes = [r.code for r in final] if isinstance(final, list) else [final.code]
        self.assertIn(250, codes, final)
        got = sink.wait_for(1)
        self.assertEqual(got[0].rcpts, ["<a@rcpt.example>"])
        # The deferral split (no PRDR): the greylisted recipient of profile "grey" is refused
        # alone; the recipient of profile "plain" (no greylisting) is delivered in that transaction.
        replies, final = self.send(dg.port, ["c@rcpt.example", "d@plain.example"])
        self.assertReply(replies[0], 450, "4.7.1")
        self.assertReply(replies[1], 250)
        self.assertReply(final, 250)
        got = sink.wait_for(2)
        # smtp-sink's file names do not keep the order of two messages within one second
        self.assertEqual(sorted(m.rcpts for m in got), [["<a@rcpt.example>"], ["<d@plain.example>"]])
        self.assertEqual(len(sink.settle()), 2)

    def test_network_masking_and_exemptions(self):
        sink = self.sink()
        dg = self.start(sink.port, policy=greylist_policy(
            exempt={"networks": ["127.0.0.9/32"]}))
        replies, _ = self.send(dg.port, ["e@rcpt.example"], source="127.0.0.1")
        self.assertReply(replies[0], 450, "4.7.1")
        time.sleep(DELAY + 0.3)
        # 127.0.0.77 is in the same /24: the same triplet, which passes.
        replies, final = self.send(dg.port, ["e@rcpt.example"], source="127.0.0.77")
        self.assertReply(replies[0], 250)
        self.assertReply(final, 250)
        # 127.0.1.1 is another /24: new there.
        replies, final = self.send(dg.port, ["e@rcpt.example"], source="127.0.1.1")
        self.assertReply(replies[0], 450, "4.7.1")
        # An exempt network passes at once, never greylisted.
        replies, final = self.send(dg.port, ["f@rcpt.example"], source="127.0.0.9")
        self.assertReply(replies[0], 250)
        self.assertReply(final, 250)
        self.assertEqual(len(sink.wait_for(2)), 2)
        m = dg.metrics()
        self.assertEqual(metric(m, "dotgate_greylist_outcomes_total", outcome="exempt"), 1)
        self.assertEqual(len(sink.settle()), 2)

    def test_dot_stage_matches_a_rebuilt_message(self):
        sink = self.sink()
        dg = self.start(sink.port, policy=greylist_policy(stage="dot"))

        def rebuilt(n, boundary, body):
            return ("Message-ID: <%d@sender.example>\r\nDate: Mon, 1 Jan 2024 10:0%d:00 +0000\r\n"
                    "From: Alice <alice@sender.example>\r\nTo: bob@rcpt.example\r\nSubject: at the dot\r\n"
                    "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
                    "--%s\r\nContent-Type: text/plain\r\n\r\n%s\r\n--%s--\r\n"
                    % (n, n, boundary, boundary, body, boundary)).encode()

        def send(message):
            c = self.raw_client(dg.port)
            c.greeting()
            c.ehlo()
            self.assertReply(c.converse("MAIL FROM:<%s>" % SENDER), 250)
            self.assertReply(c.converse("RCPT TO:<bob@rcpt.example>"), 250)  # nothing at RCPT
            self.assertReply(c.converse("DATA"), 354)
            c.send(stuff(message) + b".\r\n")
            return c.read_reply()

        self.assertReply(send(rebuilt(1, "one", "The text of the message,\r\nwrapped here.")), 450, "4.7.1")
        self.assertNoMessage(sink)  # refused at the dot: the downstream queued nothing
        time.sleep(DELAY + 0.3)
        # The sender rebuilt it: new Message-ID, Date, boundary, other line breaks: the same message.
        self.assertReply(send(rebuilt(2, "two", "The text of the\r\nmessage, wrapped here.")), 250)
        self.assertEqual(len(sink.wait_for(1)), 1)
        # Another text is another message.
        self.assertReply(send(rebuilt(3, "three", "Something else entirely.")), 450, "4.7.1")
        self.assertEqual(len(sink.settle()), 1)
        m = dg.metrics()
        self.assertEqual(metric(m, "dotgate_greylist_outcomes_total", stage="dot", outcome="new"), 2)
        self.assertEqual(metric(m, "dotgate_greylist_outcomes_total", stage="dot", outcome="passed"), 1)
        self.assertEqual(metric(m, "dotgate_greylist_outcomes_total", stage="rcpt", outcome="new"), 0)

    def restart_keeps_the_triplet(self, sig):
        sink = self.sink()
        dg = self.start(sink.port)
        replies, _ = self.send(dg.port, ["r@rcpt.example"])
        self.assertReply(replies[0], 450, "4.7.1")
        time.sleep(0.3)  # the writer commits within milliseconds; the sync is what takes a second
        if sig == signal.SIGKILL:
            dg.signal(signal.SIGKILL)
            self.assertIsNotNone(dg.proc.wait(5))
        else:
            self.assertEqual(dg.stop(), 0)
        dg2 = self.start(sink.port)
        time.sleep(DELAY + 0.3)
        replies, final = self.send(dg2.port, ["r@rcpt.example"])
        self.assertReply(replies[0], 250, msg="the triplet was forgotten across the restart")
        self.assertReply(final, 250)
        self.assertEqual(sink.wait_for(1)[0].rcpts, ["<r@rcpt.example>"])
        self.assertIn('"detail":"passed"', transaction_lines(dg2)[-1])

    def test_restart_remembers(self):
        self.restart_keeps_the_triplet(signal.SIGTERM)

    def test_sigkill_remembers(self):
        self.restart_keeps_the_triplet(signal.SIGKILL)

    def test_postfix_queues_and_retries_through_dotgate(self):
        skip_unless_postfix(self)
        sink = self.sink()
        dg = self.start(sink.port)
        pf = Postfix(self, dg.port, hostname="pf.sender.example").start()
        pf.submit(SENDER, ["pf@rcpt.example"], MESSAGE.replace(b"\r\n", b"\n"))
        pf.wait_delivered(["pf@rcpt.example"], 60)
        got = sink.wait_for(1)
        self.assertEqual([r.split()[0] for r in got[0].rcpts], ["<pf@rcpt.example>"])  # Postfix adds ORCPT=
        self.assertIn(b"this waits for its retry.", got[0].content)
        deferred = [l for a, status, l in pf.deliveries() if status == "deferred"]
        self.assertTrue(any("450 4.7.1 Greylisted" in l for l in deferred), pf.maillog())
        self.assertNotIn("bounced", pf.maillog())
        self.assertEqual(len(sink.settle()), 1)


class GreylistRedisTest(GreylistBase):

    def setUp(self):
        super().setUp()
        if not os.access(REDIS_SERVER, os.X_OK):
            self.fail("redis-server is not installed (apt-get install redis-server)")
        self.redis_port = free_port()
        self.redis = None
        self.start_redis()

    def start_redis(self):
        self.redis = self.start_proc("redis-server", [REDIS_SERVER, "--port", self.redis_port, "--bind", "127.0.0.1",
                                                      "--save", "", "--appendonly", "no"])
        wait_listening(self.redis_port, self.redis)

    def redis_store(self):
        return {"backend": "redis", "redis": {"port": self.redis_port, "prefix": "it:", "command_timeout": 0.5,
                                              "connect_timeout": 0.5, "reconnect_interval": 0.5}}

    def test_two_instances_share_one_view_and_survive_a_redis_restart(self):
        sink = self.sink()
        a = self.start(sink.port, store=self.redis_store())
        b = self.start(sink.port, store=self.redis_store())
        replies, _ = self.send(a.port, ["s@rcpt.example"])
        self.assertReply(replies[0], 450, "4.7.1")
        time.sleep(DELAY + 0.3)
        replies, final = self.send(b.port, ["s@rcpt.example"])  # first seen by a, passes through b
        self.assertReply(replies[0], 250, msg="b does not see what a stored")
        self.assertReply(final, 250)
        self.assertEqual(sink.wait_for(1)[0].rcpts, ["<s@rcpt.example>"])

        # Redis gone: on_error accept lets mail through, at once; nothing hangs.
        self.redis.stop()
        t0 = time.monotonic()
        replies, final = self.send(a.port, ["t@rcpt.example"])
        self.assertReply(replies[0], 250)
        self.assertReply(final, 250)
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertEqual(len(sink.wait_for(2)), 2)
        m = a.metrics()
        self.assertGreaterEqual(metric(m, "dotgate_greylist_outcomes_total", outcome="store_error"), 1)
        self.assertGreaterEqual(sum(v for k, v in m.items() if k.startswith("dotgate_store_errors_total")), 1)
        a.wait_log(r"greylist policy: state store gave no answer")
        self.assertIn('"detail":"store_error"', transaction_lines(a)[-1])

        # Redis back (empty: no persistence here): the shared view works again on both.
        self.start_redis()
        delivered = 2
        deadline = time.monotonic() + 10
        while True:  # bounded: b reconnects within reconnect_interval; until then it accepts
            replies, final = self.send(b.port, ["u@rcpt.example"])
            if final is not None and final.code == 250:
                delivered += 1
            if replies[0].code == 450 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        self.assertReply(replies[0], 450, "4.7.1")
        time.sleep(DELAY + 0.3)
        # a's connection came back on its first command after the interval (it had been used
        # while Redis was down): the triplet b stored passes through a, as "passed".
        replies, final = self.send(a.port, ["u@rcpt.example"])
        self.assertReply(replies[0], 250)
        self.assertReply(final, 250)
        delivered += 1
        got = sink.wait_for(delivered)
        self.assertEqual(got[-1].rcpts, ["<u@rcpt.example>"])
        self.assertIn('"detail":"passed"', transaction_lines(a)[-1])
        self.assertEqual(len(sink.settle()), delivered)


if __name__ == "__main__":
    main()
