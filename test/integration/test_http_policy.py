#!/usr/bin/env python3
"""test/integration/test_http_policy.py — the `http` verdict webhook policy (issue 4).

A real dotgate in front of smtp-sink, with webhook.py as the verdict service. Each case checks
what the SMTP client saw after the dot AND what smtp-sink received (nothing when the message was
refused: the downstream never saw the dot). Also: the webhook received the exact message and the
envelope headers, and two messages reuse one keep-alive connection.
"""

import base64
import json
import os
import subprocess
import shutil
import time
import sys

from harness import Dotgate, IntegrationTest, ScriptedHttpService, main, sink_form, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
WEBHOOK = os.path.join(HERE, "webhook.py")

MESSAGE = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: verdict\r\n\r\n"
           b"hello\r\n.leading dot line\r\n..two dots\r\nbye\r\n")


class Webhook(ScriptedHttpService):
    """webhook.py: answers each verdict request as its script says (see there)."""
    name = "webhook"
    program = WEBHOOK
    path = "/verdict"

    def __init__(self, tc, script=None):
        super().__init__(tc, script or {"mode": "json", "response": {"action": "accept"}})


class HttpPolicyTest(IntegrationTest):

    def setup_chain(self, script=None, start_webhook=True, **policy):
        self.hook = Webhook(self, script)
        if start_webhook:
            self.hook.start()
        self.sink_ = self.sink()
        cfg = {"type": "http", "url": self.hook.url(), "timeout": 2}
        cfg.update(policy)
        self.dg = self.dotgate(self.sink_.port, {"policies": [cfg]})

    def send(self, body=MESSAGE, rcpts=("b@example.net",), client=None):
        c = client or self.dg.client()
        if client is None:
            self.assertReply(c.greeting(), 220)
        replies = c.send_message("a@example.org", list(rcpts), body, ehlo=client is None)
        return c, replies[-1]

    # --- each action -------------------------------------------------------------------------

    def test_accept_relays_and_webhook_sees_message_and_envelope(self):
        self.setup_chain()
        _, reply = self.send(rcpts=("b@example.net", "c@example.net"))
        self.assertReply(reply, 250)
        msgs = self.sink_.wait_for(1)
        self.assertEqual(msgs[0].content, sink_form(MESSAGE))
        reqs = self.hook.requests()
        self.assertEqual(len(reqs), 1)
        r = reqs[0]
        self.assertEqual((r["method"], r["path"]), ("POST", "/verdict"))
        self.assertEqual(base64.b64decode(r["body_b64"]), MESSAGE)  # unstuffed, byte for byte
        h = r["headers"]
        get = lambda k: [v for n, v in h if n.lower() == k.lower()]
        self.assertEqual(get("Content-Type"), ["message/rfc822"])
        self.assertEqual(get("X-Dotgate-Helo"), ["client.example"])
        self.assertEqual(get("X-Dotgate-Sender"), ["<a@example.org>"])
        self.assertEqual(get("X-Dotgate-Recipient"), ["<b@example.net>", "<c@example.net>"])
        self.assertEqual(get("X-Dotgate-Size"), [str(len(MESSAGE))])
        self.assertEqual(len(get("X-Dotgate-Client-Address")), 1)
        self.assertIn("127.0.0.1", get("X-Dotgate-Client-Address")[0])

    def test_reject_with_defaults(self):
        self.setup_chain({"mode": "json", "response": {"action": "reject"}})
        _, reply = self.send()
        self.assertReply(reply, 550, "5.7.1")
        self.assertNoMessage(self.sink_)

    def test_reject_with_own_reply(self):
        self.setup_chain({"mode": "json", "response": {"action": "reject", "code": 554, "enhanced": "5.7.9",
                                                        "message": "Spam score too high"}})
        _, reply = self.send()
        self.assertReply(reply, 554, "5.7.9")
        self.assertIn("Spam score too high", reply.text)
        self.assertNoMessage(self.sink_)

    def test_tempfail(self):
        self.setup_chain({"mode": "json", "response": {"action": "tempfail"}})
        _, reply = self.send()
        self.assertReply(reply, 451, "4.7.1")
        self.assertNoMessage(self.sink_)

    def test_quarantine_refuses(self):
        self.setup_chain({"mode": "json", "response": {"action": "quarantine", "message": "held"}})
        _, reply = self.send()
        self.assertEqual(reply.code // 100, 5, reply.raw)  # 550 5.7.1 (or the quarantine's own reply)
        self.assertNoMessage(self.sink_)

    # --- errors follow on_error ---------------------------------------------------------------

    def assert_on_error(self, script, reason_pattern, **policy):
        self.setup_chain(script, **policy)
        _, reply = self.send()
        self.assertReply(reply, 451, "4.7.0")
        self.assertNoMessage(self.sink_)
        self.dg.wait_log(reason_pattern)

    def test_code_of_wrong_class_is_an_error(self):
        self.assert_on_error({"mode": "json", "response": {"action": "tempfail", "code": 550}}, r"does not match")

    def test_unknown_action_is_an_error(self):
        self.assert_on_error({"mode": "json", "response": {"action": "maybe"}}, r"unknown action")

    def test_garbage_is_an_error(self):
        self.assert_on_error({"mode": "garbage"}, r"not JSON")

    def test_non_2xx_is_an_error(self):
        self.assert_on_error({"mode": "status", "status": 503}, r"status 503")

    def test_malformed_http_is_an_error(self):
        self.assert_on_error({"mode": "raw", "raw": "HTTP/1.1 2OO OK\r\n\r\n"}, r"malformed")

    def test_close_early_is_an_error(self):
        self.assert_on_error({"mode": "close"}, r"closed early")

    def test_hang_times_out(self):
        self.assert_on_error({"mode": "hang"}, r"timeout", timeout=1)

    def test_refused_connection_is_an_error(self):
        self.setup_chain(start_webhook=False)
        _, reply = self.send()
        self.assertReply(reply, 451, "4.7.0")
        self.assertNoMessage(self.sink_)
        self.dg.wait_log(r"connection refused")

    def test_on_error_accept_relays(self):
        self.setup_chain({"mode": "garbage"}, on_error="accept")
        _, reply = self.send()
        self.assertReply(reply, 250)
        self.assertEqual(len(self.sink_.wait_for(1)), 1)

    def test_on_error_reject(self):
        self.setup_chain(start_webhook=False, on_error="reject")
        _, reply = self.send()
        self.assertReply(reply, 550, "5.7.1")
        self.assertNoMessage(self.sink_)

    def test_quarantine_write_does_not_stall_the_worker(self):
        """The copy is written on the thread pool: with fsync made to take 2 s (an LD_PRELOAD
        shim, like a busy disk), another client of the same worker is served meanwhile."""
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            self.skipTest("no C compiler for the fsync shim")
        d = self.make_dir("shim")
        src, lib = os.path.join(d, "slow_fsync.c"), os.path.join(d, "slow_fsync.so")
        with open(src, "w") as f:
            f.write(SLOW_FSYNC_C)
        subprocess.run([cc, "-shared", "-fPIC", "-o", lib, src, "-ldl"], check=True)
        q = self.make_dir("quarantine")
        self.hook = Webhook(self, {"mode": "json", "response": {"action": "quarantine"}}).start()
        self.sink_ = self.sink()
        env = {"LD_PRELOAD": lib, "DOTGATE_TEST_FSYNC_DELAY_MS": "2000",
               # a sanitized dotgate refuses a preload ahead of its runtime unless told otherwise
               "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
        self.dg = Dotgate(self, self.sink_.port, {"policies": [{"type": "http", "url": self.hook.url(), "timeout": 5}],
                                                  "quarantine": {"directory": q}}, env=env).start()
        a = self.dg.client()
        self.assertReply(a.greeting(), 220)
        for cmd, code in (("EHLO a.example", 250), ("MAIL FROM:<a@example.org>", 250),
                          ("RCPT TO:<b@example.net>", 250), ("DATA", 354)):
            self.assertReply(a.converse(cmd), code)
        a.send(MESSAGE + b".\r\n")
        wait_until(lambda: self.hook.requests(), 5, what="webhook request")
        time.sleep(0.2)  # the verdict is in: the copy is being written (3 fsyncs of 2 s each)
        t0 = time.monotonic()
        b = self.dg.client()
        self.assertReply(b.greeting(), 220)
        self.assertReply(b.converse("EHLO b.example"), 250)
        self.assertReply(b.converse("NOOP"), 250)
        served = time.monotonic() - t0
        self.assertLess(served, 1.5, "the worker's other client waited for the quarantine's fsync")
        reply = a.read_reply(timeout=20)
        self.assertReply(reply, 550, "5.7.1")
        self.assertGreater(time.monotonic() - t0, 1.5, "the fsync shim did not slow the copy down")
        self.assertEqual(len([n for n in os.listdir(q) if n.endswith(".json")]), 1)
        self.assertNoMessage(self.sink_)

    # --- keep-alive --------------------------------------------------------------------------

    def test_two_messages_reuse_one_connection(self):
        self.setup_chain()
        c, reply = self.send()
        self.assertReply(reply, 250)
        self.hook.set({"mode": "json", "response": {"action": "reject"}})
        _, reply = self.send(body=b"Subject: second\r\n\r\nx\r\n", client=c)
        self.assertReply(reply, 550, "5.7.1")
        reqs = self.hook.requests()
        self.assertEqual(len(reqs), 2)
        self.assertEqual(reqs[0]["conn"], reqs[1]["conn"], "the second request opened a new connection")
        self.assertEqual(len(self.sink_.settle()), 1)

    def test_sessions_one_after_another_reuse_one_connection(self):
        """The keep-alive pool outlives the session (one message per connection is what an MX
        mostly sees): the next session's request goes over the same connection."""
        self.setup_chain()
        for i in range(3):
            c, reply = self.send(body=b"Subject: session %d\r\n\r\nx\r\n" % i)
            self.assertReply(reply, 250)
            self.assertReply(c.converse("QUIT"), 221)
            c.close()
        conns = [r["conn"] for r in self.hook.requests()]
        self.assertEqual(len(conns), 3, conns)
        self.assertEqual(len(set(conns)), 1, "each session opened its own connection: %r" % conns)
        self.assertEqual(len(self.sink_.wait_for(3)), 3)

    def test_shutdown_with_an_idle_pooled_connection_and_no_session(self):
        self.setup_chain()
        c, reply = self.send()
        self.assertReply(reply, 250)
        self.assertReply(c.converse("QUIT"), 221)
        c.close()
        t0 = time.monotonic()
        # The lingering pool must not keep the worker's loop alive: dotgate exits by itself, at once.
        self.assertEqual(self.dg.stop(), 0, self.dg.log()[-2000:])
        self.assertLess(time.monotonic() - t0, 5.0)

    def test_request_on_a_dropped_keepalive_connection_is_retried_once(self):
        self.setup_chain({"mode": "close_reused"})
        c, reply = self.send()
        self.assertReply(reply, 250)
        _, reply = self.send(body=b"Subject: second\r\n\r\nx\r\n", client=c)
        self.assertReply(reply, 250)
        conns = [r["conn"] for r in self.hook.requests()]
        # first on conn 1; the second went to conn 1 (closed unanswered), then once to a fresh one
        self.assertEqual(len(conns), 3, conns)
        self.assertEqual(conns[0], conns[1])
        self.assertNotEqual(conns[1], conns[2])
        self.assertEqual(len(self.sink_.wait_for(2)), 2)

    def test_idle_connection_closed_by_server_is_dropped(self):
        self.setup_chain({"mode": "close_idle"})
        c, reply = self.send()
        self.assertReply(reply, 250)
        import time
        time.sleep(0.6)  # the server closed the idle connection meanwhile
        _, reply = self.send(body=b"Subject: second\r\n\r\nx\r\n", client=c)
        self.assertReply(reply, 250)
        conns = [r["conn"] for r in self.hook.requests()]
        self.assertEqual(len(conns), 2, conns)
        self.assertNotEqual(conns[0], conns[1])
        self.assertEqual(len(self.sink_.wait_for(2)), 2)

    def test_shutdown_with_a_request_in_flight_and_a_pooled_connection(self):
        self.setup_chain({"mode": "hang"}, timeout=30)
        c = self.dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        for cmd, code in (("MAIL FROM:<a@example.org>", 250), ("RCPT TO:<b@example.net>", 250), ("DATA", 354)):
            self.assertReply(c.converse(cmd), code)
        c.send(MESSAGE + b".\r\n")
        wait_until(lambda: self.hook.requests(), 5, what="webhook request")
        # SIGTERM: the pending request is cancelled, the pool closed, the loop ends by itself
        # (not SIGKILL after the grace: dotgate exits with a status of its own).
        self.assertEqual(self.dg.stop(), 0, self.dg.log()[-2000:])
        self.assertNoMessage(self.sink_)

    def test_bad_url_refused_at_start(self):
        sink = self.sink()
        d = Dotgate(self, sink.port, {"policies": [{"type": "http", "url": "http://example.org/x"}]},
                    args=["--check-config"])
        d.start(wait=False)
        self.assertNotEqual(d.proc.wait(10), 0)
        self.assertIn("policies[0].url", d.log())

SLOW_FSYNC_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>
int fsync(int fd) {
  static int (*real)(int);
  if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  const char* ms = getenv("DOTGATE_TEST_FSYNC_DELAY_MS");
  if (ms) usleep((useconds_t)atoi(ms) * 1000);
  return real(fd);
}
"""

if __name__ == "__main__":
    main()
