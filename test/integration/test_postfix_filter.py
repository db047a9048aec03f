#!/usr/bin/env python3
"""test/integration/test_postfix_filter.py — the README's first deployment, with a real Postfix in front.

    client ─► Postfix smtpd (smtpd_proxy_filter) ─► dotgate ─► smtp-sink

The installed Postfix runs as a private instance (postfix_client.py) whose one smtpd listens on
loopback with `smtpd_proxy_filter` pointing at dotgate, as in deploy/postfix/master.cf.snippet.
Postfix's proxy client is the dotgate client mail admins run in production; what it does that the
other clients do not: it connects at the first recipient it accepts itself and sends MAIL (with
the client's parameters) then, says EHLO with `smtpd_proxy_ehlo`, prepends its Received: header,
turns a client's BDAT into DATA, and turns the proxy's replies into the client's. Each test checks
what the client saw and what smtp-sink got: a message through with its content intact, dotgate's
refusal at the dot (the client gets a 5xx, the sink nothing, and the next transaction in the same
session goes through), a SIZE= refusal (the client's RCPT reply), BDAT, the recipient split
(451 4.5.3 reaches the client through Postfix), a pipelining client, and a dead downstream (a 4xx,
never a 250).

XFORWARD end to end (XforwardFilterTest): the client bound to 127.0.0.2 → the Postfix in front →
dotgate (smtp.xforward_from = 127.0.0.1, so it announces XFORWARD and Postfix's proxy sends the
client's attributes) → a second Postfix, the after-filter smtpd (smtpd_authorized_xforward_hosts =
127.0.0.0/8) → smtp-sink. The after-filter logs the real client (its client= line, its
Received: header) and dotgate's policies saw it (the http policy's request headers, the
transaction log line); with 127.0.0.1 not in xforward_from nothing is forwarded and both see
127.0.0.1. Needs root (private Postfix instances); skips with the reason otherwise.
"""

import os
import re
import smtplib
import socket
import time

from harness import (IntegrationTest, ScriptedHttpService, free_port, main, sink_form, stuff, wait_listening,
                     wait_until)
from postfix_client import Postfix, skip_unless_postfix

SENDER = "sender@example.org"
MESSAGE = (b"From: <sender@example.org>\r\n"
           b"To: <rcpt@example.net>\r\n"
           b"Subject: through the before-queue filter\r\n"
           b"\r\n"
           b".a line that starts with a dot\r\n"
           b"8-bit: caf\xc3\xa9\r\n"
           b"last line\r\n")


class PostfixFilterTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        skip_unless_postfix(self)

    def deploy(self, config=None, downstream_up=True):
        """smtp-sink, dotgate in front of it, a Postfix smtpd in front of dotgate; returns its port."""
        if downstream_up:
            self.sink_mta = self.sink()
            downstream_port = self.sink_mta.port
        else:
            self.sink_mta = None
            downstream_port = free_port()  # nothing listens there
        self.dg = self.dotgate(downstream_port, config)
        port = free_port()
        self.postfix = Postfix(self, self.dg.port, hostname="mx.example", extra_main={
            "mynetworks": "127.0.0.0/8",
            "message_size_limit": "10240000",
        }, smtpd=(port, {
            "smtpd_proxy_filter": "127.0.0.1:%d" % self.dg.port,
            "smtpd_proxy_timeout": "30s",
            "smtpd_relay_restrictions": "permit_mynetworks,reject",
            "smtpd_recipient_restrictions": "",
        })).start()
        wait_listening(port, self.postfix.master)  # master binds smtpd's socket itself
        return port

    def smtp(self, port):
        s = smtplib.SMTP("127.0.0.1", port, timeout=30)
        self.addCleanup(s.close)
        s.ehlo("client.example")
        return s

    def assertSinkGot(self, count, timeout=10):
        messages = self.sink_mta.wait_for(count, timeout)
        time.sleep(0.3)  # nothing more may come
        messages = self.sink_mta.messages()
        self.assertEqual(len(messages), count, messages)
        return messages

    def test_message_goes_through_intact(self):
        port = self.deploy({"policies": [{"type": "limits"}]})
        s = self.smtp(port)
        refused = s.sendmail(SENDER, ["a@example.net", "b@example.net"], MESSAGE)
        self.assertEqual(refused, {})
        (m,) = self.assertSinkGot(1)
        self.assertEqual(sorted(m.rcpts), ["<a@example.net>", "<b@example.net>"], m.raw[:500])
        self.assertIn(SENDER, m.mail)
        # Postfix prepends its Received: line; what follows is the client's message, unchanged
        self.assertTrue(m.content.endswith(sink_form(MESSAGE)), m.content)
        self.assertIn(b"by mx.example", m.content)
        # dotgate saw Postfix's proxy EHLO (smtpd_proxy_ehlo defaults to $myhostname)
        self.dg.wait_log(r"helo=mx\.example")
        self.assertEqual(self.postfix.delivered(), [])  # nothing was queued in front: a proxy

    def test_refusal_at_the_dot_reaches_the_client_and_the_session_goes_on(self):
        port = self.deploy({"smtp": {"max_message_size": 3000}, "policies": [{"type": "limits"}]})
        c = self.raw_client(port, timeout=30)
        self.assertEqual(c.greeting().code, 220)
        self.assertEqual(c.ehlo().code, 250)
        # no SIZE= parameter: dotgate can only find out at the dot
        big = MESSAGE + b"x" * 78 + b"\r\n"
        big = big * 60
        replies = c.send_message(SENDER, ["a@example.net"], big, ehlo=False)
        self.assertEqual([r.code for r in replies[:3]], [250, 250, 354])
        self.assertEqual(replies[3].code, 552, replies[3].raw)
        self.assertEqual(replies[3].enhanced, "5.3.4", replies[3].raw)
        time.sleep(0.5)
        self.assertEqual(self.sink_mta.messages(), [])
        # the same client session: Postfix opens a new proxy connection, dotgate a new downstream one
        replies = c.send_message(SENDER, ["b@example.net"], MESSAGE, ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250], replies)
        (m,) = self.assertSinkGot(1)
        self.assertEqual(m.rcpts, ["<b@example.net>"])
        self.assertEqual(c.converse("QUIT").code, 221)

    def test_size_refused_at_mail_reaches_the_client_at_its_rcpt(self):
        # Postfix connects to the proxy at the first recipient it accepts itself, and sends MAIL
        # (with the client's SIZE=) then: dotgate's 552 5.3.4 to MAIL is the client's RCPT reply
        port = self.deploy({"smtp": {"max_message_size": 3000}, "policies": [{"type": "limits"}]})
        c = self.raw_client(port, timeout=30)
        c.greeting()
        c.ehlo()
        self.assertEqual(c.converse("MAIL FROM:<%s> SIZE=50000" % SENDER).code, 250)
        reply = c.converse("RCPT TO:<a@example.net>")
        self.assertEqual(reply.code, 552, reply.raw)
        self.assertEqual(reply.enhanced, "5.3.4", reply.raw)
        self.assertGreaterEqual(c.converse("DATA").code, 500)
        time.sleep(0.3)
        self.assertEqual(self.sink_mta.messages(), [])
        self.assertIn('proxy 127.0.0.1:%d rejected "MAIL FROM:<%s> SIZE=50000"' % (self.dg.port, SENDER),
                      self.postfix.maillog())

    def test_bdat_from_the_client_arrives_as_data(self):
        # Postfix offers CHUNKING to its clients and relays BDAT to the proxy as DATA, dot-stuffed
        port = self.deploy()
        c = self.raw_client(port, timeout=30)
        c.greeting()
        self.assertIn("CHUNKING", c.ehlo().keywords())
        self.assertEqual(c.converse("MAIL FROM:<%s>" % SENDER).code, 250)
        self.assertEqual(c.converse("RCPT TO:<a@example.net>").code, 250)
        half = len(MESSAGE) // 2
        c.send(b"BDAT %d\r\n" % half + MESSAGE[:half])
        self.assertEqual(c.read_reply().code, 250)
        c.send(b"BDAT %d LAST\r\n" % (len(MESSAGE) - half) + MESSAGE[half:])
        self.assertEqual(c.read_reply().code, 250)
        (m,) = self.assertSinkGot(1)
        self.assertTrue(m.content.endswith(sink_form(MESSAGE)), m.content)

    def test_recipient_split_reaches_the_client(self):
        port = self.deploy({
            "profiles": [{"name": "strict", "policies": []}, {"name": "lenient", "policies": []}],
            "recipients": [{"match": "strict.example", "profile": "strict"},
                           {"match": "lenient.example", "profile": "lenient"}],
        })
        c = self.raw_client(port, timeout=30)
        c.greeting()
        c.ehlo()
        self.assertEqual(c.converse("MAIL FROM:<%s>" % SENDER).code, 250)
        self.assertEqual(c.converse("RCPT TO:<a@strict.example>").code, 250)
        deferred = c.converse("RCPT TO:<b@lenient.example>")
        self.assertEqual(deferred.code, 451, deferred.raw)
        self.assertEqual(deferred.enhanced, "4.5.3", deferred.raw)
        self.assertEqual(c.converse("DATA").code, 354)
        c.send(stuff(MESSAGE) + b".\r\n")
        self.assertEqual(c.read_reply().code, 250)
        # the retry in the same session, as the deferral's text asks
        replies = c.send_message(SENDER, ["b@lenient.example"], MESSAGE, ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250], replies)
        messages = self.assertSinkGot(2)
        self.assertEqual(sorted(r for m in messages for r in m.rcpts), ["<a@strict.example>", "<b@lenient.example>"])

    def test_pipelining_client(self):
        port = self.deploy()
        c = self.raw_client(port, timeout=30)
        c.greeting()
        self.assertIn("PIPELINING", c.ehlo().keywords())
        c.send(b"MAIL FROM:<%s>\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n" % SENDER.encode())
        self.assertEqual([r.code for r in c.read_replies(4)], [250, 250, 250, 354])
        c.send(stuff(MESSAGE) + b".\r\nQUIT\r\n")
        self.assertEqual([r.code for r in c.read_replies(2)], [250, 221])
        (m,) = self.assertSinkGot(1)
        self.assertEqual(m.rcpts, ["<a@example.net>", "<b@example.net>"])
        self.assertTrue(m.content.endswith(sink_form(MESSAGE)))

    def test_downstream_down_is_a_temporary_failure(self):
        # dotgate greets Postfix's proxy connection with 421 4.4.0; Postfix answers its client's
        # RCPT with a 4xx (its own "451 4.3.0"): the sender keeps the mail and retries
        port = self.deploy(downstream_up=False)
        c = self.raw_client(port, timeout=30)
        c.greeting()
        c.ehlo()
        self.assertEqual(c.converse("MAIL FROM:<%s>" % SENDER).code, 250)  # Postfix's own
        reply = c.converse("RCPT TO:<a@example.net>")
        self.assertEqual(reply.code // 100, 4, reply.raw)
        self.assertNotEqual(c.converse("DATA").code, 354)
        self.assertIn('rejected "connection request": "421 4.4.0', self.postfix.maillog())

class Webhook(ScriptedHttpService):
    """webhook.py as an http policy that accepts everything: what dotgate's policies were told."""
    name = "webhook"
    program = os.path.join(os.path.dirname(os.path.abspath(__file__)), "webhook.py")
    path = "/verdict"

    def __init__(self, tc):
        super().__init__(tc, {"mode": "json", "response": {"action": "accept"}})


class XforwardFilterTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        skip_unless_postfix(self)

    def deploy(self, xforward_from, xclient=False):
        """smtp-sink ◄ after-filter Postfix ◄ dotgate (an http policy) ◄ the Postfix in front.
        `xclient`: dotgate says XCLIENT to the after-filter, which authorises it."""
        self.final = self.sink()
        after_port = free_port()
        after_main = {"mynetworks": "127.0.0.0/8"}
        if xclient:
            after_main["smtpd_authorized_xclient_hosts"] = "127.0.0.1"
        self.after = Postfix(self, self.final.port, hostname="after-filter.example", extra_main=after_main,
                             smtpd=(after_port, {
            "syslog_name": "postfix/after-filter",
            "smtpd_authorized_xforward_hosts": "127.0.0.0/8",  # deploy/postfix/master.cf.snippet
            "smtpd_relay_restrictions": "permit_mynetworks,reject",
        })).start()
        wait_listening(after_port, self.after.master)
        self.hook = Webhook(self).start()
        self.dg = self.dotgate(after_port, {"smtp": {"xforward_from": xforward_from},
                                            "downstream": {"xclient": xclient},
                                            "policies": [{"type": "http", "url": self.hook.url(), "timeout": 5}]})
        port = free_port()
        self.front = Postfix(self, self.dg.port, hostname="mx.example", extra_main={
            "mynetworks": "127.0.0.0/8",
            "smtpd_peername_lookup": "no",  # no DNS here: the client's name is "unknown"
        }, smtpd=(port, {
            "smtpd_proxy_filter": "127.0.0.1:%d" % self.dg.port,
            "smtpd_proxy_timeout": "30s",
            "smtpd_relay_restrictions": "permit_mynetworks,reject",
        })).start()
        wait_listening(port, self.front.master)
        return port

    def send_from(self, source, port):
        s = smtplib.SMTP(timeout=30, source_address=(source, 0))
        self.addCleanup(s.close)
        s.connect("127.0.0.1", port)
        s.ehlo("client.example")
        refused = s.sendmail("sender@example.org", ["a@example.net"], MESSAGE)
        self.assertEqual(refused, {})
        s.quit()

    def after_clients(self):
        """What the after-filter's smtpd logged of each message it queued (qmgr took it):
        "client=NAME[ADDR]", and ", orig_client=NAME[ADDR]" when XFORWARD named another client."""
        log = self.after.maillog()
        queued = set(re.findall(r"qmgr\[\d+\]: (\w+): from=", log))
        return [c for q, c in re.findall(r"after-filter/smtpd\[\d+\]: (\w+): (client=.*)", log) if q in queued]

    def policy_saw(self):
        wait_until(lambda: self.hook.requests(), 10, what="the http policy's request")
        (r,) = self.hook.requests()
        h = {n.lower(): v for n, v in r["headers"]}
        return h.get("x-dotgate-client-address", ""), h.get("x-dotgate-helo", "")

    def test_after_filter_logs_the_real_client_and_policies_saw_it(self):
        port = self.deploy(["127.0.0.1/32"])
        self.send_from("127.0.0.2", port)
        (m,) = self.final.wait_for(1, 20)
        wait_until(lambda: self.after_clients(), 10, what="the after-filter's client= line")
        # Postfix 3.7: the connection's client, then the one XFORWARD named
        self.assertEqual(self.after_clients(), ["client=localhost[127.0.0.1], orig_client=unknown[127.0.0.2]"],
                         self.after.maillog())
        # the after-filter's Received: line names the client's HELO and address (XFORWARD's HELO, ADDR)
        self.assertIn(b"from client.example (unknown [127.0.0.2])", b" ".join(m.content.split()))
        self.assertTrue(m.content.endswith(sink_form(MESSAGE)), m.content)
        self.assertIn("xforward=", self.after.maillog())  # dotgate sent it: smtpd counts the command
        # dotgate's policies: the http policy's request, and the transaction line
        address, helo = self.policy_saw()
        self.assertRegex(address, r"^127\.0\.0\.2:\d+$")
        self.assertEqual(helo, "client.example")
        (line,) = self.dg.wait_log(r"\] transaction ")
        self.assertRegex(line, r"client=127\.0\.0\.2:\d+")
        self.assertIn("helo=client.example", line)

    def test_forwarded_client_goes_on_as_xclient(self):
        # downstream.xclient: the connection dotgate opened for the Postfix in front said XCLIENT
        # for 127.0.0.1; at MAIL a fresh one says XCLIENT for the forwarded client
        port = self.deploy(["127.0.0.1/32"], xclient=True)
        self.send_from("127.0.0.2", port)
        (m,) = self.final.wait_for(1, 20)
        wait_until(lambda: self.after_clients(), 10, what="the after-filter's client= line")
        self.assertEqual(self.after_clients(), ["client=unknown[127.0.0.2]"], self.after.maillog())
        # the forwarded HELO, replayed after XCLIENT on the fresh connection
        self.assertIn(b"from client.example (unknown [127.0.0.2])", b" ".join(m.content.split()))
        self.assertNotIn("xforward=", self.after.maillog())
        disconnects = re.findall(r"disconnect from (\S+) (.*)", self.after.maillog())
        self.assertIn("unknown[127.0.0.2]", [who for who, _ in disconnects], disconnects)
        address, helo = self.policy_saw()
        self.assertRegex(address, r"^127\.0\.0\.2:\d+$")

    def test_front_not_in_xforward_from_forwards_nothing(self):
        port = self.deploy(["192.0.2.0/24"])
        self.send_from("127.0.0.2", port)
        self.final.wait_for(1, 20)
        wait_until(lambda: self.after_clients(), 10, what="the after-filter's client= line")
        self.assertEqual(self.after_clients(), ["client=localhost[127.0.0.1]"], self.after.maillog())
        self.assertNotIn("xforward=", self.after.maillog())
        address, helo = self.policy_saw()
        self.assertRegex(address, r"^127\.0\.0\.1:\d+$")
        self.assertEqual(helo, "mx.example")  # the Postfix proxy's own EHLO ($myhostname)
        self.dg.wait_log(r"\] transaction .*client=127\.0\.0\.1:")


if __name__ == "__main__":
    main()
