#!/usr/bin/env python3
"""test/integration/test_xclient.py — XCLIENT end to end: a real Postfix behind dotgate learns the client.

    client (bound to 127.0.0.2) ─► dotgate 127.0.0.1 ─► Postfix smtpd ─► queue ─► smtp-sink
                                     downstream.xclient    smtpd_authorized_xclient_hosts = 127.0.0.1

The inline appliance's promise: the MTA sees the internet client, not dotgate. The client socket is
bound to 127.0.0.2 (or .3), so the address Postfix must log differs from dotgate's own (127.0.0.1).
Postfix names an XCLIENT client `unknown[ADDR]` (dotgate sends NAME=[UNAVAILABLE]: it does no
reverse lookup) and dotgate `localhost[127.0.0.1]`. Each test checks what the client saw, what
Postfix logged (the `client=` line of each queued message, `disconnect from` with its command
counts) and what reached smtp-sink (Postfix's Received: header names the HELO and the client):
the first transaction; the next one after a refused one (a fresh connection: XCLIENT again, then
the client's EHLO replayed); the pool (a pooled connection gets XCLIENT for its client, and one that
carried XCLIENT never goes to the next client, even with max_sessions > 1); Postfix's reply to
XCLIENT as the client's greeting (a client Postfix refuses with smtpd_delay_reject=no hears that
refusal); an MTA that does not authorise dotgate (no XCLIENT announced: mail flows, Postfix sees
127.0.0.1); and a scripted MTA that announces XCLIENT but refuses it (the client gets 421, nothing
is delivered). Needs root (a private Postfix instance); the Postfix tests skip otherwise.

XforwardCommandTest: XFORWARD as dotgate receives it (smtp.xforward_from = 127.0.0.1/32), in
front of a scripted MTA that records every command: announced and accepted for a trusted peer
only (an untrusted one, bound to 127.0.0.2, gets no XFORWARD line and 502), Postfix's 501/503,
what goes downstream (XFORWARD ahead of the MAIL, its reply never the client's; nothing once the
transaction ended), an MTA without PIPELINING (the MAIL waits for XFORWARD's reply), and the
replay of a PRDR message to a fresh connection (XFORWARD again ahead of its MAIL).
"""

import os
import re
import socket
import time

from harness import RawClient, IntegrationTest, free_port, main, sink_form, wait_until
from postfix_client import Postfix, skip_unless_postfix

SENDER = "sender@example.org"
MESSAGE = (b"From: <sender@example.org>\r\n"
           b"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
           b"Message-ID: <dotgate-xclient@example.org>\r\n"
           b"Subject: who is the client\r\n"
           b"\r\n"
           b"body\r\n")


class XclientTest(IntegrationTest):

    def deploy(self, config=None, authorise=True, extra_smtpd=None, extra_main=None):
        skip_unless_postfix(self)
        self.final = self.sink()
        self.smtpd_port = free_port()
        main_cf = {"mynetworks": "127.0.0.0/8"}
        if authorise:
            main_cf["smtpd_authorized_xclient_hosts"] = "127.0.0.1"  # dotgate's address, nobody else
        main_cf.update(extra_main or {})
        smtpd = {"smtpd_relay_restrictions": "permit_mynetworks,reject"}
        smtpd.update(extra_smtpd or {})
        self.postfix = Postfix(self, self.final.port, hostname="mta.example", extra_main=main_cf,
                               smtpd=(self.smtpd_port, smtpd)).start()
        self.dg = self.dotgate(self.smtpd_port, dict({"downstream": {"xclient": True}}, **(config or {})))
        return self.dg

    def client_from(self, source, port=None, timeout=30):
        """A RawClient whose socket is bound to `source` (a loopback address) before it connects."""
        c = RawClient(port or self.dg.port, timeout=timeout, connect=False)
        c.sock = socket.create_connection(("127.0.0.1", port or self.dg.port), timeout=timeout,
                                          source_address=(source, 0))
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.addCleanup(c.close)
        return c

    def queued_clients(self):
        """{queue id: client} of the messages Postfix queued: smtpd's `ID: client=NAME[ADDR]` line
        (logged at MAIL, for an aborted message too) of each ID that qmgr took (`ID: from=`)."""
        log = self.postfix.maillog()
        queued = set(re.findall(r"qmgr\[\d+\]: (\w+): from=", log))
        return {q: c for q, c in re.findall(r"smtpd\[\d+\]: (\w+): client=(\S+)", log) if q in queued}

    def assertSaidXclient(self, counts):
        # Postfix counts an accepted XCLIENT as "xclient=0/1": it restarts the session at once
        self.assertRegex(counts, r"\bxclient=(\d+/)?1\b")

    def disconnects(self):
        return re.findall(r"smtpd\[\d+\]: disconnect from (\S+) (.*)", self.postfix.maillog())

    def send(self, c, rcpt, ehlo=True, body=MESSAGE):
        replies = c.send_message(SENDER, [rcpt], body, ehlo=ehlo)
        return replies

    def queue_id(self, reply):
        m = re.search(r"queued as (\w+)", reply.text)
        self.assertIsNotNone(m, reply.raw)
        return m.group(1)

    def received_from(self, message):
        """Postfix's own Received: line (the first one) of a message at smtp-sink, unfolded."""
        m = re.search(rb"Received: (from .*?)\n(?!\s)", message.content, re.S)
        self.assertIsNotNone(m, message.content[:600])
        return b" ".join(m.group(1).split()).decode()

    # -- a real Postfix that authorises dotgate ------------------------------------------------

    def test_first_transaction_names_the_client(self):
        self.deploy()
        c = self.client_from("127.0.0.2")
        greeting = c.greeting()
        self.assertEqual(greeting.code, 220, greeting.raw)
        replies = self.send(c, "a@example.net")
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250], replies)
        qid = self.queue_id(replies[-1])
        self.assertEqual(c.converse("QUIT").code, 221)
        wait_until(lambda: qid in self.queued_clients(), 10, what="Postfix's client= line")
        self.assertEqual(self.queued_clients()[qid], "unknown[127.0.0.2]", self.postfix.maillog())
        (m,) = self.final.wait_for(1, 20)
        # Postfix's Received: the client's EHLO name (replayed after XCLIENT) and its address
        self.assertIn("from client.example (unknown [127.0.0.2])", self.received_from(m))
        self.assertTrue(m.content.endswith(sink_form(MESSAGE)))
        # dotgate's own connection: Postfix saw XCLIENT on it (its disconnect line counts it)
        wait_until(lambda: self.disconnects(), 10, what="Postfix's disconnect line")
        ((who, counts),) = self.disconnects()
        self.assertEqual(who, "unknown[127.0.0.2]")
        self.assertSaidXclient(counts)

    def test_next_transaction_after_a_refused_one(self):
        # dotgate refuses the first message at the dot: that downstream connection is closed before
        # the dot, the next transaction gets a fresh one: XCLIENT again, the client's EHLO replayed
        self.deploy({"smtp": {"max_message_size": 2000}, "policies": [{"type": "limits"}]})
        c = self.client_from("127.0.0.2")
        self.assertEqual(c.greeting().code, 220)
        big = MESSAGE + (b"x" * 78 + b"\r\n") * 40
        replies = self.send(c, "a@example.net", body=big)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 552], replies)
        time.sleep(0.5)
        self.assertEqual(self.queued_clients(), {}, self.postfix.maillog())
        replies = self.send(c, "b@example.net", ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250], replies)
        qid = self.queue_id(replies[-1])
        self.assertEqual(c.converse("QUIT").code, 221)
        wait_until(lambda: qid in self.queued_clients(), 10, what="Postfix's client= line")
        self.assertEqual(list(self.queued_clients().values()), ["unknown[127.0.0.2]"])
        (m,) = self.final.wait_for(1, 20)
        self.assertEqual([r.split()[0] for r in m.rcpts], ["<b@example.net>"])
        self.assertIn("from client.example (unknown [127.0.0.2])", self.received_from(m))
        wait_until(lambda: len(self.disconnects()) == 2, 10, what="both downstream connections closed")
        for who, counts in self.disconnects():
            self.assertEqual(who, "unknown[127.0.0.2]", counts)
            self.assertSaidXclient(counts)
        # the second connection: XCLIENT, then the replayed EHLO (dotgate's own EHLO came before)
        self.assertIn("ehlo=2", self.disconnects()[1][1])

    def test_pool_each_client_its_own_xclient(self):
        # pool.size 1, max_sessions 5: the pooled connection (greeted for nobody) gets XCLIENT for
        # the client that takes it; after XCLIENT it is that client's and goes to no other one
        self.deploy({"downstream": {"xclient": True, "pool": {"size": 1, "max_sessions": 5}}})
        wait_until(lambda: "connect from localhost[127.0.0.1]" in self.postfix.maillog(), 10,
                   what="the pool's connection")
        ids = {}
        for source, rcpt in (("127.0.0.2", "a@example.net"), ("127.0.0.3", "b@example.net")):
            c = self.client_from(source)
            self.assertEqual(c.greeting().code, 220)
            replies = self.send(c, rcpt)
            self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250], (source, replies))
            ids[self.queue_id(replies[-1])] = "unknown[%s]" % source
            self.assertEqual(c.converse("QUIT").code, 221)
            c.close()
        wait_until(lambda: set(ids) <= set(self.queued_clients()), 10, what="both client= lines")
        self.assertEqual({q: self.queued_clients()[q] for q in ids}, ids, self.postfix.maillog())
        messages = self.final.wait_for(2, 20)
        self.assertEqual(sorted(self.received_from(m).split(" by ")[0] for m in messages),
                         ["from client.example (unknown [127.0.0.2])", "from client.example (unknown [127.0.0.3])"])
        # no connection carried two clients: each that said XCLIENT ended with it (QUIT), once
        wait_until(lambda: len([d for d in self.disconnects() if "xclient" in d[1]]) == 2, 10,
                   what="both XCLIENT connections closed")
        for who, counts in self.disconnects():
            self.assertNotRegex(counts, r"\bxclient=(\d+/)?[2-9]", self.postfix.maillog())
            # nothing refused but XCLIENT's own count (a second XCLIENT would be refused)
            self.assertNotRegex(re.sub(r"\b(xclient|commands)=\d+/\d+", "", counts), r"=\d+/", counts)
        self.assertEqual(sorted(who for who, counts in self.disconnects() if "xclient" in counts),
                         ["unknown[127.0.0.2]", "unknown[127.0.0.3]"])

    def test_greeting_is_postfix_reply_to_xclient(self):
        # With smtpd_delay_reject=no Postfix judges the client at its greeting, and after XCLIENT
        # greets the real client afresh: a client it refuses hears that refusal from dotgate
        cidr = os.path.join(self.make_dir("cidr"), "clients.cidr")
        with open(cidr, "w") as f:
            f.write("127.0.0.3/32 REJECT not from this address\n")
        self.deploy(extra_main={"smtpd_delay_reject": "no",
                                 "smtpd_client_restrictions": "check_client_access cidr:" + cidr})
        refused = self.client_from("127.0.0.3")
        greeting = refused.greeting()
        self.assertEqual(greeting.code, 554, (greeting.raw, self.postfix.maillog()))
        self.assertIn("unknown[127.0.0.3]", greeting.text)
        self.assertIn("not from this address", greeting.text)
        self.assertEqual(refused.converse("MAIL FROM:<%s>" % SENDER).code, 503)
        self.assertEqual(refused.converse("QUIT").code, 221)
        accepted = self.client_from("127.0.0.2")
        self.assertEqual(accepted.greeting().code, 220)  # dotgate's own 127.0.0.1 is not refused
        replies = self.send(accepted, "a@example.net")
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250], replies)
        qid = self.queue_id(replies[-1])
        wait_until(lambda: qid in self.queued_clients(), 10, what="Postfix's client= line")
        self.assertEqual(self.queued_clients(), {qid: "unknown[127.0.0.2]"})
        # Postfix's own word: the refusal was its reply to XCLIENT, for the real client
        self.assertIn("reject: XCLIENT from unknown[127.0.0.3]: 554 5.7.1", self.postfix.maillog())
        self.assertEqual(len(self.final.wait_for(1, 20)), 1)

    def test_not_authorised_mail_flows_and_postfix_sees_dotgate(self):
        # the MTA does not list dotgate in smtpd_authorized_xclient_hosts: no XCLIENT announced,
        # none sent; the client gets Postfix's greeting and its mail goes as before
        self.deploy(authorise=False)
        with socket.create_connection(("127.0.0.1", self.smtpd_port), timeout=10) as probe:
            probe.recv(512)
            probe.sendall(b"EHLO probe.example\r\n")
            time.sleep(0.3)
            self.assertNotIn(b"XCLIENT", probe.recv(4096))  # else this proves nothing
        c = self.client_from("127.0.0.2")
        greeting = c.greeting()
        self.assertEqual(greeting.code, 220, greeting.raw)
        replies = self.send(c, "a@example.net")
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250], replies)
        qid = self.queue_id(replies[-1])
        wait_until(lambda: qid in self.queued_clients(), 10, what="Postfix's client= line")
        self.assertEqual(self.queued_clients()[qid], "localhost[127.0.0.1]")
        (m,) = self.final.wait_for(1, 20)
        self.assertIn("from client.example (localhost [127.0.0.1])", self.received_from(m))
        self.assertNotIn("xclient=", self.postfix.maillog())

    # -- a scripted MTA that announces XCLIENT and refuses it ------------------------------------

    def test_xclient_refused_is_a_421_and_nothing_is_delivered(self):
        fake = self.fake({"ehlo": ["250-fake.example", "250-PIPELINING", "250-XCLIENT NAME ADDR PORT PROTO HELO",
                                   "250 8BITMIME"],
                          "rules": [{"command": "XCLIENT", "reply": "550 5.7.0 Error: insufficient authorization"}]})
        self.dg = self.dotgate(fake.port, {"downstream": {"xclient": True}})
        c = self.client_from("127.0.0.2")
        greeting = c.greeting()
        self.assertEqual(greeting.code, 421, greeting.raw)
        self.assertEqual(greeting.enhanced, "4.4.0", greeting.raw)
        self.assertTrue(c.wait_closed(5))
        wait_until(lambda: fake.events() and fake.events()[-1]["event"] == "close", 5, what="downstream closed")
        commands = fake.commands()
        self.assertEqual(commands[0], "EHLO localhost")
        self.assertTrue(commands[1].startswith("XCLIENT ") and commands[1].endswith(" ADDR=127.0.0.2"), commands)
        self.assertEqual(len(commands), 2, commands)  # no MAIL, nothing after the refusal
        self.assertEqual(fake.messages(), [])
        self.dg.wait_log(r"XCLIENT refused: 550")


XFORWARD_EHLO = ["250-fake.example", "250-PIPELINING", "250-XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE",
                 "250-8BITMIME", "250 ENHANCEDSTATUSCODES"]


class XforwardCommandTest(IntegrationTest):

    def deploy(self, ehlo=XFORWARD_EHLO):
        self.fake_mta = self.fake({"ehlo": ehlo})
        self.dg = self.dotgate(self.fake_mta.port, {"smtp": {"xforward_from": ["127.0.0.1/32"]}})

    def downstream_commands(self, count):
        wait_until(lambda: len(self.fake_mta.commands()) >= count, 5, what="%d downstream commands" % count)
        return self.fake_mta.commands()

    def test_trusted_peer_forwards_and_it_goes_on_before_mail(self):
        self.deploy()
        c = self.dg.client()
        self.assertEqual(c.greeting().code, 220)
        ehlo = c.ehlo("mx.example")
        self.assertIn("XFORWARD NAME ADDR PORT PROTO HELO IDENT SOURCE", ehlo.text.splitlines())
        self.assertReply(c.converse("XFORWARD NAME=spike.example ADDR=192.0.2.7 PORT=4711"), 250, "2.0.0")
        self.assertReply(c.converse("XFORWARD HELO=spike.example PROTO=ESMTP IDENT=ABC123 SOURCE=REMOTE"), 250)
        self.assertReply(c.converse("XFORWARD ADDR=not-an-address"), 501, "5.5.4")
        self.assertReply(c.converse("XFORWARD"), 501, "5.5.4")
        # pipelined as Postfix's proxy does: the MAIL's reply is the client's first, XFORWARD's is not
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nXFORWARD ADDR=192.0.2.8\r\n")
        self.assertEqual([r.code for r in c.read_replies(3)], [250, 250, 503])
        self.assertEqual(c.converse("DATA").code, 354)
        c.send(b"Subject: x\r\n\r\nbody\r\n.\r\n")
        self.assertEqual(c.read_reply().code, 250)
        # the next transaction: nothing forwarded any more, nothing goes downstream before it
        replies = c.send_message("a@example.org", ["c@example.net"], b"Subject: y\r\n\r\nbody\r\n", ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250], replies)
        self.assertEqual(c.converse("QUIT").code, 221)
        self.fake_mta.wait_for(2)
        commands = [l for l in self.downstream_commands(10) if l.split()[0] in ("XFORWARD", "MAIL")]
        self.assertEqual(commands, [
            "XFORWARD NAME=spike.example ADDR=192.0.2.7 PORT=4711 HELO=spike.example IDENT=ABC123 PROTO=ESMTP "
            "SOURCE=REMOTE",
            "MAIL FROM:<a@example.org>",
            "MAIL FROM:<a@example.org>",
        ])
        lines = self.dg.wait_log(r"\] transaction ", count=2)
        self.assertIn("client=192.0.2.7:4711", lines[0])
        self.assertIn("helo=spike.example", lines[0])
        self.assertRegex(lines[1], r"client=127\.0\.0\.1:\d+")  # the peer again
        self.assertIn("helo=mx.example", lines[1])

    def test_untrusted_peer_is_not_offered_xforward(self):
        self.deploy()
        c = RawClient(self.dg.port, connect=False)
        c.sock = socket.create_connection(("127.0.0.1", self.dg.port), timeout=10, source_address=("127.0.0.2", 0))
        self.addCleanup(c.close)
        self.assertEqual(c.greeting().code, 220)
        self.assertNotIn("XFORWARD", c.ehlo().text)
        self.assertReply(c.converse("XFORWARD ADDR=192.0.2.7"), 502, "5.5.1")
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\nbody\r\n", ehlo=False)
        self.assertEqual(replies[-1].code, 250)
        self.fake_mta.wait_for(1)
        self.assertFalse([l for l in self.fake_mta.commands() if l.startswith("XFORWARD")])
        self.assertRegex(self.dg.wait_log(r"\] transaction ")[0], r"client=127\.0\.0\.2:\d+")

    def test_mta_without_pipelining_gets_mail_after_xforward_reply(self):
        ehlo = ["250-fake.example", "250-XFORWARD NAME ADDR HELO", "250 8BITMIME"]
        self.deploy(ehlo=ehlo)
        c = self.dg.client()
        self.assertEqual(c.greeting().code, 220)
        c.ehlo("mx.example")
        self.assertEqual(c.converse("XFORWARD ADDR=192.0.2.7 HELO=spike.example").code, 250)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\nbody\r\n", ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250], replies)
        self.fake_mta.wait_for(1)
        commands = self.fake_mta.commands()
        i = commands.index("XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.7 HELO=spike.example")
        self.assertEqual(commands[i + 1], "MAIL FROM:<a@example.org>")

    def test_mta_without_pipelining_closing_at_xforward_never_gets_the_mail(self):
        # The MTA answers XFORWARD 421 and closes: a MAIL pipelined behind it would be in the
        # bytes it received; one that waits for the reply never reaches it. The client's MAIL
        # gets dotgate's 421 (the connection is lost), nothing is delivered.
        self.fake_mta = self.fake({"ehlo": ["250-fake.example", "250-XFORWARD NAME ADDR HELO", "250 8BITMIME"],
                                   "rules": [{"command": "XFORWARD", "delay": 0.3,
                                              "reply": "421 4.3.0 closing", "action": "close"}]})
        self.dg = self.dotgate(self.fake_mta.port, {"smtp": {"xforward_from": ["127.0.0.1/32"]}})
        c = self.dg.client()
        self.assertEqual(c.greeting().code, 220)
        c.ehlo("mx.example")
        self.assertEqual(c.converse("XFORWARD ADDR=192.0.2.7").code, 250)
        self.assertEqual(c.converse("MAIL FROM:<a@example.org>").code, 421)
        self.fake_mta.wait_closed(1)
        raw = self.fake_mta.raw(1)
        self.assertIn(b"XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.7 HELO=[UNAVAILABLE]\r\n", raw)
        self.assertNotIn(b"MAIL", raw)
        self.assertEqual(self.fake_mta.messages(), [])
        self.dg.wait_log(r"downstream refused XFORWARD.*code=421")


    def test_replay_to_a_fresh_connection_forwards_the_client_again(self):
        # PRDR with a recipient whose profile refuses: the first downstream transaction is aborted
        # and the message replayed to the others on a fresh connection, XFORWARD ahead of its MAIL
        words = os.path.join(self.make_dir("words"), "words.txt")
        with open(words, "w") as f:
            f.write("forbidden phrase\n")
        self.fake_mta = self.fake({"ehlo": XFORWARD_EHLO})
        self.dg = self.dotgate(self.fake_mta.port, {
            "smtp": {"xforward_from": ["127.0.0.1/32"]},
            "policies": [{"type": "keywords", "lists": [{"path": words, "score": 10}]}],
            "profiles": [{"name": "strict", "policies": ["keywords"]}, {"name": "lenient", "policies": []}],
            "recipients": [{"match": "strict.example", "profile": "strict"},
                           {"match": "lenient.example", "profile": "lenient"}]})
        c = self.dg.client()
        self.assertEqual(c.greeting().code, 220)
        c.ehlo("mx.example")
        self.assertEqual(c.converse("XFORWARD ADDR=192.0.2.7 PORT=4711 HELO=spike.example").code, 250)
        self.assertEqual(c.converse("MAIL FROM:<a@example.org> PRDR").code, 250)
        self.assertEqual(c.converse("RCPT TO:<x@strict.example>").code, 250)
        self.assertEqual(c.converse("RCPT TO:<y@lenient.example>").code, 250)
        self.assertEqual(c.converse("DATA").code, 354)
        c.send(b"Subject: a forbidden phrase\r\n\r\nbody\r\n.\r\n")
        self.assertEqual([r.code for r in c.read_replies(4)], [353, 550, 250, 250])
        (m,) = self.fake_mta.wait_for(1)
        self.assertEqual(m["rcpts"], ["RCPT TO:<y@lenient.example>"])
        replayed = self.fake_mta.commands(m["conn"])
        self.assertEqual(replayed[1:3], ["XFORWARD NAME=[UNAVAILABLE] ADDR=192.0.2.7 PORT=4711 HELO=spike.example "
                                         "IDENT=[UNAVAILABLE] PROTO=[UNAVAILABLE] SOURCE=[UNAVAILABLE]",
                                         "MAIL FROM:<a@example.org>"], replayed)
        self.assertIn("client=192.0.2.7:4711", self.dg.wait_log(r"\] transaction ")[0])


if __name__ == "__main__":
    main()
