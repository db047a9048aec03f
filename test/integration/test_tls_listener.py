#!/usr/bin/env python3
"""test/integration/test_tls_listener.py — dotgate's own certificate over time, and what an implicit
TLS listener says when it refuses (issue 17, STARTTLS client side).

- SIGHUP reloads tls.cert_file and key_file: a new connection gets the new certificate (compared
  byte for byte with the file, getpeercert(binary_form=True)), a session that shook hands before
  keeps working and delivers; a key that does not load, or one of another certificate, is refused
  and logged with the key's path, counted in dotgate_config_reloads_total{result="refused"}, and
  the running certificate stays;
- an implicit TLS listener (port 465 style) over smtp.max_connections refuses over TLS, as
  Postfix's smtpd does in wrapper mode: the handshake completes and the client reads one 421
  line, then the close (SMTP_SSL raises SMTPConnectError(421)); the session already open is
  undisturbed; a client that never shakes hands is closed within min(command_timeout, 10 s) with
  nothing written; behind the PROXY protocol the header is read first; past 64 refusals in
  handshake on a worker the next is closed at once.
The certificates are made for the test by the openssl command (EC P-256, self-signed).
"""

import shutil
import signal
import smtplib
import socket
import time

from harness import Dotgate, LOOPBACK, main, metric, wait_until
from test_starttls import MESSAGE, TlsCase, client_context, der_of, make_certificate


class CertificateReloadTest(TlsCase):
    """SIGHUP reads tls.cert_file and key_file again (implicit TLS listener, so that the
    certificate is the first thing a connection gets)."""

    def peer_der(self, port):
        with socket.create_connection((LOOPBACK, port), timeout=10) as raw:
            with client_context().wrap_socket(raw) as tls:
                der = tls.getpeercert(binary_form=True)
                tls.settimeout(10)
                self.assertTrue(tls.recv(512).startswith(b"220 "))
                tls.sendall(b"QUIT\r\n")
                return der

    def reloads(self, dg, result):
        return metric(dg.metrics(), "dotgate_config_reloads_total", result=result)

    def test_sighup_serves_the_new_certificate_and_keeps_sessions(self):
        d = self.make_dir("renewed")
        new_cert, new_key = make_certificate(d, "b", "renewed.test.example")
        old_der, new_der = der_of(self.cert), der_of(new_cert)
        self.assertNotEqual(old_der, new_der)
        sink = self.sink()
        dg = self.tls_dotgate(sink.port, mode="implicit")
        self.assertEqual(self.peer_der(dg.port), old_der)
        with smtplib.SMTP_SSL(LOOPBACK, dg.port, timeout=10, context=client_context()) as s:
            s.ehlo("client.example")
            self.assertEqual(s.sock.getpeercert(binary_form=True), old_der)
            # the renewal: the files replaced in place (what certbot's hook leaves), then SIGHUP
            shutil.copyfile(new_key, self.key)
            shutil.copyfile(new_cert, self.cert)
            dg.signal(signal.SIGHUP)
            dg.wait_log(r"configuration reloaded")
            self.assertEqual(self.reloads(dg, "applied"), 1)
            self.assertEqual(self.peer_der(dg.port), new_der, "a new connection gets the new certificate")
            # the session that shook hands before goes on with its own
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
            self.assertEqual(s.noop()[0], 250)
        self.assertIn(b"over TLS", sink.wait_for(1)[0].content)

    def test_a_key_that_does_not_load_is_refused_and_the_old_certificate_stays(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port, mode="implicit")
        old_der = der_of(self.cert)
        with open(self.key, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n")
        dg.signal(signal.SIGHUP)
        line = dg.wait_log(r"configuration reload refused")[0]
        self.assertIn("tls.key_file", line)
        self.assertIn(self.key, line)
        self.assertEqual(self.reloads(dg, "refused"), 1)
        self.assertEqual(self.reloads(dg, "applied"), 0)
        self.assertEqual(self.peer_der(dg.port), old_der, "the running certificate stays")
        # a key of another certificate: refused the same way
        d = self.make_dir("other")
        _, other_key = make_certificate(d, "c", "other.test.example")
        shutil.copyfile(other_key, self.key)
        dg.signal(signal.SIGHUP)
        dg.wait_log(r"configuration reload refused", count=2)
        self.assertEqual(self.reloads(dg, "refused"), 2)
        with smtplib.SMTP_SSL(LOOPBACK, dg.port, timeout=10, context=client_context()) as s:
            self.assertEqual(s.sock.getpeercert(binary_form=True), old_der)
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        sink.wait_for(1)


class ImplicitTlsRefusalTest(TlsCase):
    """An implicit TLS listener over max_connections: the 421 goes over TLS, after the handshake
    (as Postfix's smtpd does in wrapper mode), bounded by min(command_timeout, 10 s)."""

    def test_second_client_reads_421_over_tls(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port, mode="implicit", smtp={"max_connections": 1, "command_timeout": 3})
        first = smtplib.SMTP_SSL(LOOPBACK, dg.port, timeout=10, context=client_context())
        self.addCleanup(first.close)  # no QUIT at the end: it may have timed out (see below)
        first.ehlo("client.example")
        # a raw TLS client: the handshake completes, the 421 is the first (and last) thing said
        with socket.create_connection((LOOPBACK, dg.port), timeout=10) as raw:
            with client_context().wrap_socket(raw) as tls:
                tls.settimeout(10)
                got = b""
                for _ in range(20):
                    chunk = tls.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                self.assertRegex(got.decode("latin-1"), r"^421 4\.7\.0 mx\.test\.example Too many connections")
                self.assertTrue(got.endswith(b"\r\n"))
                self.assertEqual(got.count(b"\r\n"), 1, got)
        # smtplib: the greeting is the 421
        with self.assertRaises(smtplib.SMTPConnectError) as e:
            smtplib.SMTP_SSL(LOOPBACK, dg.port, timeout=10, context=client_context())
        self.assertEqual(e.exception.smtp_code, 421)
        # the first session was not disturbed
        first.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        # one that never starts its handshake: closed within the bound, nothing written to it
        # (the first session idles meanwhile and may time out too: command_timeout is short)
        with socket.create_connection((LOOPBACK, dg.port), timeout=10) as silent:
            started = time.monotonic()
            silent.settimeout(8)
            self.assertEqual(silent.recv(4096), b"", "nothing may be said before a handshake")
            self.assertLess(time.monotonic() - started, 6.0)
        dg.wait_log(r"did not finish its TLS handshake in time")
        self.assertEqual(len(sink.wait_for(1)), 1)
        self.assertGreaterEqual(metric(dg.metrics(), "dotgate_connections_refused_total"), 3)
        # the refused ones held their slot only for their handshake: a new client is served
        first.close()
        wait_until(lambda: metric(dg.metrics(), "dotgate_connections_open") == 0, 5.0, what="no connection open")
        with smtplib.SMTP_SSL(LOOPBACK, dg.port, timeout=10, context=client_context()) as s:
            self.assertEqual(s.noop()[0], 250)

    def proxied_tls(self, port, client_ip):
        raw = socket.create_connection((LOOPBACK, port), timeout=10)
        raw.sendall(("PROXY TCP4 %s 198.51.100.1 40000 465\r\n" % client_ip).encode())
        tls = client_context().wrap_socket(raw)
        self.addCleanup(tls.close)
        tls.settimeout(10)
        return tls

    def test_behind_proxy_protocol_the_header_comes_first(self):
        sink = self.sink()
        dg = Dotgate(self, sink.port, {"tls": {"cert_file": self.cert, "key_file": self.key},
                                       "smtp": {"hostname": "mx.test.example", "max_connections": 1}})
        dg.config["listeners"][0].update({"tls": "implicit", "proxy_protocol": True,
                                          "proxy_protocol_from": ["127.0.0.1"]})
        dg.start()
        first = self.proxied_tls(dg.port, "192.0.2.7")
        self.assertTrue(first.recv(512).startswith(b"220 "))
        second = self.proxied_tls(dg.port, "192.0.2.8")
        self.assertTrue(second.recv(512).startswith(b"421 4.7.0 "))
        self.assertEqual(second.recv(512), b"")
        dg.wait_log(r"connection refused")
        first.sendall(b"QUIT\r\n")
        self.assertTrue(first.recv(512).startswith(b"221 "))

    def test_refusals_in_handshake_are_capped(self):
        # 64 refused connections that never shake hands hold the worker's refusal slots; the 65th
        # is closed at once without a reply, before its bound (a flood cannot buy handshakes).
        sink = self.sink()
        dg = self.tls_dotgate(sink.port, mode="implicit", smtp={"max_connections": 1, "command_timeout": 5})
        first = smtplib.SMTP_SSL(LOOPBACK, dg.port, timeout=10, context=client_context())
        self.addCleanup(first.close)
        held = []
        for _ in range(64):
            c = socket.create_connection((LOOPBACK, dg.port), timeout=10)
            self.addCleanup(c.close)
            held.append(c)
        wait_until(lambda: metric(dg.metrics(), "dotgate_connections_refused_total") >= 64, 5.0, what="64 refusals")
        started = time.monotonic()
        with socket.create_connection((LOOPBACK, dg.port), timeout=10) as extra:
            extra.settimeout(8)
            self.assertEqual(extra.recv(4096), b"")
        self.assertLess(time.monotonic() - started, 2.5, "closed at once, not at the handshake bound")
        dg.wait_log(r"closed without a reply: too many refusals in TLS handshake")
        for c in held:
            c.close()
        self.assertEqual(first.noop()[0], 250)


if __name__ == "__main__":
    main()
