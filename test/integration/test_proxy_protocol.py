#!/usr/bin/env python3
"""test/integration/test_proxy_protocol.py — PROXY protocol v1/v2 on a listener (issue 17).

Real parts: dotgate with a `proxy_protocol` listener; haproxy 2.6 (the Debian package) in TCP mode
in front of it with `send-proxy` and `send-proxy-v2`; Postfix's smtp-sink as the MTA (with
XCLIENT, so the MTA's own record of the client is checked too); webhook.py as a verdict service
(the policies' view of the client). The client of the haproxy cases binds 127.0.0.2, so the
address dotgate reports can only come from the header (haproxy itself connects from 127.0.0.1).

Hand-written headers over raw sockets cover what haproxy never sends: an untrusted source, a
malformed, an oversized and a trickled header, v2 LOCAL, and a header with the client's EHLO in
the same packet. For every refusal the test checks what the client saw (a close with not one
byte: no greeting, no reply) AND that the downstream saw nothing: the MTA is fake_mta.py there,
which records every connection it accepts (the downstream pool is off, so any connection would
be the session's).
"""

import os
import socket
import ssl
import struct
import subprocess
import sys
import time

from harness import (Dotgate, IntegrationTest, LOOPBACK, RawClient, ScriptedHttpService, free_port, main, metric,
                     wait_listening, wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
HAPROXY = "/usr/sbin/haproxy"
CLIENT_HOST = "127.0.0.2"  # the "internet" client: any loopback address but haproxy's 127.0.0.1

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
MESSAGE = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: proxied\r\n\r\nhello\r\n"


class Webhook(ScriptedHttpService):
    name = "webhook"
    program = os.path.join(HERE, "webhook.py")
    path = "/verdict"


def v2_header(command, family, payload):
    """command: 0 LOCAL, 1 PROXY; family: the family/protocol byte (0x11 TCP4, 0x21 TCP6)."""
    return V2_SIG + bytes([0x20 | command, family]) + struct.pack("!H", len(payload)) + payload


def v2_tcp4(src, sport, dst, dport):
    return v2_header(1, 0x11, socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport))


def v2_tcp6(src, sport, dst, dport):
    return v2_header(1, 0x21, socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst) +
                     struct.pack("!HH", sport, dport))


class TlsOverRawSocket:
    """TLS driven by hand over a plain socket (ssl.MemoryBIO), so that the test decides what goes
    in each packet: here, the PROXY header and the ClientHello together."""

    def __init__(self, sock, timeout=10.0):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the test's self-signed certificate
        self.sock, self.timeout = sock, timeout
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_side=False)
        self.plain = b""

    def client_hello(self):
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.out.read()

    def _pump(self, deadline):
        data = self.out.read()
        if data:
            self.sock.sendall(data)
        self.sock.settimeout(max(deadline - time.monotonic(), 0.01))
        got = self.sock.recv(65536)
        if not got:
            raise AssertionError("connection closed during TLS")
        self.inc.write(got)

    def handshake(self):
        deadline = time.monotonic() + self.timeout
        for _ in range(100):
            try:
                self.tls.do_handshake()
                data = self.out.read()
                if data:
                    self.sock.sendall(data)
                return self.tls.version()
            except ssl.SSLWantReadError:
                self._pump(deadline)
        raise AssertionError("TLS handshake did not finish")

    def send(self, data):
        self.tls.write(data)
        self.sock.sendall(self.out.read())

    def read_line(self):
        deadline = time.monotonic() + self.timeout
        for _ in range(1000):
            if b"\r\n" in self.plain:
                line, _, self.plain = self.plain.partition(b"\r\n")
                return line
            try:
                self.plain += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._pump(deadline)
        raise AssertionError("no line")

    def reply(self):
        lines = [self.read_line()]
        while lines[-1][3:4] == b"-":
            lines.append(self.read_line())
        return int(lines[0][:3]), lines


class ProxyProtocolTest(IntegrationTest):

    def make_certificate(self):
        d = self.make_dir("tls")
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=mx.test.example"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
        return {"cert_file": cert, "key_file": key}

    def start_implicit_tls_dotgate(self, downstream_port):
        d = Dotgate(self, downstream_port, {"tls": self.make_certificate()})
        d.config["listeners"][0].update({"tls": "implicit", "proxy_protocol": True, "proxy_protocol_from": ["127.0.0.1"]})
        self.dg = d.start()
        return self.dg

    def start_dotgate(self, downstream_port, trusted=("127.0.0.1",), **extra):
        d = Dotgate(self, downstream_port, extra)
        d.config["listeners"][0]["proxy_protocol"] = True
        if trusted is not None:
            d.config["listeners"][0]["proxy_protocol_from"] = list(trusted)
        self.dg = d.start()
        return self.dg

    def raw(self, source=LOOPBACK, timeout=10.0):
        c = RawClient(self.dg.port, host=self.dg.host, timeout=timeout, connect=False)
        c.sock = socket.create_connection((self.dg.host, self.dg.port), timeout=timeout, source_address=(source, 0))
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.addCleanup(c.close)
        return c

    def assertClosedSilently(self, client, timeout=8.0, msg=None):
        """Closed by dotgate with not one byte sent (no greeting, no reply)."""
        self.assertTrue(client.wait_closed(timeout), msg or "connection still open after %.1fs" % timeout)
        self.assertEqual(client.buf, b"", "%s: dotgate sent bytes before closing" % (msg or "refusal"))

    def assertNoDownstreamConnection(self, fake, settle=0.5):
        time.sleep(settle)
        self.assertEqual(fake.connections(), [], "the MTA got a connection: %r" % fake.events())

    def transaction_lines(self, count=1):
        return self.dg.wait_log(r"\btransaction\b", count=count)

    def send_message(self, c, rcpt="b@example.net"):
        replies = c.send_message("a@example.org", [rcpt], MESSAGE)
        self.assertEqual([r.code for r in replies], [250, 250, 250, 354, 250], replies)

    # --- haproxy in front --------------------------------------------------------------------

    def start_haproxy(self, dotgate_port):
        ports = {"v1": free_port(), "v2": free_port()}
        d = self.make_dir("haproxy")
        cfg = os.path.join(d, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("""global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend fe_v1
    bind 127.0.0.1:%(v1)d
    default_backend be_v1
frontend fe_v2
    bind 127.0.0.1:%(v2)d
    default_backend be_v2
backend be_v1
    server dotgate 127.0.0.1:%(dg)d send-proxy
backend be_v2
    server dotgate 127.0.0.1:%(dg)d send-proxy-v2
""" % dict(ports, dg=dotgate_port))
        proc = self.start_proc("haproxy", [HAPROXY, "-db", "-f", cfg])
        for p in ports.values():
            wait_listening(p, proc)
        return ports

    def test_behind_haproxy_v1_and_v2_dotgate_its_policies_and_the_mta_see_the_real_client(self):
        import smtplib
        sink = self.sink()
        hook = Webhook(self, {"mode": "json", "response": {"action": "accept"}}).start()
        self.start_dotgate(sink.port, policies=[{"type": "http", "url": hook.url(), "timeout": 5}])
        ports = self.start_haproxy(self.dg.port)
        seen = []
        for n, version in enumerate(("v1", "v2"), start=1):
            s = smtplib.SMTP(timeout=15, source_address=(CLIENT_HOST, 0))
            self.addCleanup(s.close)
            code, _ = s.connect(LOOPBACK, ports[version])
            self.assertEqual(code, 220, version)
            client_port = s.sock.getsockname()[1]
            s.ehlo("client.example")
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
            s.quit()
            seen.append(client_port)
            line = self.transaction_lines(count=n)[-1]
            # dotgate's log: the real client, and the balancer that named it.
            self.assertIn("client=%s:%d " % (CLIENT_HOST, client_port), line, version)
            self.assertRegex(line, r"\bproxy=127\.0\.0\.1:\d+ ", version)
            self.assertIn("outcome=accepted", line)
            # The policies: the webhook was told the real client.
            reqs = wait_until(lambda: len(hook.requests()) >= n and hook.requests(), 5, what="webhook request")
            addr = [v for k, v in reqs[n - 1]["headers"] if k.lower() == "x-dotgate-client-address"]
            self.assertEqual(addr, ["%s:%d" % (CLIENT_HOST, client_port)], version)
            sink.wait_for(n)
        accepted = self.dg.wait_log(r"PROXY header\b.*client=127\.0\.0\.2", count=2)
        self.assertIn("version=1", accepted[0])
        self.assertIn("version=2", accepted[1])
        m = self.dg.metrics()
        self.assertEqual(metric(m, "dotgate_proxy_headers_accepted_total", version="1"), 1)
        self.assertEqual(metric(m, "dotgate_proxy_headers_accepted_total", version="2"), 1)
        self.assertEqual(metric(m, "dotgate_proxy_headers_refused_total"), 0)

    def test_behind_haproxy_a_real_postfix_logs_the_real_client_through_xclient(self):
        """haproxy (send-proxy-v2) -> dotgate -> Postfix smtpd (XCLIENT from dotgate allowed) ->
        queue -> smtp-sink: Postfix's own log names 127.0.0.2, the client behind haproxy."""
        import smtplib
        from postfix_client import Postfix, skip_unless_postfix
        skip_unless_postfix(self)
        final = self.sink()
        smtpd_port = free_port()
        postfix = Postfix(self, final.port, hostname="mta.example", extra_main={
            "mynetworks": "127.0.0.0/8",
            "smtpd_authorized_xclient_hosts": "127.0.0.1",
        }, smtpd=(smtpd_port, {"smtpd_relay_restrictions": "permit_mynetworks,reject"})).start()
        self.start_dotgate(smtpd_port, downstream={"address": LOOPBACK, "port": smtpd_port, "xclient": True})
        ports = self.start_haproxy(self.dg.port)
        s = smtplib.SMTP(timeout=30, source_address=(CLIENT_HOST, 0))
        self.addCleanup(s.close)
        self.assertEqual(s.connect(LOOPBACK, ports["v2"])[0], 220)
        client_port = s.sock.getsockname()[1]
        s.ehlo("client.example")
        s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        s.quit()
        self.assertEqual(len(final.wait_for(1, timeout=30)), 1)
        # Postfix logs the address it was given (its client port only with smtpd_client_port_logging).
        log = wait_until(lambda: "disconnect from unknown[%s]" % CLIENT_HOST in postfix.maillog() and postfix.maillog(),
                         10, what="Postfix logging the real client")
        self.assertRegex(log, r": client=unknown\[127\.0\.0\.2\]\n")
        self.assertNotRegex(log, r"client=\S*\[127\.0\.0\.1\]")  # not dotgate's (nor haproxy's) address
        self.assertIn("client=%s:%d " % (CLIENT_HOST, client_port), self.transaction_lines()[0])

    def test_xclient_names_the_header_source_and_destination(self):
        """What the MTA is told (XCLIENT ADDR/PORT and DESTADDR/DESTPORT) is the header's, not
        the balancer's."""
        ehlo = ["250-fake.example", "250-PIPELINING", "250-XCLIENT NAME ADDR PORT PROTO HELO DESTADDR DESTPORT",
                "250 ENHANCEDSTATUSCODES"]
        fake = self.fake({"ehlo": ehlo, "rules": [{"command": "XCLIENT", "reply": "220 fake.example ESMTP"}]})
        self.start_dotgate(fake.port, downstream={"address": LOOPBACK, "port": fake.port, "xclient": True})
        c = self.raw()
        c.send(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 2525\r\n")
        self.assertEqual(c.greeting().code, 220)
        self.send_message(c)
        fake.wait_for(1)
        xclient = [l for l in fake.commands() if l.startswith("XCLIENT")]
        self.assertTrue(xclient, fake.commands())
        for attr in ("ADDR=192.0.2.7", "PORT=40000", "DESTADDR=198.51.100.1", "DESTPORT=2525"):
            self.assertIn(attr, " ".join(xclient), xclient)
        self.assertNotIn("127.0.0.1", " ".join(xclient))

    def test_implicit_tls_header_and_client_hello_in_one_packet(self):
        """The header comes before TLS; what follows it in the same packet is the ClientHello,
        for the TLS layer (not an early talker)."""
        sink = self.sink()
        self.start_implicit_tls_dotgate(sink.port)
        c = self.raw()
        tls = TlsOverRawSocket(c.sock)
        c.send(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 465\r\n" + tls.client_hello())
        self.assertIn(tls.handshake(), ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(tls.reply()[0], 220)
        for command, code in ((b"EHLO client.example", 250), (b"MAIL FROM:<a@example.org>", 250),
                              (b"RCPT TO:<b@example.net>", 250), (b"DATA", 354)):
            tls.send(command + b"\r\n")
            self.assertEqual(tls.reply()[0], code, command)
        tls.send(MESSAGE + b".\r\n")
        self.assertEqual(tls.reply()[0], 250)
        line = self.transaction_lines()[0]
        self.assertIn("client=192.0.2.7:40000 ", line)
        self.assertRegex(line, r"\btls=\"TLSv1\.[23] ")
        self.assertEqual(len(sink.wait_for(1)), 1)

    def test_behind_haproxy_implicit_tls_smtp_ssl(self):
        import smtplib
        sink = self.sink()
        self.start_implicit_tls_dotgate(sink.port)
        ports = self.start_haproxy(self.dg.port)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        s = smtplib.SMTP_SSL(LOOPBACK, ports["v2"], timeout=15, source_address=(CLIENT_HOST, 0), context=ctx)
        self.addCleanup(s.close)
        self.assertEqual(s.noop()[0], 250)  # connected and greeted (220) under TLS
        client_port = s.sock.getsockname()[1]
        s.ehlo("client.example")
        s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        s.quit()
        line = self.transaction_lines()[0]
        self.assertIn("client=%s:%d " % (CLIENT_HOST, client_port), line)
        self.assertRegex(line, r"\btls=\"TLSv1\.[23] ")
        self.assertEqual(len(sink.wait_for(1)), 1)

    def test_without_the_header_haproxy_plain_tcp_is_refused(self):
        """A balancer configured without send-proxy: its first bytes are the client's EHLO (or
        nothing): either way dotgate never greets, and the MTA sees nothing."""
        fake = self.fake()
        self.start_dotgate(fake.port, proxy_protocol_timeout=3)
        c = self.raw()
        t0 = time.monotonic()
        self.assertClosedSilently(c, timeout=8)  # no greeting ever comes; closed at the header timeout
        self.assertGreaterEqual(time.monotonic() - t0, 2.5)
        self.assertNoDownstreamConnection(fake)

    # --- hand-written headers ----------------------------------------------------------------

    def test_v1_and_v2_from_a_trusted_peer_name_the_client(self):
        sink = self.sink()
        self.start_dotgate(sink.port)
        cases = [
            (b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n", "192.0.2.7:40000"),
            (v2_tcp4("203.0.113.9", 40001, "198.51.100.1", 25), "203.0.113.9:40001"),
            (v2_tcp6("2001:db8::7", 40002, "2001:db8::1", 25), "[2001:db8::7]:40002"),
            (b"PROXY TCP6 2001:db8::8 2001:db8::1 40003 25\r\n", "[2001:db8::8]:40003"),
        ]
        for n, (header, client) in enumerate(cases, start=1):
            c = self.raw()
            c.send(header)
            self.assertEqual(c.greeting().code, 220, header)
            self.send_message(c)
            line = self.transaction_lines(count=n)[-1]
            self.assertIn("client=%s " % client, line, header)
            self.assertIn("proxy=127.0.0.1:%d " % c.sock.getsockname()[1], line)
        self.assertEqual(len(sink.wait_for(len(cases))), len(cases))
        m = self.dg.metrics()
        self.assertEqual(metric(m, "dotgate_proxy_headers_accepted_total", version="1"), 2)
        self.assertEqual(metric(m, "dotgate_proxy_headers_accepted_total", version="2"), 2)

    def test_header_split_over_many_packets_is_still_one_header(self):
        sink = self.sink()
        self.start_dotgate(sink.port)
        c = self.raw()
        for piece in (b"PRO", b"XY TCP4 192.0.2.", b"7 198.51.100.1 4", b"0000 25\r", b"\n"):
            c.send(piece)
            time.sleep(0.05)
        self.assertEqual(c.greeting().code, 220)
        self.send_message(c)
        self.assertIn("client=192.0.2.7:40000 ", self.transaction_lines()[0])
        sink.wait_for(1)

    def test_v2_local_keeps_the_connection_addresses(self):
        sink = self.sink()
        self.start_dotgate(sink.port)
        c = self.raw()
        # LOCAL with an address block: the block must be ignored (a balancer's own health check).
        c.send(v2_header(0, 0x11, socket.inet_aton("192.0.2.99") * 2 + struct.pack("!HH", 1, 2)))
        self.assertEqual(c.greeting().code, 220)
        self.send_message(c)
        line = self.transaction_lines()[0]
        self.assertIn("client=127.0.0.1:%d " % c.sock.getsockname()[1], line)
        self.assertNotIn("192.0.2.99", self.dg.log())
        self.dg.wait_log(r"PROXY header\b.*command=LOCAL")
        sink.wait_for(1)

    def test_untrusted_peer_is_closed_before_any_byte_and_nothing_is_relayed(self):
        fake = self.fake()
        self.start_dotgate(fake.port, trusted=("10.0.0.0/8", "192.0.2.1"))
        for header in (b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n", v2_tcp4("192.0.2.7", 1, "192.0.2.8", 25), b""):
            c = self.raw()
            if header:
                try:
                    c.send(header)
                except OSError:
                    pass  # already closed: just as good
            self.assertClosedSilently(c, timeout=3, msg="untrusted %r" % header)
        self.assertNoDownstreamConnection(fake)
        lines = self.dg.wait_log(r"PROXY header refused.*reason=untrusted", count=3)
        self.assertIn("client=127.0.0.1:", lines[0])
        self.assertEqual(metric(self.dg.metrics(), "dotgate_proxy_headers_refused_total", reason="untrusted"), 3)

    def test_top_level_list_applies_to_a_listener_without_its_own(self):
        fake = self.fake()
        self.start_dotgate(fake.port, trusted=None, proxy_protocol_from=["192.0.2.0/24"])
        c = self.raw()
        self.assertClosedSilently(c, timeout=3)
        self.assertNoDownstreamConnection(fake)

    def test_malformed_headers_close_with_nothing_relayed(self):
        fake = self.fake()
        self.start_dotgate(fake.port)
        bad = [
            b"EHLO client.example\r\n",                               # no header at all
            b"PROXY TCP4 192.0.2.7 198.51.100.1 040000 25\r\n",       # leading zero
            b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\n",          # bare LF
            b"PROXY TCP5 192.0.2.7 198.51.100.1 40000 25\r\n",        # unknown protocol
            b"PROXY  TCP4 192.0.2.7 198.51.100.1 40000 25\r\n",       # two spaces
            b"PROXY TCP4 2001:db8::1 198.51.100.1 40000 25\r\n",      # family mismatch
            V2_SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12,              # v2 version 3
            V2_SIG + b"\x21\x11\x00\x04" + b"\x00" * 4,               # v2 shorter than its address block
            V2_SIG[:8] + b"XXXX",                                     # a broken signature
        ]
        for header in bad:
            c = self.raw()
            c.send(header)
            self.assertClosedSilently(c, timeout=3, msg="malformed %r" % header)
        self.assertNoDownstreamConnection(fake)
        self.assertEqual(metric(self.dg.metrics(), "dotgate_proxy_headers_refused_total", reason="malformed"), len(bad))
        self.dg.wait_log(r"PROXY header refused.*reason=malformed", count=len(bad))

    def test_oversized_headers_close_with_nothing_relayed(self):
        fake = self.fake()
        self.start_dotgate(fake.port)
        cases = [
            b"PROXY UNKNOWN " + b"a" * 200 + b"\r\n",                 # v1 past 107 bytes
            V2_SIG + b"\x21\x11" + struct.pack("!H", 4096),            # v2 announcing 4 KiB (refused at once)
        ]
        for header in cases:
            c = self.raw()
            c.send(header)
            self.assertClosedSilently(c, timeout=3, msg="oversized %r" % header[:20])
        self.assertNoDownstreamConnection(fake)
        self.assertEqual(metric(self.dg.metrics(), "dotgate_proxy_headers_refused_total", reason="oversized"), 2)

    def test_a_trickled_header_times_out_from_the_accept(self):
        """One byte a second keeps arriving, but the timeout counts from the accept: the header
        must be whole by then (else a trickler holds the slot for hours)."""
        fake = self.fake()
        self.start_dotgate(fake.port, proxy_protocol_timeout=3)
        c = self.raw()
        t0 = time.monotonic()
        closed_at = None
        for b in b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n"[:-1]:
            try:
                c.send(bytes([b]))
            except OSError:
                break
            if not c.is_open(wait=0.7):
                closed_at = time.monotonic() - t0
                break
            if time.monotonic() - t0 > 10:
                break
        self.assertIsNotNone(closed_at, "still open after the trickle")
        self.assertGreaterEqual(closed_at, 2.8)
        self.assertLess(closed_at, 5.0)
        self.assertEqual(c.buf, b"")
        self.assertNoDownstreamConnection(fake)
        self.assertEqual(metric(self.dg.metrics(), "dotgate_proxy_headers_refused_total", reason="timeout"), 1)

    def test_peer_closing_before_its_header_is_counted_and_relays_nothing(self):
        fake = self.fake()
        self.start_dotgate(fake.port)
        c = self.raw()
        c.send(b"PROXY TCP4 192.0.2.7")
        c.sock.shutdown(socket.SHUT_WR)
        self.assertClosedSilently(c, timeout=3)
        self.assertNoDownstreamConnection(fake)
        wait_until(lambda: metric(self.dg.metrics(), "dotgate_proxy_headers_refused_total", reason="closed") == 1, 3,
                   what="the closed refusal counted")

    def test_header_and_ehlo_in_one_packet_is_an_early_talker(self):
        """After the header the greeting has not been sent: a client line in the same packet is
        an early talker (554), exactly as on a plain listener, and the MTA never hears of it."""
        fake = self.fake()
        self.start_dotgate(fake.port)
        c = self.raw()
        c.send(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\nEHLO client.example\r\n")
        r = c.read_reply()
        self.assertEqual(r.code, 554, r.raw)
        self.assertClosed(c)
        time.sleep(0.5)
        self.assertNotIn("EHLO client.example", fake.commands())
        self.dg.wait_log(r"early talker.*client=192\.0\.2\.7:40000")
        self.assertIn("proxy=127.0.0.1:", self.dg.wait_log(r"PROXY header\b.*client=192\.0\.2\.7:40000")[0])
        # In one read (the usual case on loopback) not even a downstream connection is opened.
        self.assertEqual(metric(self.dg.metrics(), "dotgate_proxy_headers_accepted_total", version="1"), 1)

    def test_plain_listener_next_to_it_is_unaffected(self):
        """A header sent to a listener without proxy_protocol is just a bad command."""
        sink = self.sink()
        d = Dotgate(self, sink.port)
        plain_port = d.port
        d.config["listeners"].append({"address": LOOPBACK, "port": free_port(), "proxy_protocol": True,
                                      "proxy_protocol_from": ["127.0.0.1"]})
        self.dg = d.start()
        proxied = RawClient(d.config["listeners"][1]["port"])
        self.addCleanup(proxied.close)
        proxied.send(b"PROXY TCP4 192.0.2.7 198.51.100.1 40000 25\r\n")
        self.assertEqual(proxied.greeting().code, 220)
        plain = self.raw_client(plain_port)
        self.assertEqual(plain.greeting().code, 220)
        r = plain.converse("PROXY TCP4 192.0.2.7 198.51.100.1 40000 25")
        self.assertEqual(r.code // 100, 5, r.raw)
        self.send_message(proxied)
        self.assertIn("client=192.0.2.7:40000 ", self.transaction_lines()[0])


if __name__ == "__main__":
    if not os.path.exists(HAPROXY):
        sys.exit("haproxy is not installed (%s): apt-get install haproxy" % HAPROXY)
    main()
