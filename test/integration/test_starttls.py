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
- smtp.trace_header: a message from a TLS client (smtplib.starttls(), swaks --tls, SMTP_SSL)
  reaches the MTA with one Received field of dotgate's on top, naming ESMTPS (SMTP after HELO)
  and the cipher; the rest is the message as sent; "off" adds none, a plain session gets none by
  default and `with ESMTP` with "always"; a PRDR replay and the deferral split's second
  transaction carry it once each; it is not counted against smtp.max_message_size;
  a real rspamd parses the field as an ESMTPS hop.
Certificate reload and the refusals of implicit TLS listeners: test_tls_listener.py.
The certificates are made for the test by the openssl command (EC P-256, self-signed).
"""

import json
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import time

import test_profiles as profiles_test
import test_rspamd as rspamd_test
from harness import Dotgate, IntegrationTest, LOOPBACK, main, run_swaks, sink_form, stuff

MESSAGE = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: tls\r\nMessage-ID: <tls-1@example.org>\r\n"
           b"\r\nover TLS\r\n.leading dot\r\n")


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the test's self-signed certificate
    return ctx


def make_certificate(directory, name, cn):
    """An EC P-256 self-signed certificate and its key: (cert path, key path)."""
    cert = os.path.join(directory, name + "-cert.pem")
    key = os.path.join(directory, name + "-key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + cn],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    return cert, key


def der_of(cert_path):
    with open(cert_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def trace_fields(content):
    """The Received fields at the top of a message as smtp-sink holds it (LF lines; continuation
    lines kept, with their LF and TAB) and what follows them."""
    lines = content.split(b"\n")
    fields = []
    i = 0
    while i < len(lines) and lines[i].startswith(b"Received:"):
        field = lines[i]
        i += 1
        while i < len(lines) and lines[i].startswith(b"\t"):
            field += b"\n" + lines[i]
            i += 1
        fields.append(field)
    return fields, b"\n".join(lines[i:])


DATE = rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d \+0000"
TLS_TRACE = re.compile(
    rb"Received: from client\.example \(\[127\.0\.0\.1\]\)\n"
    rb"\t\(using (TLSv1\.[23]) with cipher ([A-Z0-9_-]+) \((\d+)/(\d+) bits\)\)\n"
    rb"\tby mx\.test\.example \(dotgate\) with (E?SMTPS?) id ([0-9A-F]+)\n"
    rb"\ttls (TLS_[A-Z0-9_]+);\n"
    rb"\t" + DATE + rb"$")
PLAIN_TRACE = re.compile(
    rb"Received: from client\.example \(\[127\.0\.0\.1\]\)\n"
    rb"\tby mx\.test\.example \(dotgate\) with (E?SMTP) id ([0-9A-F]+);\n"
    rb"\t" + DATE + rb"$")


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

    def tls_dotgate(self, downstream_port, mode="starttls", require=False, extra=None, smtp=None):
        config = {"tls": {"cert_file": self.cert, "key_file": self.key},
                  "smtp": dict({"hostname": "mx.test.example"}, **(smtp or {}))}
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
        dg = self.tls_dotgate(fake.port, smtp={"command_timeout": 1})
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


class TraceHeaderTest(TlsCase):
    """smtp.trace_header: dotgate's Received field, as the MTA (smtp-sink) received it."""

    def only_trace(self, msg):
        fields, rest = trace_fields(msg.content)
        self.assertEqual(len(fields), 1, "one Received field of dotgate's: %r" % (fields,))
        for line in fields[0].split(b"\n"):
            self.assertLessEqual(len(line), 78, line)
        return fields[0], rest

    def test_smtplib_starttls_message_starts_with_the_trace(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port)  # the default: "tls"
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=10) as s:
            s.ehlo("client.example")
            s.starttls(context=client_context())
            s.ehlo("client.example")
            cipher = s.sock.cipher()  # (name, version, bits) as the client negotiated it
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        msg = sink.wait_for(1)[0]
        field, rest = self.only_trace(msg)
        m = TLS_TRACE.match(field)
        self.assertIsNotNone(m, field)
        version, name, bits, alg_bits, proto, queue_id, iana = m.groups()[:7]
        self.assertEqual(proto, b"ESMTPS")
        self.assertEqual(version.decode(), cipher[1])
        self.assertEqual(name.decode(), cipher[0])
        self.assertEqual(int(bits), cipher[2])
        self.assertEqual(bits, alg_bits)
        if version == b"TLSv1.3":
            self.assertEqual(iana, name)  # TLS 1.3 suites have the IANA names in OpenSSL too
        self.assertEqual(rest, sink_form(MESSAGE), "the message itself is as the client sent it")
        line = dg.wait_log(r"transaction.*accepted")[0]
        self.assertIn(queue_id.decode(), line, "the id clause is the log line's queue_id")
        self.assertIn("%s %s" % (version.decode(), name.decode()), line)

    def test_swaks_tls(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port)
        rc, out = run_swaks(["--server", LOOPBACK, "--port", dg.port, "--tls", "--ehlo", "client.example",
                             "--from", "a@example.org", "--to", "b@example.net", "--body", "swaks over tls"])
        self.assertEqual(rc, 0, out)
        field, rest = self.only_trace(sink.wait_for(1)[0])
        m = TLS_TRACE.match(field)
        self.assertIsNotNone(m, field)
        self.assertEqual(m.group(5), b"ESMTPS")
        self.assertIn(b"swaks over tls", rest)

    def test_implicit_tls_after_helo_says_smtp(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port, mode="implicit")
        with smtplib.SMTP_SSL(LOOPBACK, dg.port, timeout=10, context=client_context()) as s:
            s.helo("client.example")  # RFC 3848 is for ESMTP only: "with SMTP", TLS in the comment
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        field, rest = self.only_trace(sink.wait_for(1)[0])
        m = TLS_TRACE.match(field)
        self.assertIsNotNone(m, field)
        self.assertEqual(m.group(5), b"SMTP")
        self.assertEqual(rest, sink_form(MESSAGE))

    def test_off_adds_nothing(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port, smtp={"trace_header": "off"})
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=10) as s:
            s.starttls(context=client_context())
            s.ehlo("client.example")
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        msg = sink.wait_for(1)[0]
        self.assertEqual(msg.content, sink_form(MESSAGE))
        self.assertEqual(trace_fields(msg.content)[0], [])

    def test_plain_session_gets_none_by_default_and_esmtp_with_always(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port)
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=10) as s:
            s.ehlo("client.example")  # STARTTLS offered, not taken
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        msg = sink.wait_for(1)[0]
        self.assertEqual(msg.content, sink_form(MESSAGE), "the MTA's own Received says as much")
        sink2 = self.sink()
        dg2 = self.tls_dotgate(sink2.port, smtp={"trace_header": "always"})
        with smtplib.SMTP(LOOPBACK, dg2.port, timeout=10) as s:
            s.ehlo("client.example")
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        field, rest = self.only_trace(sink2.wait_for(1)[0])
        m = PLAIN_TRACE.match(field)
        self.assertIsNotNone(m, field)
        self.assertEqual(m.group(1), b"ESMTP")
        self.assertNotIn(b"using", field)
        self.assertEqual(rest, sink_form(MESSAGE))

    def test_not_counted_against_max_message_size(self):
        # A message of exactly smtp.max_message_size octets (its wire form, as DataStream counts
        # it) is taken: the header dotgate adds is not the client's to pay for.
        wire = stuff(MESSAGE)
        sink = self.sink()
        dg = self.tls_dotgate(sink.port, smtp={"max_message_size": len(wire)})
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=10) as s:
            s.starttls(context=client_context())
            s.ehlo("client.example")
            s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
        field, rest = self.only_trace(sink.wait_for(1)[0])
        self.assertEqual(rest, sink_form(MESSAGE))
        # and one octet more is refused (the limit is real)
        dg2 = self.tls_dotgate(sink.port, smtp={"max_message_size": len(wire) - 1})
        with smtplib.SMTP(LOOPBACK, dg2.port, timeout=10) as s:
            s.starttls(context=client_context())
            s.ehlo("client.example")
            with self.assertRaises(smtplib.SMTPDataError) as e:
                s.sendmail("a@example.org", ["b@example.net"], MESSAGE)
            self.assertEqual(e.exception.smtp_code, 552)
        self.assertEqual(len(sink.settle(0.5)), 1)


class TraceHeaderReplayTest(TlsCase, profiles_test.ProfilesBase):
    """The trace on the paths where the message goes downstream again or in pieces: the PRDR
    replay (from the spool, for the recipients their profiles accepted) and the deferral split's
    second transaction. Profiles and webhooks as in test_profiles.py, over STARTTLS."""

    def tls_setup(self, lenient):
        self.strict = profiles_test.Webhook(self, profiles_test.ACCEPT).start()
        self.lenient = profiles_test.Webhook(self, lenient).start()
        self.down = self.sink()
        self.dg = self.tls_dotgate(self.down.port, extra={
            "policies": [{"type": "http", "name": "strict-hook", "url": self.strict.url(), "timeout": 10},
                         {"type": "http", "name": "lenient-hook", "url": self.lenient.url(), "timeout": 10}],
            "profiles": profiles_test.profiles_brief(), "recipients": profiles_test.rules_brief(),
            "split": profiles_test.split_brief()})

    def tls_client(self):
        c = self.dg.client()
        self.assertReply(c.greeting(), 220)
        c.ehlo()
        self.assertEqual(c.converse("STARTTLS").code, 220)
        c.sock = client_context().wrap_socket(c.sock)
        self.assertReply(c.ehlo(), 250)
        return c

    def assertOneTrace(self, msg):
        fields, rest = trace_fields(msg.content)
        self.assertEqual(len(fields), 1, fields)
        self.assertIsNotNone(TLS_TRACE.match(fields[0]), fields[0])
        self.assertEqual(rest, sink_form(profiles_test.MESSAGE))
        return fields[0]

    def test_prdr_replay_carries_it_once(self):
        self.tls_setup(profiles_test.REJECT)
        c = self.tls_client()
        t = self.transaction(c, [profiles_test.CAROL, profiles_test.ALICE, profiles_test.DAVE], prdr=True)
        self.assertPrdrReplies(t, [550, 250, 250], 250)
        msgs = self.down.settle(1.0)
        self.assertEqual(self.sink_rcpts(msgs), [sorted([profiles_test.ALICE, profiles_test.DAVE])])
        self.assertOneTrace(msgs[0])
        self.dg.wait_log(r"replaying message to a fresh transaction")

    def test_deferral_split_each_transaction_once(self):
        self.tls_setup(profiles_test.ACCEPT)
        c = self.tls_client()
        first = self.transaction(c, [profiles_test.ALICE, profiles_test.CAROL])
        self.assertEqual([r.code for r in first["rcpts"]], [250, 451])
        self.assertReply(first["dot"][0], 250)
        second = self.transaction(c, [profiles_test.CAROL])
        self.assertReply(second["dot"][0], 250)
        msgs = self.down.wait_for(2)
        ids = set()
        for m in msgs:
            field = self.assertOneTrace(m)
            ids.add(TLS_TRACE.match(field).group(6))
        self.assertEqual(len(ids), 2, "each transaction has its own id")


class TraceHeaderRspamdTest(TlsCase):
    """A real rspamd reads dotgate's field as a TLS hop (what its RCVD_TLS_LAST looks at), and
    its milter header (a replay from the spool) leaves the field there once."""
    rspamd = None

    @classmethod
    def setUpClass(cls):
        cls.rspamd = rspamd_test.RspamdServer().start()

    @classmethod
    def tearDownClass(cls):
        if cls.rspamd:
            cls.rspamd.stop()

    def test_rspamd_parses_esmtps(self):
        sink = self.sink()
        dg = self.tls_dotgate(sink.port, extra={"policies": [{"type": "rspamd", "url": self.rspamd.url(),
                                                              "timeout": 10}]})
        sent = rspamd_test.message("dotgate-received")
        with smtplib.SMTP(LOOPBACK, dg.port, timeout=20) as s:
            s.starttls(context=client_context())
            s.ehlo("client.example")
            s.sendmail("a@example.org", ["b@example.net"], sent)
        got = sink.wait_for(1)[0].content
        head = got.split(b"\n\n", 1)[0].decode("latin-1")
        parsed = [l for l in head.split("\n") if l.startswith("X-Dotgate-Received:")]
        self.assertEqual(parsed, ["X-Dotgate-Received: proto=esmtps ssl=true auth=false ip=127.0.0.1 "
                                  "by=mx.test.example"])
        # the milter header went on top by the replay; dotgate's field is there once, under it
        self.assertEqual(head.count("Received: from"), 1, head)
        self.assertIn("\nReceived: from client.example ([127.0.0.1])\n", "\n" + head)
        self.assertEqual(got.split(b"\n\n", 1)[1], sink_form(sent).split(b"\n\n", 1)[1])


if __name__ == "__main__":
    main()
