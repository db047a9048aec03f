#!/usr/bin/env python3
"""test/integration/test_verdict.py — the verdict step as a whole (issue 4): the overall deadline,
verdict services asked concurrently, the client that pipelines QUIT after its dot (and half-closes,
as Exim does), the client that drops while judging, and per-policy results in /metrics and in the
transaction's log line.

A real dotgate in front of smtp-sink, webhook.py processes as verdict services. Every case checks
what the client saw and what smtp-sink received.
"""

import json
import os
import socket
import subprocess
import time

from harness import IntegrationTest, dotgate_bin, main, metric, sink_form, stuff, wait_until
from test_http_policy import MESSAGE, Webhook


class VerdictTest(IntegrationTest):

    def setup_hooks(self, scripts, verdict=None, extra_policies=(), log_format="text"):
        self.hooks = [Webhook(self, s).start() for s in scripts]
        self.sink_ = self.sink()
        policies = [{"type": "http", "name": "hook%d" % i, "url": h.url(), "timeout": 10}
                    for i, h in enumerate(self.hooks)]
        policies += list(extra_policies)
        cfg = {"policies": policies, "log": {"format": log_format}}
        if verdict:
            cfg["verdict"] = verdict
        self.dg = self.dotgate(self.sink_.port, cfg)

    def open_transaction(self, rcpts=("b@example.net",)):
        c = self.dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        for r in rcpts:
            self.assertReply(c.converse("RCPT TO:<%s>" % r), 250)
        self.assertReply(c.converse("DATA"), 354)
        return c

    # --- the deadline ------------------------------------------------------------------------

    def test_deadline_tempfails_and_cancels_the_slow_service(self):
        self.setup_hooks([{"mode": "hang"}], verdict={"deadline": 1})
        c = self.open_transaction()
        t0 = time.monotonic()
        c.send(stuff(MESSAGE) + b".\r\n")
        reply = c.read_reply(timeout=10)
        waited = time.monotonic() - t0
        self.assertReply(reply, 451, "4.7.0")
        self.assertGreaterEqual(waited, 0.9)
        self.assertLess(waited, 3.0, "the client waited for the service's own timeout, not the deadline")
        self.sink_.settle()
        self.assertEqual(self.sink_.messages(), [])
        # The session goes on: a second message with the service answering is judged and relayed.
        self.hooks[0].set({"mode": "json", "response": {"action": "accept"}})
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(stuff(MESSAGE) + b".\r\n")
        self.assertReply(c.read_reply(timeout=10), 250)
        self.assertEqual(self.sink_.wait_for(1)[0].content, sink_form(MESSAGE))
        line = [l for l in self.dg.log_lines() if "deadline" in l and "transaction" in l]
        self.assertTrue(line, "the transaction log line names the deadline")

    def test_deadline_accept_relays(self):
        self.setup_hooks([{"mode": "hang"}], verdict={"deadline": 0.5, "on_deadline": "accept"})
        c = self.open_transaction()
        c.send(stuff(MESSAGE) + b".\r\n")
        self.assertReply(c.read_reply(timeout=10), 250)
        self.assertEqual(self.sink_.wait_for(1)[0].content, sink_form(MESSAGE))

    def test_deadline_accept_never_overrides_a_refusal_already_made(self):
        # hook0 refuses at once; the required hook1 hangs; the deadline says "accept".
        self.hooks = [Webhook(self, {"mode": "json", "response": {"action": "reject"}}).start(),
                      Webhook(self, {"mode": "hang"}).start()]
        self.sink_ = self.sink()
        self.dg = self.dotgate(self.sink_.port, {"verdict": {"deadline": 0.5, "on_deadline": "accept"}, "policies": [
            {"type": "http", "url": self.hooks[0].url()},
            {"type": "http", "url": self.hooks[1].url(), "required": True, "timeout": 30}]})
        c = self.open_transaction()
        c.send(stuff(MESSAGE) + b".\r\n")
        self.assertReply(c.read_reply(timeout=10), 550)
        self.sink_.settle()
        self.assertEqual(self.sink_.messages(), [])

    def test_bad_deadline_refused(self):
        d = self.make_dir("config")
        for bad, key in (({"deadline": 0}, "verdict.deadline"), ({"deadline": "60"}, "verdict.deadline"),
                         ({"on_deadline": "maybe"}, "verdict.on_deadline"), ({"deadlines": 5}, "verdict.deadlines")):
            path = os.path.join(d, "c.json")
            with open(path, "w") as f:
                json.dump({"verdict": bad}, f)
            p = subprocess.run([dotgate_bin(), "--config", path, "--check-config"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=10)
            self.assertNotEqual(p.returncode, 0, bad)
            self.assertIn(key, p.stdout.decode(), bad)

    # --- concurrency -------------------------------------------------------------------------

    def test_independent_services_are_asked_at_once(self):
        self.setup_hooks([{"mode": "json", "delay": 1.0}, {"mode": "json", "delay": 1.0},
                          {"mode": "json", "delay": 1.0}])
        c = self.open_transaction()
        t0 = time.monotonic()
        c.send(stuff(MESSAGE) + b".\r\n")
        self.assertReply(c.read_reply(timeout=10), 250)
        waited = time.monotonic() - t0
        self.assertLess(waited, 2.5, "three 1 s services took %.2f s: asked one after the other" % waited)
        for h in self.hooks:
            self.assertEqual(len(h.requests()), 1)
        self.sink_.wait_for(1)

    def test_first_fail_in_order_wins_and_the_rest_are_cancelled(self):
        # hook0 answers late with tempfail, hook1 at once with reject: hook0 is first in order.
        self.setup_hooks([{"mode": "json", "delay": 0.5, "response": {"action": "tempfail", "message": "first"}},
                          {"mode": "json", "response": {"action": "reject", "message": "second"}},
                          {"mode": "hang"}])
        c = self.open_transaction()
        t0 = time.monotonic()
        c.send(stuff(MESSAGE) + b".\r\n")
        reply = c.read_reply(timeout=10)
        self.assertReply(reply, 451)
        self.assertIn("first", reply.text)
        self.assertLess(time.monotonic() - t0, 3.0, "the hanging third service was not cancelled")
        self.sink_.settle()
        self.assertEqual(self.sink_.messages(), [])
        m = self.dg.metrics()
        self.assertEqual(metric(m, "dotgate_policy_verdicts_total", policy="hook0", outcome="tempfail"), 1)
        self.assertEqual(metric(m, "dotgate_policy_verdicts_total", policy="hook1", outcome="reject"), 1)
        self.assertEqual(metric(m, "dotgate_policy_verdicts_total", policy="hook2", outcome="cancelled"), 1)
        self.assertEqual(metric(m, "dotgate_policy_verdicts_total", policy="hook0", outcome="pass"), 0)
        self.assertEqual(metric(m, "dotgate_policy_latency_seconds_count", policy="hook0"), 1)

    def test_sequential_policy_waits_and_is_skipped_after_a_fail(self):
        self.hooks = [Webhook(self, {"mode": "json", "response": {"action": "reject"}}).start(),
                      Webhook(self, {"mode": "json"}).start()]
        self.sink_ = self.sink()
        self.dg = self.dotgate(self.sink_.port, {"policies": [
            {"type": "http", "url": self.hooks[0].url()},
            {"type": "http", "url": self.hooks[1].url(), "sequential": True}]})
        c = self.open_transaction()
        c.send(stuff(MESSAGE) + b".\r\n")
        self.assertReply(c.read_reply(timeout=10), 550)
        self.assertEqual(len(self.hooks[1].requests()), 0, "the sequential policy ran after a fail")

    # --- QUIT after the dot, half-close, drop ------------------------------------------------

    def test_quit_pipelined_after_the_dot_gets_both_replies(self):
        self.setup_hooks([{"mode": "json", "delay": 0.5}])
        c = self.open_transaction()
        c.send(stuff(MESSAGE) + b".\r\nQUIT\r\n")
        self.assertReply(c.read_reply(timeout=10), 250)
        self.assertReply(c.read_reply(timeout=5), 221)
        self.assertClosed(c)
        self.assertEqual(self.sink_.wait_for(1)[0].content, sink_form(MESSAGE))

    def test_quit_and_half_close_while_judging_is_answered_and_delivered(self):
        # Exim's way: the dot, QUIT, shutdown(SHUT_WR), then it reads the replies.
        self.setup_hooks([{"mode": "json", "delay": 0.5}])
        c = self.open_transaction()
        c.send(stuff(MESSAGE) + b".\r\nQUIT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        self.assertReply(c.read_reply(timeout=10), 250)
        self.assertReply(c.read_reply(timeout=5), 221)
        self.assertClosed(c)
        self.assertEqual(self.sink_.wait_for(1)[0].content, sink_form(MESSAGE))

    def test_quit_half_close_and_a_refusal(self):
        self.setup_hooks([{"mode": "json", "delay": 0.3, "response": {"action": "reject"}}])
        c = self.open_transaction()
        c.send(stuff(MESSAGE) + b".\r\nQUIT\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        self.assertReply(c.read_reply(timeout=10), 550)
        self.assertReply(c.read_reply(timeout=5), 221)
        self.sink_.settle()
        self.assertEqual(self.sink_.messages(), [])

    def test_drop_while_judging_delivers_nothing_and_required_policy_runs(self):
        self.hooks = [Webhook(self, {"mode": "json", "delay": 1.0}).start(),
                      Webhook(self, {"mode": "json", "delay": 0.5}).start()]
        self.sink_ = self.sink()
        self.dg = self.dotgate(self.sink_.port, {"policies": [
            {"type": "http", "name": "slow", "url": self.hooks[0].url()},
            {"type": "http", "name": "audit", "url": self.hooks[1].url(), "required": True, "sequential": True}]})
        c = self.open_transaction()
        c.send(stuff(MESSAGE) + b".\r\n")
        time.sleep(0.2)
        c.close()  # no QUIT: the client is gone
        self.dg.wait_log(r"client disconnected", timeout=5)
        # the required audit service still gets the message, after the slow one was cancelled
        wait_until(lambda: len(self.hooks[1].requests()) == 1, 5, what="required policy ran")
        self.sink_.settle(1.5)
        self.assertEqual(self.sink_.messages(), [])
        # dotgate keeps serving
        c2 = self.dg.client()
        self.assertReply(c2.greeting(), 220)

    def test_eof_right_after_the_dot_without_quit_delivers_nothing(self):
        self.setup_hooks([{"mode": "json", "delay": 0.5}])
        c = self.open_transaction()
        c.send(stuff(MESSAGE) + b".\r\n")
        c.sock.shutdown(socket.SHUT_WR)
        self.assertTrue(c.wait_closed(5), "dotgate keeps a client that said nothing more")
        self.sink_.settle(1.0)
        self.assertEqual(self.sink_.messages(), [])

    # --- the transaction log line ------------------------------------------------------------

    def test_log_line_lists_each_policy_with_outcome_and_latency(self):
        self.setup_hooks([{"mode": "json"}, {"mode": "json", "delay": 0.2}], log_format="json")
        c = self.open_transaction()
        c.send(stuff(MESSAGE) + b".\r\n")
        self.assertReply(c.read_reply(timeout=10), 250)
        lines = self.dg.wait_log(r'"msg":"transaction"', timeout=5)
        record = json.loads(lines[-1])
        policies = record["policies"]
        self.assertEqual([p["name"] for p in policies], ["hook0", "hook1"])
        self.assertEqual([p["outcome"] for p in policies], ["pass", "pass"])
        self.assertGreaterEqual(policies[1]["ms"], 150)
        self.assertRegex(record["queue_id"], r"^[0-9A-F]{14}$")


if __name__ == "__main__":
    main()
