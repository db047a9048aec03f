"""test/integration/harness.py — processes, ports and clients for dotgate's integration tests.

What it is: the shared toolbox of the test_*.py files in this directory. Each test starts real
processes on loopback (dotgate, Postfix's smtp-sink, fake_mta.py), talks to them with real clients
(raw sockets, smtplib, swaks) and checks what the client saw and what the downstream received.

What it owns: every process it starts. A process is registered with its test (addCleanup) and in
a module-wide table stopped at interpreter exit, so that no process outlives the run even when a
test fails or is interrupted. Stopping is by pid: SIGTERM, a bounded wait, SIGKILL, a bounded wait.
Every loop here is bounded in count and in time; a wait that runs out fails the test with what
the process logged.

The dotgate binary comes from $DOTGATE_BIN (meson passes it). A missing binary FAILS the tests:
a suite that silently skips is a suite that passes while testing nothing.
"""

import atexit
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SWAKS = shutil.which("swaks") or "/usr/bin/swaks"
FAKE_MTA = os.path.join(HERE, "fake_mta.py")
LOOPBACK = "127.0.0.1"

START_TIMEOUT = 10.0   # a process must be listening within this
STOP_TIMEOUT = 5.0     # SIGTERM grace before SIGKILL
REPLY_TIMEOUT = 10.0   # default wait for one SMTP reply

# ----------------------------------------------------------------------------------------------
# ports

_ports_lock = threading.Lock()
_ports_given = set()


def free_port(host=LOOPBACK):
    """A TCP port nobody listens on now, never handed out twice by this process."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        with _ports_lock:
            if port not in _ports_given:
                _ports_given.add(port)
                return port
    raise RuntimeError("no free port found")


def _listening_ports():
    """Ports in LISTEN state, from /proc (no connection made, so nothing is disturbed)."""
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def wait_listening(port, proc=None, timeout=START_TIMEOUT, host=LOOPBACK):
    """Wait (bounded) until `port` listens; fail early if `proc` died."""
    deadline = time.monotonic() + timeout
    use_proc = os.path.exists("/proc/net/tcp")
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise AssertionError("%s exited (status %s) before listening on %d:\n%s"
                                 % (proc.name, proc.returncode(), port, proc.output()[-4000:]))
        if use_proc:
            if port in _listening_ports():
                return
        else:
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return
            except OSError:
                pass
        time.sleep(0.02)
    raise AssertionError("port %d not listening after %.1fs%s" % (
        port, timeout, (":\n" + proc.output()[-4000:]) if proc else ""))


# ----------------------------------------------------------------------------------------------
# processes

_live = {}
_live_lock = threading.Lock()


def _kill_all_at_exit():
    with _live_lock:
        procs = list(_live.values())
    for p in procs:
        p.stop(term_timeout=1.0)


atexit.register(_kill_all_at_exit)


def _exit_on_signal(signum, _frame):
    # meson (or a user) stopping the run: unwind so that cleanups and atexit stop every child
    # (they run in their own sessions, so a signal to our process group does not reach them).
    raise SystemExit(128 + signum)


def _die_with_parent():
    """In the child, before exec: SIGKILL it if the test process dies without cleaning up.
    (Linux only; smtp-sink's -u drops this when it changes credentials, atexit covers it.)"""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class Proc:
    """One child process, its output in a file, stopped by pid."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                  stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                  preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        self.pid = self.p.pid
        with _live_lock:
            _live[self.pid] = self

    def alive(self):
        return self.p.poll() is None

    def returncode(self):
        return self.p.poll()

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def wait(self, timeout):
        """Exit status, or None if still running after `timeout`."""
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, term_timeout=STOP_TIMEOUT):
        if self.alive():
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            if self.wait(term_timeout) is None:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.wait(STOP_TIMEOUT)
        with _live_lock:
            _live.pop(self.pid, None)
        try:
            self._log.close()
        except OSError:
            pass
        return self.returncode()

    def output(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


def wait_until(predicate, timeout, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ----------------------------------------------------------------------------------------------
# smtp-sink

class SinkMessage:
    """One transaction as smtp-sink dumped it (-d). smtp-sink writes lines with LF endings and
    removes dot-stuffing, so `content` is the message as the MTA understood it, LF-terminated."""

    def __init__(self, path, raw):
        self.path = path
        self.raw = raw
        self.headers = []
        self.rcpts = []
        self.mail = None
        self.helo = None
        self.client_addr = None
        lines = raw.split(b"\n")
        i = 0
        while i < len(lines) and not lines[i].startswith(b"Received: "):
            key, _, value = lines[i].decode("latin-1").partition(": ")
            self.headers.append((key, value))
            if key == "X-Rcpt-Args":
                self.rcpts.append(value)
            elif key == "X-Mail-Args":
                self.mail = value
            elif key == "X-Helo-Args":
                self.helo = value
            elif key == "X-Client-Addr":
                self.client_addr = value
            i += 1
        if i >= len(lines):
            raise ValueError("no Received: line in %s" % path)
        i += 3  # "Received: from ...", "\tby ...", "\t<date>"
        rest = b"\n".join(lines[i:])
        # smtp-sink appends one empty line after the message
        self.content = rest[:-1] if rest.endswith(b"\n") else rest

    def __repr__(self):
        return "SinkMessage(mail=%r, rcpts=%r, %d content bytes)" % (self.mail, self.rcpts, len(self.content))


def sink_form(message):
    """What smtp-sink's dump holds for a message sent as `message` (CRLF lines, unstuffed)."""
    return message.replace(b"\r\n", b"\n")


class Sink:
    """Postfix's smtp-sink as the downstream MTA, each transaction dumped to its own file."""

    def __init__(self, tc, *flags, host=LOOPBACK, port=None):
        self.tc = tc
        self.flags = [str(f) for f in flags]
        self.host = host
        self.port = port or free_port(host)
        self.dir = tc.make_dir("sink", world_writable=True)
        self.proc = None

    def start(self):
        argv = [SMTP_SINK]
        if os.geteuid() == 0:
            argv += ["-u", "nobody"]  # smtp-sink refuses to run as root without it
        addr = ("[%s]" % self.host) if ":" in self.host else self.host
        argv += self.flags + ["-d", os.path.join(self.dir, "%Y%m%d%H%M%S."), "%s:%d" % (addr, self.port), "256"]
        self.proc = self.tc.start_proc("smtp-sink", argv)
        wait_listening(self.port, self.proc, host=self.host)
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()

    def files(self):
        try:
            names = os.listdir(self.dir)
        except OSError:
            return []
        # smtp-sink removes the file of an aborted transaction at any moment: one that vanishes
        # between listdir and stat is simply not there.
        stamped = []
        for n in names:
            p = os.path.join(self.dir, n)
            try:
                stamped.append((os.path.getmtime(p), p))
            except OSError:
                continue
        return [p for _, p in sorted(stamped)]

    def messages(self):
        """Transactions with content. smtp-sink creates a file at MAIL and removes it when the
        transaction is aborted; an empty file is a transaction still open before DATA."""
        out = []
        for p in self.files():
            try:
                with open(p, "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            if raw:
                out.append(SinkMessage(p, raw))
        return out

    def wait_for(self, n, timeout=10.0):
        wait_until(lambda: len(self.messages()) >= n, timeout, what="%d message(s) at smtp-sink" % n)
        return self.messages()

    def settle(self, seconds=0.5):
        """Give a just-aborted transaction time to be removed, then return what is there."""
        time.sleep(seconds)
        return self.messages()


# ----------------------------------------------------------------------------------------------
# fake_mta.py

class FakeMta:
    """fake_mta.py as the downstream: scripted misbehaviour and raw DATA bytes."""

    def __init__(self, tc, script=None, host=LOOPBACK):
        self.tc = tc
        self.host = host
        self.port = free_port(host)
        self.script = script or {}
        self.dir = tc.make_dir("fake")
        self.proc = None

    def start(self):
        script_path = os.path.join(self.dir, "script.json")
        with open(script_path, "w") as f:
            json.dump(self.script, f)
        addr = ("[%s]" % self.host) if ":" in self.host else self.host
        self.proc = self.tc.start_proc("fake_mta", [sys.executable, FAKE_MTA, "--listen", "%s:%d" % (addr, self.port),
                                                     "--script", script_path, "--record", self.dir])
        wait_listening(self.port, self.proc, host=self.host)
        wait_until(lambda: os.path.exists(os.path.join(self.dir, "ready")), START_TIMEOUT, what="fake_mta ready")
        return self

    def stop(self):
        if self.proc:
            self.proc.stop()

    def events(self):
        try:
            with open(os.path.join(self.dir, "events.jsonl"), encoding="utf-8") as f:
                return [json.loads(l) for l in f if l.strip()]
        except OSError:
            return []

    def messages(self):
        out = []
        for e in self.events():
            if e["event"] == "message":
                e = dict(e)
                e["data"] = base64.b64decode(e["data_b64"])
                out.append(e)
        return out

    def commands(self, conn=None):
        return [e["line"] for e in self.events()
                if e["event"] == "command" and (conn is None or e["conn"] == conn)]

    def connections(self):
        return sorted({e["conn"] for e in self.events() if e["event"] == "connect"})

    def raw(self, conn):
        try:
            with open(os.path.join(self.dir, "conn-%d.raw" % conn), "rb") as f:
                return f.read()
        except OSError:
            return b""

    def wait_for(self, n, timeout=10.0):
        wait_until(lambda: len(self.messages()) >= n, timeout, what="%d message(s) at fake_mta" % n)
        return self.messages()

    def wait_closed(self, conn, timeout=10.0):
        wait_until(lambda: any(e["event"] == "close" and e["conn"] == conn for e in self.events()),
                   timeout, what="downstream connection %d closed" % conn)


def unstuff(wire):
    """RFC 5321 4.5.2: remove the leading dot of every line that starts with one."""
    out = []
    for line in wire.split(b"\r\n"):
        out.append(line[1:] if line.startswith(b".") else line)
    return b"\r\n".join(out)


def stuff(message):
    out = []
    for line in message.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


# ----------------------------------------------------------------------------------------------
# dotgate

def deep_merge(base, over):
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def dotgate_bin():
    path = os.environ.get("DOTGATE_BIN", "")
    if not path:
        raise AssertionError("DOTGATE_BIN is not set: point it at the built proxy/dotgate")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise AssertionError("DOTGATE_BIN=%s is not an executable file" % path)
    return path


class ScriptedHttpService:
    """An HTTP service of the tests' own (webhook.py, lookup_service.py) as its own process, on a
    free loopback port. Its JSON script is rewritten atomically by set() and re-read by the
    service on every request; each request it saw is a line of DIR/requests.jsonl."""

    name = "service"   # subclasses: the process name and the temporary directory
    program = None     # the script's path
    path = "/"         # the URL path it is asked at

    def __init__(self, tc, script):
        self.tc = tc
        self.port = free_port()
        self.dir = tc.make_dir(self.name)
        self.script_path = os.path.join(self.dir, "script.json")
        self.set(script)

    def set(self, script):
        tmp = self.script_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(script, f)
        os.replace(tmp, self.script_path)

    def start(self):
        self.proc = self.tc.start_proc(self.name, [sys.executable, self.program, "--listen",
                                                   "%s:%d" % (LOOPBACK, self.port), "--script", self.script_path,
                                                   "--record", self.dir])
        wait_listening(self.port, self.proc)
        wait_until(lambda: os.path.exists(os.path.join(self.dir, "ready")), START_TIMEOUT,
                   what="%s ready" % self.name)
        return self

    def requests(self):
        try:
            with open(os.path.join(self.dir, "requests.jsonl")) as f:
                return [json.loads(l) for l in f if l.strip()]
        except OSError:
            return []

    def url(self):
        return "http://%s:%d%s" % (LOOPBACK, self.port, self.path)


class Dotgate:
    """dotgate under test: a JSON config in a temp dir, `dotgate --config FILE`, stopped by pid."""

    def __init__(self, tc, downstream_port, config=None, downstream_host=LOOPBACK, args=(),
                 admin=True, workers=1, listen_host=LOOPBACK, env=None):
        self.tc = tc
        self.env = env  # extra environment variables for the process
        self.bin = dotgate_bin()
        self.host = listen_host
        self.port = free_port(listen_host)
        self.admin_port = free_port() if admin else None
        self.dir = tc.make_dir("dotgate")
        self.args = [str(a) for a in args]
        base = {
            "listeners": [{"address": listen_host, "port": self.port}],
            "downstream": {"address": downstream_host, "port": downstream_port},
            "admin": {"address": LOOPBACK, "port": self.admin_port or free_port(), "enabled": bool(admin)},
            "workers": workers,
            "log": {"format": "text", "level": "info"},
            "drain_grace": 1,  # teardown stops with SIGTERM: do not wait the default 30 s
            "spool": {"directory": self.dir},
        }
        self.config = deep_merge(base, config or {})
        self.config_path = os.path.join(self.dir, "dotgate.json")
        self.proc = None

    def write_config(self, config=None):
        if config is not None:
            self.config = config
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            if isinstance(self.config, (bytes, str)):
                f.write(self.config if isinstance(self.config, str) else self.config.decode())
            else:
                json.dump(self.config, f, indent=1)
        os.replace(tmp, self.config_path)

    def start(self, wait=True):
        self.write_config()
        # cleanups run last-in first-out: registered before start_proc, the check runs after the stop
        self.tc.addCleanup(self.check_sanitizers)
        env = dict(os.environ, **self.env) if self.env else None
        self.proc = self.tc.start_proc("dotgate", [self.bin, "--config", self.config_path] + self.args, env=env)
        if wait:
            wait_listening(self.port, self.proc, host=self.host)
            if self.admin_port:
                wait_listening(self.admin_port, self.proc)
        return self

    def stop(self):
        return self.proc.stop() if self.proc else None

    def signal(self, sig):
        self.proc.signal(sig)

    SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                         "WARNING: ThreadSanitizer", "AddressSanitizer:DEADLYSIGNAL")

    def check_sanitizers(self):
        """A sanitizer build reports to stderr; any report fails the test that provoked it."""
        out = self.log()
        for marker in self.SANITIZER_MARKERS:
            i = out.find(marker)
            if i >= 0:
                raise AssertionError("dotgate sanitizer report:\n" + out[max(0, i - 200):i + 4000])
        status = self.proc.returncode() if self.proc else None
        if status is not None and status < 0 and status != -signal.SIGKILL and status != -signal.SIGTERM:
            raise AssertionError("dotgate died of signal %d:\n%s" % (-status, out[-3000:]))

    def log(self):
        return self.proc.output() if self.proc else ""

    def log_lines(self):
        return [l for l in self.log().splitlines() if l.strip()]

    def wait_log(self, pattern, timeout=5.0, count=1):
        """Wait (bounded) until `count` log lines match `pattern`; returns the matching lines."""
        rx = re.compile(pattern)

        def matching():
            lines = [l for l in self.log_lines() if rx.search(l)]
            return lines if len(lines) >= count else None

        return wait_until(matching, timeout, what="%d log line(s) /%s/" % (count, pattern))

    def client(self, timeout=REPLY_TIMEOUT):
        return self.tc.raw_client(self.port, host=self.host, timeout=timeout)

    # admin HTTP
    def http(self, path, method="GET", timeout=5.0):
        conn = http.client.HTTPConnection(LOOPBACK, self.admin_port, timeout=timeout)
        try:
            conn.request(method, path)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            conn.close()

    def metrics(self):
        """Prometheus text → {'name{labels}': value}."""
        status, body = self.http("/metrics")
        if status != 200:
            raise AssertionError("/metrics answered %d" % status)
        return parse_metrics(body)


def parse_metrics(body):
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)", line)
        if m:
            key = re.sub(r"\s+", "", m.group(1))
            try:
                out[key] = float(m.group(2))
            except ValueError:
                pass
    return out


def metric(metrics, name, **labels):
    """Value of a metric family member; labels given must match, others are ignored; summed."""
    total, found = 0.0, False
    for key, value in metrics.items():
        base, _, rest = key.partition("{")
        if base != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if all(have.get(k) == v for k, v in labels.items()):
            total += value
            found = True
    return total if found else None


# ----------------------------------------------------------------------------------------------
# raw SMTP client

class Reply:
    def __init__(self, raw):
        self.raw = raw
        self.lines = raw.decode("latin-1").split("\r\n")[:-1]
        self.code = int(self.lines[0][:3]) if self.lines and self.lines[0][:3].isdigit() else None
        self.codes = [l[:3] for l in self.lines]

    @property
    def text(self):
        return "\n".join(l[4:] for l in self.lines)

    @property
    def enhanced(self):
        first = self.lines[0][4:] if self.lines else ""
        m = re.match(r"^([245]\.\d{1,3}\.\d{1,3})(?:\s|$)", first)
        return m.group(1) if m else None

    def keywords(self):
        """EHLO keywords (upper case), from the lines after the first."""
        return [l[4:].split(" ", 1)[0].upper() for l in self.lines[1:] if l[4:].strip()]

    def __repr__(self):
        return "Reply(%r)" % self.raw


class ConnectionClosed(AssertionError):
    pass


class ReplyTimeout(AssertionError):
    pass


class RawClient:
    """A socket speaking SMTP byte for byte: send what you want, read whole replies."""

    def __init__(self, port, host=LOOPBACK, timeout=REPLY_TIMEOUT, connect=True):
        self.host, self.port, self.timeout = host, port, timeout
        self.buf = b""
        self.sock = None
        self.closed = False
        if connect:
            self.connect()

    def connect(self):
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self

    def close(self):
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ReplyTimeout("no complete reply within the timeout; have %r" % self.buf)
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise ReplyTimeout("no complete reply within the timeout; have %r" % self.buf)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            raise ConnectionClosed("connection closed; unparsed %r" % self.buf)
        self.buf += data

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n" not in self.buf:
            if len(self.buf) > 1 << 20:
                raise AssertionError("reply line longer than 1 MiB")
            self._fill(deadline)
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def read_reply(self, timeout=None):
        """One full reply: lines until one whose fourth octet is not '-' (bounded)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        raw = b""
        for _ in range(1000):
            line = self.read_line(max(deadline - time.monotonic(), 0.001))
            raw += line
            if len(line) < 6 or line[3:4] != b"-":
                return Reply(raw)
        raise AssertionError("reply with more than 1000 lines: %r" % raw[:2000])

    def read_replies(self, n, timeout=None):
        return [self.read_reply(timeout) for _ in range(n)]

    def converse(self, command, timeout=None):
        """Send one command line (CRLF added) and read its reply."""
        if isinstance(command, str):
            command = command.encode("latin-1")
        self.send(command + b"\r\n")
        return self.read_reply(timeout)

    def greeting(self, timeout=None):
        return self.read_reply(timeout)

    def ehlo(self, name="client.example"):
        return self.converse("EHLO " + name)

    def wait_closed(self, timeout=5.0):
        """True if the server closes within `timeout`; data before the close is kept in buf."""
        deadline = time.monotonic() + timeout
        try:
            for _ in range(100000):
                self._fill(deadline)
        except ConnectionClosed:
            return True
        except ReplyTimeout:
            return False
        return False

    def is_open(self, wait=0.2):
        return not self.wait_closed(wait)

    def send_message(self, mail, rcpts, body, ehlo=True):
        """A whole transaction, one command at a time. Returns the list of replies."""
        replies = []
        if ehlo:
            replies.append(self.ehlo())
        replies.append(self.converse("MAIL FROM:<%s>" % mail))
        for r in rcpts:
            replies.append(self.converse("RCPT TO:<%s>" % r))
        replies.append(self.converse("DATA"))
        if replies[-1].code != 354:
            return replies
        self.send(stuff(body) + b".\r\n")
        replies.append(self.read_reply())
        return replies


# ----------------------------------------------------------------------------------------------
# swaks

def run_swaks(args, timeout=30.0):
    argv = [SWAKS, "--timeout", "20"] + [str(a) for a in args]
    try:
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError("swaks did not finish within %.0fs: %r" % (timeout, e.output))
    return p.returncode, p.stdout.decode("utf-8", "replace")


def swaks_server_replies(output):
    """The lines swaks shows as received from the server ('<-' and '<**' prefixes)."""
    out = []
    for line in output.splitlines():
        m = re.match(r"^\s*<(?:-|\*\*)\s+(.*)$", line)
        if m:
            out.append(m.group(1))
    return out


# ----------------------------------------------------------------------------------------------
# the base class

class IntegrationTest(unittest.TestCase):
    """Temp dirs and processes that always go away; the binary must exist."""

    maxDiff = 4000

    def setUp(self):
        dotgate_bin()  # fails (never skips) when the binary is missing
        self._root = tempfile.mkdtemp(prefix="dotgate-it-")
        os.chmod(self._root, 0o755)  # smtp-sink runs as nobody and must reach its dump dir
        self.addCleanup(shutil.rmtree, self._root, True)
        self._dirs = 0

    def make_dir(self, name, world_writable=False):
        self._dirs += 1
        path = os.path.join(self._root, "%s-%d" % (name, self._dirs))
        os.mkdir(path)
        if world_writable:
            os.chmod(path, 0o777)
        return path

    def start_proc(self, name, argv, env=None):
        self._dirs += 1
        proc = Proc(name, argv, os.path.join(self._root, "%s-%d.log" % (name, self._dirs)), env=env)
        self.addCleanup(self._stop_and_report, proc)
        return proc

    def _stop_and_report(self, proc):
        proc.stop()

    def raw_client(self, port, host=LOOPBACK, timeout=REPLY_TIMEOUT):
        c = RawClient(port, host=host, timeout=timeout)
        self.addCleanup(c.close)
        return c

    # building blocks
    def sink(self, *flags, host=LOOPBACK):
        return Sink(self, *flags, host=host).start()

    def fake(self, script=None, host=LOOPBACK):
        return FakeMta(self, script, host=host).start()

    def dotgate(self, downstream_port, config=None, **kw):
        return Dotgate(self, downstream_port, config, **kw).start()

    # assertions
    def assertReply(self, reply, code, enhanced=None, msg=None):
        self.assertIsNotNone(reply, msg)
        self.assertEqual(reply.code, code, "%s: expected %d%s, got %r" % (msg or "reply", code,
                         (" " + enhanced) if enhanced else "", reply.raw))
        self.assertValidReply(reply)
        if enhanced is not None:
            self.assertEqual(reply.enhanced, enhanced, "%s: expected enhanced code %s in %r" % (msg or "reply", enhanced, reply.raw))

    def assertValidReply(self, reply):
        """RFC 5321 4.2 + DESIGN invariant 4: three digits, one code on every line."""
        for line in reply.lines:
            self.assertRegex(line, r"^[2-5][0-9][0-9]([ -]|$)", "malformed reply line in %r" % reply.raw)
        self.assertEqual(len(set(reply.codes)), 1, "several codes in one reply: %r" % reply.raw)

    def assertClosed(self, client, timeout=5.0, msg=None):
        self.assertTrue(client.wait_closed(timeout), msg or "connection still open after %.1fs" % timeout)

    def assertNoMessage(self, downstream, settle=0.5, msg=None):
        time.sleep(settle)
        got = downstream.messages()
        self.assertEqual(got, [], msg or "downstream received a message it must not have")


def main():
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _exit_on_signal)
    unittest.main(verbosity=2)
