#!/usr/bin/env python3
"""test/integration/test_config.py — configuration errors and the command line.

Covers issue 3 "Binary": an unknown key, a wrong type or a bad value is refused at start with the
key's path in the message (`listeners[0].port: expected integer`), exit status non-zero, both at
start and with --check-config; --check-config on a good config and on deploy/dotgate.example.json
exits 0 without serving; --listen / --downstream / --admin / --workers override the file.
"""

import json
import os
import subprocess

from harness import (HERE, IntegrationTest, LOOPBACK, dotgate_bin, free_port, main, wait_listening)

EXAMPLE = os.path.normpath(os.path.join(HERE, "..", "..", "deploy", "dotgate.example.json"))

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
