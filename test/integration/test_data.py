#!/usr/bin/env python3
"""test/integration/test_data.py — DATA: dot-stuffing, size, line length, bare line endings, spool.

Covers issue 3 "DATA" and part of "Hostile and broken input": dot-stuffing preserved byte for byte
(fake_mta.py records the wire bytes, smtp-sink shows what an MTA makes of them); a message over
max_message_size → 552 5.3.4 and nothing downstream; MAIL FROM SIZE= over the limit → 552 5.3.4;
a refused message followed by a delivered one in the same session (a fresh downstream connection);
text lines over max_line_length → 5xx at the dot and nothing relayed, a raised limit lets a
5000-octet line through; bare LF / bare CR normalised to CRLF with correct dot-stuffing, or refused
with 550 5.6.0; a message larger than the spool's memory threshold arrives intact.
"""

import smtplib

from harness import IntegrationTest, LOOPBACK, main, sink_form, stuff

DOTS = (b"Subject: dots\r\n"
        b"\r\n"
        b".\r\n"
        b"..\r\n"
        b"...\r\n"
        b". leading dot and space\r\n"
        b".leading dot\r\n"
        b"middle . dot\r\n"
        b"trailing dot.\r\n"
        b"\r\n"
        b".\r\n")


class DataTest(IntegrationTest):

    def transaction(self, dg, body_wire, mail="a@example.org", rcpts=("b@example.net",), mail_params=""):
        """EHLO, MAIL, RCPT*, DATA, then `body_wire` sent as is (it must end the data itself)."""
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        r = c.converse("MAIL FROM:<%s>%s" % (mail, mail_params))
        if r.code != 250:
            return c, r
        for rcpt in rcpts:
            self.assertReply(c.converse("RCPT TO:<%s>" % rcpt), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(body_wire)
        return c, c.read_reply()

    def test_dot_stuffing_byte_for_byte(self):
        fake = self.fake()
        dg = self.dotgate(fake.port)
        c, r = self.transaction(dg, stuff(DOTS) + b".\r\n")
        self.assertReply(r, 250)
        self.assertEqual(fake.wait_for(1)[0]["data"], stuff(DOTS))

    def test_dot_stuffing_at_smtp_sink(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=10) as s:
            self.assertEqual(s.sendmail("a@example.org", ["b@example.net"], DOTS), {})
        self.assertEqual(sink.wait_for(1)[0].content, sink_form(DOTS))

    def test_empty_body(self):
        fake = self.fake()
        dg = self.dotgate(fake.port)
        c, r = self.transaction(dg, b".\r\n")
        self.assertReply(r, 250)
        self.assertEqual(fake.wait_for(1)[0]["data"], b"")

    def test_message_over_max_size(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_message_size": 10000}})
        body = b"Subject: big\r\n\r\n" + (b"x" * 78 + b"\r\n") * 200  # 16 KB
        c, r = self.transaction(dg, body + b".\r\n")
        self.assertReply(r, 552, "5.3.4")
        self.assertNoMessage(sink)
        # the session goes on
        self.assertReply(c.converse("NOOP"), 250)

    def test_size_limit_boundary_passes(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_message_size": 10000}})
        body = b"Subject: small\r\n\r\n" + (b"y" * 78 + b"\r\n") * 100  # 8 KB
        c, r = self.transaction(dg, body + b".\r\n")
        self.assertReply(r, 250)
        self.assertEqual(sink.wait_for(1)[0].content, sink_form(body))

    def test_mail_size_parameter_over_limit(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_message_size": 10000}})
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        r = c.ehlo()
        self.assertIn("SIZE", r.keywords())
        self.assertReply(c.converse("MAIL FROM:<a@example.org> SIZE=20000"), 552, "5.3.4")
        # a smaller declaration works in the same session
        self.assertReply(c.converse("MAIL FROM:<a@example.org> SIZE=500"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(b"Subject: s\r\n\r\nsmall\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)
        msgs = sink.wait_for(1)
        self.assertEqual(len(sink.settle(0.3)), 1)
        self.assertEqual(msgs[0].content, b"Subject: s\n\nsmall\n")

    def test_refused_message_then_second_transaction_delivered(self):
        fake = self.fake()
        dg = self.dotgate(fake.port, {"smtp": {"max_message_size": 5000}})
        big = b"Subject: big\r\n\r\n" + (b"z" * 98 + b"\r\n") * 100
        c, r = self.transaction(dg, big + b".\r\n")
        self.assertReply(r, 552, "5.3.4")
        # the downstream transaction was aborted: its connection closed before any dot
        fake.wait_closed(1, timeout=5)
        self.assertEqual(fake.messages(), [])
        self.assertNotIn(".", fake.commands(1))
        small = b"Subject: second\r\n\r\nsecond message\r\n"
        self.assertReply(c.converse("MAIL FROM:<second@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(small + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        msgs = fake.wait_for(1)
        self.assertEqual(len(msgs), 1)
        self.assertEqual(msgs[0]["data"], small)
        self.assertEqual(msgs[0]["mail"], "MAIL FROM:<second@example.org>")
        self.assertEqual(msgs[0]["conn"], 2, "the second transaction must use a fresh downstream connection")
        # greeting consumed, EHLO replayed on the fresh connection
        self.assertEqual(fake.commands(2)[0].split(" ")[0].upper(), "EHLO")

    def test_refused_message_then_second_transaction_smtp_sink(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_message_size": 5000}})
        big = b"Subject: big\r\n\r\n" + (b"z" * 98 + b"\r\n") * 100
        c, r = self.transaction(dg, big + b".\r\n")
        self.assertReply(r, 552, "5.3.4")
        self.assertEqual(sink.settle(0.5), [])
        replies = c.send_message("second@example.org", ["b@example.net"], b"Subject: 2\r\n\r\nok\r\n", ehlo=False)
        self.assertEqual([x.code for x in replies], [250, 250, 354, 250])
        msgs = sink.wait_for(1)
        self.assertEqual(len(sink.settle(0.3)), 1)
        self.assertEqual(msgs[0].mail, "<second@example.org>")
        self.assertEqual(msgs[0].helo, "client.example", "EHLO not replayed on the fresh connection")

    def test_data_line_over_max_line_length(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        body = b"Subject: long\r\n\r\n" + b"L" * 2000 + b"\r\nshort\r\n"
        c, r = self.transaction(dg, body + b".\r\n")
        self.assertEqual(r.code // 100, 5, r)
        self.assertValidReply(r)
        self.assertReply(r, 550, "5.6.0")
        self.assertNoMessage(sink)
        self.assertReply(c.converse("NOOP"), 250)

    def test_data_line_at_rfc_limit_passes(self):
        fake = self.fake()
        dg = self.dotgate(fake.port)
        body = b"Subject: 998\r\n\r\n" + b"M" * 998 + b"\r\n"  # 1000 octets with CRLF (RFC 5321 4.5.3.1.6)
        c, r = self.transaction(dg, body + b".\r\n")
        self.assertReply(r, 250)
        self.assertEqual(fake.wait_for(1)[0]["data"], body)

    def test_raised_max_line_length_5000_octet_line(self):
        fake = self.fake()
        dg = self.dotgate(fake.port, {"smtp": {"max_line_length": 10000}})
        body = b"Subject: wide\r\n\r\n" + b"W" * 5000 + b"\r\n"
        c, r = self.transaction(dg, body + b".\r\n")
        self.assertReply(r, 250)
        self.assertEqual(fake.wait_for(1)[0]["data"], body)

    def test_bare_lf_normalised(self):
        fake = self.fake()
        dg = self.dotgate(fake.port)
        # ".stuffed" starts a line after CRLF: the client's own stuffing, relayed as is
        wire = b"Subject: lf\n\nline one\nline two\r\n.stuffed\nafter lf\n"
        c, r = self.transaction(dg, wire + b"\r\n.\r\n")
        self.assertReply(r, 250)
        data = fake.wait_for(1)[0]["data"]
        self.assertNotRegex(data, rb"(?<!\r)\n", "a bare LF reached the downstream: %r" % data)
        self.assertEqual(data, b"Subject: lf\r\n\r\nline one\r\nline two\r\n.stuffed\r\nafter lf\r\n\r\n")

    def test_bare_lf_then_dot_line_never_a_lone_dot_downstream(self):
        """After normalisation no line downstream is a lone "." before the real end."""
        fake = self.fake()
        dg = self.dotgate(fake.port)
        wire = b"Subject: lf\r\n\r\nabove\n.\nbelow\r\n"
        c, r = self.transaction(dg, wire + b".\r\n")
        self.assertReply(r, 250)
        data = fake.wait_for(1)[0]["data"]
        self.assertNotIn(b"\r\n.\r\n", b"\r\n" + data, "a lone dot line reached the downstream: %r" % data)
        self.assertIn(b"below\r\n", data)
        self.assertEqual(len(fake.messages()), 1)

    def test_bare_lf_normalised_smtp_sink(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c, r = self.transaction(dg, b"Subject: lf\n\nalpha\nbeta\r\n.\r\n")
        self.assertReply(r, 250)
        self.assertEqual(sink.wait_for(1)[0].content, b"Subject: lf\n\nalpha\nbeta\n")

    def test_bare_cr_normalised(self):
        fake = self.fake()
        dg = self.dotgate(fake.port)
        wire = b"Subject: cr\r\n\r\nbefore\rafter\r\n.dot after cr\rnext\r\n"
        c, r = self.transaction(dg, wire + b".\r\n")
        self.assertReply(r, 250)
        data = fake.wait_for(1)[0]["data"]
        self.assertNotRegex(data, rb"\r(?!\n)", "a bare CR reached the downstream: %r" % data)
        self.assertNotRegex(data, rb"(?<!\r)\n", "a bare LF reached the downstream: %r" % data)
        self.assertIn(b"before\r\nafter\r\n", data)

    def test_bare_line_ending_reject(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"bare_line_ending": "reject"}})
        c, r = self.transaction(dg, b"Subject: lf\n\nbare lf\r\n.\r\n")
        self.assertReply(r, 550, "5.6.0")
        self.assertNoMessage(sink)
        # next transaction in the same session, clean, is delivered
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: clean\r\n\r\nok\r\n", ehlo=False)
        self.assertEqual(replies[-1].code, 250)
        self.assertEqual(sink.wait_for(1)[0].content, b"Subject: clean\n\nok\n")

    def test_bare_cr_reject(self):
        fake = self.fake()
        dg = self.dotgate(fake.port, {"smtp": {"bare_line_ending": "reject"}})
        c, r = self.transaction(dg, b"Subject: cr\r\n\r\nbare\rcr\r\n.\r\n")
        self.assertReply(r, 550, "5.6.0")
        self.assertNoMessage(fake)

    def test_large_message_spooled_to_disk(self):
        fake = self.fake()
        dg = self.dotgate(fake.port, {"spool": {"memory_threshold": 65536}})
        body = b"Subject: large\r\n\r\n" + b"".join(b"%07d " % i + b"." * 70 + b"\r\n" for i in range(8000))
        body += b".starts with a dot\r\n"
        c, r = self.transaction(dg, stuff(body) + b".\r\n")
        self.assertReply(r, 250)
        self.assertEqual(fake.wait_for(1)[0]["data"], stuff(body))


if __name__ == "__main__":
    main()
