#!/usr/bin/env python3
"""test/integration/test_workers.py — several worker loops on one port (SO_REUSEPORT).

Covers issue 3 "Workers": with --workers 2 (and workers: 2 in the config) concurrent smtplib
clients are all relayed, each message intact at the sink, and /metrics sums the workers' counters.
Each worker's thread is named dotgate-wN (test/bench/relay_cores.sh and `top -H` tell them apart by
it), one per worker.
"""

import concurrent.futures
import glob
import smtplib

from harness import IntegrationTest, LOOPBACK, main, metric, sink_form

N = 24


def send(port, i):
    body = b"Subject: worker %d\r\nX-Seq: %d\r\n\r\nbody of message %d\r\n" % (i, i, i)
    with smtplib.SMTP(LOOPBACK, port, timeout=15) as s:
        s.sendmail("w%d@example.org" % i, ["r%d@example.net" % i], body)
    return body


class WorkersTest(IntegrationTest):

    def run_many(self, dg, sink):
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            bodies = list(pool.map(lambda i: send(dg.port, i), range(N), timeout=60))
        msgs = sink.wait_for(N, timeout=20)
        self.assertEqual(len(msgs), N)
        by_rcpt = {m.rcpts[0]: m for m in msgs}
        for i, body in enumerate(bodies):
            m = by_rcpt["<r%d@example.net>" % i]
            self.assertEqual(m.mail.split(" ")[0], "<w%d@example.org>" % i)
            self.assertEqual(m.content, sink_form(body))
        self.assertEqual(metric(dg.metrics(), "dotgate_transactions_total", outcome="accepted"), N)
        self.assertEqual(metric(dg.metrics(), "dotgate_connections_total"), N)

    def test_workers_2_command_line(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, args=["--workers", "2"])
        self.run_many(dg, sink)

    def test_worker_threads_named(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, workers=3)
        names = []
        for comm in glob.glob("/proc/%d/task/*/comm" % dg.proc.pid):
            with open(comm) as f:
                names.append(f.read().strip())
        self.assertEqual(sorted(n for n in names if n.startswith("dotgate-w")),
                         ["dotgate-w0", "dotgate-w1", "dotgate-w2"], names)
        self.run_many(dg, sink)

    def test_workers_2_config(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, workers=2)
        self.run_many(dg, sink)


if __name__ == "__main__":
    main()
