#!/usr/bin/env python3
"""test/integration/test_greeting.py — the reply rewrite step: greetings, multi-line codes, EHLO list.

Covers issue 3 "Replies come back through one rewrite step": a downstream greeting is normalised by
its first digit to 220/421/554 (seed 002); every line of a multi-line reply carries one code; the
EHLO list keeps PIPELINING, SIZE, 8BITMIME, SMTPUTF8, ENHANCEDSTATUSCODES, DSN, drops CHUNKING,
BINARYMIME, STARTTLS, AUTH, XCLIENT, XFORWARD and unknown keywords, and always offers PIPELINING
and ENHANCEDSTATUSCODES. Downstreams: fake_mta.py for greetings smtp-sink cannot send, smtp-sink
-r/-f connect for the 4xx/5xx greetings it can, smtp-sink itself for its real EHLO list.
"""

from harness import IntegrationTest, main

FULL_EHLO = [
    "250-fake.example greets you",
    "250-PIPELINING",
    "250-SIZE 10240000",
    "250-8BITMIME",
    "250-SMTPUTF8",
    "250-ENHANCEDSTATUSCODES",
    "250-DSN",
    "250-STARTTLS",
    "250-CHUNKING",
    "250-BINARYMIME",
    "250-AUTH PLAIN LOGIN",
    "250-AUTH=PLAIN",
    "250-XCLIENT NAME ADDR PROTO HELO",
    "250-XFORWARD NAME ADDR PROTO HELO",
    "250-X-UNKNOWN-EXTENSION 42",
    "250 ETRN",
]

KEEP = {"PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN"}
DROP = {"STARTTLS", "CHUNKING", "BINARYMIME", "AUTH", "AUTH=PLAIN", "XCLIENT", "XFORWARD",
        "X-UNKNOWN-EXTENSION", "ETRN"}


class GreetingTest(IntegrationTest):

    def greeting_through(self, downstream_greeting, config=None):
        fake = self.fake({"greeting": downstream_greeting})
        dg = self.dotgate(fake.port, config)
        c = dg.client()
        return fake, c, c.greeting()

    def test_250_greeting_becomes_220(self):
        fake, c, g = self.greeting_through("250 hi")
        self.assertReply(g, 220)
        self.assertReply(c.ehlo(), 250)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: g\r\n\r\nx\r\n", ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
        self.assertEqual(len(fake.wait_for(1)), 1)

    def test_4xx_greeting_becomes_421(self):
        fake, c, g = self.greeting_through("450 busy")
        self.assertReply(g, 421)
        self.assertClosed(c)
        self.assertEqual(fake.messages(), [])

    def test_5xx_greeting_becomes_554(self):
        fake, c, g = self.greeting_through("550 go away")
        self.assertReply(g, 554)
        # RFC 5321 3.1: after 554 the server waits for QUIT; either way nothing is delivered
        try:
            c.send(b"MAIL FROM:<a@example.org>\r\n")
            r = c.read_reply(timeout=3)
            self.assertNotEqual(r.code // 100, 2, "a session refused at the greeting accepted MAIL: %r" % r)
        except AssertionError as e:
            if "accepted MAIL" in str(e):
                raise
        self.assertEqual(fake.messages(), [])

    def test_multiline_greeting_one_code(self):
        # hide_banner off: it would make the banner one line (test_rewrite.py covers that)
        _, c, g = self.greeting_through(["220-fake.example first", "250-second line, wrong code", "220 third"],
                                        {"rewrite": {"hide_banner": False}})
        self.assertReply(g, 220)
        self.assertEqual(len(g.lines), 3, g)

    def test_smtp_sink_soft_reject_greeting(self):
        sink = self.sink("-r", "connect")
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 421)
        self.assertClosed(c)
        self.assertNoMessage(sink)

    def test_smtp_sink_hard_reject_greeting(self):
        sink = self.sink("-f", "connect")
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 554)
        self.assertNoMessage(sink)

    def test_ehlo_list_filtered(self):
        fake = self.fake({"ehlo": FULL_EHLO})
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        r = c.ehlo()
        self.assertReply(r, 250)
        kws = set(r.keywords())
        self.assertTrue(KEEP <= kws, "missing %s in %r" % (KEEP - kws, r.raw))
        self.assertFalse(DROP & kws, "should be dropped: %s in %r" % (DROP & kws, r.raw))
        self.assertEqual(len(r.keywords()), len(kws), "duplicate keywords in %r" % r.raw)
        size = [l for l in r.lines if l[4:].upper().startswith("SIZE")]
        self.assertEqual(len(size), 1)
        # the session works after the filtered EHLO
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: e\r\n\r\nx\r\n", ehlo=False)
        self.assertEqual(replies[-1].code, 250)
        self.assertEqual(len(fake.wait_for(1)), 1)

    def test_ehlo_smtp_sink_list(self):
        """smtp-sink announces AUTH, XCLIENT and XFORWARD (and ends with an empty `250 ` line)."""
        sink = self.sink()
        direct = self.raw_client(sink.port)
        direct.greeting()
        sink_kws = set(direct.ehlo().keywords())
        direct.converse("QUIT")
        self.assertTrue({"AUTH", "XCLIENT", "XFORWARD"} <= sink_kws, sink_kws)
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        r = c.ehlo()
        self.assertReply(r, 250)
        kws = set(r.keywords())
        self.assertTrue({"PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "DSN"} <= kws, r.raw)
        self.assertFalse({"AUTH", "XCLIENT", "XFORWARD", "STARTTLS", "CHUNKING"} & kws, r.raw)
        for line in r.lines[1:]:
            self.assertTrue(line[4:].strip(), "empty EHLO line relayed: %r" % r.raw)

    def test_ehlo_always_offers_pipelining_and_enhancedstatuscodes(self):
        sink = self.sink("-p", "-E")
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        r = c.ehlo()
        self.assertReply(r, 250)
        self.assertIn("PIPELINING", r.keywords())
        self.assertIn("ENHANCEDSTATUSCODES", r.keywords())
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: p\r\n\r\nx\r\n", ehlo=False)
        self.assertEqual([x.code for x in replies], [250, 250, 354, 250])
        self.assertEqual(len(sink.wait_for(1)), 1)

    def test_ehlo_multiline_mixed_codes(self):
        fake = self.fake({"ehlo": ["250-fake.example", "251-PIPELINING", "250-8BITMIME", "250 DSN"]})
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)

    def test_multiline_rcpt_reply_one_code(self):
        fake = self.fake({"rules": [{"command": "RCPT", "reply": ["550-5.1.1 first", "551-5.1.1 second", "550 5.1.1 third"]}]})
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        r = c.converse("RCPT TO:<b@example.net>")
        self.assertEqual(r.code // 100, 5, r)
        self.assertValidReply(r)


if __name__ == "__main__":
    main()
