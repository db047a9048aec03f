#!/usr/bin/env python3
"""test/integration/test_privileges.py — "user"/"group": bind as root, then serve unprivileged.

Covers issue 17 "Privileges": started as root with "user": "nobody", dotgate binds a privileged
port (below 1024, as port 25 is), then runs with nobody's uid and gid and no supplementary groups
(read from /proc/<pid>/status), and mail still flows to the downstream; SIGHUP still reloads (the
config stays readable). "group" picks another group. A user that does not exist is refused at
--check-config and at start (exit 1, nothing listening). Started unprivileged as someone else, it
refuses to run on rather than serve as the wrong user. Needs root (skipped with the reason
otherwise: a drop cannot be shown without something to drop).
"""

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import unittest

from harness import Dotgate, IntegrationTest, LOOPBACK, dotgate_bin, free_port, main

BODY = b"Subject: privileges\r\n\r\nserved by nobody\r\n"


def free_privileged_port():
    """A port below 1024 that nobody listens on (25 itself may be a local MTA's)."""
    for port in [25] + list(range(1023, 600, -1)):
        with socket.socket() as s:
            try:
                s.bind((LOOPBACK, port))
                return port
            except OSError:
                continue
    raise unittest.SkipTest("no free port below 1024 on loopback")


def proc_ids(pid):
    """{'Uid': [real, effective, saved, fs], 'Gid': [...], 'Groups': [...]} from /proc."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid", "Groups"):
                out[key] = [int(v) for v in value.split()]
    return out


@unittest.skipUnless(os.geteuid() == 0, "needs root: the test shows dotgate shedding it")
class PrivilegesTest(IntegrationTest):

    def test_binds_privileged_port_then_runs_as_nobody(self):
        nobody = pwd.getpwnam("nobody")
        sink = self.sink()
        port = free_privileged_port()
        spool = self.make_dir("spool", world_writable=True)
        dg = Dotgate(self, sink.port, {"user": "nobody", "listeners": [{"address": LOOPBACK, "port": port}],
                                       "spool": {"directory": spool, "memory_threshold": 0}})
        dg.port = port  # the harness picked a port of its own: this run listens on the privileged one
        dg.start()
        dg.wait_log(r"privileges dropped")
        ids = proc_ids(dg.proc.pid)
        self.assertEqual(ids["Uid"], [nobody.pw_uid] * 4, ids)
        self.assertEqual(ids["Gid"], [nobody.pw_gid] * 4, ids)
        self.assertEqual(ids["Groups"], [nobody.pw_gid], ids)
        # Mail flows (the body goes through a spool file: memory_threshold 0, written as nobody).
        c = dg.client()
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("alice@example.org", ["bob@example.net"], BODY)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250])
        self.assertReply(c.converse("QUIT"), 221)
        msgs = sink.wait_for(1)
        self.assertEqual(len(msgs), 1)
        self.assertIn(b"served by nobody", msgs[0].raw)
        # The running process is still nobody, and a reload (the file read as nobody) works.
        dg.signal(signal.SIGHUP)
        dg.wait_log(r"configuration reloaded")
        self.assertEqual(proc_ids(dg.proc.pid)["Uid"], [nobody.pw_uid] * 4)

    def test_group_option(self):
        sink = self.sink()
        daemon = grp.getgrnam("daemon")
        dg = self.dotgate(sink.port, {"user": "nobody", "group": "daemon"})
        dg.wait_log(r"privileges dropped")
        ids = proc_ids(dg.proc.pid)
        self.assertEqual(ids["Gid"], [daemon.gr_gid] * 4, ids)
        self.assertEqual(ids["Groups"], [daemon.gr_gid], ids)
        self.assertEqual(ids["Uid"][1], pwd.getpwnam("nobody").pw_uid)

    def test_unknown_user_is_refused(self):
        sink = self.sink()
        dg = Dotgate(self, sink.port, {"user": "no-such-user-dotgate"})
        dg.write_config()
        out = subprocess.run([dotgate_bin(), "--config", dg.config_path, "--check-config"],
                             capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 1, out)
        self.assertIn('user "no-such-user-dotgate" does not exist', out.stderr)
        dg.start(wait=False)
        self.assertEqual(dg.proc.wait(10), 1, dg.log())
        self.assertIn('user "no-such-user-dotgate" does not exist', dg.log())
        with socket.socket() as s:
            self.assertNotEqual(s.connect_ex((LOOPBACK, dg.port)), 0, "a refused start left a listener")

    def test_unprivileged_start_as_someone_else_refuses_to_serve(self):
        setpriv = shutil.which("setpriv")
        if not setpriv:
            self.skipTest("setpriv (util-linux) not installed")
        sink = self.sink()
        port, admin = free_port(), free_port()
        d = self.make_dir("conf")
        os.chmod(d, 0o755)
        path = os.path.join(d, "dotgate.json")
        with open(path, "w") as f:
            f.write('{"user": "daemon", "listeners": [{"address": "127.0.0.1", "port": %d}], '
                    '"downstream": {"port": %d}, "admin": {"port": %d}, "workers": 1}' % (port, sink.port, admin))
        os.chmod(path, 0o644)
        proc = self.start_proc("dotgate", [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                                           dotgate_bin(), "--config", path])
        status = proc.wait(10)
        self.assertEqual(status, 1, proc.output())
        self.assertIn("cannot drop privileges", proc.output())
        self.assertIn("not root", proc.output())
        with socket.socket() as s:
            self.assertNotEqual(s.connect_ex((LOOPBACK, port)), 0, "a refused start left a listener")


if __name__ == "__main__":
    main()
