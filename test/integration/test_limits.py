#!/usr/bin/env python3
"""test/integration/test_limits.py — the per-session limits and their replies.

Covers issue 3 "Hostile and broken input" (DESIGN invariants 5 and 6): command lines over 512
octets → 500 5.5.2 and the session goes on; recipients past smtp.max_recipients → 452 4.5.3;
connections past smtp.max_connections → 421 4.7.0; smtp.command_timeout and smtp.data_timeout
→ 421 4.4.2 (nothing at the sink); early talkers → 554 5.5.1 and closed; smtp.max_commands and
smtp.max_errors → 421 4.7.0 (replies.h).
"""

import time

from harness import IntegrationTest, main, sink_form


class LimitsTest(IntegrationTest):

    def session(self, dg):
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        return c

    def test_command_line_too_long(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<" + "a" * 600 + "@example.org>"), 500, "5.5.2")
        self.assertReply(c.converse("NOOP " + "n" * 20000), 500, "5.5.2")
        # the session goes on, in order
        self.assertReply(c.converse("NOOP"), 250)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: after\r\n\r\nok\r\n", ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
        msgs = sink.wait_for(1)
        self.assertEqual(len(sink.settle(0.2)), 1)
        self.assertEqual(msgs[0].mail, "<a@example.org>")
        self.assertEqual(msgs[0].content, sink_form(b"Subject: after\r\n\r\nok\r\n"))

    def test_command_line_at_512_octets_accepted(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = self.session(dg)
        line = "RCPT TO:<" + "r" * (510 - len("RCPT TO:<@example.net>")) + "@example.net>"
        self.assertEqual(len(line) + 2, 512)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse(line), 250)

    def test_too_long_command_in_a_pipelined_group(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = self.session(dg)
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<" + b"x" * 700 + b"@example.net>\r\n"
               b"RCPT TO:<b@example.net>\r\nDATA\r\n")
        replies = c.read_replies(4)
        self.assertEqual([r.code for r in replies], [250, 500, 250, 354], replies)
        self.assertEqual(replies[1].enhanced, "5.5.2")
        c.send(b"Subject: p\r\n\r\nx\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertEqual(sink.wait_for(1)[0].rcpts, ["<b@example.net>"])

    def test_max_recipients(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_recipients": 3}})
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        for i in range(3):
            self.assertReply(c.converse("RCPT TO:<r%d@example.net>" % i), 250)
        self.assertReply(c.converse("RCPT TO:<r3@example.net>"), 452, "4.5.3")
        self.assertReply(c.converse("RCPT TO:<r4@example.net>"), 452, "4.5.3")
        self.assertReply(c.converse("DATA"), 354)
        c.send(b"Subject: many\r\n\r\nx\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)
        msgs = sink.wait_for(1)
        self.assertEqual(msgs[0].rcpts, ["<r0@example.net>", "<r1@example.net>", "<r2@example.net>"])

    def test_max_recipients_pipelined(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_recipients": 2}})
        c = self.session(dg)
        c.send(b"MAIL FROM:<a@example.org>\r\n" + b"".join(b"RCPT TO:<p%d@example.net>\r\n" % i for i in range(4))
               + b"DATA\r\n")
        replies = c.read_replies(6)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 452, 452, 354], replies)
        c.send(b"Subject: x\r\n\r\ny\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertEqual(sink.wait_for(1)[0].rcpts, ["<p0@example.net>", "<p1@example.net>"])

    def test_max_connections(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_connections": 2}})
        a = self.session(dg)
        b = self.session(dg)
        c = dg.client()
        self.assertReply(c.read_reply(), 421, "4.7.0")
        self.assertClosed(c)
        # the two admitted sessions still work
        self.assertReply(a.converse("NOOP"), 250)
        replies = b.send_message("a@example.org", ["b@example.net"], b"Subject: ok\r\n\r\nok\r\n", ehlo=False)
        self.assertEqual(replies[-1].code, 250)
        self.assertEqual(len(sink.wait_for(1)), 1)
        # once one leaves, a new one is admitted
        self.assertReply(a.converse("QUIT"), 221)
        self.assertClosed(a)
        time.sleep(0.2)
        d = dg.client()
        self.assertReply(d.greeting(), 220)

    def test_command_timeout(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"command_timeout": 1}})
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        t0 = time.monotonic()
        r = c.read_reply(timeout=10)
        elapsed = time.monotonic() - t0
        self.assertReply(r, 421, "4.4.2")
        self.assertGreaterEqual(elapsed, 0.8)
        self.assertLess(elapsed, 5)
        self.assertClosed(c)
        self.assertNoMessage(sink)

    def test_command_timeout_before_ehlo(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"command_timeout": 0.5}})
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.read_reply(timeout=5), 421, "4.4.2")
        self.assertClosed(c)

    def test_data_timeout(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"data_timeout": 1, "command_timeout": 30}})
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(b"Subject: slow\r\n\r\npart of a body\r\n")
        t0 = time.monotonic()
        r = c.read_reply(timeout=10)
        self.assertReply(r, 421, "4.4.2")
        self.assertLess(time.monotonic() - t0, 5)
        self.assertClosed(c)
        self.assertNoMessage(sink)

    def test_early_talker(self):
        fake = self.fake({"greeting_delay": 1.0})
        dg = self.dotgate(fake.port)
        c = dg.client()
        c.send(b"EHLO early.example\r\nMAIL FROM:<a@example.org>\r\n")
        r = c.read_reply(timeout=10)
        self.assertReply(r, 554, "5.5.1")
        self.assertClosed(c)
        time.sleep(1.2)
        self.assertEqual([l for l in fake.commands() if l.upper().startswith("MAIL")], [])
        self.assertEqual(fake.messages(), [])

    def test_early_talker_smtp_sink(self):
        sink = self.sink("-W", "connect:1")
        dg = self.dotgate(sink.port)
        c = dg.client()
        c.send(b"HELO early.example\r\n")
        self.assertReply(c.read_reply(timeout=10), 554, "5.5.1")
        self.assertClosed(c)
        self.assertNoMessage(sink)

    def test_max_commands(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_commands": 5}})
        c = self.session(dg)  # EHLO is the first command
        codes = []
        for _ in range(10):
            try:
                codes.append(c.converse("NOOP").code)
            except AssertionError:
                break
        self.assertIn(421, codes, codes)
        self.assertLessEqual(codes.index(421), 5, codes)
        self.assertClosed(c)

    def test_max_errors(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_errors": 3}})
        c = self.session(dg)
        replies = []
        for _ in range(8):
            try:
                replies.append(c.converse("NOOP " + "e" * 600))
            except AssertionError:
                break
        codes = [r.code for r in replies]
        self.assertIn(421, codes, codes)
        self.assertEqual(replies[codes.index(421)].enhanced, "4.7.0")
        self.assertLessEqual(codes.index(421), 3, codes)
        self.assertClosed(c)


if __name__ == "__main__":
    main()
