#!/usr/bin/env python3
"""test/integration/test_starttls.py — TLS with the client (RFC 3207), through dotgate to the MTA.

Real clients over TLS: Python's smtplib.starttls(), swaks --tls, `openssl s_client -starttls smtp`,
smtplib.SMTP_SSL on an implicit TLS listener. What must hold, each asserted on both sides (what
the client saw and what the downstream received):
- STARTTLS is announced on a starttls listener and only before TLS; the message arrives intact;
  the transaction log line names the protocol and cipher;
- the STARTTLS command injection (2011): "STARTTLS\\r\\nRSET\\r\\n" in one packet — the RSET is
  discarded, never reaches the MTA and never gets a reply under TLS;
- after TLS the client's earlier EHLO is forgotten: MAIL before a new EHLO is 503;
- require_tls: MAIL before STARTTLS is 530 5.7.0 and nothing is relayed;
- STARTTLS twice, inside a transaction, or where not offered: refused, the session goes on;
- a client that never finishes the handshake is closed by the command timeout, nothing relayed.
The certificate is made for the test by the openssl command (EC P-256, self-signed).
"""

import json
import os
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

from harness import Dotgate, IntegrationTest, LOOPBACK, main, run_swaks

MESSAGE = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: tls\r\nMessage-ID: <tls-1@example.org>\r\n"
           b"\r\nover TLS\r\n.leading dot\r\n")


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test's self-signed certificate
    return ctx


class TlsCase(IntegrationTest):
    """A test certificate, and dotgates with TLS listeners (no tests of its own)."""

    def setUp(self):
        super().setUp()
        d = self.make_dir("tls")
        self.cert = os.path.join(d, "cert.pem")
        self.key = os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", self.key, "-out", self.cert, "-days", "2", "-subj", "/CN=mx.test.example"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)

    def tls_dotgate(self, downstream_port, mode="starttls", require=False, extra=None):
        config = {"tls": {"cert_file": self.cert, "key_file": self.key},
                  "smtp": {"hostname": "mx.test.example"}}
        if extra:
            config.update(extra)
        dg = Dotgate(self, downstream_port, config)
        dg.config["listeners"][0]["tls"] = mode
        if require:
            dg.config["listeners"][0]["require_tls"] = True
        return dg.start()



class StartTlsTest(TlsCase):

    def test_smtplib_starttls_delivers_and_logs_the_cipher(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port)
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=10) as s:
            s.ehlo("client.example")
            self.assertTrue(s.has_extn("starttls"), s.esmtp_features)
            code, _ = s.starttls(context=client_context())
            self.assertEqual(code, 220)
            self.assertIsInstance(s.sock, ssl.SSLSocket)
            s.ehlo("client.example")
            self.assertFalse(s.has_extn("starttls"), "STARTTLS announced again under TLS")
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        msgs = sink.wait_for(1)
        self.assertIn(b"over TLS", msgs[0].raw)
        line = dg.wait_log(r"transaction.*accepted")[0]
        self.assertRegex(line, r"tls=\"?TLSv1\.[23] ")

    def test_swaks_tls(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port)
        rc, out = run_swaks(["--server", LOOPBACK, "--port", dg.port, "--tls", "--from", "a@example.org",
                             "--to", "b@example.net", "--body", "swaks over tls"])
        self.assertEqual(rc, 0, out)
        self.assertIn("TLS started", out)
        sink.wait_for(1)

    def test_openssl_s_client_starttls(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port)
        p = subprocess.run(["openssl", "s_client", "-starttls", "smtp", "-connect", "%s:%d" % (LOOPBACK, dg.port),
                            "-quiet", "-ign_eof"],  # reads on after its stdin ends, until the 221
                           input=b"EHLO client.example\r\nQUIT\r\n", stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=20)
        out = p.stdout.decode("latin-1")
        self.assertIn("250", out)  # the EHLO under TLS
        self.assertIn("221", out)
        self.assertIn("CN = mx.test.example", p.stderr.decode("latin-1"))  # dotgate's certificate came
        self.assertEqual(len(sink.messages()), 0)

    def test_injection_after_starttls_is_discarded(self):
        fake = self.fake()
        dg = self.tls_dotgate(fake.port)
        c = dg.client()
        c.greeting()
        self.assertEqual(c.ehlo().code, 250)
        c.send(b"STARTTLS\r\nRSET\r\n")  # one packet: the RSET was sent in the clear
        r = c.read_reply()
        self.assertEqual(r.code, 220)
        self.assertEqual(c.buf, b"", "a reply to the injected RSET in the clear")
        c.sock = client_context().wrap_socket(c.sock)
        r = c.converse("NOOP")  # the first reply under TLS is this one's, not the RSET's
        self.assertEqual(r.code, 250)
        self.assertEqual(c.ehlo().code, 250)
        self.assertEqual(c.converse("QUIT").code, 221)
        time.sleep(0.3)
        verbs = [cmd.split(" ")[0].upper() for cmd in fake.commands()]
        self.assertNotIn("RSET", verbs, fake.commands())
        self.assertIn("NOOP", verbs)
        dg.wait_log(r"discarded bytes pipelined after STARTTLS")

    def test_mail_needs_a_new_ehlo_after_starttls(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port)
        c = dg.client()
        c.greeting()
        c.ehlo()
        self.assertEqual(c.converse("STARTTLS").code, 220)
        c.sock = client_context().wrap_socket(c.sock)
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 503, "5.5.1")
        self.assertEqual(c.ehlo().code, 250)
        self.assertEqual(c.converse("MAIL FROM:<a@example.org>").code, 250)
        self.assertEqual(c.converse("RCPT TO:<b@example.net>").code, 250)
        self.assertEqual(c.converse("DATA").code, 354)
        c.send(MESSAGE + b".\r\n")
        self.assertEqual(c.read_reply().code, 250)
        sink.wait_for(1)

    def test_require_tls_refuses_mail_in_the_clear(self):
        fake = self.fake()
        dg = self.tls_dotgate(fake.port, require=True)
        c = dg.client()
        c.greeting()
        c.ehlo()
        self.assertReply(c.converse("MAIL FROM:<a@example.org>"), 530, "5.7.0")
        self.assertEqual(c.converse("QUIT").code, 221)
        time.sleep(0.3)
        self.assertNotIn("MAIL", [cmd.split(" ")[0].upper() for cmd in fake.commands()])
        # and with TLS it goes through
        sink = self.sink()
        dg2 = self.tls_dotgate(sink.port, require=True)
        with smtplib.SMTP(LOOPBACK, dg2.port, timeout=10) as s:
            s.starttls(context=client_context())
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        sink.wait_for(1)

    def test_starttls_refusals(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port)
        c = dg.client()
        c.greeting()
        c.ehlo()
        self.assertReply(c.converse("STARTTLS now"), 501, "5.5.4")
        self.assertEqual(c.converse("MAIL FROM:<a@example.org>").code, 250)
        self.assertReply(c.converse("STARTTLS"), 503, "5.5.1")  # inside a transaction
        self.assertEqual(c.converse("RSET").code, 250)
        self.assertEqual(c.converse("STARTTLS").code, 220)
        c.sock = client_context().wrap_socket(c.sock)
        c.ehlo()
        self.assertReply(c.converse("STARTTLS"), 503, "5.5.1")  # already active
        self.assertEqual(c.converse("QUIT").code, 221)
        plain = self.dotgate(sink.port)  # no tls on this listener
        p = plain.client()
        p.greeting()
        ehlo = p.ehlo()
        self.assertNotIn(b"STARTTLS", ehlo.raw)
        self.assertReply(p.converse("STARTTLS"), 502, "5.5.1")

    def test_handshake_never_finished_times_out(self):
        fake = self.fake()
        dg = self.tls_dotgate(fake.port, extra={"smtp": {"hostname": "mx.test.example", "command_timeout": 1}})
        c = dg.client()
        c.greeting()
        c.ehlo()
        self.assertEqual(c.converse("STARTTLS").code, 220)
        started = time.monotonic()
        self.assertTrue(c.wait_closed(timeout=8.0), "dotgate kept a client that never finished the handshake")
        self.assertLess(time.monotonic() - started, 6.0)
        self.assertNotIn("MAIL", [cmd.split(" ")[0].upper() for cmd in fake.commands()])

    def test_implicit_tls_listener(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port, mode="implicit")
        with smtplib.SMTP_SSL(LOOPBACK, dg.port, timeout=10, context=client_context()) as s:
            s.ehlo("client.example")
            self.assertFalse(s.has_extn("starttls"))
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        sink.wait_for(1)
        dg.wait_log(r"transaction.*accepted.*tls=")


class DownstreamStartTlsTest(TlsCase):
    """STARTTLS towards the MTA: dotgate A (downstream.starttls) in front of dotgate B, a
    STARTTLS listener with the test certificate, in front of smtp-sink. B's transaction line
    shows whether the hop from A was encrypted."""

    def chain(self, starttls, tls=None):
        sink = self.sink()
        b = self.tls_dotgate(sink.port)
        downstream = {"starttls": starttls}
        if tls:
            downstream["tls"] = tls
        a = self.dotgate(b.port, {"downstream": downstream})
        return sink, a, b

    def send(self, port):
        with smtplib.SMTP(LOOPBACK, port, timeout=10) as s:
            s.ehlo("client.example")
            return s.sendmail("a@example.org", ["b@example.net"], MESSAGE)

    def test_required_with_verification_encrypts_the_hop(self):
        sink, a, b = self.chain("required", {"ca_file": self.cert, "verify_name": "mx.test.example"})
        self.send(a.port)
        sink.wait_for(1)
        self.assertRegex(b.wait_log(r"transaction.*accepted")[0], r"tls=\"?TLSv1\.[23] ")

    def test_wrong_name_tempfails_and_delivers_nothing(self):
        # The MTA's certificate does not name verify_name: the handshake at the session's start
        # fails, so the client hears 421 as its greeting (it retries later; nothing is taken).
        sink, a, b = self.chain("required", {"ca_file": self.cert, "verify_name": "other.example"})
        c = a.client()
        self.assertReply(c.greeting(), 421, "4.4.0")
        sink.settle(0.5)
        self.assertEqual(len(sink.messages()), 0)
        a.wait_log(r"downstream error.*(certificate|verify|tls)")

    def test_opportunistic_without_starttls_goes_plain(self):
        sink = self.sink()  # smtp-sink announces no STARTTLS
        a = self.dotgate(sink.port, {"downstream": {"starttls": "opportunistic"}})
        self.send(a.port)
        sink.wait_for(1)

    def test_required_without_starttls_fails_and_delivers_nothing(self):
        sink = self.sink()
        a = self.dotgate(sink.port, {"downstream": {"starttls": "required"}})
        c = a.client()
        self.assertReply(c.greeting(), 421, "4.4.0")  # the MTA offers no STARTTLS: no session
        sink.settle(0.5)
        self.assertEqual(len(sink.messages()), 0)


if __name__ == "__main__":
    main()
