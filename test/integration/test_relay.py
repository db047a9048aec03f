#!/usr/bin/env python3
"""test/integration/test_relay.py — the plain relay: real clients through dotgate to smtp-sink.

Covers issue 3 "Relay": a message from smtplib and from swaks arrives at the sink with its content
intact; several recipients; RSET, NOOP, HELP, VRFY (252, or 502 when configured), EXPN 502, an
unknown command relayed downstream (its refusal comes back), HELO, QUIT 221; IPv6 loopback.
Byte-exact wire content is checked against fake_mta.py, which records DATA as it arrived.
"""

import os
import smtplib
import socket
import time

from harness import (IntegrationTest, LOOPBACK, main, run_swaks, sink_form, stuff, swaks_server_replies)

MESSAGE = (b"From: Alice <alice@example.org>\r\n"
           b"To: Bob <bob@example.net>\r\n"
           b"Subject: relay test\r\n"
           b"Message-ID: <relay-1@example.org>\r\n"
           b"\r\n"
           b"Hello Bob,\r\n"
           b"\r\n"
           b"  indented line with trailing spaces   \r\n"
           b"\ttab\r\n"
           b"8bit: \xc3\xa9t\xc3\xa9\r\n"
           b".a line that starts with a dot\r\n"
           b"..two dots\r\n"
           b"-- \r\n"
           b"Alice\r\n")


class RelayTest(IntegrationTest):

    def test_smtplib_plain_message(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=10) as s:
            code, _ = s.ehlo("client.example")
            self.assertEqual(code, 250)
            refused = s.sendmail("alice@example.org", ["bob@example.net"], MESSAGE)
            self.assertEqual(refused, {})
            code, _ = s.quit()
            self.assertEqual(code, 221)
        msgs = sink.wait_for(1)
        self.assertEqual(len(msgs), 1)
        m = msgs[0]
        self.assertEqual(m.mail.split(" ")[0], "<alice@example.org>")
        self.assertEqual(m.rcpts, ["<bob@example.net>"])
        self.assertEqual(m.helo, "client.example")
        self.assertEqual(m.content, sink_form(MESSAGE))

    def test_plain_message_wire_bytes_exact(self):
        """What the downstream reads between its 354 and the dot is what the client sent."""
        fake = self.fake()
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("alice@example.org", ["bob@example.net"], MESSAGE)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250])
        msgs = fake.wait_for(1)
        self.assertEqual(msgs[0]["data"], stuff(MESSAGE))
        self.assertEqual(msgs[0]["mail"], "MAIL FROM:<alice@example.org>")
        self.assertEqual(msgs[0]["rcpts"], ["RCPT TO:<bob@example.net>"])

    def test_smtputf8_8bitmime_and_dsn_reach_the_mta_as_sent(self):
        """RFC 6531/6152/3461: a UTF-8 envelope, an 8-bit body and DSN parameters pass through
        unchanged when the downstream offers the extensions (smtp-sink offers no SMTPUTF8)."""
        ehlo = ["250-fake.example", "250-PIPELINING", "250-SIZE 10240000", "250-8BITMIME", "250-SMTPUTF8",
                "250-ENHANCEDSTATUSCODES", "250 DSN"]
        fake = self.fake({"ehlo": ehlo})
        dg = self.dotgate(fake.port)
        sender, rcpt = "δοκιμή@παράδειγμα.δοκιμή", "用户@例子.广告"
        body = ("From: %s\r\nTo: %s\r\nSubject: =?UTF-8?B?w7xiZXI=?=\r\n\r\nGrüße, naïve café\r\n" %
                (sender, rcpt)).encode("utf-8")
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=10) as s:
            s.ehlo("client.example")
            for kw in ("smtputf8", "8bitmime", "dsn"):
                self.assertTrue(s.has_extn(kw), "dotgate must offer %s when the MTA does" % kw)
            refused = s.sendmail(sender, [rcpt], body, mail_options=["SMTPUTF8", "BODY=8BITMIME", "RET=HDRS", "ENVID=e1"],
                                 rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;bob@example.net"])
            self.assertEqual(refused, {})
        msgs = fake.wait_for(1)
        self.assertEqual(msgs[0]["mail"].encode("latin-1").decode("utf-8"),
                         "mail FROM:<%s> size=%d SMTPUTF8 BODY=8BITMIME RET=HDRS ENVID=e1" % (sender, len(body)),
                         "relayed as smtplib wrote it (its lower-case verb and size= included)")
        self.assertEqual([r.encode("latin-1").decode("utf-8") for r in msgs[0]["rcpts"]],
                         ["rcpt TO:<%s> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.net" % rcpt])
        self.assertEqual(msgs[0]["data"], stuff(body), "the 8-bit body byte for byte")

    def test_smtputf8_not_offered_when_the_mta_does_not(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=10) as s:
            s.ehlo("client.example")
            self.assertFalse(s.has_extn("smtputf8"), "smtp-sink offers no SMTPUTF8: neither may dotgate")
            self.assertTrue(s.has_extn("8bitmime"))

    def test_swaks_message_from_file(self):
        """swaks --data FILE through dotgate leaves at the sink exactly what it leaves when it talks
        to the sink directly (swaks adds its own final CRLF; the comparison takes that into account)."""
        sink = self.sink()
        dg = self.dotgate(sink.port)
        path = os.path.join(self.make_dir("swaks"), "msg.eml")
        with open(path, "wb") as f:
            f.write(MESSAGE)
        args = ["--from", "alice@example.org", "--to", "bob@example.net", "--helo", "swaks.example",
                "--data", path]
        rc, out = run_swaks(["--server", LOOPBACK, "--port", sink.port] + args)
        self.assertEqual(rc, 0, out)
        direct = sink.wait_for(1)[0]
        rc, out = run_swaks(["--server", LOOPBACK, "--port", dg.port] + args)
        self.assertEqual(rc, 0, out)
        replies = swaks_server_replies(out)
        self.assertTrue(replies[0].startswith("220"), out)
        self.assertTrue(any(r.startswith("250") and "2.0.0" in r for r in replies[-3:]), out)
        self.assertTrue(replies[-1].startswith("221"), out)
        msgs = sink.wait_for(2)
        self.assertEqual(len(msgs), 2)
        via = [m for m in msgs if m.path != direct.path][0]
        self.assertEqual(via.rcpts, ["<bob@example.net>"])
        self.assertEqual(via.helo, "swaks.example")
        self.assertTrue(via.content.startswith(sink_form(MESSAGE)), via.content)
        self.assertEqual(via.content, direct.content)

    def test_swaks_pipelined(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        rc, out = run_swaks(["--server", LOOPBACK, "--port", dg.port, "--from", "a@example.org",
                             "--to", "b@example.net,c@example.net", "--pipeline",
                             "--header", "Subject: pipelined"])
        self.assertEqual(rc, 0, out)
        self.assertNotIn("PIPELINING not advertised", out)
        msgs = sink.wait_for(1)
        self.assertEqual(msgs[0].rcpts, ["<b@example.net>", "<c@example.net>"])
        self.assertIn(b"Subject: pipelined\n", msgs[0].content)

    def test_multi_recipient(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        rcpts = ["r%d@example.net" % i for i in range(5)]
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=10) as s:
            self.assertEqual(s.sendmail("a@example.org", rcpts, MESSAGE), {})
        msgs = sink.wait_for(1)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0].rcpts, ["<%s>" % r for r in rcpts])
        self.assertEqual(msgs[0].content, sink_form(MESSAGE))

    def test_two_messages_one_session(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=10) as s:
            s.sendmail("a@example.org", ["one@example.net"], b"Subject: 1\r\n\r\none\r\n")
            s.sendmail("a@example.org", ["two@example.net"], b"Subject: 2\r\n\r\ntwo\r\n")
        msgs = sink.wait_for(2)
        self.assertEqual(len(msgs), 2)
        self.assertEqual(sorted(m.rcpts[0] for m in msgs), ["<one@example.net>", "<two@example.net>"])

    def test_rset_noop_help(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("NOOP"), 250)
        # HELP is relayed (smtp-sink does not know it) or answered by dotgate: a valid reply,
        # and the session goes on
        self.assertValidReply(c.converse("HELP"))
        self.assertReply(c.converse("MAIL FROM:<dropped@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<dropped@example.net>"), 250)
        self.assertReply(c.converse("RSET"), 250)
        # after RSET a new transaction: only it is delivered
        replies = c.send_message("kept@example.org", ["kept@example.net"], b"Subject: kept\r\n\r\nbody\r\n",
                                 ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
        self.assertReply(c.converse("QUIT"), 221)
        self.assertClosed(c)
        msgs = sink.wait_for(1)
        self.assertEqual(len(sink.settle(0.3)), 1)
        self.assertEqual(msgs[0].mail, "<kept@example.org>")
        self.assertEqual(msgs[0].rcpts, ["<kept@example.net>"])

    def test_vrfy_252_and_expn_502_answered_by_dotgate(self):
        fake = self.fake()
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("VRFY postmaster"), 252, "2.5.0")
        self.assertReply(c.converse("EXPN staff"), 502, "5.5.1")
        self.assertReply(c.converse("QUIT"), 221)
        fake.wait_closed(1)
        cmds = [l.split(" ")[0].upper() for l in fake.commands()]
        self.assertNotIn("VRFY", cmds, "VRFY must be answered by dotgate, not relayed")
        self.assertNotIn("EXPN", cmds, "EXPN must be answered by dotgate, not relayed")
        self.assertEqual(fake.messages(), [])

    def test_vrfy_502_when_configured(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"vrfy": 502}})
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("VRFY postmaster"), 502, "5.5.1")
        self.assertReply(c.converse("EXPN staff"), 502, "5.5.1")
        # the session goes on
        self.assertReply(c.converse("NOOP"), 250)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: v\r\n\r\nv\r\n", ehlo=False)
        self.assertEqual(replies[-1].code, 250)
        self.assertEqual(len(sink.wait_for(1)), 1)

    def test_help(self):
        fake = self.fake({"rules": [{"command": "HELP", "reply": ["214-2.0.0 fake help", "214 2.0.0 end"]}]})
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("HELP"), 214)
        self.assertReply(c.converse("NOOP"), 250)

    def test_unknown_command_relayed(self):
        fake = self.fake({"rules": [{"command": "XYZZY", "reply": "502 5.5.2 fake says: no xyzzy here"}]})
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        r = c.converse("XYZZY plugh")
        self.assertReply(r, 502, "5.5.2")
        self.assertIn("no xyzzy here", r.text, "the downstream's own refusal must come back")
        self.assertIn("XYZZY plugh", fake.commands())
        self.assertReply(c.converse("NOOP"), 250)

    def test_unknown_command_smtp_sink(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        r = c.converse("FROBNICATE now")
        self.assertEqual(r.code // 100, 5, r)
        self.assertValidReply(r)
        self.assertReply(c.converse("QUIT"), 221)
        self.assertNoMessage(sink)

    def test_helo_then_message(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.converse("HELO old.example"), 250)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: helo\r\n\r\nx\r\n", ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
        msgs = sink.wait_for(1)
        self.assertEqual(msgs[0].helo, "old.example")

    def test_quit_221_and_close(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.converse("QUIT"), 221)
        self.assertClosed(c)
        self.assertNoMessage(sink, settle=0.1)

    def test_no_small_write_stalls(self):
        """TCP_NODELAY on both sides: 20 EHLO/NOOP round trips cannot take 40 ms each."""
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        t0 = time.monotonic()
        for _ in range(20):
            self.assertReply(c.ehlo(), 250)
            self.assertReply(c.converse("NOOP"), 250)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 0.8, "40 round trips took %.2fs: Nagle/delayed-ACK stalls?" % elapsed)

    def test_ipv6_loopback(self):
        try:
            with socket.socket(socket.AF_INET6) as s:
                s.bind(("::1", 0))
        except OSError:
            self.skipTest("::1 is not configured on this host")
        sink = self.sink(host="::1")
        dg = self.dotgate(sink.port, downstream_host="::1", listen_host="::1")
        with smtplib.SMTP("::1", dg.port, timeout=10) as s:
            self.assertEqual(s.sendmail("a@example.org", ["b@example.net"], MESSAGE), {})
        msgs = sink.wait_for(1)
        self.assertEqual(msgs[0].content, sink_form(MESSAGE))


if __name__ == "__main__":
    main()
