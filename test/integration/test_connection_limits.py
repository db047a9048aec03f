#!/usr/bin/env python3
"""test/integration/test_connection_limits.py — many sessions at once: smtp.max_connections and
the open files limit (issue 15, "10,000 concurrent sessions", at small scale).

- max_connections 50: 50 sessions are admitted, the 51st and the ones after it get 421 4.7.0 and
  a close, and nothing else degrades: every admitted session still answers and relays, and once
  they have gone new clients are admitted and their mail reaches the MTA.
- The open files limit (proxy/open_files_limit.h): dotgate started with a soft limit of 256
  raises it to the hard one, so 150 sessions (300 sockets) are all served; before, the 119th got
  421 4.4.0 (no descriptor for its downstream connection). A hard limit below what max_connections
  needs is a warning at start, on SIGHUP and from --check-config (exit 0 all the same).
The full-scale figures are test/bench/sessions.sh's.
"""

import os
import resource
import signal
import subprocess

from harness import IntegrationTest, dotgate_bin, main, metric, wait_until


class ConnectionLimitTest(IntegrationTest):

    def test_past_max_connections_421_and_nothing_else_degrades(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"smtp": {"max_connections": 50}})
        admitted = []
        for i in range(50):
            c = dg.client()
            self.assertReply(c.greeting(), 220, msg="session %d" % i)
            self.assertReply(c.ehlo("s%d.example" % i), 250)
            admitted.append(c)
        for i in range(5):
            c = dg.client()
            self.assertReply(c.read_reply(), 421, "4.7.0", msg="client %d past the limit" % (51 + i))
            self.assertClosed(c)
        m = dg.metrics()
        self.assertEqual(metric(m, "dotgate_connections_refused_total"), 5)
        self.assertEqual(metric(m, "dotgate_connections_open"), 50)
        # Every admitted session still answers, and mail still flows through them.
        for c in admitted:
            self.assertReply(c.converse("NOOP"), 250)
        for i in (0, 25, 49):
            replies = admitted[i].send_message("a@example.org", ["b%d@example.net" % i],
                                               b"Subject: admitted %d\r\n\r\nok\r\n" % i, ehlo=False)
            self.assertEqual([r.code for r in replies], [250, 250, 354, 250], replies)
        got = sink.wait_for(3)
        self.assertEqual(sorted(r for msg in got for r in msg.rcpts),
                         ["<b0@example.net>", "<b25@example.net>", "<b49@example.net>"])
        # Once they have gone, new clients are admitted, and their mail reaches the MTA.
        for c in admitted:
            self.assertReply(c.converse("QUIT"), 221)
            self.assertClosed(c)
        wait_until(lambda: metric(dg.metrics(), "dotgate_connections_open") == 0, 10, what="sessions closed")
        for i in range(3):
            c = dg.client()
            self.assertReply(c.greeting(), 220)
            replies = c.send_message("a@example.org", ["after%d@example.net" % i], b"Subject: after\r\n\r\nok\r\n")
            self.assertEqual(replies[-1].code, 250, replies)
        got = sink.wait_for(6)
        self.assertEqual(len(sink.settle(0.3)), 6)
        self.assertIn(["<after2@example.net>"], [msg.rcpts for msg in got])
        self.assertEqual(metric(dg.metrics(), "dotgate_connections_refused_total"), 5)

    def lowered_soft_limit(self, soft):
        """Lowers this process's soft open files limit (its children inherit it) until cleanup."""
        before = resource.getrlimit(resource.RLIMIT_NOFILE)
        if before[1] != resource.RLIM_INFINITY and before[1] < 1024:
            self.skipTest("hard open files limit %d: too low to show a raise" % before[1])
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
        self.addCleanup(resource.setrlimit, resource.RLIMIT_NOFILE, before)
        return before

    @staticmethod
    def open_files_limits(pid):
        with open("/proc/%d/limits" % pid) as f:
            for line in f:
                if line.startswith("Max open files"):
                    soft, hard = line.split()[3:5]
                    return soft, hard
        raise AssertionError("no open files line in /proc/%d/limits" % pid)

    def test_soft_limit_raised_to_hard_at_start(self):
        sink = self.sink("-m", "400")
        # Started under a soft limit of 256: 150 sessions need 300 sockets.
        before = self.lowered_soft_limit(256)
        dg = self.dotgate(sink.port, {"smtp": {"max_connections": 200}})
        resource.setrlimit(resource.RLIMIT_NOFILE, before)  # this process's 150 clients need it too
        # What a client sees: every one is served (kept at 256, the 119th got 421 4.4.0: no
        # descriptor left for its downstream connection; a few more and accept itself fails).
        clients = []
        for i in range(150):
            c = dg.client()
            self.assertReply(c.greeting(), 220, msg="session %d" % i)
            clients.append(c)
        for c in clients:
            self.assertReply(c.converse("NOOP"), 250)
        replies = clients[-1].send_message("a@example.org", ["last@example.net"], b"Subject: 150\r\n\r\nok\r\n")
        self.assertEqual(replies[-1].code, 250, replies)
        self.assertEqual(sink.wait_for(1)[0].rcpts, ["<last@example.net>"])
        # What the process has, and what it said.
        soft, hard = self.open_files_limits(dg.proc.pid)
        self.assertEqual(soft, hard, "dotgate kept its soft open files limit below the hard one")
        self.assertNotEqual(soft, "256")
        dg.wait_log(r"open files limit raised.*from=256")
        self.assertEqual([l for l in dg.log_lines() if "open files limit" in l and "below" in l], [])

    def test_limit_below_what_max_connections_needs_is_said(self):
        sink = self.sink()
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        # 1,000,000 connections need 2,000,100 descriptors: above any hard limit a test runs under
        # (fs.nr_open caps one process at 1,048,576 by default).
        if hard == resource.RLIM_INFINITY or hard >= 2_000_100:
            self.skipTest("hard open files limit %s covers 1,000,000 connections" % hard)
        dg = self.dotgate(sink.port, {"smtp": {"max_connections": 1000000}})
        line = dg.wait_log(r"open files limit \d+ is below the 2000100 that smtp.max_connections 1000000 needs")[0]
        self.assertIn(" warning ", line)
        c = dg.client()
        self.assertReply(c.greeting(), 220)  # a warning, not a refusal to serve
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: w\r\n\r\nok\r\n")
        self.assertEqual(replies[-1].code, 250, replies)
        self.assertEqual(len(sink.wait_for(1)), 1)
        # A SIGHUP reload of a config that still needs more says it again.
        dg.signal(signal.SIGHUP)
        dg.wait_log(r"configuration reloaded")
        dg.wait_log(r"open files limit \d+ is below the 2000100", count=2)
        # --check-config under a hard limit of 512 with the default 1000 connections (2100 needed).
        def low_limit():
            resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))
        cfg = os.path.join(dg.dir, "default.json")
        with open(cfg, "w") as f:
            f.write('{"listeners": [{"port": 2525}]}')
        out = subprocess.run([dotgate_bin(), "--config", cfg, "--check-config"], capture_output=True, text=True,
                             timeout=30, preexec_fn=low_limit)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("configuration OK", out.stdout)
        self.assertIn("warning: open files limit 512 is below the 2100 that smtp.max_connections 1000 needs",
                      out.stderr)
        # ... and none when the limit covers it.
        out = subprocess.run([dotgate_bin(), "--config", cfg, "--check-config"], capture_output=True, text=True,
                             timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        if hard >= 2100:
            self.assertNotIn("open files limit", out.stderr)


if __name__ == "__main__":
    main()
