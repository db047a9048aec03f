#!/usr/bin/env python3
"""test/integration/test_profile_lookup.py — recipient -> profile through the HTTP lookup service
("profile_lookup", issue 5), end to end on loopback.

dotgate in front of smtp-sink, lookup_service.py as the lookup service, webhook.py processes as
the profiles' verdict services (to see which profile judged a message). Covered:
- the service's profiles drive the split: the second recipient, of another profile, gets
  451 4.5.3 and the sink receives the message for the first only; the request dotgate sends
  (JSON body with the address as given, X-Dotgate-Recipient, Content-Type);
- the cache: a recipient asked once within ttl (whatever its case), a "no profile" answer too
  (negative_ttl); a transaction keeps the profile it resolved at RCPT even when the service
  changes its answer (ttl 0: no cache);
- a null / empty answer: the config rules decide;
- errors (service down, 500, garbage, an unknown profile name, a hang past the timeout) with
  on_error "tempfail": 451 4.3.0 for the RCPT, nothing reaches the sink for it; with "rules":
  the rules decide; errors are not cached;
- pipelined MAIL/RCPT/RCPT/DATA with a slow service: replies in order;
- concurrent lookups of one recipient share one request;
- a client that disconnects during a lookup (dotgate serves the next client; no sanitizer
  report), and SIGTERM during a hanging lookup (the worker's loop closes cleanly: exit 0);
- dotgate_profile_lookups_total{result="hit|miss|error"} on /metrics.
Every case checks what the client saw AND what the sink received. Every wait is bounded; every
process is stopped by its pid (harness).

Run alone: DOTGATE_BIN=build/proxy/dotgate python3 test/integration/test_profile_lookup.py
"""

import json
import os
import signal
import socket
import sys
import time

from harness import IntegrationTest, ScriptedHttpService, main, metric, stuff, wait_until
from test_http_policy import Webhook

HERE = os.path.dirname(os.path.abspath(__file__))
LOOKUP_SERVICE = os.path.join(HERE, "lookup_service.py")

DEFER = "451 4.5.3 Use PRDR or retry immediately, possibly in the same TCP connection, after DATA End of data; retry=0"
LOOKUP_FAILED = "451 4.3.0 Recipient profile lookup failed, try again later"

SENDER = "sender@example.net"
A = "a@x.example"            # the service says: strict
B = "b@x.example"            # the service says: lenient
C = "c@x.example"            # the service says: strict
N = "n@rules.example"        # the service says: null  -> rules: open
M = "m@other.example"        # the service has nothing ({}) -> rules: strict (catch-all)
MESSAGE = b"From: sender@example.net\r\nTo: x@x.example\r\nSubject: lookup\r\n\r\nhello\r\n"


class LookupService(ScriptedHttpService):
    """lookup_service.py as its own process; the script is re-read on every request."""
    name = "lookup"
    program = LOOKUP_SERVICE
    path = "/profile"

    def asked(self):
        """The recipients asked about, in order (from the JSON bodies)."""
        return [json.loads(r["body"])["recipient"] for r in self.requests()]


def service_map():
    return {"mode": "json", "map": {A: "strict", B: "lenient", C: "strict", N: None}}


class ProfileLookupTest(IntegrationTest):

    def setup(self, script=None, lookup=None, start_service=True):
        self.service = LookupService(self, script or service_map())
        if start_service:
            self.service.start()
        self.strict = Webhook(self).start()
        self.lenient = Webhook(self).start()
        self.sink_ = self.sink()
        cfg = {"policies": [{"type": "http", "name": "strict-hook", "url": self.strict.url(), "timeout": 10},
                            {"type": "http", "name": "lenient-hook", "url": self.lenient.url(), "timeout": 10}],
               "profiles": [{"name": "strict", "policies": ["strict-hook"]},
                            {"name": "lenient", "policies": ["lenient-hook"]},
                            {"name": "open", "policies": []}],
               "recipients": [{"match": "rules.example", "profile": "open"},
                              {"match": "*", "profile": "strict"}],
               "profile_lookup": dict({"url": self.service.url(), "timeout": 2}, **(lookup or {}))}
        self.dg = self.dotgate(self.sink_.port, cfg)
        return self.dg

    def client(self):
        c = self.dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        return c

    def transaction(self, c, rcpts):
        """MAIL, each RCPT, DATA and the message (when some RCPT was accepted). Returns
        (rcpt replies, dot reply or None)."""
        self.assertReply(c.converse("MAIL FROM:<%s>" % SENDER), 250)
        replies = [c.converse("RCPT TO:<%s>" % r) for r in rcpts]
        if not any(r.code == 250 for r in replies):
            self.assertReply(c.converse("RSET"), 250)
            return replies, None
        self.assertReply(c.converse("DATA"), 354)
        c.send(stuff(MESSAGE) + b".\r\n")
        return replies, c.read_reply(timeout=20)

    def sink_rcpts(self):
        return [[r.strip("<>").split()[0].strip("<>") for r in m.rcpts] for m in self.sink_.messages()]

    def profiles_judged(self):
        """{profile: number of messages its webhook judged}."""
        return {"strict": len(self.strict.requests()), "lenient": len(self.lenient.requests())}

    def lookups(self):
        m = self.dg.metrics()
        return {r: metric(m, "dotgate_profile_lookups_total", result=r) for r in ("hit", "miss", "error")}

    # ------------------------------------------------------------------------------------------

    def test_service_profiles_split_the_transaction(self):
        self.setup()
        c = self.client()
        rcpts, dot = self.transaction(c, [A, B])
        self.assertReply(rcpts[0], 250, msg="RCPT A (strict)")
        self.assertReply(rcpts[1], 451, "4.5.3", msg="RCPT B (lenient, another profile)")
        self.assertEqual(rcpts[1].lines, [DEFER])
        self.assertReply(dot, 250)
        self.sink_.wait_for(1)
        self.assertEqual(self.sink_rcpts(), [[A]], "the sink got the message for A only")
        self.assertEqual(self.profiles_judged(), {"strict": 1, "lenient": 0})
        # The deferred recipient, retried in a new transaction, fixes its own profile.
        rcpts, dot = self.transaction(c, [B, C])
        self.assertReply(rcpts[0], 250)
        self.assertReply(rcpts[1], 451, "4.5.3", msg="C is strict, B fixed lenient")
        self.assertReply(dot, 250)
        self.sink_.wait_for(2)
        self.assertEqual(self.sink_rcpts(), [[A], [B]])
        self.assertEqual(self.profiles_judged(), {"strict": 1, "lenient": 1})
        # What was sent: one request per recipient so far (B's second time came from the cache).
        self.assertEqual(self.service.asked(), [A, B, C])
        req = self.service.requests()[0]
        headers = {k.lower(): v for k, v in req["headers"]}
        self.assertEqual(req["method"], "POST")
        self.assertEqual(req["path"], "/profile")
        self.assertEqual(headers.get("content-type"), "application/json")
        self.assertEqual(headers.get("x-dotgate-recipient"), "<%s>" % A)
        self.assertEqual(json.loads(req["body"]), {"recipient": A})
        self.assertEqual(self.lookups(), {"hit": 1, "miss": 3, "error": 0})

    def test_cache_within_ttl_whatever_the_case(self):
        self.setup()
        c = self.client()
        for rcpt in ["Alice.Caps@X.Example", "alice.caps@x.example", "ALICE.CAPS@X.EXAMPLE"]:
            rcpts, dot = self.transaction(c, [rcpt])
            self.assertReply(rcpts[0], 250, msg="RCPT %s" % rcpt)
            self.assertReply(dot, 250)
        self.sink_.wait_for(3)
        # Asked once, with the spelling of the first RCPT (the address as given).
        self.assertEqual(self.service.asked(), ["Alice.Caps@X.Example"])
        self.assertEqual(self.lookups(), {"hit": 2, "miss": 1, "error": 0})
        # Another connection on the same worker shares the cache.
        c2 = self.client()
        rcpts, dot = self.transaction(c2, ["alice.caps@x.example"])
        self.assertReply(rcpts[0], 250)
        self.assertEqual(len(self.service.requests()), 1)

    def test_null_and_empty_answers_fall_back_to_the_rules(self):
        self.setup()
        c = self.client()
        # N: null -> rules.example -> open; M: {} -> "*" -> strict: another profile, deferred.
        rcpts, dot = self.transaction(c, [N, M])
        self.assertReply(rcpts[0], 250)
        self.assertReply(rcpts[1], 451, "4.5.3")
        self.assertReply(dot, 250)
        self.sink_.wait_for(1)
        self.assertEqual(self.sink_rcpts(), [[N]])
        self.assertEqual(self.profiles_judged(), {"strict": 0, "lenient": 0}, "open runs no policy")
        # M alone: strict by the rules, judged by strict-hook; N again: the negative answer is cached.
        rcpts, dot = self.transaction(c, [M, N])
        self.assertReply(rcpts[0], 250)
        self.assertReply(rcpts[1], 451, "4.5.3")
        self.assertReply(dot, 250)
        self.sink_.wait_for(2)
        self.assertEqual(self.sink_rcpts(), [[N], [M]])
        self.assertEqual(self.profiles_judged(), {"strict": 1, "lenient": 0})
        self.assertEqual(self.service.asked(), [N, M])
        self.assertEqual(self.lookups(), {"hit": 2, "miss": 2, "error": 0})

    def test_negative_ttl_zero_asks_again(self):
        self.setup(lookup={"negative_ttl": 0})
        c = self.client()
        for _ in range(2):
            rcpts, dot = self.transaction(c, [N])
            self.assertReply(rcpts[0], 250)
        self.sink_.wait_for(2)
        self.assertEqual(self.service.asked(), [N, N])

    def test_transaction_keeps_the_profile_it_resolved(self):
        # No cache: every RCPT asks. The service changes its mind between RCPT and the dot; the
        # message is still judged under the profile its RCPT got.
        self.setup(lookup={"ttl": 0})
        c = self.client()
        self.assertReply(c.converse("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.converse("RCPT TO:<%s>" % A), 250)
        self.service.set({"mode": "json", "map": {A: "lenient"}})
        self.assertReply(c.converse("DATA"), 354)
        c.send(stuff(MESSAGE) + b".\r\n")
        self.assertReply(c.read_reply(timeout=20), 250)
        self.sink_.wait_for(1)
        self.assertEqual(self.profiles_judged(), {"strict": 1, "lenient": 0})
        strict_headers = {k.lower(): v for k, v in self.strict.requests()[0]["headers"]}
        self.assertEqual(strict_headers.get("x-dotgate-profile"), "strict")
        # The next transaction asks again and gets the new answer.
        rcpts, dot = self.transaction(c, [A])
        self.assertReply(dot, 250)
        self.sink_.wait_for(2)
        self.assertEqual(self.profiles_judged(), {"strict": 1, "lenient": 1})
        self.assertEqual(self.service.asked(), [A, A])

    def test_service_down_tempfails_the_rcpt(self):
        self.setup(start_service=False)  # nothing listens on the service's port
        c = self.client()
        rcpts, dot = self.transaction(c, [A, A])
        for r in rcpts:
            self.assertReply(r, 451, "4.3.0")
            self.assertEqual(r.lines, [LOOKUP_FAILED])
        self.assertIsNone(dot)
        self.assertNoMessage(self.sink_)
        self.assertEqual(self.lookups(), {"hit": 0, "miss": 0, "error": 2}, "errors are not cached")
        self.dg.wait_log(r"profile lookup failed.*connection refused")
        # The session goes on: DATA without a recipient is the MTA's business.
        self.assertReply(c.converse("MAIL FROM:<%s>" % SENDER), 250)
        self.assertEqual(c.converse("DATA").code // 100, 5)
        self.assertReply(c.converse("QUIT"), 221)
        self.assertNoMessage(self.sink_)

    def test_service_down_on_error_rules(self):
        self.setup(start_service=False, lookup={"on_error": "rules"})
        c = self.client()
        rcpts, dot = self.transaction(c, [A, N])   # rules: A -> strict ("*"), N -> open
        self.assertReply(rcpts[0], 250)
        self.assertReply(rcpts[1], 451, "4.5.3")
        self.assertReply(dot, 250)
        self.sink_.wait_for(1)
        self.assertEqual(self.sink_rcpts(), [[A]])
        self.assertEqual(self.profiles_judged(), {"strict": 1, "lenient": 0})
        self.assertEqual(self.lookups(), {"hit": 0, "miss": 0, "error": 2})
        self.dg.wait_log(r"profile lookup failed.*rules")

    def test_unusable_answers_are_errors(self):
        self.setup()
        c = self.client()
        # (script, reason logged, requests the service sees for it). A connection closed without
        # a byte: the request went on a reused keep-alive connection, so the HTTP client tries
        # once more on a fresh one (lib/http/client.h), which the service closes too.
        cases = [({"mode": "status", "status": 500}, "status 500", 1),
                 ({"mode": "status", "status": 404}, "status 404", 1),
                 ({"mode": "garbage"}, "not JSON", 1),
                 ({"mode": "json", "map": {A: "no-such-profile"}}, "unknown profile", 1),
                 ({"mode": "close"}, "closed early", 2)]
        self.assertReply(c.converse("MAIL FROM:<%s>" % SENDER), 250)
        seen = 0
        for script, reason, requests in cases:
            with self.subTest(reason=reason):
                self.service.set(script)
                r = c.converse("RCPT TO:<%s>" % A)
                self.assertReply(r, 451, "4.3.0")
                self.dg.wait_log(r"profile lookup failed.*" + reason)
                seen += requests
                self.assertEqual(len(self.service.requests()), seen, "errors are not cached")
        # The service recovers: the same recipient is accepted, the message delivered.
        self.service.set(service_map())
        self.assertReply(c.converse("RCPT TO:<%s>" % A), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(stuff(MESSAGE) + b".\r\n")
        self.assertReply(c.read_reply(timeout=20), 250)
        self.sink_.wait_for(1)
        self.assertEqual(self.sink_rcpts(), [[A]])
        self.assertEqual(self.lookups(), {"hit": 0, "miss": 1, "error": len(cases)})

    def test_hanging_service_answered_within_the_timeout(self):
        self.setup(script={"mode": "hang"}, lookup={"timeout": 0.5})
        c = self.client()
        self.assertReply(c.converse("MAIL FROM:<%s>" % SENDER), 250)
        t0 = time.monotonic()
        r = c.converse("RCPT TO:<%s>" % A, timeout=10)
        elapsed = time.monotonic() - t0
        self.assertReply(r, 451, "4.3.0")
        self.assertGreaterEqual(elapsed, 0.45, "answered before the timeout")
        self.assertLess(elapsed, 2.0, "RCPT waited %.2fs for a 0.5 s timeout" % elapsed)
        self.dg.wait_log(r"profile lookup failed.*timeout")
        self.assertReply(c.converse("QUIT"), 221)
        self.assertNoMessage(self.sink_)

    def test_pipelined_commands_wait_for_a_slow_lookup_replies_in_order(self):
        script = service_map()
        script["delay"] = 0.4
        self.setup(script=script)
        c = self.client()
        t0 = time.monotonic()
        c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nRCPT TO:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (SENDER, A, B, C))
        replies = c.read_replies(5, timeout=15)
        elapsed = time.monotonic() - t0
        self.assertEqual([r.code for r in replies], [250, 250, 451, 250, 354], [r.raw for r in replies])
        self.assertEqual(replies[2].lines, [DEFER])
        self.assertGreaterEqual(elapsed, 1.1, "three lookups of 0.4 s each, one after the other")
        c.send(stuff(MESSAGE) + b".\r\nQUIT\r\n")
        self.assertReply(c.read_reply(timeout=20), 250)
        self.assertReply(c.read_reply(), 221)
        self.sink_.wait_for(1)
        self.assertEqual(self.sink_rcpts(), [[A, C]])
        self.assertEqual(self.service.asked(), [A, B, C])

    def test_concurrent_lookups_of_one_recipient_share_a_request(self):
        script = service_map()
        script["delay"] = 0.5
        self.setup(script=script)
        c1, c2 = self.client(), self.client()
        for c in (c1, c2):
            self.assertReply(c.converse("MAIL FROM:<%s>" % SENDER), 250)
        c1.send("RCPT TO:<%s>\r\n" % A)
        c2.send("RCPT TO:<%s>\r\n" % A.upper())
        self.assertReply(c1.read_reply(timeout=10), 250)
        self.assertReply(c2.read_reply(timeout=10), 250)
        self.assertEqual(len(self.service.requests()), 1, "one request for both sessions")
        self.assertEqual(self.lookups(), {"hit": 0, "miss": 2, "error": 0})
        for c in (c1, c2):
            self.assertReply(c.converse("DATA"), 354)
            c.send(stuff(MESSAGE) + b".\r\n")
            self.assertReply(c.read_reply(timeout=20), 250)
        self.sink_.wait_for(2)
        self.assertEqual(sorted(x.lower() for rs in self.sink_rcpts() for x in rs), [A, A])

    def test_client_disconnect_during_a_lookup(self):
        slow = "slow@x.example"
        script = service_map()
        script["hang"] = [slow]
        self.setup(script=script, lookup={"timeout": 5})
        c = self.client()
        self.assertReply(c.converse("MAIL FROM:<%s>" % SENDER), 250)
        c.send("RCPT TO:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (slow, A))
        wait_until(lambda: len(self.service.requests()) >= 1, 5, what="the lookup to start")
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        c.close()
        self.dg.wait_log(r"client disconnected")
        # Dotgate still serves the next client, and the cancelled lookup answers nobody.
        c2 = self.client()
        rcpts, dot = self.transaction(c2, [A])
        self.assertReply(rcpts[0], 250)
        self.assertReply(dot, 250)
        self.sink_.wait_for(1)
        self.assertEqual(self.sink_rcpts(), [[A]], "nothing of the first client reached the sink")
        time.sleep(0.3)
        self.assertEqual(self.lookups(), {"hit": 0, "miss": 1, "error": 0}, "the cancelled lookup is not counted")
        self.assertTrue(self.dg.proc.alive())

    def test_sigterm_during_a_hanging_lookup_exits_cleanly(self):
        self.setup(script={"mode": "hang"}, lookup={"timeout": 30})
        c = self.client()
        self.assertReply(c.converse("MAIL FROM:<%s>" % SENDER), 250)
        c.send("RCPT TO:<%s>\r\n" % A)
        wait_until(lambda: len(self.service.requests()) >= 1, 5, what="the lookup to start")
        t0 = time.monotonic()
        self.dg.signal(signal.SIGTERM)
        r = c.read_reply(timeout=10)   # drain_grace is 1 s: then 421 to the session left
        self.assertReply(r, 421, "4.3.2")
        status = self.dg.proc.wait(10)
        self.assertEqual(status, 0, "dotgate exit status after SIGTERM:\n" + self.dg.log()[-3000:])
        self.assertLess(time.monotonic() - t0, 8)
        self.assertNoMessage(self.sink_)

    def test_metrics_family(self):
        self.setup()
        status, body = self.dg.http("/metrics")
        self.assertEqual(status, 200)
        self.assertIn("# TYPE dotgate_profile_lookups_total counter", body)
        for r in ("hit", "miss", "error"):
            self.assertIn('dotgate_profile_lookups_total{result="%s"} 0' % r, body)


if __name__ == "__main__":
    main()
