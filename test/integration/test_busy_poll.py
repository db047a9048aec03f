#!/usr/bin/env python3
"""test/integration/test_busy_poll.py — busy_poll_us: a worker that does not sleep right after a read.

Covers: with busy_poll_us set, a worker polls without sleeping for that long after each read (it
spends CPU time while a client talks slowly) and sleeps once a budget passes with no read (an idle
dotgate spends none); mail relays as always (the sink has the message byte for byte); 0, the
default, never spins; a SIGHUP that sets it applies from the next session on. CPU time is read from
/proc/PID/schedstat (nanoseconds on a CPU, all threads).
"""

import json
import os
import signal
import smtplib
import time

from harness import IntegrationTest, LOOPBACK, main, sink_form

BUDGET_US = 10_000  # the maximum: 10 ms of spinning after each read
NOOPS = 30
GAP = 0.03          # between NOOPs: longer than the budget, so each read starts a full spin


def cpu_ns(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass  # a thread that just ended
    return total


class BusyPollTest(IntegrationTest):

    def slow_client_cpu_ms(self, dg):
        """dotgate's CPU time while one client sends NOOPS NOOPs GAP apart (then QUIT)."""
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.converse("EHLO client.example"), 250)
        time.sleep(0.1)
        before = cpu_ns(dg.proc.pid)
        for _ in range(NOOPS):
            self.assertReply(c.converse("NOOP"), 250)
            time.sleep(GAP)
        spent = (cpu_ns(dg.proc.pid) - before) / 1e6
        self.assertReply(c.converse("QUIT"), 221)
        return spent

    def idle_cpu_ms(self, dg, seconds=1.0):
        time.sleep(0.1)  # the last budget runs out
        before = cpu_ns(dg.proc.pid)
        time.sleep(seconds)
        return (cpu_ns(dg.proc.pid) - before) / 1e6

    def test_spins_after_reads_and_sleeps_when_idle(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"workers": 1, "busy_poll_us": BUDGET_US})
        body = b"Subject: busy\r\n\r\nrelayed by a worker that polls\r\n.a line that starts with a dot\r\n"
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=15) as s:
            s.sendmail("a@example.org", ["r@example.net"], body)
        msg = sink.wait_for(1)[0]
        self.assertEqual(msg.content, sink_form(body))  # smtplib stuffs, the sink unstuffs
        # Each NOOP's read starts 10 ms of polling: 30 of them are ~300 ms on a CPU. Half is the bar
        # (a busy machine shares the core).
        spent = self.slow_client_cpu_ms(dg)
        self.assertGreater(spent, NOOPS * BUDGET_US / 1000 * 0.5, "no spinning after reads")
        # With no reads the worker sleeps in epoll_wait: next to nothing in a second.
        idle = self.idle_cpu_ms(dg)
        self.assertLess(idle, 50, "a worker with nothing to read must not spin")

    def test_off_by_default_and_on_after_sighup(self):
        sink = self.sink()
        dg = self.dotgate(sink.port, {"workers": 1})
        spent = self.slow_client_cpu_ms(dg)
        self.assertLess(spent, NOOPS * BUDGET_US / 1000 * 0.3, "spinning although busy_poll_us is 0")
        dg.config = json.loads(json.dumps(dg.config))
        dg.config["busy_poll_us"] = BUDGET_US
        dg.write_config()
        dg.signal(signal.SIGHUP)
        dg.wait_log("configuration reloaded")
        spent = self.slow_client_cpu_ms(dg)  # a new session: the new budget
        self.assertGreater(spent, NOOPS * BUDGET_US / 1000 * 0.5, "busy_poll_us not applied after SIGHUP")
        self.assertLess(self.idle_cpu_ms(dg), 50)


if __name__ == "__main__":
    main()
