#!/usr/bin/env python3
"""test/integration/test_postfix_downstream.py — a real Postfix smtpd as the MTA behind dotgate.

    client ─► dotgate ─► Postfix smtpd (the after-filter, as in deploy/postfix) ─► queue ─► smtp-sink

smtp-sink answers everything with 250; the MTA admins put behind dotgate is a real one, with queue
IDs in its replies, its own EHLO list (XFORWARD, CHUNKING, ETRN, VRFY), recipient restrictions and
per-connection accounting. Each test checks the client's replies, what Postfix logged and queued,
and what it delivered onward to smtp-sink: a message queued and delivered with the client getting
Postfix's own "queued as" reply; the EHLO list filtered; a recipient Postfix refuses inside a
pipelined group while the others go through; dotgate's refusal at the dot and a client that leaves
mid-DATA leave nothing in Postfix's queue; connections reused across clients under
pool.max_sessions deliver every message. Needs root (a private Postfix instance); skips otherwise.
"""

import re
import smtplib
import time

from harness import IntegrationTest, free_port, main, sink_form, stuff, wait_until
from postfix_client import Postfix, skip_unless_postfix

SENDER = "sender@example.org"
MESSAGE = (b"From: <sender@example.org>\r\n"
           b"Date: Mon, 23 Nov 2026 12:00:00 +0000\r\n"
           b"Message-ID: <dotgate-test@example.org>\r\n"  # so that Postfix adds no header of its own
           b"Subject: to a real MTA\r\n"
           b"\r\n"
           b".a line that starts with a dot\r\n"
           b"last line\r\n")


class PostfixDownstreamTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        skip_unless_postfix(self)

    def deploy(self, config=None):
        """smtp-sink, a Postfix whose smtpd queues for it, dotgate in front of that smtpd."""
        self.final = self.sink()
        self.smtpd_port = free_port()
        self.postfix = Postfix(self, self.final.port, hostname="after-filter.example", extra_main={
            "mynetworks": "127.0.0.0/8",
            "smtpd_authorized_xforward_hosts": "127.0.0.0/8",  # as in the README's snippet
        }, smtpd=(self.smtpd_port, {
            "smtpd_relay_restrictions": "permit_mynetworks,reject",
            "smtpd_recipient_restrictions": "reject_non_fqdn_recipient",
        })).start()
        self.dg = self.dotgate(self.smtpd_port, config)
        return self.dg

    def session(self):
        c = self.dg.client(timeout=30)
        self.assertEqual(c.greeting().code, 220)
        return c

    def queued(self):
        """Queue IDs of the messages Postfix queued (qmgr logs `from=` once a message is in the queue;
        cleanup's message-id line comes for an aborted one too)."""
        return re.findall(r"qmgr\[\d+\]: (\w+): from=", self.postfix.maillog())

    @staticmethod
    def rcpts(messages):
        """Recipient addresses at smtp-sink (Postfix adds ORCPT= when relaying them onward)."""
        return sorted(r.split()[0] for m in messages for r in m.rcpts)

    def wait_final(self, count, timeout=20):
        messages = self.final.wait_for(count, timeout)
        self.assertEqual(len(messages), count, messages)
        return messages

    def test_message_queued_with_postfix_reply_and_delivered(self):
        self.deploy({"policies": [{"type": "limits"}]})
        c = self.session()
        replies = c.send_message(SENDER, ["a@example.net", "b@example.net"], MESSAGE)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 250, 354, 250], replies)
        final = replies[-1]
        m = re.search(r"queued as (\w+)", final.text)
        self.assertIsNotNone(m, "the client gets Postfix's own reply to the dot: %r" % final.raw)
        wait_until(lambda: self.queued() == [m.group(1)], 10, what="exactly that message in Postfix's queue")
        self.assertEqual(c.converse("QUIT").code, 221)
        (delivered,) = self.wait_final(1)
        self.assertEqual(self.rcpts([delivered]), ["<a@example.net>", "<b@example.net>"])
        self.assertTrue(delivered.content.endswith(sink_form(MESSAGE)), delivered.content)

    def test_ehlo_list_is_filtered(self):
        self.deploy()
        c = self.session()
        keywords = c.ehlo().keywords()
        for kept in ("PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "DSN"):
            self.assertIn(kept, keywords)
        for dropped in ("XFORWARD", "CHUNKING", "ETRN", "VRFY", "STARTTLS", "AUTH"):
            self.assertNotIn(dropped, keywords)
        # what Postfix offered dotgate: XFORWARD and CHUNKING among them (else this proves nothing)
        with smtplib.SMTP("127.0.0.1", self.smtpd_port, timeout=10) as s:
            s.ehlo("probe.example")
            self.assertIn("xforward", s.esmtp_features)
            self.assertIn("chunking", s.esmtp_features)

    def test_recipient_refused_by_postfix_inside_a_pipelined_group(self):
        self.deploy()
        c = self.session()
        c.ehlo()
        c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<nodomain>\r\n"
               b"RCPT TO:<b@example.net>\r\nDATA\r\n" % SENDER.encode())
        codes = [r.code for r in c.read_replies(5)]
        self.assertEqual(codes[:2], [250, 250])
        self.assertEqual(codes[2] // 100, 5, codes)  # Postfix's own refusal (504 5.5.2)
        self.assertEqual(codes[3:], [250, 354])
        c.send(stuff(MESSAGE) + b".\r\n")
        self.assertEqual(c.read_reply().code, 250)
        (delivered,) = self.wait_final(1)
        self.assertEqual(self.rcpts([delivered]), ["<a@example.net>", "<b@example.net>"])

    def test_refusal_at_the_dot_queues_nothing_and_the_next_message_goes(self):
        self.deploy({"smtp": {"max_message_size": 2000}, "policies": [{"type": "limits"}]})
        c = self.session()
        big = MESSAGE + (b"x" * 78 + b"\r\n") * 40
        replies = c.send_message(SENDER, ["a@example.net"], big)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 552], replies)
        time.sleep(1.0)
        self.assertEqual(self.queued(), [], self.postfix.maillog())
        replies = c.send_message(SENDER, ["b@example.net"], MESSAGE, ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250], replies)
        wait_until(lambda: len(self.queued()) == 1, 10, what="the second message in Postfix's queue")
        (delivered,) = self.wait_final(1)
        self.assertEqual(self.rcpts([delivered]), ["<b@example.net>"])

    def test_client_leaving_mid_data_queues_nothing(self):
        self.deploy()
        c = self.session()
        c.ehlo()
        self.assertEqual(c.converse("MAIL FROM:<%s>" % SENDER).code, 250)
        self.assertEqual(c.converse("RCPT TO:<a@example.net>").code, 250)
        self.assertEqual(c.converse("DATA").code, 354)
        c.send(stuff(MESSAGE))  # no dot
        time.sleep(0.3)
        c.close()
        self.dg.wait_log(r"aborted|closed", timeout=5)
        time.sleep(1.0)
        self.assertEqual(self.queued(), [], self.postfix.maillog())
        self.assertIn("lost connection after DATA", self.postfix.maillog())
        self.assertEqual(self.final.messages(), [])

    def test_reused_connections_deliver_every_message(self):
        self.deploy({"downstream": {"pool": {"size": 2, "max_sessions": 10}}})
        clients = 6
        for i in range(clients):
            c = self.session()
            replies = c.send_message(SENDER, ["r%d@example.net" % i], MESSAGE)
            self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250], (i, replies))
            self.assertEqual(c.converse("QUIT").code, 221)
            c.close()
        delivered = self.wait_final(clients)
        self.assertEqual(self.rcpts(delivered),
                         sorted("<r%d@example.net>" % i for i in range(clients)))
        log = self.postfix.maillog()
        connects = len(re.findall(r"smtpd\[\d+\]: connect from", log))
        self.assertLess(connects, clients, "no connection was reused:\n" + log[-3000:])
        self.assertNotIn("improper command pipelining", log)


if __name__ == "__main__":
    main()
