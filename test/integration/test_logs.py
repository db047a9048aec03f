#!/usr/bin/env python3
"""test/integration/test_logs.py — one summary line per transaction, text or JSON.

Covers issue 3 "Logs": each transaction gives exactly one line that names the client address,
the helo, the sender, each recipient, the size and the downstream reply (accepted and refused
transactions alike); with --log-format json (or log.format "json") every line is a JSON object.
"""

import json
import time

from harness import IntegrationTest, main


class LogsTest(IntegrationTest):

    def two_transactions(self, dg, sink):
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.converse("EHLO helo-token.example"), 250)
        replies = c.send_message("sender-one@example.org", ["rcpt-one@example.net", "rcpt-two@example.net"],
                                 b"Subject: log\r\n\r\nfirst\r\n", ehlo=False)
        self.assertEqual(replies[-1].code, 250)
        big = b"Subject: big\r\n\r\n" + (b"b" * 98 + b"\r\n") * 60
        replies = c.send_message("sender-two@example.org", ["rcpt-three@example.net"], big, ehlo=False)
        self.assertReply(replies[-1], 552, "5.3.4")
        self.assertReply(c.converse("QUIT"), 221)
        self.assertClosed(c)
        self.assertEqual(len(sink.wait_for(1)), 1)
        time.sleep(0.3)

    def summary_lines(self, dg, sender, rcpt):
        return [l for l in dg.log_lines() if sender in l and rcpt in l]

    def test_one_summary_line_per_transaction_text(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_message_size": 3000}})
        self.two_transactions(dg, sink)
        first = self.summary_lines(dg, "sender-one@example.org", "rcpt-one@example.net")
        self.assertEqual(len(first), 1, dg.log())
        line = first[0]
        for token in ("127.0.0.1", "helo-token.example", "rcpt-two@example.net", "250"):
            self.assertIn(token, line)
        second = self.summary_lines(dg, "sender-two@example.org", "rcpt-three@example.net")
        self.assertEqual(len(second), 1, dg.log())
        self.assertIn("552", second[0])

    def check_json(self, dg):
        lines = dg.log_lines()
        self.assertTrue(lines)
        objects = []
        for l in lines:
            try:
                obj = json.loads(l)
            except ValueError:
                self.fail("not a JSON line: %r" % l)
            self.assertIsInstance(obj, dict, l)
            objects.append(obj)
        first = [o for o in objects if "sender-one@example.org" in json.dumps(o) and "rcpt-one@example.net" in json.dumps(o)]
        self.assertEqual(len(first), 1, "\n".join(lines))
        second = [o for o in objects if "sender-two@example.org" in json.dumps(o)]
        self.assertEqual(len(second), 1, "\n".join(lines))

    def test_json_lines_command_line(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_message_size": 3000}}, args=["--log-format", "json"])
        self.two_transactions(dg, sink)
        dg.stop()
        self.check_json(dg)

    def test_json_lines_config(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_message_size": 3000}, "log": {"format": "json"}})
        self.two_transactions(dg, sink)
        self.check_json(dg)


if __name__ == "__main__":
    main()
