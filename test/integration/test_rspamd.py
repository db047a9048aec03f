#!/usr/bin/env python3
"""test/integration/test_rspamd.py — the `rspamd` policy against a real rspamd (issue: rspamd policy).

A real dotgate in front of smtp-sink asks a real rspamd (Debian's `rspamd`, started here in the
foreground with test/integration/rspamd/rspamd.conf: one normal worker on a free loopback port,
every file it writes in a temporary directory; as root it runs as nobody:nogroup, which rspamd
requires). One rspamd per test class: it starts in about a second with that config (the stock
suffix list alone would take ~10 s), and is stopped by pid when the class is done.

Scores are known in advance: GTUBE is rspamd's own (a forced reject), and
rspamd/dotgate_rules.lua scores "dotgate-score=N" in the Subject at N. With rspamd's actions from
rspamd.conf (greylist 4, add header 6, rewrite subject 10, reject 15):
  GTUBE -> 550 5.7.1 "Gtube pattern", nothing delivered;   a clean message -> delivered as sent;
  score 5 -> 451 4.7.1;   thresholds in dotgate's config override rspamd's action both ways;
  rspamd down, a wrong URL, no answer -> on_error (451 4.7.0), nothing delivered.
The edits (add header, rewrite subject, rspamd's milter headers) reach the downstream through
the session's replay of the spooled message to a fresh transaction: the sink holds one copy,
with the headers, and the body unchanged.
"""

import grp
import http.client
import os
import shutil
import socket
import sys
import tempfile
import time
import unittest

import harness

from harness import IntegrationTest, LOOPBACK, Proc, free_port, main, sink_form, wait_until

HERE = os.path.dirname(os.path.abspath(__file__))
RSPAMD_CONF_DIR = os.path.join(HERE, "rspamd")
RSPAMD = shutil.which("rspamd") or "/usr/bin/rspamd"
# rspamd loads its config, languages and Lua in ~1 s here; a loaded CI machine may take far longer.
RSPAMD_START_TIMEOUT = 60.0

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def message(subject, body=b"hello\r\n.leading dot line\r\n..two dots\r\nbye\r\n", extra_headers=b"", msgid=None):
    msgid = msgid or "<%s.%d@dotgate.test>" % (subject.replace(" ", "_"), time.monotonic_ns())
    return (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: " + subject.encode() + b"\r\n" +
            b"Message-ID: " + msgid.encode() + b"\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n" +
            extra_headers + b"\r\n" + body)


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


class RspamdServer:
    """rspamd in the foreground (-f), in a directory of its own, stopped by pid."""

    def __init__(self):
        self.port = free_port()
        self.proc = None
        self.dir = None
        self.startup_seconds = None

    def url(self, path="/checkv2"):
        return "http://%s:%d%s" % (LOOPBACK, self.port, path)

    def start(self):
        if not (os.path.isfile(RSPAMD) and os.access(RSPAMD, os.X_OK)):
            raise AssertionError("rspamd not found (%s): install the Debian package `rspamd`" % RSPAMD)
        self.dir = tempfile.mkdtemp(prefix="dotgate-rspamd-")
        # rspamd's workers run as nobody when we are root: they must write here (caches, temp files).
        os.chmod(self.dir, 0o777)
        with open(os.path.join(RSPAMD_CONF_DIR, "rspamd.conf")) as f:
            conf = f.read().replace("@DIR@", self.dir).replace("@PORT@", str(self.port))
        self._write("rspamd.conf", conf)
        # Copied, not referred to: the checkout may not be readable by nobody.
        shutil.copy(os.path.join(RSPAMD_CONF_DIR, "dotgate_rules.lua"), self.dir)
        os.chmod(os.path.join(self.dir, "dotgate_rules.lua"), 0o644)
        self._write("tld.dat", "com\norg\nnet\ntest\nexample\n")
        argv = [RSPAMD, "-f", "-c", os.path.join(self.dir, "rspamd.conf")]
        if os.geteuid() == 0:
            # rspamd refuses to run its workers as root; Debian's group for nobody is nogroup.
            argv += ["-u", "nobody", "-g", "nogroup" if _group_exists("nogroup") else "nobody"]
        started = time.monotonic()
        self.proc = Proc("rspamd", argv, os.path.join(self.dir, "rspamd.log"))
        try:
            wait_until(self._ready, RSPAMD_START_TIMEOUT, interval=0.05, what="rspamd /ping on port %d" % self.port)
        except AssertionError as e:
            out = self.proc.output()[-4000:]
            self.stop()
            raise AssertionError("%s\nrspamd log:\n%s" % (e, out))
        self.startup_seconds = time.monotonic() - started
        return self

    def _write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)

    def _ready(self):
        if not self.proc.alive():
            raise AssertionError("rspamd exited (status %s):\n%s" % (self.proc.returncode(), self.proc.output()[-4000:]))
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=1.0)
        try:
            conn.request("GET", "/ping")
            r = conn.getresponse()
            return r.status == 200 and r.read().strip() == b"pong"
        except OSError:
            return False
        finally:
            conn.close()

    def log(self):
        return self.proc.output() if self.proc else ""

    def stop(self):
        if self.proc:
            self.proc.stop()
        if self.dir:
            shutil.rmtree(self.dir, True)
            self.dir = None


class RspamdTest(IntegrationTest):
    rspamd = None

    @classmethod
    def setUpClass(cls):
        cls.rspamd = RspamdServer().start()
        sys.stderr.write("rspamd ready on port %d after %.1fs\n" % (cls.rspamd.port, cls.rspamd.startup_seconds))

    @classmethod
    def tearDownClass(cls):
        if cls.rspamd:
            cls.rspamd.stop()

    def setup_chain(self, url=None, **policy):
        self.sink_ = self.sink()
        cfg = {"type": "rspamd", "url": url or self.rspamd.url(), "timeout": 10}
        cfg.update(policy)
        self.dg = self.dotgate(self.sink_.port, {"policies": [cfg]})
        return self.dg

    def send(self, body, rcpts=("b@example.net",), dg=None):
        c = (dg or self.dg).client()
        self.assertReply(c.greeting(), 220)
        replies = c.send_message("a@example.org", list(rcpts), body)
        return replies[-1]

    def rspamd_log_line(self, msgid):
        """rspamd's one summary line for the message with this Message-ID (its log_format)."""
        needle = "id: <%s>" % msgid.strip("<>")
        return wait_until(lambda: next((l for l in self.rspamd.log().splitlines() if needle in l and "(default:" in l),
                                       None), 5, what="rspamd's log line for %s" % msgid)

    # --- rspamd decides ------------------------------------------------------------------------

    def test_gtube_is_rejected(self):
        self.setup_chain()
        reply = self.send(message("gtube", body=b"Hello\r\n" + GTUBE + b"\r\n"))
        self.assertReply(reply, 550, "5.7.1")
        self.assertIn("Gtube pattern", reply.text)  # rspamd's messages.smtp_message
        self.assertNoMessage(self.sink_)

    def test_clean_message_is_delivered_unchanged_and_rspamd_sees_the_envelope(self):
        self.setup_chain()
        msgid = "<clean.%d@dotgate.test>" % time.monotonic_ns()
        body = message("a perfectly normal subject", msgid=msgid)
        reply = self.send(body, rcpts=("b@example.net", "c@example.net"))
        self.assertReply(reply, 250)
        msgs = self.sink_.wait_for(1)
        self.assertEqual(msgs[0].content, sink_form(body))  # "no action": no edit, no replay
        line = self.rspamd_log_line(msgid)
        self.assertIn("ip: 127.0.0.1", line)
        self.assertIn("from: <a@example.org>", line)
        self.assertIn("rcpts: <b@example.net,c@example.net>", line)
        self.assertIn("(no action)", line)

    def test_greylist_score_tempfails(self):
        self.setup_chain()
        reply = self.send(message("dotgate-score=5"))
        self.assertReply(reply, 451, "4.7.1")
        self.assertNoMessage(self.sink_)

    def test_two_messages_in_one_session(self):
        self.setup_chain()
        c = self.dg.client()
        self.assertReply(c.greeting(), 220)
        r1 = c.send_message("a@example.org", ["b@example.net"], message("first"))
        self.assertReply(r1[-1], 250)
        r2 = c.send_message("a@example.org", ["b@example.net"], message("gtube", body=GTUBE + b"\r\n"), ehlo=False)
        self.assertReply(r2[-1], 550, "5.7.1")
        self.assertEqual(len(self.sink_.settle()), 1)

    # --- thresholds override rspamd's action ---------------------------------------------------

    def test_threshold_rejects_what_rspamd_accepts(self):
        # Score 3: below every action of rspamd's (greylist is at 4): rspamd says "no action".
        strict = self.setup_chain(reject_score=2.5)
        strict_sink = self.sink_
        reply = self.send(message("dotgate-score=3"), dg=strict)
        self.assertReply(reply, 550, "5.7.1")
        self.assertNoMessage(strict_sink)
        strict.wait_log(r"by threshold; rspamd said no action")
        # The same message through a dotgate without thresholds: rspamd's action, delivered.
        default = self.setup_chain()
        reply = self.send(message("dotgate-score=3"), dg=default)
        self.assertReply(reply, 250)
        self.assertEqual(len(self.sink_.wait_for(1)), 1)

    def test_threshold_tempfails_and_accepts_against_rspamd(self):
        self.setup_chain(reject_score=20, tempfail_score=2)
        reply = self.send(message("dotgate-score=3"))  # rspamd: no action; here: >= tempfail_score
        self.assertReply(reply, 451, "4.7.1")
        self.assertNoMessage(self.sink_)
        reply = self.send(message("dotgate-score=1"))
        self.assertReply(reply, 250)
        self.assertEqual(len(self.sink_.wait_for(1)), 1)

    def test_threshold_accepts_what_rspamd_greylists(self):
        self.setup_chain(reject_score=20)
        reply = self.send(message("dotgate-score=5"))  # rspamd: greylist; no tempfail_score set here
        self.assertReply(reply, 250)
        self.assertEqual(len(self.sink_.wait_for(1)), 1)

    # --- per-recipient profiles: one message, two reject scores (issue 5) ------------------------

    def setup_profiles(self):
        """strict@ recipients reject at score 6, lenient@ ones at 15 (rspamd's own reject is 15)."""
        self.sink_ = self.sink()
        cfg = {"policies": [{"type": "rspamd", "name": "spam", "url": self.rspamd.url(), "timeout": 10,
                             "reject_score": 15, "profiles": {"strict": {"reject_score": 6}}}],
               "profiles": [{"name": "strict"}, {"name": "lenient"}],
               "recipients": [{"match": "strict.example", "profile": "strict"},
                              {"match": "*", "profile": "lenient"}]}
        self.dg = self.dotgate(self.sink_.port, cfg)
        return self.dg

    def test_profiles_prdr_score_8_rejected_by_one_accepted_by_the_other(self):
        self.setup_profiles()
        c = self.dg.client()
        self.assertReply(c.greeting(), 220)
        self.assertIn("PRDR", c.ehlo().keywords())
        self.assertReply(c.converse("MAIL FROM:<a@example.org> PRDR"), 250)
        self.assertReply(c.converse("RCPT TO:<s@strict.example>"), 250)
        self.assertReply(c.converse("RCPT TO:<l@lenient.example>"), 250)
        self.assertReply(c.converse("DATA"), 354)
        body = message("dotgate-score=8")
        c.send(harness.stuff(body) + b".\r\n")
        replies = [c.read_reply(timeout=20) for _ in range(4)]
        self.assertEqual([r.code for r in replies], [353, 550, 250, 250], [r.raw for r in replies])
        self.assertEqual(replies[1].enhanced, "5.7.1")
        msgs = self.sink_.settle(1.0)
        self.assertEqual(len(msgs), 1, "one delivery, for the lenient recipient only")
        self.assertEqual([r.strip("<>").split()[0].strip("<>") for r in msgs[0].rcpts], ["l@lenient.example"])
        self.dg.wait_log(r'"profile":"strict"|profile=strict')

    def test_profiles_split_score_8_deferred_recipient_judged_by_its_own_profile(self):
        self.setup_profiles()
        c = self.dg.client()
        self.assertReply(c.greeting(), 220)
        body = message("dotgate-score=8")
        # No PRDR: the lenient recipient is deferred, the strict one rejects the message...
        replies = c.send_message("a@example.org", ["s@strict.example", "l@lenient.example"], body)
        self.assertReply(replies[2], 250)
        self.assertReply(replies[3], 451, "4.5.3")
        self.assertReply(replies[-1], 550, "5.7.1")
        self.assertNoMessage(self.sink_)
        # ... and the retry of the deferred one, in the same connection, is accepted by its own.
        replies = c.send_message("a@example.org", ["l@lenient.example"], body, ehlo=False)
        self.assertReply(replies[-1], 250)
        msgs = self.sink_.wait_for(1)
        self.assertEqual([r.strip("<>").split()[0].strip("<>") for r in msgs[0].rcpts], ["l@lenient.example"])

    # --- no usable answer: on_error ------------------------------------------------------------

    def test_wrong_url_is_an_error(self):
        self.setup_chain(url=self.rspamd.url("/not-checkv2"))
        reply = self.send(message("hello"))
        self.assertReply(reply, 451, "4.7.0")
        self.assertNoMessage(self.sink_)
        self.dg.wait_log(r"rspamd policy: no usable answer.*status 500")

    # --- edits: applied by the session replaying the message --------------------------------

    def header_lines(self, content):
        head = content.split(b"\n\n", 1)[0]
        return head.decode("latin-1").split("\n")

    def fields(self, content, name):
        prefix = name.lower() + ":"
        return [l[len(prefix):].strip() for l in self.header_lines(content) if l.lower().startswith(prefix)]

    def body_of(self, content):
        return content.split(b"\n\n", 1)[1]

    def test_add_header(self):
        self.setup_chain()
        sent = message("dotgate-score=7", extra_headers=b"X-Spam: No\r\nX-Spam-Score: -100\r\n")
        reply = self.send(sent)
        self.assertReply(reply, 250)
        got = self.sink_.wait_for(1)[0].content
        self.assertEqual(self.fields(got, "X-Spam"), ["Yes"])  # once, and the forged one is gone
        self.assertEqual(self.fields(got, "X-Spam-Score"), ["7.00"])
        self.assertEqual(self.fields(got, "X-Spam-Action"), ["add header"])
        self.assertEqual(self.fields(got, "Subject"), ["dotgate-score=7"])
        self.assertEqual(self.body_of(got), self.body_of(sink_form(sent)))
        self.assertEqual(len(self.sink_.settle()), 1)

    def test_rewrite_subject(self):
        self.setup_chain()
        sent = message("dotgate-score=11")
        reply = self.send(sent)
        self.assertReply(reply, 250)
        got = self.sink_.wait_for(1)[0].content
        self.assertEqual(self.fields(got, "Subject"), ["***SPAM*** dotgate-score=11"])
        self.assertEqual(self.fields(got, "X-Spam"), ["Yes"])
        self.assertEqual(self.fields(got, "X-Spam-Action"), ["rewrite subject"])
        self.assertEqual(self.body_of(got), self.body_of(sink_form(sent)))

    def test_milter_headers_on_no_action(self):
        self.setup_chain()
        sent = message("dotgate-milter", extra_headers=b"X-Remove-Me: please\r\n")
        reply = self.send(sent)
        self.assertReply(reply, 250)
        got = self.sink_.wait_for(1)[0].content
        self.assertEqual(sorted(self.fields(got, "X-Dotgate-Milter")), ["plain", "with order"])
        self.assertEqual(self.fields(got, "X-Remove-Me"), [])
        self.assertEqual(self.fields(got, "X-Spam"), [])
        self.assertEqual(self.body_of(got), self.body_of(sink_form(sent)))


class RspamdUnavailableTest(IntegrationTest):
    """No rspamd at all, or one that never answers: on_error decides (default tempfail 451 4.7.0)."""

    def setup_chain(self, url, **policy):
        self.sink_ = self.sink()
        cfg = {"type": "rspamd", "url": url}
        cfg.update(policy)
        self.dg = self.dotgate(self.sink_.port, {"policies": [cfg]})

    def send(self):
        c = self.dg.client()
        self.assertReply(c.greeting(), 220)
        return c.send_message("a@example.org", ["b@example.net"], message("hello"))[-1]

    def test_rspamd_down_tempfails(self):
        self.setup_chain("http://%s:%d/checkv2" % (LOOPBACK, free_port()))
        self.assertReply(self.send(), 451, "4.7.0")
        self.assertNoMessage(self.sink_)
        self.dg.wait_log(r"rspamd policy: no usable answer.*connect")

    def test_rspamd_down_on_error_accept_delivers(self):
        self.setup_chain("http://%s:%d/checkv2" % (LOOPBACK, free_port()), on_error="accept")
        self.assertReply(self.send(), 250)
        self.assertEqual(len(self.sink_.wait_for(1)), 1)

    def test_no_answer_times_out(self):
        # A listener that accepts (the kernel does, through the backlog) and never answers.
        silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(silent.close)
        silent.bind((LOOPBACK, 0))
        silent.listen(8)
        self.setup_chain("http://%s:%d/checkv2" % (LOOPBACK, silent.getsockname()[1]), timeout=1)
        self.assertReply(self.send(), 451, "4.7.0")
        self.assertNoMessage(self.sink_)
        self.dg.wait_log(r"rspamd policy: no usable answer.*timeout")


if __name__ == "__main__":
    main()
