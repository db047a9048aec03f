#!/usr/bin/env python3
"""test/integration/test_pipelining.py — RFC 2920 pipelining and "never ahead of the downstream".

Covers issue 3 "Pipelining" and "Never ahead of the downstream": MAIL+RCPT+RCPT+DATA in one packet
gets its replies in order; a whole conversation split at every byte position gives the same
replies and the same message at the sink each time, with smtp-sink pipelining and without (-p);
dotgate's 354 never precedes the downstream's (smtp-sink -w delays it); the downstream's 4xx/5xx to
MAIL, RCPT, DATA and the dot reach the client.
"""

import concurrent.futures
import time

from harness import ConnectionClosed, IntegrationTest, RawClient, main, sink_form

BODY = b"Subject: split\r\n\r\n.dot line\r\nbody\r\n"
CONVERSATION = (b"EHLO split.example\r\n"
                b"MAIL FROM:<a@example.org>\r\n"
                b"RCPT TO:<b@example.net>\r\n"
                b"RCPT TO:<c@example.net>\r\n"
                b"DATA\r\n"
                b"Subject: split\r\n\r\n..dot line\r\nbody\r\n.\r\n"
                b"QUIT\r\n")


def run_split(port, split, pause=0.01, timeout=10.0):
    """One session: greeting, the conversation in two writes cut at `split`, all replies to close."""
    c = RawClient(port, timeout=timeout)
    try:
        greeting = c.read_reply()
        if split > 0:
            c.send(CONVERSATION[:split])
            time.sleep(pause)  # TCP_NODELAY + a pause: the two writes arrive as two reads
        c.send(CONVERSATION[split:])
        replies = []
        for _ in range(20):
            try:
                replies.append(c.read_reply())
            except ConnectionClosed:
                break
        return greeting, replies
    finally:
        c.close()


class PipeliningTest(IntegrationTest):

    def test_mail_rcpt_rcpt_data_in_one_packet(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\nDATA\r\n")
        replies = c.read_replies(4)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354], replies)
        c.send(b"Subject: pipe\r\n\r\nbody\r\n.\r\nQUIT\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.read_reply(), 221)
        self.assertClosed(c)
        msgs = sink.wait_for(1)
        self.assertEqual(msgs[0].rcpts, ["<b@example.net>", "<c@example.net>"])
        self.assertEqual(msgs[0].content, sink_form(b"Subject: pipe\r\n\r\nbody\r\n"))

    def test_rset_pipelined_before_the_next_transaction_does_not_wipe_it(self):
        """RSET and the next MAIL in one packet: the RSET's 250 comes back after the MAIL was
        relayed; it must end the old transaction, not the new one (here: its PRDR, its sender)."""
        sink = self.sink()
        dg = self.dotgate(sink.port, {"log": {"format": "json", "level": "info"}})
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        # a first transaction, abandoned after its recipient
        c.send(b"MAIL FROM:<old@example.org>\r\nRCPT TO:<old@example.net>\r\n")
        self.assertEqual([r.code for r in c.read_replies(2)], [250, 250])
        c.send(b"RSET\r\nMAIL FROM:<a@example.org> PRDR\r\nRCPT TO:<b@example.net>\r\n"
               b"RCPT TO:<c@example.net>\r\nDATA\r\n")
        replies = c.read_replies(5)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 250, 354], replies)
        c.send(b"Subject: pipe\r\n\r\nbody\r\n.\r\n")
        after_dot = c.read_replies(4)
        self.assertEqual([r.code for r in after_dot], [353, 250, 250, 250],
                         "the PRDR transaction after a pipelined RSET: %r" % [r.raw for r in after_dot])
        msgs = sink.wait_for(1)
        self.assertEqual(msgs[0].mail.split(" ")[0], "<a@example.org>")
        self.assertEqual(msgs[0].rcpts, ["<b@example.net>", "<c@example.net>"], "not the abandoned recipient")
        line = dg.wait_log(r'"msg":"transaction"')[-1]
        self.assertIn('"from":"a@example.org"', line)
        self.assertRegex(line, r'"queue_id":"[0-9A-Za-z]+"')

    def test_pipelined_replies_in_order_with_refusals(self):
        fake = self.fake({"rules": [
            {"command": "RCPT", "nth": 2, "reply": "550 5.1.1 <bad@example.net>: unknown user"},
            {"command": "RCPT", "nth": 3, "delay": 0.3, "reply": "250 2.1.5 third ok"},
        ]})
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        c.send(b"EHLO x.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\n"
               b"RCPT TO:<bad@example.net>\r\nRCPT TO:<d@example.net>\r\nDATA\r\n")
        replies = c.read_replies(6)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 550, 250, 354], replies)
        self.assertIn("bad@example.net", replies[3].text)
        self.assertIn("third ok", replies[4].text)
        c.send(b"Subject: x\r\n\r\ny\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)
        msgs = fake.wait_for(1)
        self.assertEqual(msgs[0]["rcpts"], ["RCPT TO:<b@example.net>", "RCPT TO:<bad@example.net>",
                                            "RCPT TO:<d@example.net>"])

    def every_split(self, sink):
        dg = self.dotgate(sink.port)
        ref_greeting, ref = run_split(dg.port, 0)
        self.assertEqual([r.code for r in ref], [250, 250, 250, 250, 354, 250, 221], ref)
        splits = list(range(1, len(CONVERSATION)))
        failures = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
            futures = {pool.submit(run_split, dg.port, k): k for k in splits}
            for fut in concurrent.futures.as_completed(futures, timeout=120):
                k = futures[fut]
                try:
                    greeting, replies = fut.result()
                except Exception as e:  # noqa: BLE001 — reported with the split position
                    failures.append((k, "exception %r" % e))
                    continue
                if greeting.raw != ref_greeting.raw:
                    failures.append((k, "greeting %r" % greeting.raw))
                if [r.raw for r in replies] != [r.raw for r in ref]:
                    failures.append((k, [r.raw for r in replies]))
        self.assertEqual(failures, [], "splits whose replies differ from the unsplit run "
                         "(expected %r)" % [r.raw for r in ref])
        msgs = sink.wait_for(len(splits) + 1, timeout=20)
        time.sleep(0.3)
        msgs = sink.messages()
        self.assertEqual(len(msgs), len(splits) + 1)
        for m in msgs:
            self.assertEqual(m.mail, "<a@example.org>")
            self.assertEqual(m.rcpts, ["<b@example.net>", "<c@example.net>"])
            self.assertEqual(m.helo, "split.example")
            self.assertEqual(m.content, sink_form(BODY))

    def test_every_split_position(self):
        self.every_split(self.sink())

    def test_every_split_position_downstream_without_pipelining(self):
        self.every_split(self.sink("-p"))

    def test_one_packet_downstream_without_pipelining(self):
        sink = self.sink("-p", "-W", "rcpt:1")
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        r = c.ehlo()
        self.assertIn("PIPELINING", r.keywords())
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nRCPT TO:<c@example.net>\r\n"
               b"NOOP\r\nRCPT TO:<d@example.net>\r\nDATA\r\n")
        replies = c.read_replies(6)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 250, 250, 354], replies)
        c.send(b"Subject: nopipe\r\n\r\nbody\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)
        msgs = sink.wait_for(1)
        self.assertEqual(msgs[0].rcpts, ["<b@example.net>", "<c@example.net>", "<d@example.net>"])

    def test_no_354_before_the_downstream(self):
        """fake_mta answers MAIL and RCPT at once and DATA after 1.5 s: the 354 waits for it."""
        delay = 1.5
        fake = self.fake({"rules": [{"command": "DATA", "delay": delay}]})
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        t0 = time.monotonic()
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        r1, r2 = c.read_replies(2)
        t_rcpt = time.monotonic() - t0
        self.assertEqual((r1.code, r2.code), (250, 250))
        r3 = c.read_reply(timeout=10)
        t_data = time.monotonic() - t0
        self.assertReply(r3, 354)
        self.assertLess(t_rcpt, delay - 0.5, "MAIL/RCPT replies were held back behind DATA")
        self.assertGreaterEqual(t_data, delay - 0.05, "354 came %.2fs after DATA, before the downstream's" % t_data)
        c.send(b"Subject: late\r\n\r\nx\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertEqual(len(fake.wait_for(1)), 1)

    def test_no_354_before_the_downstream_smtp_sink(self):
        delay = 2  # smtp-sink -w takes whole seconds
        sink = self.sink("-w", delay)
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        t0 = time.monotonic()
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        replies = c.read_replies(3, timeout=10)
        t_data = time.monotonic() - t0
        self.assertEqual([r.code for r in replies], [250, 250, 354])
        self.assertGreaterEqual(t_data, delay - 0.05, "354 came %.2fs after DATA, before the downstream's" % t_data)
        c.send(b"Subject: late\r\n\r\nx\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertEqual(len(sink.wait_for(1)), 1)

    def test_data_354_not_given_when_downstream_refuses_data(self):
        sink = self.sink("-f", "data")
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        c.send(b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n")
        replies = c.read_replies(3)
        self.assertEqual([r.code for r in replies], [250, 250, 500], replies)
        self.assertEqual(replies[2].enhanced, "5.3.0")
        # the session goes on
        self.assertReply(c.converse("NOOP"), 250)
        self.assertNoMessage(sink)

    def test_downstream_mail_tempfail_reaches_client(self):
        sink = self.sink("-r", "mail")
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 450, "4.3.0")
        self.assertReply(c.converse("QUIT"), 221)
        self.assertNoMessage(sink)

    def test_downstream_rcpt_reject_reaches_client(self):
        sink = self.sink("-f", "rcpt")
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 500, "5.3.0")
        r = c.converse("DATA")
        self.assertEqual(r.code // 100, 5, r)
        self.assertNoMessage(sink)

    def test_downstream_dot_reject_reaches_client(self):
        fake = self.fake({"rules": [{"command": ".", "reply": "554 5.7.1 fake: content rejected"}]})
        dg = self.dotgate(fake.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\ny\r\n")
        self.assertReply(replies[-1], 554, "5.7.1")
        self.assertIn("content rejected", replies[-1].text)
        self.assertReply(c.converse("NOOP"), 250)

    def test_downstream_dot_tempfail_reaches_client(self):
        sink = self.sink("-r", ".")
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: x\r\n\r\ny\r\n")
        self.assertEqual(replies[-1].code, 450, replies[-1])
        self.assertValidReply(replies[-1])


if __name__ == "__main__":
    main()
