#!/usr/bin/env python3
"""test/integration/test_inline_appliance.py — the inline appliance end to end, on three hosts.

    client ns                    gateway ns                               MTA ns
    10.251.1.2 ── veth ── 10.251.1.1:25 dotgate 10.251.2.1 ── veth ── 10.251.2.2:25 Postfix smtpd
    (swaks --tls, smtplib)     STARTTLS, keywords, XCLIENT    ip_forward=0     authorises XCLIENT
                               admin on the gateway's 127.0.0.1                 from 10.251.2.1 only

The deployment the README calls the inline appliance, with real hosts instead of loopback
aliases: each host is a network namespace this test creates (`ip netns add`, two veth pairs), so
the addresses are real interface addresses and the only link between client and MTA is the
gateway. The gateway does not forward (net.ipv4.ip_forward = 0 in its namespace): mail can only
reach the MTA through dotgate, which terminates the client's connection and opens its own.

What each test asserts, on both sides:
- swaks --tls and smtplib.starttls() from the client host: the client saw STARTTLS offered, the
  TLS handshake, and Postfix's `250 ... queued as ID` at the dot; dotgate's transaction line names
  the client's real address and the same TLS version and cipher the client negotiated; Postfix
  holds the message (`check_client_access static:HOLD`: it stays in the hold queue, where postcat
  shows it) with the right recipient and body, and Postfix knows the client as 10.251.1.2 (XCLIENT):
  its `ID: client=unknown[10.251.1.2]` log line, the client_address it stored with the message,
  its Received: header, its disconnect line counting the XCLIENT; nowhere as the gateway's address.
- the only path is dotgate: from the client host a direct connection to the MTA times out, while
  the gateway reaches it; with forwarding turned on for a moment the same direct connection gets
  Postfix's greeting (so the negative check can fail), and fails again once it is off; dotgate's
  admin port answers on the gateway's loopback and is closed on the address the client reaches.
- a message the keywords policy refuses: the client gets 550 5.7.1 at the dot, dotgate logs it
  rejected, Postfix's queue stays empty (and a clean message sent next is held: the check sees).

Each test makes its own namespaces, named dg-<pid>-<n>-client/-gw/-mta (veths dg<pid>n<n>...),
so runs never share one; the fixed 10.251.x addresses live only inside them. Cleanups stop
every process by its pid (Postfix's master and its process group, dotgate) and then delete
the namespaces (which destroys the veths), on failure too. Needs root, iproute2 and a kernel that
allows `ip netns add`; skips with the reason otherwise (and where Postfix cannot run privately).
"""

import itertools
import json
import os
import re
import socket
import struct
import subprocess
import sys
import time

from harness import SWAKS, Dotgate, IntegrationTest, LOOPBACK, main, parse_metrics, metric, wait_until
from postfix_client import Postfix, skip_unless_postfix

CLIENT_ADDR, GW_CLIENT_SIDE = "10.251.1.2", "10.251.1.1"
GW_MTA_SIDE, MTA_ADDR = "10.251.2.1", "10.251.2.2"
SMTP_PORT = 25       # each namespace has its own port space
ADMIN_PORT = 18025   # on the gateway's own loopback
SENDER, RCPT = "sender@example.org", "rcpt@example.test"
FORBIDDEN = "forbidden phrase"
CMD_TIMEOUT = 60.0   # any one command run inside a namespace

_serial = itertools.count(1)


def _run(argv, input=None, timeout=CMD_TIMEOUT):
    try:
        return subprocess.run(argv, input=input, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired as e:  # subprocess.run killed it
        raise AssertionError("%s did not finish within %.0fs: %r" % (argv, timeout, e.output))


class Hosts:
    """The three namespaces and two veth pairs of one test. create() builds them; delete() undoes
    whatever exists of them and is safe to call at any point (a half-made set included)."""

    def __init__(self):
        tag = "%d-%d" % (os.getpid(), next(_serial))
        self.client, self.gw, self.mta = ("dg-%s-%s" % (tag, h) for h in ("client", "gw", "mta"))
        short = "dg%sn%s" % tuple(tag.split("-"))  # interface names: at most 15 characters
        self.links = {"client": short + "c", "gw_client": short + "g1", "gw_mta": short + "g2", "mta": short + "m"}

    def ip(self, *args, ns=None):
        argv = ["ip"] + (["-n", ns] if ns else []) + list(args)
        p = _run(argv, timeout=10)
        if p.returncode != 0:
            raise AssertionError("%s: %s" % (" ".join(argv), p.stderr.decode("utf-8", "replace").strip()))

    def create(self):
        for ns in (self.client, self.gw, self.mta):
            self.ip("netns", "add", ns)
            self.ip("link", "set", "lo", "up", ns=ns)
        l = self.links
        self.ip("link", "add", l["client"], "netns", self.client, "type", "veth", "peer", "name", l["gw_client"],
                "netns", self.gw)
        self.ip("link", "add", l["mta"], "netns", self.mta, "type", "veth", "peer", "name", l["gw_mta"],
                "netns", self.gw)
        for ns, link, addr in ((self.client, l["client"], CLIENT_ADDR), (self.gw, l["gw_client"], GW_CLIENT_SIDE),
                               (self.gw, l["gw_mta"], GW_MTA_SIDE), (self.mta, l["mta"], MTA_ADDR)):
            self.ip("addr", "add", addr + "/24", "dev", link, ns=ns)
            self.ip("link", "set", link, "up", ns=ns)
        self.ip("route", "add", "default", "via", GW_CLIENT_SIDE, ns=self.client)
        self.ip("route", "add", "default", "via", GW_MTA_SIDE, ns=self.mta)
        self.set_forwarding(False)

    def set_forwarding(self, on):
        p = self.run(self.gw, ["sh", "-c", "echo %d > /proc/sys/net/ipv4/ip_forward" % (1 if on else 0)])
        if p.returncode != 0:
            raise AssertionError("ip_forward in %s: %s" % (self.gw, p.stderr.decode("utf-8", "replace")))

    def forwarding(self):
        return self.run(self.gw, ["cat", "/proc/sys/net/ipv4/ip_forward"]).stdout.decode().strip()

    def delete(self):
        existing = _run(["ip", "netns", "list"], timeout=10).stdout.decode()
        for ns in (self.client, self.gw, self.mta):
            if re.search(r"^%s\b" % re.escape(ns), existing, re.M):
                _run(["ip", "netns", "del", ns], timeout=10)  # its veth ends go with it
        for link in self.links.values():  # none should be left in the root namespace; be sure
            if os.path.exists("/sys/class/net/" + link):
                _run(["ip", "link", "del", link], timeout=10)

    def exec_argv(self, ns, argv):
        return ["ip", "netns", "exec", ns] + [str(a) for a in argv]

    def run(self, ns, argv, input=None, timeout=CMD_TIMEOUT):
        return _run(self.exec_argv(ns, argv), input=input, timeout=timeout)

    def python(self, ns, script, *args, input=None, timeout=CMD_TIMEOUT):
        """A small Python script run on that host; it prints one JSON object."""
        p = self.run(ns, [sys.executable, "-c", script] + list(args), input=input, timeout=timeout)
        try:
            return json.loads(p.stdout.decode())
        except ValueError:
            raise AssertionError("script on %s failed (rc %d): %s %s" % (ns, p.returncode, p.stdout.decode(
                "utf-8", "replace"), p.stderr.decode("utf-8", "replace")))


def netns_unavailable():
    """The reason this test cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add)"
    probe = "dg-%d-probe" % os.getpid()
    try:
        p = subprocess.run(["ip", "netns", "add", probe], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
    except (OSError, subprocess.TimeoutExpired) as e:
        return "ip netns add cannot run: %s" % e
    if p.returncode != 0:
        return "cannot create a network namespace here (ip netns add: %s)" % p.stdout.decode("utf-8", "replace").strip()
    subprocess.run(["ip", "netns", "del", probe], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)
    return None


def delete_stale_namespaces():
    """Namespaces a killed run of this test left behind (dg-<pid>-... of a pid that is gone): a
    SIGKILL skips the cleanups, and the namespaces would otherwise stay until reboot."""
    listing = _run(["ip", "netns", "list"], timeout=10).stdout.decode()
    for name, pid in re.findall(r"^(dg-(\d+)-\d+-(?:client|gw|mta))\b", listing, re.M):
        if not os.path.exists("/proc/" + pid):
            _run(["ip", "netns", "del", name], timeout=10)


def listening_in(pid, addr, port):
    """Whether a socket listens on addr:port in the network namespace of process `pid` (its
    /proc/PID/net/tcp: /proc/net is the reader's own namespace, not the one the server is in)."""
    want = "%08X:%04X" % (struct.unpack("<I", socket.inet_aton(addr))[0], port)
    try:
        with open("/proc/%d/net/tcp" % pid) as f:
            next(f)
            return any(fields[1] == want and fields[3] == "0A" for fields in (l.split() for l in f))
    except (OSError, StopIteration):
        return False


def wait_listening_in(proc, endpoints, timeout=15.0):
    def ready():
        if not proc.alive():
            raise AssertionError("%s exited (status %s):\n%s" % (proc.name, proc.returncode(), proc.output()[-4000:]))
        return all(listening_in(proc.pid, a, p) for a, p in endpoints)
    try:
        wait_until(ready, timeout, interval=0.05, what="%s listening on %s" % (proc.name, endpoints))
    except AssertionError as e:
        raise AssertionError("%s\n%s" % (e, proc.output()[-4000:]))


class GatewayDotgate(Dotgate):
    """dotgate on the gateway host: started with `ip netns exec` (which execs, so the pid is
    dotgate's and Dotgate's stop, log and sanitizer check apply unchanged)."""

    def __init__(self, tc, netns, config):
        super().__init__(tc, SMTP_PORT, config, downstream_host=MTA_ADDR)
        self.netns = netns
        self.host, self.port, self.admin_port = GW_CLIENT_SIDE, SMTP_PORT, ADMIN_PORT
        self.config["listeners"] = [{"address": GW_CLIENT_SIDE, "port": SMTP_PORT, "tls": "starttls"}]
        self.config["admin"] = {"address": LOOPBACK, "port": ADMIN_PORT, "enabled": True}

    def start(self, wait=True):
        self.write_config()
        self.tc.addCleanup(self.check_sanitizers)  # runs after the stop registered by start_proc
        self.proc = self.tc.start_proc("dotgate", ["ip", "netns", "exec", self.netns, self.bin,
                                                   "--config", self.config_path])
        # 10.251.1.1 exists only in the gateway's namespace: seen listening, the file is that one's
        wait_listening_in(self.proc, [(GW_CLIENT_SIDE, SMTP_PORT), (LOOPBACK, ADMIN_PORT)])
        return self


# one JSON line from each client-side script
SMTPLIB_CLIENT = r"""
import json, smtplib, ssl, sys
host, port, sender, rcpt = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
message = sys.stdin.buffer.read()
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE  # the test's self-signed certificate
out = {}
with smtplib.SMTP(host, port, timeout=20) as s:
    out["ehlo"] = s.ehlo("client.example")[0]
    out["starttls_offered"] = s.has_extn("starttls")
    out["starttls"] = s.starttls(context=ctx)[0]
    out["tls"] = [s.sock.version(), s.sock.cipher()[0]]
    s.ehlo("client.example")
    out["starttls_after"] = s.has_extn("starttls")
    out["mail"] = s.mail(sender)[0]
    out["rcpt"] = s.rcpt(rcpt)[0]
    code, text = s.data(message)
    out["data"] = [code, text.decode("utf-8", "replace")]
print(json.dumps(out))
"""

CONNECT_PROBE = r"""
import json, socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])) as s:
        s.settimeout(10)
        print(json.dumps({"connected": True, "banner": s.recv(512).decode("latin-1")}))
except OSError as e:
    print(json.dumps({"connected": False, "error": "%s: %s" % (type(e).__name__, e)}))
"""

HTTP_GET = r"""
import json, sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=10) as r:
    print(json.dumps({"status": r.status, "body": r.read().decode("utf-8", "replace")}))
"""


class InlineApplianceTest(IntegrationTest):

    def setUp(self):
        super().setUp()
        reason = netns_unavailable()
        if reason:
            self.skipTest(reason)
        skip_unless_postfix(self)
        delete_stale_namespaces()
        self.hosts = Hosts()
        # registered first, so it runs last: after every process inside the namespaces stopped
        self.addCleanup(self.hosts.delete)
        self.hosts.create()
        self.assertEqual(self.hosts.forwarding(), "0")

        # the MTA host: Postfix's smtpd on 10.251.2.2:25, XCLIENT authorised for the gateway's
        # address alone; example.test is a relay domain; every message is held in its queue
        self.postfix = Postfix(
            self, 9, hostname="mta.example", netns=self.hosts.mta, smtpd_host=MTA_ADDR,
            # relayhost [127.0.0.1]:9 of the MTA host: never tried, the held messages stay
            # mynetworks leaves the gateway out (the README's open relay warning)
            extra_main={"mynetworks": "127.0.0.0/8", "relay_domains": "example.test",
                        "smtpd_authorized_xclient_hosts": GW_MTA_SIDE,
                        # no reverse lookups: this host has no DNS (its packets die at the gateway)
                        "smtpd_peername_lookup": "no",
                        "smtpd_data_restrictions": "check_client_access static:HOLD"},  # (-o takes no spaces)
            smtpd=(SMTP_PORT, {"smtpd_relay_restrictions": "permit_mynetworks,reject_unauth_destination"})).start()
        wait_listening_in(self.postfix.master, [(MTA_ADDR, SMTP_PORT)])

        # the gateway: dotgate with STARTTLS (a self-signed certificate), keywords, XCLIENT
        d = self.make_dir("tls")
        self.cert, self.key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        p = _run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=mx.test.example"], timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr)
        words = os.path.join(self.make_dir("words"), "never.txt")
        with open(words, "w") as f:
            f.write(FORBIDDEN + "\n")
        self.dg = GatewayDotgate(self, self.hosts.gw, {
            "tls": {"cert_file": self.cert, "key_file": self.key},
            "smtp": {"hostname": "mx.test.example"},
            "downstream": {"xclient": True},
            "policies": [{"type": "keywords", "lists": [{"path": words, "score": 10}], "threshold": 5,
                          "action": "reject"}]}).start()

    # -- clients on the client host --------------------------------------------------------

    def swaks(self, body, subject="through the appliance"):
        p = self.hosts.run(self.hosts.client, [SWAKS, "--timeout", "20", "--server", GW_CLIENT_SIDE, "--port",
                                               SMTP_PORT, "--tls", "--ehlo", "client.example", "--from", SENDER,
                                               "--to", RCPT, "--header", "Subject: " + subject, "--body", body])
        return p.returncode, p.stdout.decode("utf-8", "replace") + p.stderr.decode("utf-8", "replace")

    def probe(self, ns, addr, port, timeout=3):
        return self.hosts.python(ns, CONNECT_PROBE, addr, str(port), str(timeout), timeout=timeout * 3 + 10)

    # -- what Postfix has -------------------------------------------------------------------

    def held(self, timeout=10):
        """The one message in Postfix's queue, once it is there: (queue entry, postcat text)."""
        entries = wait_until(lambda: self.postfix.queued(), timeout, interval=0.1,
                             what="a message in Postfix's queue (log:\n%s)" % self.postfix.maillog()[-3000:])
        self.assertEqual(len(entries), 1, entries)
        return entries[0], self.postfix.postcat(entries[0]["queue_id"])

    def assertPostfixSawTheClient(self, qid):
        """Postfix's log and queue file name the client host, never the gateway, for message qid."""
        log = self.postfix.maillog()
        self.assertRegex(log, r"smtpd\[\d+\]: %s: client=unknown\[%s\]" % (qid, re.escape(CLIENT_ADDR)), log)
        self.assertRegex(log, r"hold: DATA from unknown\[%s\]" % re.escape(CLIENT_ADDR), log)
        # dotgate's own TCP connection came from the gateway; after XCLIENT the session is the client's
        self.assertRegex(log, r"connect from unknown\[%s\]" % re.escape(GW_MTA_SIDE), log)
        wait_until(lambda: re.search(r"disconnect from unknown\[%s\]" % re.escape(CLIENT_ADDR), self.postfix.maillog()),
                   10, what="Postfix's disconnect line for the client (log:\n%s)" % self.postfix.maillog()[-2000:])
        (counts,) = re.findall(r"disconnect from unknown\[%s\] (.*)" % re.escape(CLIENT_ADDR), self.postfix.maillog())
        self.assertRegex(counts, r"\bxclient=(\d+/)?1\b", counts)
        self.assertNotRegex(self.postfix.maillog(), r"%s: client=\S*\[%s\]" % (qid, re.escape(GW_MTA_SIDE)))

    def assertHeld(self, entry, text, body):
        self.assertEqual(entry["queue_name"], "hold", entry)
        self.assertEqual([r["address"] for r in entry["recipients"]], [RCPT], entry)
        self.assertEqual(entry["sender"], SENDER, entry)
        self.assertIn("client_address=" + CLIENT_ADDR, text)  # what Postfix stored with the message
        self.assertNotIn(GW_MTA_SIDE, text)
        self.assertIn(body, text)
        received = re.search(r"^Received: (from .*?)\n(?!\s)", text, re.M | re.S)
        self.assertIsNotNone(received, text)
        self.assertIn("from client.example (unknown [%s])" % CLIENT_ADDR, " ".join(received.group(1).split()))

    def transaction_line(self):
        (line,) = self.dg.wait_log(r"\] transaction ", timeout=10)
        self.assertRegex(line, r"client=%s:\d+" % re.escape(CLIENT_ADDR), line)
        return line

    # -- the tests ---------------------------------------------------------------------------

    def test_swaks_tls_through_dotgate_to_postfix(self):
        body = "swaks over TLS, inline appliance %d" % os.getpid()
        rc, out = self.swaks(body)
        self.assertEqual(rc, 0, out)
        # the client's side: STARTTLS offered in the clear, the handshake, the rest encrypted (~>)
        self.assertRegex(out, r"(?m)^<-\s+250[- ]STARTTLS$")
        tls = re.search(r"(?m)^=== TLS started with cipher (TLSv1\.[23]):([A-Z0-9_-]+)", out)
        self.assertIsNotNone(tls, out)
        self.assertRegex(out, r"(?m)^ ~> MAIL FROM:<%s>" % SENDER)
        dot = re.search(r"(?m)^<~\s+250 2\.0\.0 Ok: queued as (\w+)", out)
        self.assertIsNotNone(dot, out)
        qid = dot.group(1)
        # dotgate's transaction line: the client's real address, the TLS the client negotiated
        line = self.transaction_line()
        self.assertIn('tls="%s %s"' % (tls.group(1), tls.group(2)), line)
        self.assertIn("outcome=accepted", line)
        # Postfix: the message, its recipient and body, and the client host as the client
        entry, text = self.held()
        self.assertEqual(entry["queue_id"], qid)
        self.assertHeld(entry, text, body)
        self.assertPostfixSawTheClient(qid)
        # the gateway's admin port (its loopback): the transaction counted
        got = self.hosts.python(self.hosts.gw, HTTP_GET, "http://%s:%d/metrics" % (LOOPBACK, ADMIN_PORT))
        self.assertEqual(got["status"], 200)
        self.assertEqual(metric(parse_metrics(got["body"]), "dotgate_transactions_total", outcome="accepted"), 1)

    def test_smtplib_starttls_through_dotgate_to_postfix(self):
        body = "smtplib over TLS, inline appliance %d" % os.getpid()
        message = ("From: <%s>\r\nTo: <%s>\r\nSubject: smtplib\r\nMessage-ID: <inline-%d@example.org>\r\n\r\n%s\r\n"
                   ".a line that starts with a dot\r\n" % (SENDER, RCPT, os.getpid(), body)).encode()
        got = self.hosts.python(self.hosts.client, SMTPLIB_CLIENT, GW_CLIENT_SIDE, str(SMTP_PORT), SENDER, RCPT,
                                input=message)
        self.assertEqual(got["ehlo"], 250, got)
        self.assertTrue(got["starttls_offered"], got)
        self.assertEqual(got["starttls"], 220, got)
        self.assertFalse(got["starttls_after"], got)
        self.assertEqual([got["mail"], got["rcpt"], got["data"][0]], [250, 250, 250], got)
        qid = re.search(r"queued as (\w+)", got["data"][1]).group(1)
        version, cipher = got["tls"]
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))
        line = self.transaction_line()
        self.assertIn('tls="%s %s"' % (version, cipher), line)
        entry, text = self.held()
        self.assertEqual(entry["queue_id"], qid)
        self.assertHeld(entry, text, body)
        self.assertIn(".a line that starts with a dot", text)  # unstuffed once, by Postfix
        self.assertNotIn("..a line", text)
        self.assertPostfixSawTheClient(qid)

    def test_the_only_path_to_the_mta_is_dotgate(self):
        self.assertEqual(self.hosts.forwarding(), "0")
        direct = self.probe(self.hosts.client, MTA_ADDR, SMTP_PORT)
        self.assertFalse(direct["connected"], direct)
        # the MTA is there: the gateway reaches it, and so would the client if the gateway forwarded
        from_gw = self.probe(self.hosts.gw, MTA_ADDR, SMTP_PORT)
        self.assertTrue(from_gw["connected"] and from_gw["banner"].startswith("220 mta.example"), from_gw)
        self.hosts.set_forwarding(True)
        try:
            routed = self.probe(self.hosts.client, MTA_ADDR, SMTP_PORT)
        finally:
            self.hosts.set_forwarding(False)
        self.assertTrue(routed["connected"] and routed["banner"].startswith("220 mta.example"), routed)
        self.assertEqual(self.hosts.forwarding(), "0")
        again = self.probe(self.hosts.client, MTA_ADDR, SMTP_PORT)
        self.assertFalse(again["connected"], again)
        # what the client reaches on the gateway: dotgate's port 25, not its admin port
        smtp = self.probe(self.hosts.client, GW_CLIENT_SIDE, SMTP_PORT)
        self.assertTrue(smtp["connected"], smtp)
        self.assertTrue(smtp["banner"].startswith("220 "), smtp)
        admin = self.probe(self.hosts.client, GW_CLIENT_SIDE, ADMIN_PORT)
        self.assertFalse(admin["connected"], admin)
        self.assertIn("ConnectionRefused", admin["error"])
        health = self.hosts.python(self.hosts.gw, HTTP_GET, "http://%s:%d/healthz" % (LOOPBACK, ADMIN_PORT))
        self.assertEqual(health["status"], 200, health)
        self.assertEqual(self.postfix.queued(), [])

    def test_refused_message_never_reaches_postfix(self):
        rc, out = self.swaks("this mail carries a %s in its body" % FORBIDDEN, subject="refused")
        self.assertNotEqual(rc, 0, out)
        self.assertIsNotNone(re.search(r"(?m)^=== TLS started with cipher", out), out)
        self.assertRegex(out, r"(?m)^<~\*\s+550 5\.7\.1 ", out)  # swaks marks the refusal <~*
        line = self.transaction_line()
        self.assertIn("outcome=rejected", line)
        self.assertRegex(line, r'tls="TLSv1\.[23] ')
        time.sleep(1.0)  # what Postfix would have queued by now
        self.assertEqual(self.postfix.queued(), [], self.postfix.maillog())
        log = self.postfix.maillog()
        # Postfix's word: no message went through cleanup to qmgr; its DATA never completed
        self.assertNotRegex(log, r"cleanup\[\d+\]: \w+: message-id=|qmgr\[\d+\]: \w+: from=", log)
        wait_until(lambda: re.search(r"disconnect from unknown\[%s\]" % re.escape(CLIENT_ADDR), self.postfix.maillog()),
                   10, what="Postfix's disconnect line (log:\n%s)" % log[-2000:])
        (counts,) = re.findall(r"disconnect from unknown\[%s\] (.*)" % re.escape(CLIENT_ADDR), self.postfix.maillog())
        self.assertRegex(counts, r"\bdata=0/1\b", counts)
        # the same path takes a clean message next: the queue check above can see one
        body = "clean mail after a refused one"
        rc, out = self.swaks(body, subject="clean")
        self.assertEqual(rc, 0, out)
        entry, text = self.held()
        self.assertHeld(entry, text, body)
        self.assertNotIn(FORBIDDEN, text)


if __name__ == "__main__":
    main()
