#!/usr/bin/env python3
"""test/integration/test_config.py — configuration errors and the command line.

Covers issue 3 "Binary": an unknown key, a wrong type or a bad value is refused at start with the
key's path in the message (`listeners[0].port: expected integer`), exit status non-zero, both at
start and with --check-config; --check-config on a good config and on deploy/dotgate.example.json
exits 0 without serving; --listen / --downstream / --admin / --workers override the file.
Issue 15 "The default should be the fast one where it is safe": the defaults trade nothing and
say nothing; each speed setting that trades something (downstream.pool.size,
pool.max_sessions > 1, busy_poll_us) says what, with --check-config and in the start-up log, and
the deployment configs use the recommended pool (size 2, one client per MTA connection).
"""

import json
import os
import subprocess

from harness import (HERE, IntegrationTest, LOOPBACK, dotgate_bin, free_port, main, wait_listening, wait_until)

EXAMPLE = os.path.normpath(os.path.join(HERE, "..", "..", "deploy", "dotgate.example.json"))
POSTFIX_EXAMPLE = os.path.normpath(os.path.join(HERE, "..", "..", "deploy", "postfix", "dotgate.json"))
TRADE = "dotgate: trade-off: "

BAD = [
    ({"bogus": 1}, "bogus"),
    ({"smtp": {"max_recipientz": 5}}, "smtp.max_recipientz"),
    ({"listeners": [{"address": "127.0.0.1", "port": "abc"}]}, "listeners[0].port"),
    ({"listeners": [{"address": "127.0.0.1", "port": 25, "colour": "red"}]}, "listeners[0].colour"),
    ({"smtp": {"max_recipients": "ten"}}, "smtp.max_recipients"),
    ({"smtp": {"bare_line_ending": "maybe"}}, "smtp.bare_line_ending"),
    ({"downstream": {"pool": {"size": 1, "max_sessions": 0}}}, "downstream.pool.max_sessions"),
    ({"downstream": {"pool": {"size": 1, "max_sessions": 1001}}}, "downstream.pool.max_sessions"),
    ({"downstream": {"pool": {"size": 1, "max_sessions": "3"}}}, "downstream.pool.max_sessions"),
    ({"busy_poll_us": 10001}, "busy_poll_us"),
    ({"smtp": {"vrfy": 250}}, "smtp.vrfy"),
    ({"downstream": {"port": 70000}}, "downstream.port"),
    ({"downstream": {"reply_timeout": "soon"}}, "downstream.reply_timeout"),
    ({"log": {"format": "xml"}}, "log.format"),
    ({"policies": [{"type": "no-such-policy"}]}, "policies[0]"),
    ({"admin": {"enabled": "yes"}}, "admin.enabled"),
]


class ConfigTest(IntegrationTest):

    def write(self, config):
        path = os.path.join(self.make_dir("cfg"), "dotgate.json")
        with open(path, "w") as f:
            f.write(config if isinstance(config, str) else json.dumps(config))
        return path

    def run_dotgate(self, args, timeout=10):
        try:
            p = subprocess.run([dotgate_bin()] + [str(a) for a in args], stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.fail("dotgate %s did not exit within %ds" % (" ".join(map(str, args)), timeout))
        return p.returncode, p.stdout.decode("utf-8", "replace")

    def good_config(self):
        return {"listeners": [{"address": LOOPBACK, "port": free_port()}],
                "downstream": {"address": LOOPBACK, "port": free_port()},
                "admin": {"address": LOOPBACK, "port": free_port(), "enabled": True}}

    def test_check_config_refuses_with_key_path(self):
        for config, path in BAD:
            with self.subTest(path=path):
                rc, out = self.run_dotgate(["--config", self.write(config), "--check-config"])
                self.assertNotEqual(rc, 0, out)
                self.assertIn(path, out)

    def test_expected_integer_message(self):
        rc, out = self.run_dotgate(["--config", self.write({"listeners": [{"address": "127.0.0.1", "port": "abc"}]}),
                                    "--check-config"])
        self.assertNotEqual(rc, 0)
        self.assertIn("listeners[0].port: expected integer", out)

    def test_start_refuses_bad_config(self):
        for config, path in BAD[:4]:
            with self.subTest(path=path):
                rc, out = self.run_dotgate(["--config", self.write(config)])
                self.assertNotEqual(rc, 0, out)
                self.assertIn(path, out)

    def test_invalid_json_and_missing_file(self):
        rc, out = self.run_dotgate(["--config", self.write('{"smtp": {"max_recipients": 5,}'), "--check-config"])
        self.assertNotEqual(rc, 0, out)
        self.assertTrue(out.strip(), "no message for invalid JSON")
        rc, out = self.run_dotgate(["--config", "/nonexistent/dotgate.json", "--check-config"])
        self.assertNotEqual(rc, 0, out)
        self.assertTrue(out.strip())

    def test_bad_command_line(self):
        rc, out = self.run_dotgate(["--no-such-option"])
        self.assertNotEqual(rc, 0, out)
        rc, out = self.run_dotgate(["--config", self.write(self.good_config()), "--workers", "many"])
        self.assertNotEqual(rc, 0, out)

    def test_check_config_good(self):
        config = self.good_config()
        rc, out = self.run_dotgate(["--config", self.write(config), "--check-config"])
        self.assertEqual(rc, 0, out)

    def test_check_config_empty_object(self):
        rc, out = self.run_dotgate(["--config", self.write({}), "--check-config"])
        self.assertEqual(rc, 0, "all keys are optional: %s" % out)

    def test_check_config_example(self):
        # The example names the paths the Docker image installs (/etc/dotgate/...); the quickstart
        # and this test point them at deploy/examples/, where those files come from.
        self.assertTrue(os.path.isfile(EXAMPLE), "missing %s" % EXAMPLE)
        with open(EXAMPLE) as f:
            text = f.read()
        self.assertIn("/etc/dotgate/", text)
        examples = os.path.join(os.path.dirname(EXAMPLE), "examples") + "/"
        rc, out = self.run_dotgate(["--config", self.write(text.replace("/etc/dotgate/", examples)), "--check-config"])
        self.assertEqual(rc, 0, out)

    def test_check_config_defaults_trade_nothing(self):
        rc, out = self.run_dotgate(["--config", self.write(self.good_config()), "--check-config"])
        self.assertEqual(rc, 0, out)
        self.assertIn("configuration OK", out)
        self.assertNotIn("trade-off", out)

    def test_check_config_says_what_speed_settings_trade(self):
        config = dict(self.good_config(), workers=3, busy_poll_us=100)
        config["downstream"]["pool"] = {"size": 2, "max_sessions": 100, "max_idle": 30}
        rc, out = self.run_dotgate(["--config", self.write(config), "--check-config"])
        self.assertEqual(rc, 0, out)
        lines = [l for l in out.splitlines() if l.startswith(TRADE)]
        self.assertEqual(len(lines), 3, out)
        self.assertIn("downstream.pool.size=2: the MTA holds 6 idle connections (2 per worker, 3 workers)", lines[0])
        self.assertIn("up to 30 s", lines[0])
        self.assertIn("downstream.pool.max_sessions=100: the MTA sees several clients", lines[1])
        self.assertIn("count them together", lines[1])
        self.assertIn("busy_poll_us=100: while mail flows each of the 3 workers may spend up to a core", lines[2])
        # --workers on the command line is what counts
        rc, out = self.run_dotgate(["--config", self.write(config), "--workers", "1", "--check-config"])
        self.assertIn("holds 2 idle connections (2 per worker, 1 workers)", out)

    def test_check_config_max_sessions_without_effect(self):
        config = self.good_config()
        config["downstream"].update({"xclient": True, "pool": {"size": 1, "max_sessions": 10}})
        rc, out = self.run_dotgate(["--config", self.write(config), "--check-config"])
        self.assertEqual(rc, 0, out)
        self.assertIn(TRADE + "downstream.pool.max_sessions=10: no effect with downstream.xclient", out)
        self.assertNotIn("several clients", out)

    def test_deployment_configs_use_the_recommended_pool(self):
        # size 2 (the connect and greeting out of each client's first round trip), one client per
        # MTA connection (max_sessions 1: what the MTA sees per client is unchanged), no busy poll.
        examples = os.path.join(os.path.dirname(EXAMPLE), "examples") + "/"
        for path in (EXAMPLE, POSTFIX_EXAMPLE):
            with self.subTest(path=path):
                with open(path) as f:
                    text = f.read().replace("/etc/dotgate/", examples)
                self.assertEqual(json.loads(text)["downstream"]["pool"]["size"], 2)
                rc, out = self.run_dotgate(["--config", self.write(text), "--workers", "2", "--check-config"])
                self.assertEqual(rc, 0, out)
                lines = [l for l in out.splitlines() if l.startswith(TRADE)]
                self.assertEqual(len(lines), 1, out)
                self.assertIn("downstream.pool.size=2: the MTA holds 4 idle connections", lines[0])

    def test_start_logs_the_trade_offs(self):
        sink = self.sink()
        config = self.good_config()
        config["downstream"]["port"] = sink.port
        config["downstream"]["pool"] = {"size": 1, "max_sessions": 50}
        config["workers"] = 1
        port = config["listeners"][0]["port"]
        proc = self.start_proc("dotgate", [dotgate_bin(), "--config", self.write(config)])
        wait_listening(port, proc)
        wait_until(lambda: "downstream.pool.max_sessions=50: the MTA sees several clients" in proc.output(), 5,
                   what="the start-up log to name max_sessions' trade-off")
        self.assertIn("trade-off", proc.output())
        self.assertIn("downstream.pool.size=1: the MTA holds 1 idle connections", proc.output())
        self.assertNotIn("busy_poll_us", proc.output())
        # and it serves as before: the message reaches the sink
        c = self.raw_client(port)
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: trade\r\n\r\nx\r\n")
        self.assertEqual(replies[-1].code, 250)
        self.assertEqual(len(sink.wait_for(1)), 1)

    def test_command_line_overrides(self):
        sink = self.sink()
        config = self.good_config()  # points at ports where nothing listens
        path = self.write(config)
        port, admin = free_port(), free_port()
        proc = self.start_proc("dotgate", [dotgate_bin(), "--config", path,
                                           "--listen", "%s:%d" % (LOOPBACK, port),
                                           "--downstream", "%s:%d" % (LOOPBACK, sink.port),
                                           "--admin", "%s:%d" % (LOOPBACK, admin),
                                           "--workers", "2"])
        wait_listening(port, proc)
        wait_listening(admin, proc)
        c = self.raw_client(port)
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("a@example.org", ["b@example.net"], b"Subject: cli\r\n\r\nx\r\n")
        self.assertEqual(replies[-1].code, 250)
        self.assertEqual(len(sink.wait_for(1)), 1)


if __name__ == "__main__":
    main()
