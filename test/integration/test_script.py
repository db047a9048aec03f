#!/usr/bin/env python3
"""test/integration/test_script.py — the `script` policy and the quarantine (issue 4).

dotgate in front of smtp-sink, with a `script` policy running shell scripts the test writes:
exit status 0 (relayed), 1 (451 4.7.1), 2 (550 5.7.1), 3 (550 5.7.1 and a quarantine pair);
the first stdout line as the reply text; a script that hangs past its timeout and one that
crashes (on_error); the environment and the message (unstuffed, byte for byte what the client
meant) as the script saw them. Every case asserts what the client saw and what the sink
received (nothing for a refused message). The quarantine: the .eml/.json pair and its fields;
a quarantine that cannot write (missing directory, over max_bytes) tempfails with 451 4.3.0
instead of the 5xx, and nothing is relayed.
"""

import json
import os
import time

from harness import IntegrationTest, main, sink_form, stuff

MESSAGE = (b"From: a@example.org\r\n"
           b"To: b@example.net\r\n"
           b"Subject: script test\r\n"
           b"\r\n"
           b"Hello.\r\n"
           b".leading dot\r\n"
           b"..two dots\r\n"
           b"last line\r\n")


class ScriptTest(IntegrationTest):

    def write_script(self, body, name="policy.sh"):
        d = self.make_dir("scripts")
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n" + body + "\n")
        os.chmod(path, 0o755)
        return path

    def start(self, script_body, policy=None, config=None):
        sink = self.sink()
        p = {"type": "script", "path": self.write_script(script_body)}
        p.update(policy or {})
        cfg = {"policies": [p]}
        cfg.update(config or {})
        dg = self.dotgate(sink.port, cfg)
        return sink, dg

    def send(self, dg, body=MESSAGE, rcpts=("b@example.net",)):
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("a@example.org", list(rcpts), body)
        for r in replies[:-2]:
            self.assertReply(r, 250)
        self.assertReply(replies[-2], 354)
        return c, replies[-1]

    def quarantine_dir(self):
        return self.make_dir("quarantine")

    # ---- exit statuses -------------------------------------------------------------------------

    def test_exit_0_relays(self):
        sink, dg = self.start("exit 0")
        c, r = self.send(dg)
        self.assertReply(r, 250)
        self.assertEqual(sink.wait_for(1)[0].content, sink_form(MESSAGE))
        self.assertReply(c.converse("QUIT"), 221)

    def test_exit_1_tempfails(self):
        sink, dg = self.start("exit 1")
        c, r = self.send(dg)
        self.assertReply(r, 451, "4.7.1")
        self.assertNoMessage(sink)
        # the session goes on, and a later message is judged again
        self.assertReply(c.converse("RSET"), 250)

    def test_exit_2_rejects(self):
        sink, dg = self.start("exit 2")
        c, r = self.send(dg)
        self.assertReply(r, 550, "5.7.1")
        self.assertNoMessage(sink)

    def test_stdout_first_line_is_the_reply_text(self):
        sink, dg = self.start("printf 'Looks like spam to me\\r\\nsecond line\\n'; exit 2")
        c, r = self.send(dg)
        self.assertReply(r, 550, "5.7.1")
        self.assertEqual(r.lines, ["550 5.7.1 Looks like spam to me"])
        self.assertNoMessage(sink)

    def test_exit_3_quarantines(self):
        q = self.quarantine_dir()
        sink, dg = self.start("echo kept for review; exit 3", config={"quarantine": {"directory": q}})
        c, r = self.send(dg, rcpts=("b@example.net", "c@example.net"))
        self.assertReply(r, 550, "5.7.1")
        self.assertEqual(r.text, "5.7.1 kept for review")
        self.assertNoMessage(sink)
        names = sorted(os.listdir(q))
        self.assertEqual(len(names), 2, names)
        eml, js = names
        self.assertTrue(eml.endswith(".eml") and js.endswith(".json"), names)
        self.assertEqual(eml[:-4], js[:-5])
        with open(os.path.join(q, eml), "rb") as f:
            self.assertEqual(f.read(), MESSAGE)
        with open(os.path.join(q, js)) as f:
            meta = json.load(f)
        self.assertEqual(meta["id"], eml[:-4])
        self.assertRegex(meta["client"], r"^127\.0\.0\.1:\d+$")
        self.assertEqual(meta["helo"], "client.example")
        self.assertEqual(meta["sender"], "a@example.org")
        self.assertEqual(meta["recipients"], ["b@example.net", "c@example.net"])
        self.assertEqual(meta["size"], len(MESSAGE) + 2)  # wire size: two stuffed dots
        self.assertEqual(meta["reply"], "550 5.7.1 kept for review")
        self.assertIn("exit 3", meta["reason"])
        self.assertRegex(meta["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        dg.wait_log("message quarantined")

    def test_exit_3_without_quarantine_rejects(self):
        sink, dg = self.start("exit 3")
        c, r = self.send(dg)
        self.assertReply(r, 550, "5.7.1")
        self.assertNoMessage(sink)
        dg.wait_log("fail_keep without a quarantine directory")

    def test_quarantine_unwritable_tempfails(self):
        missing = os.path.join(self.quarantine_dir(), "does-not-exist")
        sink, dg = self.start("exit 3", config={"quarantine": {"directory": missing}})
        c, r = self.send(dg)
        self.assertReply(r, 451, "4.3.0")
        self.assertNoMessage(sink)
        dg.wait_log("quarantine failed")

    def test_quarantine_full_tempfails(self):
        q = self.quarantine_dir()
        with open(os.path.join(q, "filler"), "wb") as f:
            f.write(b"x" * (1 << 20))
        sink, dg = self.start("exit 3", config={"quarantine": {"directory": q, "max_bytes": 1 << 20}})
        c, r = self.send(dg)
        self.assertReply(r, 451, "4.3.0")
        self.assertNoMessage(sink)
        self.assertEqual(os.listdir(q), ["filler"])  # no half pair, no temporary left

    # ---- errors: on_error ------------------------------------------------------------------------

    def test_timeout_follows_on_error(self):
        sink, dg = self.start("sleep 30", policy={"timeout": 0.5})
        start = time.monotonic()
        c, r = self.send(dg)
        self.assertLess(time.monotonic() - start, 5)
        self.assertReply(r, 451, "4.7.0")
        self.assertNoMessage(sink)
        dg.wait_log("timed out")

    def test_timeout_accept_relays(self):
        sink, dg = self.start("sleep 30", policy={"timeout": 0.3, "on_error": "accept"})
        c, r = self.send(dg)
        self.assertReply(r, 250)
        self.assertEqual(sink.wait_for(1)[0].content, sink_form(MESSAGE))

    def test_crash_follows_on_error(self):
        sink, dg = self.start("kill -SEGV $$", policy={"on_error": "reject"})
        c, r = self.send(dg)
        self.assertReply(r, 550, "5.7.0")
        self.assertNoMessage(sink)
        dg.wait_log("killed by signal 11")

    def test_unknown_status_tempfails(self):
        sink, dg = self.start("echo not this text; exit 42")
        c, r = self.send(dg)
        self.assertReply(r, 451, "4.7.0")
        self.assertNotIn("not this text", r.text)
        self.assertNoMessage(sink)

    # ---- what the script sees ------------------------------------------------------------------

    def test_environment_and_message(self):
        out = os.path.join(self.make_dir("seen"), "env")
        body = ("{ echo \"client=$DOTGATE_CLIENT_ADDRESS\"; echo \"helo=$DOTGATE_HELO\"; "
                "echo \"sender=$DOTGATE_SENDER\"; echo \"rcpts=$DOTGATE_RECIPIENTS\"; "
                "echo \"size=$DOTGATE_SIZE\"; echo \"message=$DOTGATE_MESSAGE\"; } > %s; "
                "cat \"$DOTGATE_MESSAGE\" > %s.eml; exit 0" % (out, out))
        sink, dg = self.start(body)
        c, r = self.send(dg, rcpts=("b@example.net", "c@example.net"))
        self.assertReply(r, 250)
        self.assertEqual(sink.wait_for(1)[0].content, sink_form(MESSAGE))
        with open(out) as f:
            env = dict(line.rstrip("\n").split("=", 1) for line in f)
        self.assertEqual(env, {
            "client": "127.0.0.1",
            "helo": "client.example",
            "sender": "a@example.org",
            "rcpts": "b@example.net,c@example.net",
            "size": str(len(MESSAGE) + 2),
            "message": "/dev/fd/3",
        })
        with open(out + ".eml", "rb") as f:
            self.assertEqual(f.read(), MESSAGE)

    def test_config_refuses_missing_program(self):
        sink = self.sink()
        from harness import Dotgate
        dg = Dotgate(self, sink.port, {"policies": [{"type": "script", "path": "/nonexistent/filter"}]})
        dg.start(wait=False)
        dg.proc.wait(10)
        self.assertNotEqual(dg.proc.returncode(), 0)
        self.assertIn("policies[0].path", dg.proc.output())

    # ---- the abort loophole (seed 004) ---------------------------------------------------------

    def test_disconnect_while_judging_runs_required_policy_and_relays_nothing(self):
        # A slow policy is judging when the client vanishes: the message must not be relayed,
        # the slow policy is cancelled (killed), and the required audit policy still runs.
        marker_dir = self.make_dir("markers")
        slow = self.write_script("touch %s/slow-started; sleep 30; exit 0" % marker_dir, "slow.sh")
        audit = self.write_script("cat \"$DOTGATE_MESSAGE\" > %s/audit-saw; echo \"$DOTGATE_SENDER\" > %s/audit-sender; exit 0"
                                  % (marker_dir, marker_dir), "audit.sh")
        sink = self.sink()
        dg = self.dotgate(sink.port, {"policies": [
            {"type": "script", "path": slow, "timeout": 60},
            {"type": "script", "path": audit, "required": True, "timeout": 10},
        ]})
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.ehlo(), 250)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 250)
        self.assertReply(c.converse("RCPT TO:<b@example.net>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        c.send(stuff(MESSAGE) + b".\r\n")
        started = os.path.join(marker_dir, "slow-started")
        deadline = time.monotonic() + 10
        while not os.path.exists(started) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertTrue(os.path.exists(started), "the slow policy never started")
        c.close()  # the client drops while the dot is held
        saw = os.path.join(marker_dir, "audit-saw")
        deadline = time.monotonic() + 10
        while not os.path.exists(saw) and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)
        self.assertTrue(os.path.exists(saw), "the required policy did not run after the disconnect")
        with open(saw, "rb") as f:
            self.assertEqual(f.read(), MESSAGE, "the required policy must see the whole message")
        with open(os.path.join(marker_dir, "audit-sender")) as f:
            self.assertEqual(f.read().strip(), "a@example.org")
        self.assertNoMessage(sink, settle=1.0)
        # dotgate is still healthy: a new client is greeted and served
        c2 = dg.client()
        self.assertReply(c2.greeting(), 220)
        self.assertReply(c2.converse("QUIT"), 221)


if __name__ == "__main__":
    main()
