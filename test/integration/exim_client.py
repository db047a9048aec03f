"""test/integration/exim_client.py — a real Exim as a *sending* MTA for the integration tests.

What it is: Debian's Exim 4 (exim4-daemon-light), obtained without installing it (the package
conflicts with the installed postfix): `apt-get download` of exim4-daemon-light, exim4-base and any
library its binary needs that the host lacks (found with ldd; on Debian 12 that is libidn12),
`dpkg -x` into a cache directory, reused by later runs. Each test then runs that binary with its
own `-C` configuration in its temp dir: spool, logs, pid file and hints databases all live there;
one manualroute router sends every domain to 127.0.0.1:<port> (the server under test), through an
smtp transport that tries PRDR, and short retry rules (default `* * F,5m,2s`) with a queue-runner
daemon (`-bdf -q2s`) so that a deferred recipient comes back within seconds.

How it runs (the traps, measured on Debian 12 / Exim 4.96):
- The Debian binary has its exim user compiled in as `ref:Debian-exim`, looked up at every start
  before the configuration is read ("failed to find uid for user name"); the host has no such user
  and must not get one (that would be installing). The cached copy therefore has that string
  patched to the name of an existing user that is also a group (`mail` on Debian, uid/gid 8; the
  name may not resolve to uid 0, Exim refuses that). Spool and log directories belong to that user.
- A `-C` file not listed in TRUSTED_CONFIG_LIST (/etc/exim4/trusted_configs) makes Exim drop to the
  exim user ("exim user lost privilege for using -C option", logged once per process in the main
  and panic logs: expected, harmless). Every delivery and queue run then works as that user; that
  is enough for a sending-only MTA.
- The cached copy is not set-uid: Exim re-executes itself (`-Mc` after reception, queue runners) as
  the exim user, and a set-uid re-exec would be a secure exec that ignores LD_LIBRARY_PATH, which
  is how it finds the unpacked libidn.so.12 (`keep_environment = LD_LIBRARY_PATH` passes it on).
  `exim_path` points at the cached binary, or the re-exec runs /usr/sbin/exim4 (absent).
- The queue-runner daemon needs `-bdf` to stay in the foreground (so it is stopped by its pid),
  and -bd means it listens: on a free loopback port, with no RCPT ACL (it accepts nothing) and
  no TLS advertised.
- Start-up costs ~50 ms a process; a queue run starts every `queue_interval`, and a deferred address
  is only retried by a queue run once its retry time (the rule's interval) has passed.

Transcript: processes run with -v, which prints the SMTP dialogue (`SMTP>>` sent, `SMTP|>` sent
pipelined, `SMTP+>` sent with the previous group, `SMTP<<` received) on stderr: submissions to
their own file, queue runs (prefixed by the pid) into the daemon's log. `log_selector = +all`
puts everything else in log/mainlog.

The cache directory is $DOTGATE_EXIM_CACHE, else /var/cache/dotgate-test-exim (root), else
~/.cache/dotgate-test-exim. `exim_available()` answers (ok, reason); tests skip with that reason
when apt-get download cannot run (offline, no apt). Everything here is bounded in time.
"""

import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import time

import harness

PACKAGES = ["exim4-daemon-light", "exim4-base"]
REF_USER = b"Debian-exim"
DOWNLOAD_TIMEOUT = 120.0
RUN_TIMEOUT = 60.0

DEFERRAL_451 = ("451 4.5.3 Use PRDR or retry immediately, possibly in the same TCP connection, "
                "after DATA End of data; retry=0")


def cache_dir():
    env = os.environ.get("DOTGATE_EXIM_CACHE")
    if env:
        return env
    if os.geteuid() == 0:
        return "/var/cache/dotgate-test-exim"
    return os.path.join(os.path.expanduser("~"), ".cache", "dotgate-test-exim")


def _run(argv, timeout, cwd=None, env=None):
    try:
        p = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return 127, str(e)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def _soname_package(soname):
    """Debian's library package name for a soname: libidn.so.12 -> libidn12, libfoo-1.2.so -> libfoo1.2."""
    m = re.match(r"^(lib.+)\.so\.(\d+)$", soname)
    if m:
        base = m.group(1)
        return (base + "-" + m.group(2)) if base[-1].isdigit() else base + m.group(2)
    m = re.match(r"^(lib.+)-([\d.]+)\.so$", soname)
    if m:
        return m.group(1) + m.group(2)
    return None


def _exim_user():
    """An existing name that is a user and a group, not root, at most len("Debian-exim") long."""
    try:
        pwd.getpwnam("Debian-exim")
        grp.getgrnam("Debian-exim")
        return "Debian-exim"
    except KeyError:
        pass
    for name in ("mail", "daemon", "nobody", "postfix"):
        try:
            pw = pwd.getpwnam(name)
            grp.getgrnam(name)
        except KeyError:
            continue
        if pw.pw_uid != 0 and len(name) <= len(REF_USER):
            return name
    return None


class EximInstall:
    """The unpacked Exim in the cache: binary path, library path, user."""

    def __init__(self, root):
        self.root = root
        with open(os.path.join(root, "install.json")) as f:
            meta = json.load(f)
        self.binary = meta["binary"]
        self.libdir = meta["libdir"]
        self.user = meta["user"]
        pw = pwd.getpwnam(self.user)
        self.uid, self.gid = pw.pw_uid, grp.getgrnam(self.user).gr_gid
        self.version = meta.get("version", "")
        self.features = meta.get("features", "")

    def env(self):
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": self.libdir}
        return env


_install = None
_install_error = None


def _prepare(root):
    """Download and unpack into root (under the lock). Returns an error string or None."""
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        return "apt-get/dpkg not available"
    debs = os.path.join(root, "debs")
    tree = os.path.join(root, "tree")
    shutil.rmtree(tree, ignore_errors=True)
    os.makedirs(debs, exist_ok=True)
    os.makedirs(tree, exist_ok=True)
    os.chmod(root, 0o755)

    def fetch(pkgs):
        # -o APT::Sandbox::User=root: the cache dir is not readable by _apt (only a warning otherwise)
        rc, out = _run(["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root",
                        "-o", "Acquire::http::Timeout=20", "-o", "Acquire::Retries=1"] + pkgs,
                       DOWNLOAD_TIMEOUT, cwd=debs)
        if rc != 0:
            hint = ""
            if re.search(r"Unable to locate|no installation candidate|Can't select", out):
                hint = " (no package lists? `apt-get update` first)"
            return "apt-get download %s failed (rc %d)%s: %s" % (" ".join(pkgs), rc, hint, out.strip()[-600:])
        return None

    err = fetch(PACKAGES)
    if err:
        return err
    binary = os.path.join(tree, "usr", "sbin", "exim4")
    libdir = os.path.join(tree, "usr", "lib", "x86_64-linux-gnu")
    for _round in range(3):  # bounded: libraries of libraries
        for name in sorted(os.listdir(debs)):
            if name.endswith(".deb"):
                rc, out = _run(["dpkg", "-x", os.path.join(debs, name), tree], 60)
                if rc != 0:
                    return "dpkg -x %s failed: %s" % (name, out[-400:])
        if not os.path.exists(binary):
            return "no usr/sbin/exim4 in the downloaded packages"
        libdirs = [d for d in (libdir, os.path.join(tree, "lib", "x86_64-linux-gnu")) if os.path.isdir(d)]
        env = dict(os.environ, LD_LIBRARY_PATH=":".join(libdirs))
        rc, out = _run(["ldd", binary], 30, env=env)
        missing = sorted(set(re.findall(r"^\s*(\S+) => not found", out, re.M)))
        if not missing:
            break
        pkgs = [p for p in (_soname_package(s) for s in missing) if p]
        if len(pkgs) != len(missing):
            return "ldd: libraries missing with no package guess: %s" % missing
        err = fetch(pkgs)
        if err:
            return err
    else:
        return "ldd still reports missing libraries: %s" % missing
    # Patch the compiled-in exim user (see the module docstring) into a private, non-set-uid copy.
    user = _exim_user()
    if user is None:
        return "no user that is also a group to run Exim as"
    with open(binary, "rb") as f:
        data = f.read()
    if user != "Debian-exim":
        i = data.find(REF_USER + b"\0")
        if i < 0 or data.find(REF_USER + b"\0", i + 1) >= 0:
            return "cannot find exactly one %r in the exim binary to patch" % REF_USER
        name = user.encode()
        data = data[:i] + name + b"\0" * (len(REF_USER) + 1 - len(name)) + data[i + len(REF_USER) + 1:]
    bindir = os.path.join(root, "bin")
    os.makedirs(bindir, exist_ok=True)
    out_bin = os.path.join(bindir, "exim4")
    with open(out_bin + ".tmp", "wb") as f:
        f.write(data)
    os.chmod(out_bin + ".tmp", 0o755)
    os.replace(out_bin + ".tmp", out_bin)
    # -bV: it runs, and says what it supports
    probe = os.path.join(root, "probe.conf")
    with open(probe, "w") as f:
        f.write("keep_environment = LD_LIBRARY_PATH\n")
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": libdir}
    rc, out = _run([out_bin, "-C", probe, "-bV"], 30, env=env)
    if rc != 0 or "Exim version" not in out:
        return "exim -bV failed (rc %d): %s" % (rc, out[-800:])
    version = re.search(r"Exim version (\S+)", out).group(1)
    m = re.search(r"^Support for: (.*)$", out, re.M)
    features = m.group(1) if m else ""
    os.chmod(root, 0o755)
    for d in (bindir, tree):
        os.chmod(d, 0o755)
    with open(os.path.join(root, "install.json.tmp"), "w") as f:
        json.dump({"binary": out_bin, "libdir": libdir, "user": user, "version": version,
                   "features": features}, f)
    os.replace(os.path.join(root, "install.json.tmp"), os.path.join(root, "install.json"))
    return None


def exim_install():
    """The cached Exim (downloading it the first time). Raises unittest.SkipTest when impossible."""
    global _install, _install_error
    import unittest
    if _install is not None:
        return _install
    if _install_error is not None:
        raise unittest.SkipTest(_install_error)
    if os.geteuid() != 0:
        # the spool and logs belong to the exim user (chown), the processes drop to it
        _install_error = "a private Exim needs root (chown of its spool to the exim user)"
        raise unittest.SkipTest(_install_error)
    root = cache_dir()
    try:
        os.makedirs(root, exist_ok=True)
        lock = open(os.path.join(root, ".lock"), "w")
    except OSError as e:
        _install_error = "Exim cache %s unusable: %s" % (root, e)
        raise unittest.SkipTest(_install_error)
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel test processes share one download
        try:
            if not os.path.exists(os.path.join(root, "install.json")):
                err = _prepare(root)
                if err:
                    _install_error = "cannot obtain Exim with apt-get download: " + err
                    raise unittest.SkipTest(_install_error)
            try:
                _install = EximInstall(root)
            except (OSError, KeyError, ValueError) as e:
                _install_error = "Exim cache %s broken (%s): remove it to re-download" % (root, e)
                raise unittest.SkipTest(_install_error)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return _install


# ----------------------------------------------------------------------------------------------

SMTP_LINE = re.compile(r"^(?:(\d+) )?\s*SMTP(>>|\|>|\+>|<<)\s?(.*)$")


def parse_transcript(text):
    """[(direction, line)] from Exim's -v output: direction '>' (sent) or '<' (received);
    continuation lines of a multi-line reply are their own entries."""
    out = []
    last = None
    for raw in text.splitlines():
        m = SMTP_LINE.match(raw)
        if m:
            last = "<" if m.group(2) == "<<" else ">"
            out.append((last, m.group(3).strip()))
            continue
        # continuation of a multi-line reply: "         250-PIPELINING" (optionally pid-prefixed)
        m = re.match(r"^(?:\d+ )?\s{6,}(\d{3}[ -].*)$", raw)
        if m and last == "<":
            out.append(("<", m.group(1).strip()))
        else:
            last = None
    return out


class Exim:
    """One sending Exim: config, spool and logs in a test dir; a queue-runner daemon; submissions."""

    def __init__(self, tc, port, host=harness.LOOPBACK, prdr=True, retry="F,5m,2s", queue_interval="2s",
                 hostname="sender.example", extra_transport="", extra_main=""):
        self.tc = tc
        self.install = exim_install()
        if prdr and "PRDR" not in self.install.features.split():
            raise AssertionError("this Exim (%s) has no PRDR support: exim -bV says %r"
                                 % (self.install.version, self.install.features))
        self.port = port
        self.host = host
        self.dir = tc.make_dir("exim")
        os.chmod(self.dir, 0o755)
        self.spool = os.path.join(self.dir, "spool")
        self.logdir = os.path.join(self.dir, "log")
        for d in (self.spool, self.logdir):
            os.mkdir(d)
            os.chown(d, self.install.uid, self.install.gid)
        self.daemon_port = harness.free_port()
        self.queue_interval = queue_interval
        self.config_path = os.path.join(self.dir, "exim.conf")
        self.submissions = 0
        self.daemon = None
        with open(self.config_path, "w") as f:
            f.write(self.config_text(prdr, retry, hostname, extra_transport, extra_main))
        os.chmod(self.config_path, 0o644)

    def config_text(self, prdr, retry, hostname, extra_transport, extra_main):
        return """# written by test/integration/exim_client.py
primary_hostname = {hostname}
exim_path = {binary}
keep_environment = LD_LIBRARY_PATH
spool_directory = {spool}
log_file_path = {logdir}/%slog
pid_file_path = {dir}/exim.pid
log_selector = +all
trusted_users = root
never_users =
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
daemon_smtp_ports = {daemon_port}
local_interfaces = 127.0.0.1
# the queue-runner daemon listens (it must, with -bdf) but accepts no recipient: no RCPT ACL
ignore_bounce_errors_after = 0s
timeout_frozen_after = 1h
{extra_main}

begin routers

to_server:
  driver = manualroute
  route_list = * {host} byname
  self = send
  transport = to_server
  no_more

begin transports

to_server:
  driver = smtp
  port = {port}
  allow_localhost
  hosts_try_prdr = {prdr}
  hosts_avoid_tls = *
  hosts_try_chunking = :
  hosts_try_fastopen = :
  connect_timeout = 5s
  command_timeout = 30s
  data_timeout = 30s
  final_timeout = 30s
{extra_transport}

begin retry

*   *   {retry}
""".format(hostname=hostname, binary=self.install.binary, spool=self.spool, logdir=self.logdir,
           dir=self.dir, daemon_port=self.daemon_port, host=self.host, port=self.port,
           prdr="*" if prdr else ":", retry=retry, extra_transport=extra_transport,
           extra_main=extra_main)

    def argv(self, *args):
        return [self.install.binary, "-C", self.config_path] + [str(a) for a in args]

    # -- processes ---------------------------------------------------------------------------
    def start_queue_runner(self):
        """The daemon: a queue run every queue_interval, in the foreground, stopped by its pid."""
        self.daemon = self.tc.start_proc("exim-daemon", ["env", "-i", "LD_LIBRARY_PATH=" + self.install.libdir]
                                         + self.argv("-bdf", "-q" + self.queue_interval, "-v"))
        # its queue runs and deliveries are its children in its session: stop them with it
        # (runs before start_proc's own cleanup: SIGTERM to the daemon, then SIGKILL to the group)
        self.tc.addCleanup(self.stop)
        harness.wait_listening(self.daemon_port, self.daemon)
        return self

    @staticmethod
    def _kill_group(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self):
        if self.daemon:
            self.daemon.stop()
            self._kill_group(self.daemon.pid)

    def _run_exim(self, args, stdin_bytes=b"", timeout=RUN_TIMEOUT):
        p = subprocess.Popen(self.argv(*args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=self.install.env(), cwd=self.dir,
                             start_new_session=True)
        try:
            out, _ = p.communicate(stdin_bytes, timeout=timeout)
        except subprocess.TimeoutExpired:
            self._kill_group(p.pid)
            out, _ = p.communicate(timeout=5)
            raise AssertionError("exim %s did not finish within %.0fs:\n%s"
                                 % (" ".join(args), timeout, out.decode("utf-8", "replace")[-4000:]))
        finally:
            self._kill_group(p.pid)  # nothing it forked outlives it
        return p.returncode, out.decode("utf-8", "replace")

    def submit(self, sender, rcpts, body, deliver="odi", timeout=RUN_TIMEOUT):
        """Submit a message from the command line (-odi: deliver now, this call waits for the first
        delivery attempt; -odq: queue only, the queue runner sends it). Returns the message id."""
        if isinstance(body, str):
            body = body.encode()
        self.submissions += 1
        rc, out = self._run_exim(["-" + deliver, "-oi", "-v", "-f", sender, "--"] + list(rcpts), body, timeout)
        with open(os.path.join(self.dir, "submit-%d.out" % self.submissions), "w") as f:
            f.write(out)
        if rc != 0:
            raise AssertionError("exim submission failed (rc %d):\n%s" % (rc, out[-4000:]))
        ids = re.findall(r"(\w{6}-\w{6}-\w{2,4}) <= ", out) or re.findall(r"(\w{6}-\w{6}-\w{2,4}) <= ", self.mainlog())
        return ids[-1] if ids else None

    def run_queue(self, force=False, timeout=RUN_TIMEOUT):
        """One queue run now, in the foreground (-q honours retry times, -qff does not)."""
        rc, out = self._run_exim(["-qff" if force else "-q", "-v"], b"", timeout)
        with open(os.path.join(self.dir, "queue-run-%d.out" % time.monotonic_ns()), "w") as f:
            f.write(out)
        return rc, out

    def queue(self):
        """Message ids still in the queue (-bp)."""
        rc, out = self._run_exim(["-bp"], b"", 30)
        return re.findall(r"^\s*\S+\s+\S+\s+(\w{6}-\w{6}-\w{2,4}) ", out, re.M)

    # -- what it did -------------------------------------------------------------------------
    def mainlog(self):
        try:
            with open(os.path.join(self.logdir, "mainlog"), encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def paniclog(self):
        try:
            with open(os.path.join(self.logdir, "paniclog"), encoding="utf-8", errors="replace") as f:
                text = f.read()
        except OSError:
            return ""
        # expected with an untrusted -C file (see the module docstring)
        return "\n".join(l for l in text.splitlines() if "lost privilege for using -C option" not in l)

    def deliveries(self):
        """[(flag, address, line)] of the main log: '=>' delivered, '->' delivered (same message,
        another address), '==' deferred, '**' failed."""
        out = []
        for line in self.mainlog().splitlines():
            m = re.search(r" (=>|->|==|\*\*) (\S+)", line)
            if m and re.search(r"\w{6}-\w{6}-\w{2,4} (=>|->|==|\*\*) ", line):
                out.append((m.group(1), m.group(2), line))
        return out

    def delivered(self):
        return [a for flag, a, _ in self.deliveries() if flag in ("=>", "->")]

    def completed(self, msgid=None):
        return any("Completed" in l and (msgid is None or msgid in l) for l in self.mainlog().splitlines())

    def transcript_text(self):
        parts = []
        for name in sorted(os.listdir(self.dir)):
            if name.startswith(("submit-", "queue-run-")):
                with open(os.path.join(self.dir, name), encoding="utf-8", errors="replace") as f:
                    parts.append(f.read())
        if self.daemon:
            parts.append(self.daemon.output())
        return "\n".join(parts)

    def transcript(self):
        """[(direction, line)]: every SMTP command Exim sent ('>') and reply it read ('<')."""
        return parse_transcript(self.transcript_text())

    def wait_delivered(self, addresses, timeout):
        want = set(addresses)
        harness.wait_until(lambda: want <= set(self.delivered()), timeout, interval=0.1,
                           what="Exim to deliver to %s (log:\n%s)" % (sorted(want), self.mainlog()[-3000:]))
