#!/usr/bin/env python3
"""test/integration/test_pool_reuse.py — downstream.pool.max_sessions: one MTA connection, many clients.

Covers: a session that ended cleanly (QUIT, no error from the MTA) gives its connection back and
the next client gets the same connection's greeting and carries on over it, its own HELO/EHLO
resetting the MTA's state; the MTA receives each message once, on that connection; max_sessions
bounds how many sessions one connection carries; a session with an MTA error, an unknown command
relayed, AUTH, an open transaction or a client that drops without QUIT never passes its connection
on; a reused connection whose next client starts with anything but HELO/EHLO is not used (the MTA
would hold the earlier client's HELO): that client gets a fresh connection and the old one says QUIT;
max_idle counts from the last command the MTA saw; the metric counts reuses; a connection lent to a
session keeps its slot in the pool until it comes back or is closed (then the pool refills), and
every way of leaving a lease ends it (the MTA holds `size` connections once all clients are gone);
a connection with 500 MAILs goes to no further client;
max_sessions 1 (the default) keeps the old behaviour. Downstream: fake_mta.py, whose per-connection event log says which
connection carried what.
"""

import time

from harness import IntegrationTest, main, wait_until

MESSAGE = b"Subject: reuse\r\n\r\nover a connection an earlier client used\r\n"


def reuse(max_sessions=3, size=1, max_idle=60):
    # rewrite.hide_banner off: the tests tell connections apart by the MTA's greeting name.
    return {"downstream": {"pool": {"size": size, "max_idle": max_idle, "max_sessions": max_sessions}},
            "rewrite": {"hide_banner": False}}


class PoolReuseTest(IntegrationTest):

    def wait_pooled(self, fake, n=1):
        wait_until(lambda: len(fake.connections()) >= n, 5.0, what="%d pooled connection(s)" % n)
        time.sleep(0.2)  # its greeting read by dotgate

    def pool_gauges(self, dg):
        m = dg.metrics()
        return (m.get('dotgate_downstream_pool_connections{state="idle"}'),
                m.get('dotgate_downstream_pool_connections{state="leased"}'))

    def closed(self, fake, conn):
        return any(e["event"] == "close" and e["conn"] == conn for e in fake.events())

    def session(self, dg, mail, rcpt, helo="EHLO client.example", quit=True):
        """One client: greeting, HELO/EHLO, one message, QUIT. Returns the greeting."""
        c = dg.client()
        g = c.greeting()
        self.assertReply(g, 220)
        self.assertReply(c.converse(helo), 250)
        replies = c.send_message(mail, [rcpt], MESSAGE, ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
        if quit:
            self.assertReply(c.converse("QUIT"), 221)
            self.assertTrue(c.wait_closed(5))
        else:
            c.close()
        return g

    def test_next_client_carries_on_over_the_same_connection(self):
        fake = self.fake({"rules": [{"command": "CONNECT", "connection": 1, "reply": "220 first.example ESMTP"}]})
        dg = self.dotgate(fake.port, reuse(3))
        self.wait_pooled(fake)
        g1 = self.session(dg, "a@example.org", "one@example.net")
        g2 = self.session(dg, "b@example.org", "two@example.net", helo="HELO other.example")
        self.assertIn(b"first.example", g1.raw)
        self.assertIn(b"first.example", g2.raw)  # the same connection's greeting, again
        msgs = fake.wait_for(2)
        self.assertEqual([m["conn"] for m in msgs], [1, 1])
        self.assertEqual([m["rcpts"] for m in msgs], [["RCPT TO:<one@example.net>"], ["RCPT TO:<two@example.net>"]])
        self.assertEqual([m["data"] for m in msgs], [MESSAGE, MESSAGE])
        # The second client's own HELO reset the MTA's session; no QUIT in between.
        self.assertEqual(fake.commands(1), [
            "EHLO client.example", "MAIL FROM:<a@example.org>", "RCPT TO:<one@example.net>", "DATA", ".",
            "HELO other.example", "MAIL FROM:<b@example.org>", "RCPT TO:<two@example.net>", "DATA", "."])
        self.assertFalse(self.closed(fake, 1))
        self.assertEqual(dg.metrics().get("dotgate_downstream_reused_total"), 2)

    def test_max_sessions_bounds_a_connection(self):
        fake = self.fake()
        dg = self.dotgate(fake.port, reuse(2))
        self.wait_pooled(fake)
        for i in range(3):
            self.session(dg, "a@example.org", "r%d@example.net" % i)
        msgs = fake.wait_for(3)
        self.assertEqual(msgs[0]["conn"], 1)
        self.assertEqual(msgs[1]["conn"], 1)
        self.assertNotEqual(msgs[2]["conn"], 1)
        # Its second session was its last: the MTA got QUIT on it.
        wait_until(lambda: self.closed(fake, 1), 5.0, what="connection 1 closed")
        self.assertEqual(fake.commands(1)[-1], "QUIT")
        self.assertEqual(fake.commands(1).count("EHLO client.example"), 2)

    def test_first_command_other_than_helo_gets_a_fresh_connection(self):
        fake = self.fake()
        dg = self.dotgate(fake.port, reuse(3))
        self.wait_pooled(fake)
        self.session(dg, "a@example.org", "one@example.net")
        # This client skips HELO: on connection 1 the MTA still holds the first client's EHLO.
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("b@example.org", ["two@example.net"], MESSAGE, ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
        self.assertReply(c.converse("QUIT"), 221)
        msgs = fake.wait_for(2)
        self.assertEqual(msgs[0]["conn"], 1)
        self.assertNotEqual(msgs[1]["conn"], 1)
        fresh = msgs[1]["conn"]
        self.assertEqual(fake.commands(fresh)[0], "MAIL FROM:<b@example.org>")  # no HELO was said there
        wait_until(lambda: self.closed(fake, 1), 5.0, what="connection 1 closed")
        self.assertEqual(fake.commands(1)[-1], "QUIT")
        self.assertNotIn("MAIL FROM:<b@example.org>", fake.commands(1))

    def assertNotPassedOn(self, conversation, script=None, config=None):
        """A client says `conversation` ([(command, expected code)]) on connection 1, then QUIT; the
        next client must not get that connection."""
        fake = self.fake(script)
        dg = self.dotgate(fake.port, dict(reuse(3), **(config or {})))
        self.wait_pooled(fake)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        for command, code in conversation:
            self.assertReply(c.converse(command), code, msg=command)
        self.assertReply(c.converse("QUIT"), 221)
        self.assertTrue(c.wait_closed(5))
        wait_until(lambda: self.closed(fake, 1), 5.0, what="connection 1 closed after its session")
        self.assertEqual(dg.metrics().get("dotgate_downstream_reused_total", 0), 0)
        self.wait_pooled(fake, 2)  # the refill, for the next client
        self.session(dg, "b@example.org", "two@example.net")
        msgs = fake.wait_for(1)
        self.assertNotEqual(msgs[-1]["conn"], 1)
        # The next client's clean session gives its own connection back: the only reuse counted.
        self.assertEqual(dg.metrics().get("dotgate_downstream_reused_total", 0), 1)

    def test_a_session_with_an_mta_error_is_not_passed_on(self):
        # The MTA counts errors per connection (Postfix's smtpd_hard_error_limit).
        self.assertNotPassedOn(
            [("EHLO client.example", 250), ("MAIL FROM:<a@example.org>", 250),
             ("RCPT TO:<nobody@example.net>", 550), ("RSET", 250)],
            {"rules": [{"command": "RCPT", "connection": 1, "reply": "550 5.1.1 no such user"}]})

    def test_a_session_that_relayed_an_unknown_command_is_not_passed_on(self):
        self.assertNotPassedOn([("EHLO client.example", 250), ("XSTATE on", 250)],
                               {"rules": [{"command": "XSTATE", "reply": "250 2.0.0 state changed"}]})

    def test_an_open_transaction_is_not_passed_on(self):
        self.assertNotPassedOn([("EHLO client.example", 250), ("MAIL FROM:<a@example.org>", 250)])

    def test_a_client_that_drops_without_quit_passes_nothing_on(self):
        fake = self.fake()
        dg = self.dotgate(fake.port, reuse(3))
        self.wait_pooled(fake)
        self.session(dg, "a@example.org", "one@example.net", quit=False)
        wait_until(lambda: self.closed(fake, 1), 5.0, what="connection 1 closed")
        self.wait_pooled(fake, 2)  # its lease ended with the close: the slot is refilled
        self.session(dg, "b@example.org", "two@example.net")
        msgs = fake.wait_for(2)
        self.assertEqual(msgs[0]["conn"], 1)
        self.assertNotEqual(msgs[1]["conn"], 1)

    def test_a_leased_connection_keeps_its_slot_while_its_session_runs(self):
        # Two clients hold both pooled connections longer than a second. Their slots are theirs:
        # the pool opens nothing meanwhile (a fresh connection there would be refused when they come
        # back, and said QUIT to for nothing), and both connections go back and serve on.
        fake = self.fake()
        dg = self.dotgate(fake.port, reuse(10, size=2))
        self.wait_pooled(fake, 2)
        self.assertEqual(self.pool_gauges(dg), (2, 0))
        clients = [dg.client(), dg.client()]
        for c in clients:
            self.assertReply(c.greeting(), 220)
            self.assertReply(c.converse("EHLO client.example"), 250)
        time.sleep(1.5)
        self.assertEqual(fake.connections(), [1, 2])
        self.assertEqual(self.pool_gauges(dg), (0, 2))
        for i, c in enumerate(clients):
            replies = c.send_message("a@example.org", ["r%d@example.net" % i], MESSAGE, ehlo=False)
            self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
            self.assertReply(c.converse("QUIT"), 221)
            self.assertTrue(c.wait_closed(5))
        wait_until(lambda: dg.metrics().get("dotgate_downstream_reused_total", 0) == 2, 5.0, what="both given back")
        self.assertEqual(self.pool_gauges(dg), (2, 0))
        self.session(dg, "b@example.org", "three@example.net")
        msgs = fake.wait_for(3)
        self.assertEqual(sorted(m["conn"] for m in msgs[:2]), [1, 2])
        self.assertIn(msgs[2]["conn"], (1, 2))
        self.assertEqual(fake.connections(), [1, 2])
        self.assertFalse(self.closed(fake, 1) or self.closed(fake, 2))

    def test_a_connection_with_500_mails_goes_to_no_further_client(self):
        # Exim refuses MAIL past smtp_accept_max_per_connection (1000) on one connection: a
        # connection stops being passed on at half that, as with NOOP/RSET against Postfix.
        fake = self.fake()
        dg = self.dotgate(fake.port, reuse(3))
        self.wait_pooled(fake)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.converse("EHLO client.example"), 250)
        # MAIL, RCPT and DATA in one write (PIPELINING): two round trips a message, not four.
        batch = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<r@example.net>\r\nDATA\r\n"
        for _ in range(500):
            c.send(batch)
            self.assertEqual([c.read_reply().code for _ in range(3)], [250, 250, 354])
            c.send(MESSAGE + b".\r\n")
            self.assertReply(c.read_reply(), 250)
        self.assertReply(c.converse("QUIT"), 221)
        self.assertTrue(c.wait_closed(5))
        wait_until(lambda: self.closed(fake, 1), 5.0, what="connection 1 closed after 500 MAILs")
        self.assertEqual(fake.commands(1)[-1], "QUIT")
        self.assertEqual(len(fake.wait_for(500)), 500)
        self.assertEqual(dg.metrics().get("dotgate_downstream_reused_total", 0), 0)

    def test_every_lease_ends_and_the_pool_returns_to_its_size(self):
        # Each way a session can leave its leased connection: given back, dropped by the client,
        # retired after an MTA error, QUIT by a client whose first command was not HELO/EHLO
        # (a reused connection cannot serve it), two sessions at once. Once every client is gone,
        # the MTA must hold exactly `size` open connections: a lease never ended would keep a
        # slot the pool never refills, one ended twice would let it open more than `size`.
        # Postfix answers HELP with 502 and counts it an error, as any 4xx/5xx.
        fake = self.fake({"rules": [{"command": "HELP", "reply": "502 5.5.2 Error: command not recognized"}]})
        dg = self.dotgate(fake.port, reuse(5, size=2))
        self.wait_pooled(fake, 2)

        def open_count():
            events = fake.events()
            return (sum(1 for e in events if e["event"] == "connect") -
                    sum(1 for e in events if e["event"] == "close"))

        for i in range(3):
            wait_until(lambda: open_count() == 2, 5.0, what="2 open connections")
            time.sleep(0.2)  # greeted
            # Two in a row: both pooled connections have carried a client now (said HELO).
            self.session(dg, "a@example.org", "ok%d@example.net" % i)
            self.session(dg, "a@example.org", "ok%d@example.net" % i)
            c = dg.client()
            self.assertReply(c.greeting(), 220)
            self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)  # no HELO first
            self.assertReply(c.converse("QUIT"), 221)
            self.assertTrue(c.wait_closed(5))
            self.session(dg, "a@example.org", "drop%d@example.net" % i, quit=False)
            c = dg.client()
            self.assertReply(c.greeting(), 220)
            self.assertReply(c.converse("EHLO client.example"), 250)
            self.assertReply(c.converse("HELP"), 502)
            self.assertReply(c.converse("QUIT"), 221)
            self.assertTrue(c.wait_closed(5))
            pair = [dg.client(), dg.client()]
            for c in pair:
                self.assertReply(c.greeting(), 220)
                self.assertReply(c.converse("HELO pair.example"), 250)
            for c in pair:
                self.assertReply(c.converse("QUIT"), 221)
                self.assertTrue(c.wait_closed(5))
        wait_until(lambda: open_count() == 2, 5.0, what="the pool back at 2 open connections")
        time.sleep(1.5)  # and staying there: nothing opened late, nothing lost
        self.assertEqual(open_count(), 2)
        self.assertEqual(self.pool_gauges(dg), (2, 0))
        self.assertGreater(dg.metrics().get("dotgate_downstream_reused_total", 0), 0)

    def test_auth_is_never_passed_on(self):
        self.assertNotPassedOn([("EHLO client.example", 250), ("AUTH PLAIN AHVzZXIAcGFzcw==", 235)],
                               {"ehlo": ["250-fake.example", "250-PIPELINING", "250 AUTH PLAIN"],
                                "rules": [{"command": "AUTH", "reply": "235 2.7.0 Authentication successful"}]},
                               {"smtp": {"auth_passthrough": True}})

    def test_max_idle_counts_from_the_last_command_the_mta_saw(self):
        # The client idles 1.5 s before its QUIT: with max_idle 1 s the MTA's idle clock is past it.
        fake = self.fake()
        dg = self.dotgate(fake.port, reuse(3, max_idle=1))
        self.wait_pooled(fake)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        time.sleep(1.5)
        self.assertReply(c.converse("QUIT"), 221)
        wait_until(lambda: self.closed(fake, 1), 5.0, what="connection 1 closed, not pooled again")
        self.assertEqual(fake.commands(1), ["EHLO client.example", "QUIT"])

    def test_default_is_one_session_per_connection(self):
        fake = self.fake()
        dg = self.dotgate(fake.port, {"downstream": {"pool": {"size": 1, "max_idle": 60}}})
        self.wait_pooled(fake)
        self.session(dg, "a@example.org", "one@example.net")
        self.session(dg, "b@example.org", "two@example.net")
        msgs = fake.wait_for(2)
        self.assertNotEqual(msgs[0]["conn"], msgs[1]["conn"])
        wait_until(lambda: self.closed(fake, msgs[0]["conn"]), 5.0, what="first connection closed")
        self.assertEqual(fake.commands(msgs[0]["conn"])[-1], "QUIT")


if __name__ == "__main__":
    main()
