#!/usr/bin/env python3
"""test/integration/test_smuggling.py — SMTP smuggling (the 2023 disclosure) cannot pass dotgate.

Covers issue 3 "Hostile and broken input" / DESIGN invariant 3: no end-of-data variant
(`\\n.\\n`, `\\r.\\r`, `\\r\\n.\\n`, `\\n.\\r\\n`, `\\r\\n.\\r`, `\\r\\n\\x00.\\r\\n` and the other
combinations) ends the message at dotgate or downstream. Each is followed by a smuggled
`MAIL FROM:<evil@x>` / `RCPT TO:<victim@y>` / `DATA` / message, then the real CRLF.CRLF.
The downstream must get exactly ONE message containing the smuggled text, never a second one;
checked against smtp-sink and against fake_mta.py in lenient mode, which ends DATA at any of these
variants as a vulnerable MTA does (so anything that leaks through raw shows up as a 2nd message).
With bare_line_ending "reject" the variants with bare CR/LF are refused (550 5.6.0), nothing passes.
"""

import time

from harness import ConnectionClosed, IntegrationTest, main

ENDINGS = [b"\r\n", b"\n", b"\r"]
VARIANTS = [pre + b"." + post for pre in ENDINGS for post in ENDINGS if (pre, post) != (b"\r\n", b"\r\n")]
VARIANTS += [b"\r\n\x00.\r\n", b"\r\n.\x00\r\n", b"\n\x00.\n", b"\r\n.\r\r\n", b"\r\n.\n\r\n"]

SMUGGLED = (b"MAIL FROM:<evil@x>\r\n"
            b"RCPT TO:<victim@y>\r\n"
            b"DATA\r\n"
            b"From: <evil@x>\r\n"
            b"Subject: smuggled\r\n"
            b"\r\n"
            b"smuggled body\r\n")


def has_bare(variant):
    return b"\r\n" not in variant or variant.replace(b"\r\n", b"").strip(b".\x00") != b""


class SmugglingTest(IntegrationTest):

    def send_variant(self, dg, variant, chunk=None):
        """One session: a message with `variant` + smuggled commands inside, then CRLF.CRLF, QUIT.
        Returns every reply after the 354."""
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("MAIL FROM:<alice@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<bob@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        wire = b"Subject: carrier\r\n\r\nlegit body" + variant + SMUGGLED + b"\r\n.\r\nQUIT\r\n"
        if chunk:
            for i in range(0, len(wire), chunk):
                c.send(wire[i:i + chunk])
                time.sleep(0.001)
        else:
            c.send(wire)
        replies = []
        for _ in range(10):
            try:
                replies.append(c.read_reply(timeout=10))
            except ConnectionClosed:
                break
        c.close()
        return replies

    def check_normalise(self, downstream, dg, variant, before, chunk=None):
        replies = self.send_variant(dg, variant, chunk)
        self.assertEqual([r.code for r in replies], [250, 221],
                         "%r: the client must see one 250 for the message, then 221: %r" % (variant, replies))
        got = downstream.wait_for(before + 1)
        time.sleep(0.2)
        got = downstream.messages()
        self.assertEqual(len(got), before + 1, "%r: the downstream got %d messages, expected exactly one"
                         % (variant, len(got) - before))
        return got[-1]

    def test_variants_smtp_sink(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        for n, variant in enumerate(VARIANTS):
            with self.subTest(variant=variant):
                m = self.check_normalise(sink, dg, variant, n)
                self.assertEqual(m.mail, "<alice@example.org>")
                self.assertEqual(m.rcpts, ["<bob@example.net>"])
                self.assertIn(b"MAIL FROM:<evil@x>", m.content)
                self.assertIn(b"smuggled body", m.content)
        for m in sink.messages():
            self.assertNotIn("evil", m.mail or "")

    def test_variants_vulnerable_downstream(self):
        fake = self.fake({"lenient_dot": True})
        dg = self.dotgate(fake.port)
        for n, variant in enumerate(VARIANTS):
            with self.subTest(variant=variant):
                m = self.check_normalise(fake, dg, variant, n)
                self.assertEqual(m["mail"], "MAIL FROM:<alice@example.org>")
                self.assertIn(b"MAIL FROM:<evil@x>", m["data"])
                self.assertIn(b"smuggled body", m["data"])
        evil = [l for l in fake.commands() if "evil" in l]
        self.assertEqual(evil, [], "smuggled commands reached the downstream as commands")

    def test_variants_split_byte_by_byte(self):
        fake = self.fake({"lenient_dot": True})
        dg = self.dotgate(fake.port)
        for n, variant in enumerate([b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r\n\x00.\r\n"]):
            with self.subTest(variant=variant):
                m = self.check_normalise(fake, dg, variant, n, chunk=1)
                self.assertIn(b"smuggled body", m["data"])
        self.assertEqual([l for l in fake.commands() if "evil" in l], [])

    def test_variants_reject_mode(self):
        fake = self.fake({"lenient_dot": True})
        dg = self.dotgate(fake.port, {"smtp": {"bare_line_ending": "reject"}})
        delivered = 0
        for variant in VARIANTS:
            with self.subTest(variant=variant):
                replies = self.send_variant(dg, variant)
                self.assertGreaterEqual(len(replies), 1, replies)
                if has_bare(variant):
                    self.assertReply(replies[0], 550, "5.6.0")
                else:
                    self.assertIn(replies[0].code, (250, 550), replies)
                    delivered += replies[0].code == 250
                self.assertEqual([r.code for r in replies[1:]], [221], replies)
                time.sleep(0.2)
                self.assertEqual(len(fake.messages()), delivered)
        self.assertEqual([l for l in fake.commands() if "evil" in l], [])


if __name__ == "__main__":
    main()
