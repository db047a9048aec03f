#!/usr/bin/env python3
"""test/integration/test_admin.py — the admin HTTP port: probes, metrics, malformed requests.

Covers issue 3 "Admin HTTP": /healthz and /readyz answer 200; /metrics is Prometheus text with
the families dotgate_connections_open, _connections_total, _connections_refused_total,
_transactions_total{outcome}, _downstream_errors_total{reason}, _bytes_relayed_total{direction},
_replies_total{class}, and its counters go up after a message; malformed HTTP gets 400 and never
disturbs an SMTP session in progress.
"""

import socket
import time

from harness import IntegrationTest, LOOPBACK, main, metric

FAMILIES = ["dotgate_connections_open", "dotgate_connections_total", "dotgate_connections_refused_total",
            "dotgate_transactions_total", "dotgate_downstream_errors_total", "dotgate_bytes_relayed_total",
            "dotgate_replies_total"]


def raw_http(port, request, timeout=5.0):
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as s:
        s.sendall(request)
        out = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = s.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            out += data
            if b"\r\n\r\n" in out and len(out) > 12:
                head = out.split(b"\r\n\r\n", 1)[0].lower()
                if b"content-length: 0" in head or b"connection: close" in head:
                    continue
        return out


class AdminTest(IntegrationTest):

    def test_probes(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        self.assertEqual(dg.http("/healthz")[0], 200)
        self.assertEqual(dg.http("/readyz")[0], 200)
        self.assertEqual(dg.http("/no-such-page")[0], 404)

    def test_metrics_families_and_counts(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_message_size": 5000}})
        status, body = dg.http("/metrics")
        self.assertEqual(status, 200)
        for fam in FAMILIES:
            self.assertRegex(body, r"(?m)^# TYPE %s (counter|gauge)$" % fam)
        before = dg.metrics()
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        time.sleep(0.1)
        self.assertGreaterEqual(metric(dg.metrics(), "dotgate_connections_open"), 1)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: m\r\n\r\n" + (b"x" * 98 + b"\r\n") * 10)
        self.assertEqual(replies[-1].code, 250)
        big = b"Subject: big\r\n\r\n" + (b"y" * 98 + b"\r\n") * 100
        replies = c.send_message("a@example.org", ["b@example.net"], big, ehlo=False)
        self.assertReply(replies[-1], 552, "5.3.4")
        self.assertReply(c.converse("QUIT"), 221)
        self.assertClosed(c)
        self.assertEqual(len(sink.wait_for(1)), 1)
        time.sleep(0.2)
        after = dg.metrics()

        def delta(name, **labels):
            return (metric(after, name, **labels) or 0) - (metric(before, name, **labels) or 0)

        self.assertEqual(delta("dotgate_connections_total"), 1, after)
        self.assertEqual(metric(after, "dotgate_connections_open"), 0, after)
        self.assertEqual(delta("dotgate_transactions_total", outcome="accepted"), 1, after)
        self.assertEqual(delta("dotgate_transactions_total", outcome="rejected"), 1, after)
        self.assertGreaterEqual(delta("dotgate_bytes_relayed_total"), 1000, after)
        self.assertGreaterEqual(delta("dotgate_replies_total", **{"class": "2xx"}), 5, after)
        self.assertGreaterEqual(delta("dotgate_replies_total", **{"class": "5xx"}), 1, after)

    def test_refused_connection_counted(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_connections": 1}})
        a = dg.client()
        self.assertReply(a.greeting(), 220)
        b = dg.client()
        self.assertReply(b.read_reply(), 421, "4.7.0")
        time.sleep(0.1)
        self.assertGreaterEqual(metric(dg.metrics(), "dotgate_connections_refused_total"), 1)

    def test_malformed_http_400_and_smtp_unharmed(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        for request in (b"THIS IS NOT HTTP\r\n\r\n",
                        b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: zzz\r\n\r\n",
                        b"GET / HTTP/9.9.9\r\n\r\n",
                        b"\x00\x01\x02\x03\r\n\r\n"):
            with self.subTest(request=request):
                out = raw_http(dg.admin_port, request)
                self.assertRegex(out, rb"^HTTP/1\.[01] 400 ", out)
        # the admin port still serves, SMTP goes on in the same session
        self.assertEqual(dg.http("/healthz")[0], 200)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(b"Subject: unharmed\r\n\r\nok\r\n.\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertEqual(len(sink.wait_for(1)), 1)
        self.assertTrue(dg.proc.alive())

    def test_http_on_smtp_port_is_not_fatal(self):
        sink = self.sink()
        dg = self.dotgate(sink.port)
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        r = c.converse("GET / HTTP/1.1")
        self.assertEqual(r.code // 100, 5, r)
        self.assertTrue(dg.proc.alive())
        self.assertEqual(dg.http("/healthz")[0], 200)


if __name__ == "__main__":
    main()
