"""test/integration/postfix_client.py — a real Postfix as a *sending* MTA for the integration tests.

What it is: the installed Postfix (Debian 12: 3.7) run as a private instance whose every directory
lives in the test's temp dir: config_directory (main.cf + master.cf written here), queue_directory,
data_directory and the log file (maillog_file, through the postlog service). By default it has no
smtpd listener at all (master.cf holds only pickup, cleanup, qmgr, rewrite, bounce/defer/trace,
smtp, error, ... and postlog), and relays everything to relayhost = [127.0.0.1]:<port> (the server
under test) with short backoff: minimal_backoff_time 2s, maximal_backoff_time 4s, queue_run_delay 2s.
Messages go in with `sendmail -C DIR` (postdrop into the instance's maildrop, pickup collects).
With `smtpd=(port, options)` it also runs one smtpd on 127.0.0.1:port with those `-o` options:
the receiving side of the before-queue filter deployment (`smtpd_proxy_filter` = dotgate).

How it runs (the traps, measured):
- `postfix start` runs postfix-script check-fatal and post-install create-missing (about 3 s
  with the queue directories present, 6+ s without) and then leaves a daemon that is not our
  child. So the harness creates the queue directories itself, with the owners and modes
  post-install gives them, and runs `master -c DIR -s` directly (what `postfix start-fg` ends up
  running): it stays in the foreground as our child, in its own session; the harness stops it by
  its pid (SIGTERM: master terminates its children) and then SIGKILLs what is left of its
  process group.
- A non-default config directory is only allowed to root here: non-root set-gid commands
  (sendmail -C, postdrop) insist on it being listed in alternate_config_directories of the
  default /etc/postfix/main.cf. The tests run as root (CI does); `postfix_available()` says so.
- maillog_file must match maillog_file_prefixes (default /var, /dev/stdout), else every Postfix
  program dies with a fatal error that goes only to syslog or a terminal: the prefix is the
  instance dir. Errors before postlogd runs still go to syslog; `startup_errors()` shows the
  master's own output.
- Without `smtpd` the instance never listens: inet_interfaces = loopback-only is set for the
  record, and there is no inet service in master.cf; with it, only on loopback. Several instances (parallel tests) share nothing but the
  `postfix` user: each has its own queue, sockets (queue/public, queue/private), data dir and
  syslog_name.
- `netns=NAME` runs the master (and so every daemon it forks) inside that network namespace
  (`ip netns exec NAME master ...`, which execs: the pid stays the master's), and `smtpd_host`
  is the address its smtpd listens on there (default `host`): the MTA host of the inline appliance
  test. postqueue, postcat and sendmail work from outside: they talk through the queue
  directory's unix sockets, which no network namespace separates.
"""

import json
import os
import pwd
import grp
import re
import shutil
import signal
import subprocess

import harness

POSTFIX_DAEMON_DIR = "/usr/lib/postfix/sbin"
SENDMAIL = "/usr/sbin/sendmail"
POSTCONF = shutil.which("postconf") or "/usr/sbin/postconf"

DEFERRAL_451 = ("451 4.5.3 Use PRDR or retry immediately, possibly in the same TCP connection, "
                "after DATA End of data; retry=0")

MASTER_CF = """\
# written by test/integration/postfix_client.py: no smtpd, nothing listens
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

# queue subdirectories as post-install creates them: (name, owner, group, mode)
QUEUE_DIRS = [(d, "postfix", "root", 0o700) for d in
              ("active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming",
               "private", "saved", "trace")] + [
    ("maildrop", "postfix", "postdrop", 0o730),
    ("public", "postfix", "postdrop", 0o710),
    ("pid", "root", "root", 0o755),
]


def postfix_available():
    """(ok, reason)."""
    for path in (os.path.join(POSTFIX_DAEMON_DIR, "master"), SENDMAIL, POSTCONF):
        if not os.access(path, os.X_OK):
            return False, "Postfix not installed (%s missing)" % path
    try:
        pwd.getpwnam("postfix")
        grp.getgrnam("postdrop")
    except KeyError as e:
        return False, "Postfix user/group missing: %s" % e
    if os.geteuid() != 0:
        return False, "a private Postfix instance needs root (alternate_config_directories, postdrop)"
    return True, ""


def skip_unless_postfix(tc):
    """setUp helper: skip the test (with the reason) where a private instance cannot run."""
    ok, reason = postfix_available()
    if not ok:
        tc.skipTest(reason)


class Postfix:
    """One sending Postfix instance in a test dir, relaying everything to 127.0.0.1:<port>."""

    def __init__(self, tc, port, host=harness.LOOPBACK, minimal_backoff="2s", maximal_backoff="4s",
                 queue_run_delay="2s", hostname="pfsender.example", extra_main=None, smtpd=None,
                 smtpd_host=None, netns=None, smtpd_maxproc=10):
        self.tc = tc
        self.port = port
        self.host = host
        self.dir = tc.make_dir("postfix")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "conf")
        self.queue = os.path.join(self.dir, "queue")
        self.data = os.path.join(self.dir, "data")
        self.maillog_path = os.path.join(self.dir, "maillog")
        self.name = "postfix-" + os.path.basename(self.dir)
        self.master = None
        self.main = {
            "compatibility_level": "3.6",
            "queue_directory": self.queue,
            "data_directory": self.data,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": hostname,
            "myorigin": hostname,
            "mydestination": "",
            "inet_interfaces": "loopback-only",
            "inet_protocols": "ipv4",
            "relayhost": "[%s]:%d" % (host, port),
            "smtp_tls_security_level": "none",
            "smtp_skip_5xx_greeting": "yes",
            "smtp_pix_workarounds": "",
            "smtp_connect_timeout": "5s",
            "minimal_backoff_time": minimal_backoff,
            "maximal_backoff_time": maximal_backoff,
            "queue_run_delay": queue_run_delay,
            "syslog_name": self.name,
            "maillog_file": self.maillog_path,
            "maillog_file_prefixes": self.dir,
            "alias_maps": "",
            "alias_database": "",
            "local_transport": "error:local delivery disabled",
            "biff": "no",
            "smtputf8_enable": "no",
            "bounce_queue_lifetime": "1h",
            "maximal_queue_lifetime": "1h",
        }
        self.main.update(extra_main or {})
        # smtpd=(port, {option: value}): one smtpd listening on host:port with those -o options
        # (the before-queue filter deployment: smtpd_proxy_filter=dotgate). Without it nothing listens.
        self.smtpd = smtpd
        self.smtpd_host = smtpd_host or host
        self.netns = netns  # run inside this network namespace (ip netns exec)
        self.smtpd_maxproc = smtpd_maxproc  # smtpd processes at once (master.cf maxproc)
        self._write()

    def _write(self):
        os.mkdir(self.conf)
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write("# written by test/integration/postfix_client.py\n")
            for k, v in self.main.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF)
            if self.smtpd:
                port, options = self.smtpd
                f.write("%s:%d inet n - n - %d smtpd\n" % (self.smtpd_host, port, self.smtpd_maxproc))
                for k, v in options.items():
                    f.write("  -o %s=%s\n" % (k, v))
        pw = pwd.getpwnam("postfix")
        os.mkdir(self.queue)
        os.chmod(self.queue, 0o755)
        for name, owner, group, mode in QUEUE_DIRS:
            p = os.path.join(self.queue, name)
            os.mkdir(p)
            os.chown(p, pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid)
            os.chmod(p, mode)
        os.mkdir(self.data)
        os.chown(self.data, pw.pw_uid, pw.pw_gid)
        os.chmod(self.data, 0o700)

    def env(self):
        return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "MAIL_CONFIG": self.conf}

    def start(self, timeout=harness.START_TIMEOUT):
        """master in the foreground, our child; ready when qmgr and pickup run (bounded)."""
        argv = ["env", "-i", "MAIL_CONFIG=" + self.conf, os.path.join(POSTFIX_DAEMON_DIR, "master"), "-c", self.conf, "-s"]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns] + argv
        self.master = self.tc.start_proc("postfix-master", argv)
        self.tc.addCleanup(self.stop)  # runs before start_proc's own stop: graceful, then the group
        try:
            harness.wait_until(self._started, timeout, interval=0.05, what="Postfix master started")
        except AssertionError as e:
            raise AssertionError("%s\nmaster output:\n%s\nmaillog:\n%s" % (e, self.startup_errors(), self.maillog()))
        return self

    def _started(self):
        if not self.master.alive():
            raise AssertionError("Postfix master exited (status %s):\n%s\n%s"
                                 % (self.master.returncode(), self.startup_errors(), self.maillog()))
        return "daemon started" in self.maillog() and os.path.exists(os.path.join(self.queue, "public", "pickup"))

    def startup_errors(self):
        return self.master.output() if self.master else ""

    @staticmethod
    def _kill_group(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self):
        if self.master:
            self.master.stop()
            self._kill_group(self.master.pid)

    def submit(self, sender, rcpts, body, timeout=30.0):
        """sendmail -C DIR -f sender -- rcpts, body on stdin (LF or CRLF lines)."""
        if isinstance(body, str):
            body = body.encode()
        try:
            p = subprocess.run([SENDMAIL, "-C", self.conf, "-oi", "-f", sender, "--"] + list(rcpts),
                               input=body, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env=self.env(), timeout=timeout, start_new_session=True)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("Postfix sendmail did not finish within %.0fs: %r" % (timeout, e.output))
        if p.returncode != 0:
            raise AssertionError("Postfix sendmail failed (rc %d): %s" % (p.returncode, p.stdout.decode("utf-8", "replace")))

    def flush(self):
        """postqueue -f: attempt to deliver everything now (ignores the backoff)."""
        subprocess.run(["postqueue", "-c", self.conf, "-f"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, env=self.env(), timeout=30)

    def queue_ids(self):
        p = subprocess.run(["postqueue", "-c", self.conf, "-j"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, env=self.env(), timeout=30)
        return re.findall(r'"queue_id":\s*"(\w+)"', p.stdout.decode("utf-8", "replace"))

    def queued(self):
        """postqueue -j: one dict per queued message (queue_name, queue_id, recipients, ...)."""
        p = subprocess.run(["postqueue", "-c", self.conf, "-j"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, env=self.env(), timeout=30)
        return [json.loads(l) for l in p.stdout.decode("utf-8", "replace").splitlines() if l.strip()]

    def postcat(self, queue_id):
        """postcat -q: a queued message's envelope, content and Postfix's own attributes, as text."""
        p = subprocess.run(["postcat", "-c", self.conf, "-q", queue_id], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env(), timeout=30)
        return p.stdout.decode("utf-8", "replace")

    # -- what it did -------------------------------------------------------------------------
    def maillog(self):
        try:
            with open(self.maillog_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def deliveries(self):
        """[(address, status, line)] from smtp's `to=<a>, ... status=sent|deferred|bounced` lines."""
        out = []
        for line in self.maillog().splitlines():
            m = re.search(r" to=<([^>]*)>,.* status=(\w+)", line)
            if m:
                out.append((m.group(1), m.group(2), line))
        return out

    def delivered(self):
        return [a for a, status, _ in self.deliveries() if status == "sent"]

    def removed(self):
        return re.findall(r": (\w+): removed$", self.maillog(), re.M)

    def wait_delivered(self, addresses, timeout):
        want = set(addresses)
        harness.wait_until(lambda: want <= set(self.delivered()), timeout, interval=0.1,
                           what="Postfix to deliver to %s (log:\n%s)" % (sorted(want), self.maillog()[-3000:]))
