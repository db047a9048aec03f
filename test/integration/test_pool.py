#!/usr/bin/env python3
"""test/integration/test_pool.py — the downstream pool (downstream.pool) and QUIT on the way out.

Covers: a client's greeting comes from a pooled (pre-connected, pre-greeted) connection and its
commands go over that same connection; the pool refills after a take; a pooled connection the MTA
closed while idle is never handed out, and one that died just before it was taken is replaced
transparently (the command it swallowed goes again on a fresh connection); a pooled 4xx greeting
is discarded (the client gets its greeting from a fresh connection); max_idle closes and replaces
idle connections; SIGTERM closes the pool and dotgate exits; a client's QUIT is answered 221 and
the MTA receives QUIT on that connection. Downstream: fake_mta.py, whose per-connection event log
says which connection carried what.
"""

import json
import signal
import time

from harness import IntegrationTest, main, wait_until

# rewrite.hide_banner off: these tests tell pooled connections apart by the MTA's greeting name.
POOL = {"downstream": {"pool": {"size": 1, "max_idle": 60}}, "rewrite": {"hide_banner": False}}
MESSAGE = b"Subject: pool\r\n\r\nthrough a pooled connection\r\n"


class PoolTest(IntegrationTest):

    def connects(self, fake):
        return fake.connections()

    def closed(self, fake, conn):
        return any(e["event"] == "close" and e["conn"] == conn for e in fake.events())

    def wait_pooled(self, fake, n=1):
        wait_until(lambda: len(fake.connections()) >= n, 5.0, what="%d pooled connection(s)" % n)
        time.sleep(0.2)  # its greeting read by dotgate

    def test_greeting_comes_from_the_pooled_connection(self):
        fake = self.fake({"rules": [{"command": "CONNECT", "connection": 1, "reply": "220 pooled.example ESMTP"}]})
        dg = self.dotgate(fake.port, POOL)
        self.wait_pooled(fake)
        c = dg.client()
        g = c.greeting()
        self.assertReply(g, 220)
        self.assertIn(b"pooled.example", g.raw)
        replies = c.send_message("a@example.org", ["b@example.net"], MESSAGE)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250])
        msgs = fake.wait_for(1)
        self.assertEqual(msgs[0]["conn"], 1)
        self.assertEqual(msgs[0]["data"], MESSAGE)
        self.assertEqual(fake.commands(1)[:4], ["EHLO client.example", "MAIL FROM:<a@example.org>",
                                                "RCPT TO:<b@example.net>", "DATA"])

    def test_pool_refills_after_a_take(self):
        fake = self.fake({"rules": [{"command": "CONNECT", "connection": 2, "reply": "220 second.example ESMTP"}]})
        dg = self.dotgate(fake.port, POOL)
        self.wait_pooled(fake)
        a = dg.client()
        self.assertReply(a.greeting(), 220)
        # The take starts a new connection at once, while the first client is still there.
        wait_until(lambda: 2 in fake.connections(), 5.0, what="refill connection")
        time.sleep(0.2)
        # One client per MTA connection (max_sessions 1): a taken connection is the session's, not leased.
        m = dg.metrics()
        self.assertEqual(m.get('dotgate_downstream_pool_connections{state="idle"}'), 1)
        self.assertEqual(m.get('dotgate_downstream_pool_connections{state="leased"}'), 0)
        b = dg.client()
        g = b.greeting()
        self.assertIn(b"second.example", g.raw)
        self.assertReply(b.ehlo(), 250)
        self.assertEqual(fake.commands(2), ["EHLO client.example"])
        self.assertReply(a.ehlo(), 250)
        self.assertEqual(fake.commands(1), ["EHLO client.example"])

    def test_connection_closed_while_idle_is_not_used(self):
        # The MTA greets, then closes the pooled connection at once (as on its idle timeout).
        fake = self.fake({"rules": [{"command": "CONNECT", "connection": 1, "reply": "220 dying.example",
                                     "action": "close"}]})
        dg = self.dotgate(fake.port, POOL)
        wait_until(lambda: self.closed(fake, 1), 5.0, what="connection 1 closed by the MTA")
        time.sleep(0.2)
        c = dg.client()
        g = c.greeting()
        self.assertReply(g, 220)
        self.assertNotIn(b"dying.example", g.raw)
        replies = c.send_message("a@example.org", ["b@example.net"], MESSAGE)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250])
        msgs = fake.wait_for(1)
        self.assertNotEqual(msgs[0]["conn"], 1)
        self.assertEqual(fake.commands(1), [])

    def test_pooled_connection_dead_when_taken_is_replaced(self):
        # Connection 1 is taken alive, but dies (no reply) on the first command: as if the MTA had
        # closed it just before. The client never notices: EHLO goes again on a fresh connection.
        fake = self.fake({"rules": [{"command": "EHLO", "connection": 1, "action": "close"}]})
        dg = self.dotgate(fake.port, POOL)
        self.wait_pooled(fake)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("a@example.org", ["b@example.net"], MESSAGE)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250])
        msgs = fake.wait_for(1)
        self.assertNotEqual(msgs[0]["conn"], 1)
        self.assertEqual(fake.commands(1), ["EHLO client.example"])
        self.assertEqual(fake.commands(msgs[0]["conn"])[0], "EHLO client.example")
        dg.wait_log("pooled downstream connection was dead")

    def test_pooled_4xx_greeting_is_discarded(self):
        fake = self.fake({"rules": [{"command": "CONNECT", "connection": 1, "reply": "421 4.3.2 busy"}]})
        dg = self.dotgate(fake.port, POOL)
        self.wait_pooled(fake)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertEqual(fake.commands(1), [])
        wait_until(lambda: self.closed(fake, 1), 5.0, what="connection 1 closed by dotgate")

    def test_max_idle_closes_and_replaces(self):
        fake = self.fake()
        self.dotgate(fake.port, {"downstream": {"pool": {"size": 1, "max_idle": 0.5}}})
        self.wait_pooled(fake)
        wait_until(lambda: self.closed(fake, 1), 5.0, what="idle connection 1 closed")
        wait_until(lambda: 2 in fake.connections(), 5.0, what="its replacement")
        self.assertEqual(fake.commands(1), [])

    def test_drain_closes_the_pool(self):
        fake = self.fake()
        dg = self.dotgate(fake.port, {"downstream": {"pool": {"size": 2, "max_idle": 60}}, "drain_grace": 10})
        self.wait_pooled(fake, 2)
        self.assertEqual(dg.metrics().get('dotgate_downstream_pool_connections{state="idle"}'), 2)
        dg.signal(signal.SIGTERM)
        wait_until(lambda: self.closed(fake, 1) and self.closed(fake, 2), 5.0, what="pooled connections closed")
        status = dg.proc.wait(10)
        self.assertEqual(status, 0, "dotgate did not exit cleanly after the drain")
        self.assertEqual(fake.connections(), [1, 2])  # no refill while draining

    def test_reload_moves_the_pool(self):
        a = self.fake()
        b = self.fake()
        dg = self.dotgate(a.port, POOL)
        self.wait_pooled(a)
        config = json.loads(json.dumps(dg.config))
        config["downstream"]["port"] = b.port
        dg.config = config
        dg.write_config()
        dg.signal(signal.SIGHUP)
        dg.wait_log("configuration reloaded", timeout=5.0)
        time.sleep(0.3)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertEqual(b.commands(), ["EHLO client.example"])
        self.assertEqual(a.commands(), [])
        wait_until(lambda: self.closed(a, 1), 5.0, what="the old downstream's pooled connection closed")

    def test_pool_off_by_default(self):
        fake = self.fake()
        dg = self.dotgate(fake.port)
        time.sleep(0.3)
        self.assertEqual(fake.connections(), [])
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertEqual(fake.connections(), [1])


class SpeculatedEhloTest(IntegrationTest):
    """downstream.pool.ehlo: each pooled connection says that EHLO ahead of the client."""

    # rewrite.hide_banner off: the EHLO reply's name line tells which connection answered it.
    CONFIG = {"downstream": {"pool": {"size": 1, "max_idle": 60, "ehlo": "client.example"}},
              "rewrite": {"hide_banner": False}}

    def start(self, rules=()):
        fake = self.fake({"rules": list(rules)})
        dg = self.dotgate(fake.port, self.CONFIG)
        wait_until(lambda: fake.commands(1) == ["EHLO client.example"], 5.0, what="speculated EHLO")
        time.sleep(0.2)
        return fake, dg

    def test_matching_ehlo_is_answered_by_that_connection(self):
        fake, dg = self.start([{"command": "EHLO", "connection": 1,
                                "reply": ["250-conn1.example", "250-PIPELINING", "250 8BITMIME"]}])
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        e = c.ehlo("client.example")
        self.assertReply(e, 250)
        self.assertIn(b"conn1.example", e.raw)
        replies = c.send_message("a@example.org", ["b@example.net"], MESSAGE, ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
        msgs = fake.wait_for(1)
        self.assertEqual(msgs[0]["conn"], 1)
        # One EHLO only: the MTA saw exactly the commands the client sent, in order.
        self.assertEqual(fake.commands(1)[:4], ["EHLO client.example", "MAIL FROM:<a@example.org>",
                                                "RCPT TO:<b@example.net>", "DATA"])

    def test_other_ehlo_gets_a_fresh_connection(self):
        fake, dg = self.start()
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo("other.example"), 250)
        replies = c.send_message("a@example.org", ["b@example.net"], MESSAGE, ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
        msgs = fake.wait_for(1)
        self.assertNotEqual(msgs[0]["conn"], 1)
        self.assertEqual(fake.commands(msgs[0]["conn"])[0], "EHLO other.example")
        # The speculated connection never carried anything of this client: EHLO, then QUIT.
        wait_until(lambda: fake.commands(1) == ["EHLO client.example", "QUIT"], 5.0, what="QUIT on connection 1")

    def test_mail_first_gets_a_fresh_connection(self):
        fake, dg = self.start()
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        conn = max(n for n in fake.connections() if fake.commands(n))
        self.assertNotEqual(conn, 1)
        self.assertEqual(fake.commands(conn), ["MAIL FROM:<a@example.org>"])

    def test_dead_after_speculation_replays_ehlo_and_resends(self):
        # Connection 1 answers the speculated EHLO, then dies on the client's MAIL (no reply).
        fake, dg = self.start([{"command": "MAIL", "connection": 1, "action": "close"}])
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo("client.example"), 250)
        replies = c.send_message("a@example.org", ["b@example.net"], MESSAGE, ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
        msgs = fake.wait_for(1)
        self.assertNotEqual(msgs[0]["conn"], 1)
        self.assertEqual(fake.commands(msgs[0]["conn"])[:2], ["EHLO client.example", "MAIL FROM:<a@example.org>"])


class QuitTest(IntegrationTest):

    def test_quit_answered_and_relayed(self):
        fake = self.fake()
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("a@example.org", ["b@example.net"], MESSAGE)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250])
        self.assertReply(c.converse("QUIT"), 221)
        self.assertClosed(c)
        fake.wait_closed(1)
        self.assertEqual(fake.commands(1)[-2:], [".", "QUIT"])
        self.assertEqual([e["reason"] for e in fake.events() if e["event"] == "close"], ["quit"])

    def test_quit_does_not_wait_for_the_mta(self):
        fake = self.fake({"rules": [{"command": "QUIT", "delay": 1.0, "reply": "221 2.0.0 late"}]})
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        t0 = time.monotonic()
        self.assertReply(c.converse("QUIT"), 221)
        self.assertLess(time.monotonic() - t0, 0.5)
        self.assertClosed(c)
        wait_until(lambda: "QUIT" in fake.commands(1), 5.0, what="QUIT at the MTA")
        fake.wait_closed(1)

    def test_quit_with_a_pool(self):
        fake = self.fake()
        dg = self.dotgate(fake.port, POOL)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("QUIT"), 221)
        self.assertClosed(c)
        conn = next(n for n in fake.connections() if fake.commands(n))
        wait_until(lambda: fake.commands(conn) == ["EHLO client.example", "QUIT"], 5.0, what="QUIT at the MTA")
        fake.wait_closed(conn)


if __name__ == "__main__":
    main()
