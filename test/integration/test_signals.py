#!/usr/bin/env python3
"""test/integration/test_signals.py — SIGTERM drains, SIGHUP reloads.

Covers issue 3 "Signals": SIGTERM stops accepting, /readyz answers 503, sessions may finish within
drain_grace, what is left gets 421 4.3.2, the process exits; SIGHUP applies a changed config to
new sessions only (running sessions keep theirs); a broken config on SIGHUP is refused with a log
line and the old one stays (dotgate still runs and relays). A session whose dot is already relayed
when drain_grace ends gets the MTA's reply to it before its 421 (issue 15, found by the soak's
accounting: a 421 there makes the client send a message the MTA has queued once more).
"""

import json
import signal
import socket
import time

from harness import IntegrationTest, LOOPBACK, main, wait_until


class SignalsTest(IntegrationTest):

    def session(self, dg):
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        return c

    def readyz(self, dg):
        try:
            return dg.http("/readyz", timeout=2)[0]
        except OSError:
            return None

    def test_sigterm_drains_idle_session(self):
        sink = self.sink()
        grace = 2.0
        dg = self.dotgate(sink.port, {"drain_grace": grace, "smtp": {"command_timeout": 60}})
        self.assertEqual(self.readyz(dg), 200)
        c = self.session(dg)
        t0 = time.monotonic()
        dg.signal(signal.SIGTERM)
        wait_until(lambda: self.readyz(dg) == 503, 1.5, what="/readyz 503 while draining")
        # no new sessions while draining
        try:
            with socket.create_connection((LOOPBACK, dg.port), timeout=2) as s:
                s.settimeout(2)
                data = s.recv(512)
                self.assertFalse(data.startswith(b"220"), "a new session was greeted while draining: %r" % data)
        except OSError:
            pass
        r = c.read_reply(timeout=grace + 5)
        elapsed = time.monotonic() - t0
        self.assertReply(r, 421, "4.3.2")
        self.assertGreaterEqual(elapsed, grace - 0.3, "421 before the grace period ended")
        self.assertClosed(c)
        status = dg.proc.wait(5)
        self.assertIsNotNone(status, "dotgate still running 5 s after the grace period")
        self.assertEqual(status, 0)

    def test_sigterm_lets_a_transaction_finish(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"drain_grace": 5})
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        dg.signal(signal.SIGTERM)
        time.sleep(0.3)
        self.assertReply(c.converse("DATA"), 354)
        c.send(b"Subject: draining\r\n\r\nfinished during the drain\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)
        r = c.converse("QUIT")
        self.assertIn(r.code, (221, 421), r)
        self.assertClosed(c)
        self.assertEqual(sink.wait_for(1)[0].content, b"Subject: draining\n\nfinished during the drain\n")
        self.assertIsNotNone(dg.proc.wait(7), "dotgate did not exit after draining")

    def test_sigterm_without_sessions_exits(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"drain_grace": 10})
        dg.signal(signal.SIGTERM)
        status = dg.proc.wait(12)
        self.assertIsNotNone(status, "dotgate did not exit")
        self.assertEqual(status, 0)

    def reload(self, dg, config):
        dg.config = config
        dg.write_config()
        dg.signal(signal.SIGHUP)

    def rcpt_codes(self, dg, n):
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        codes = [c.converse("RCPT TO:<r%d@example.net>" % i).code for i in range(n)]
        c.converse("QUIT")
        return codes

    def test_sighup_applies_to_new_sessions(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_recipients": 5}})
        old = self.session(dg)
        self.assertEqual(self.rcpt_codes(dg, 3), [250, 250, 250])
        config = json.loads(json.dumps(dg.config))
        config["smtp"]["max_recipients"] = 1
        self.reload(dg, config)
        wait_until(lambda: self.rcpt_codes(dg, 2) == [250, 452], 5, interval=0.2,
                   what="max_recipients 1 applied to new sessions after SIGHUP")
        # the session opened before the reload keeps its config
        self.assertReply(old.converse("MAIL FROM:<old@example.org>"), 250)
        for i in range(3):
            self.assertReply(old.converse("RCPT TO:<o%d@example.net>" % i), 250)
        self.assertReply(old.converse("DATA"), 354)
        old.send(b"Subject: old\r\n\r\nold config\r\n.\r\n")
        self.assertReply(old.read_reply(), 250)
        msgs = sink.wait_for(1)
        self.assertEqual(len(msgs[0].rcpts), 3)
        self.assertTrue(dg.proc.alive())

    def test_sighup_broken_config_keeps_old(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_recipients": 2}})
        lines_before = len(dg.log_lines())
        dg.config = '{"smtp": {"max_recipients": "lots"}, "listeners": [{"port": 1}]}'
        dg.write_config()
        dg.signal(signal.SIGHUP)
        wait_until(lambda: any("smtp.max_recipients" in l for l in dg.log_lines()[lines_before:]), 5,
                   what="a log line naming smtp.max_recipients after the refused reload:\n" + dg.log())
        self.assertTrue(dg.proc.alive(), "dotgate died on a bad reload")
        self.assertEqual(self.rcpt_codes(dg, 3), [250, 250, 452], "the old config must stay")
        c = self.session(dg)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: still\r\n\r\nrelaying\r\n", ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
        self.assertEqual(len(sink.wait_for(1)), 1)
        # a second SIGHUP with invalid JSON: same
        dg.config = "{not json"
        dg.write_config()
        dg.signal(signal.SIGHUP)
        time.sleep(0.5)
        self.assertTrue(dg.proc.alive())
        self.assertEqual(self.readyz(dg), 200)

    def test_drain_grace_ending_after_a_relayed_dot_waits_for_its_reply(self):
        """The MTA holds the dot (it may have queued the message) when drain_grace runs out: the
        client must get the MTA's 250, not 421 4.3.2 (it would send the message again: a
        duplicate); the session and dotgate end right after."""
        fake = self.fake({"rules": [{"command": ".", "delay": 2.5, "reply": "250 2.0.0 Ok: queued as SLOWDOT"}]})
        dg = self.dotgate(fake.port, {"drain_grace": 0.5, "downstream": {"data_end_timeout": 10}})
        c = self.session(dg)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(b"Subject: queued while draining\r\n\r\nbody\r\n.\r\n")
        fake.wait_for(1)  # the MTA has the dot: from here the message may be queued
        t0 = time.monotonic()
        dg.signal(signal.SIGTERM)
        r = c.read_reply(timeout=10)
        self.assertReply(r, 250, msg="the reply to a relayed dot after drain_grace")
        self.assertIn("SLOWDOT", r.text)
        self.assertGreaterEqual(time.monotonic() - t0, 1.5, "the 250 came before the MTA's delayed reply?")
        self.assertReply(c.read_reply(timeout=5), 421, "4.3.2")  # and then the drain's 421
        self.assertClosed(c)
        self.assertEqual(dg.proc.wait(10), 0, "dotgate did not exit 0 after the owed reply")
        self.assertEqual(len(fake.messages()), 1)


if __name__ == "__main__":
    main()
