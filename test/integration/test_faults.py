#!/usr/bin/env python3
"""test/integration/test_faults.py — downstream and client faults.

Covers issue 3 "Downstream faults" and "Client faults": downstream not listening → greeting
421 4.4.0 and close; downstream killed mid-session or mid-DATA → 421 4.4.2 and never a 250;
a downstream slower than downstream.reply_timeout / data_end_timeout, one that stops answering,
one that sends garbage or disconnects (smtp-sink -q / -Q) → 421 4.4.2 (or the downstream's own
421); a client that disconnects during DATA leaves nothing downstream (no dot relayed).
"""

import signal
import time

from harness import ConnectionClosed, IntegrationTest, ReplyTimeout, free_port, main


class FaultsTest(IntegrationTest):

    def session(self, dg):
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        return c

    def next_reply(self, c, command=None, timeout=10):
        """The reply to `command`, or the unsolicited reply already waiting."""
        try:
            if command is not None:
                c.send(command)
            return c.read_reply(timeout=timeout)
        except ConnectionClosed:
            self.fail("connection closed without a reply")

    def test_downstream_not_listening(self):
        port = free_port()
        dg = self.dotgate(port)
        c = dg.client()
        self.assertReply(c.greeting(), 421, "4.4.0")
        self.assertClosed(c)
        m = dg.metrics()
        self.assertGreaterEqual(sum(v for k, v in m.items()
                                    if k.startswith("dotgate_downstream_errors_total") and 'reason="connect"' in k), 1, m)

    def test_downstream_killed_mid_session(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        sink.proc.signal(signal.SIGKILL)
        sink.proc.wait(5)
        r = self.next_reply(c, b"RCPT TO:<b@example.net>\r\n")
        self.assertReply(r, 421, "4.4.2")
        self.assertClosed(c)

    def test_downstream_killed_mid_data(self):
        fake = self.fake()
        dg = self.dotgate(fake.port)
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(b"Subject: half\r\n\r\nfirst half\r\n")
        time.sleep(0.2)
        fake.proc.signal(signal.SIGKILL)
        fake.proc.wait(5)
        time.sleep(0.2)
        replies = []
        try:
            c.send(b"second half\r\n.\r\n")
        except OSError:
            pass
        for _ in range(3):
            try:
                replies.append(c.read_reply(timeout=10))
            except (ConnectionClosed, ReplyTimeout):
                break
        self.assertTrue(replies, "no reply at all")
        self.assertNotIn(250, [r.code for r in replies], "a 250 for a message the downstream never confirmed")
        self.assertReply(replies[0], 421, "4.4.2")
        self.assertEqual(fake.messages(), [])

    def test_downstream_killed_mid_data_smtp_sink(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(b"Subject: half\r\n\r\nfirst half\r\n")
        time.sleep(0.2)
        sink.proc.signal(signal.SIGKILL)
        sink.proc.wait(5)
        time.sleep(0.2)
        try:
            c.send(b"second half\r\n.\r\n")
        except OSError:
            pass
        r = self.next_reply(c)
        self.assertReply(r, 421, "4.4.2")
        self.assertClosed(c)

    def test_slow_downstream_reply_timeout(self):
        sink = self.sink("-W", "rcpt:4")
        dg = self.dotgate(sink.port, {"downstream": {"reply_timeout": 1}})
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        t0 = time.monotonic()
        r = self.next_reply(c, b"RCPT TO:<b@example.net>\r\n")
        elapsed = time.monotonic() - t0
        self.assertReply(r, 421, "4.4.2")
        self.assertLess(elapsed, 3.5, "reply_timeout 1 s took %.1fs" % elapsed)
        self.assertClosed(c)
        self.assertNoMessage(sink)

    def test_downstream_stops_answering(self):
        fake = self.fake({"rules": [{"command": "MAIL", "action": "hang"}]})
        dg = self.dotgate(fake.port, {"downstream": {"reply_timeout": 0.8}})
        c = self.session(dg)
        t0 = time.monotonic()
        r = self.next_reply(c, b"MAIL FROM:<a@example.org>\r\n")
        self.assertReply(r, 421, "4.4.2")
        self.assertLess(time.monotonic() - t0, 3)
        self.assertClosed(c)

    def test_downstream_greeting_never_comes(self):
        fake = self.fake({"greeting": None})
        dg = self.dotgate(fake.port, {"downstream": {"reply_timeout": 0.8, "connect_timeout": 0.8}})
        c = dg.client()
        t0 = time.monotonic()
        r = c.read_reply(timeout=10)
        self.assertEqual(r.code, 421, r)
        self.assertValidReply(r)
        self.assertLess(time.monotonic() - t0, 3)
        self.assertClosed(c)

    def test_slow_dot_beyond_data_end_timeout(self):
        fake = self.fake({"rules": [{"command": ".", "delay": 4}]})
        dg = self.dotgate(fake.port, {"downstream": {"reply_timeout": 1, "data_end_timeout": 1}})
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        t0 = time.monotonic()
        c.send(b"Subject: slow dot\r\n\r\nbody\r\n.\r\n")
        r = self.next_reply(c)
        self.assertLess(time.monotonic() - t0, 3.5)
        self.assertEqual(r.code // 100, 4, "no 250 for an unconfirmed message: %r" % r)
        self.assertEqual(r.enhanced, "4.4.2", r)
        self.assertValidReply(r)
        time.sleep(1.0)  # the late 250 from the downstream must never reach the client
        try:
            late = c.read_reply(timeout=3)
            self.assertNotEqual(late.code, 250, "late downstream 250 relayed: %r" % late)
        except (ConnectionClosed, ReplyTimeout):
            pass

    def test_downstream_garbage_reply(self):
        fake = self.fake({"rules": [{"command": "MAIL", "raw": "this is not smtp\r\n"}]})
        dg = self.dotgate(fake.port)
        c = self.session(dg)
        r = self.next_reply(c, b"MAIL FROM:<a@example.org>\r\n")
        self.assertReply(r, 421, "4.4.2")
        self.assertClosed(c)
        m = dg.metrics()
        self.assertGreaterEqual(sum(v for k, v in m.items()
                                    if k.startswith("dotgate_downstream_errors_total") and 'reason="protocol"' in k), 1, m)

    def test_downstream_unexpected_354_to_rcpt(self):
        """A downstream 3xx where none belongs is never passed on (Postfix smtpd_proxy rule)."""
        fake = self.fake({"rules": [{"command": "RCPT", "reply": "354 go ahead, surprise"}]})
        dg = self.dotgate(fake.port)
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        r = self.next_reply(c, b"RCPT TO:<b@example.net>\r\n")
        self.assertNotEqual(r.code, 354, r)
        self.assertValidReply(r)

    def test_downstream_disconnects_without_reply(self):
        sink = self.sink("-q", "rcpt")
        dg = self.dotgate(sink.port)
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        r = self.next_reply(c, b"RCPT TO:<b@example.net>\r\n")
        self.assertReply(r, 421, "4.4.2")
        self.assertClosed(c)
        self.assertNoMessage(sink)

    def test_downstream_421_and_disconnect(self):
        sink = self.sink("-Q", "rcpt")
        dg = self.dotgate(sink.port)
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        r = self.next_reply(c, b"RCPT TO:<b@example.net>\r\n")
        self.assertEqual(r.code, 421, r)
        self.assertValidReply(r)
        self.assertClosed(c)
        self.assertNoMessage(sink)

    def test_client_disconnects_mid_data(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(b"Subject: gone\r\n\r\n" + b"partial body line\r\n" * 500)
        time.sleep(0.2)
        c.close()
        self.assertNoMessage(sink, settle=0.8)
        self.assertEqual(sink.files(), [], "an aborted transaction left a file at smtp-sink")

    def test_client_disconnects_mid_data_no_dot_downstream(self):
        fake = self.fake({"lenient_dot": True})
        dg = self.dotgate(fake.port)
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(b"Subject: gone\r\n\r\nthe client leaves now\r\n")
        time.sleep(0.2)
        c.close()
        fake.wait_closed(1, timeout=5)
        self.assertEqual(fake.messages(), [])
        raw = fake.raw(1)
        self.assertNotIn(b"\r\n.\r\n", raw[raw.find(b"DATA\r\n"):], "a dot was relayed for a vanished client")

    def test_client_disconnects_after_dot_sent_with_slow_downstream(self):
        """The client leaves while the downstream is still answering the dot: nothing crashes and
        the next session works. (With a slow policy the dot would be held; none exists yet.)"""
        fake = self.fake({"rules": [{"command": ".", "delay": 0.5}]})
        dg = self.dotgate(fake.port)
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(b"Subject: bye\r\n\r\nbye\r\n.\r\n")
        c.close()
        time.sleep(1.0)
        self.assertTrue(dg.proc.alive())
        d = self.session(dg)
        self.assertReply(d.converse("QUIT"), 221)


if __name__ == "__main__":
    main()
