#!/usr/bin/env python3
"""test/integration/test_client_retry.py — how real sending MTAs retry a recipient deferred after an
accepted one (the `split` policy's deferral), measured, and Exim's PRDR.

What it measures: a real Exim (exim_client.py) and a real Postfix (postfix_client.py) each send one
message to three recipients to deferring_mta.py, which accepts the first RCPT of every transaction
and answers the later ones `451 4.5.3 Use PRDR or retry immediately, ...; retry=0` or the same text
with `452`. For each (client, code): when the last recipient was finally accepted (seconds from the
first connection), how many connections and transactions (MAIL commands) it took, and whether the
client retried in the same connection. The table is printed at the end of the run; every number
in it is also asserted, so the table stays true:

    client   code  prdr-offered   last-recipient-wait  connections  transactions  same-connection-retry  sent before dot reply
    exim     451   no                          5.01 s            3             3  no                     QUIT + SHUT_WR
    exim     452   no                          0.66 s            1             3  yes                    QUIT + SHUT_WR
    exim     -     yes (used)                  0.21 s            1             1  -                      QUIT + SHUT_WR
    postfix  451   yes (unused)                3.69 s            3             3  no                     QUIT
    postfix  452   yes (unused)                3.70 s            3             3  no                     QUIT

(one run under meson; the server holds every reply to the dot DOT_DELAY = 0.2 s, so Exim 452's
0.66 s is three messages' 0.2 s; Exim 451's wait varies between ~4.5 and ~7 s with the phase of
the 2 s queue runs against the 2 s retry rule kept in whole seconds.)

Exim: a 452 after an accepted RCPT makes its smtp transport send the message to the accepted
recipients and at once start a new MAIL transaction on the same connection for the rest; a 451
defers the address to its retry rules (here `F,5m,2s`) and a later queue run (here every 2 s)
retries it on a new connection. Postfix: both codes defer the recipient to the queue
(minimal_backoff_time, here 2 s); each retry is a new connection; Postfix never says PRDR.
Both pipeline QUIT after the dot of their last message, before the reply to the dot; Exim also
half-closes (shutdown SHUT_WR) then, so a server that holds the dot reads EOF from a client that
still waits for the reply (dotgate's disconnect detection must not take that for a disconnect).

The retry timing uses the short test retry settings; in production the same waits are Exim's
retry rule/queue interval (Debian: 15 min rule, 30 min queue runs) and Postfix's
minimal_backoff_time/queue_run_delay (300 s). No dotgate process is involved: this is the ground
truth that the `split` policy's per-client-class deferral code is chosen from.

Exim is downloaded on first use (exim_client.py); the Exim tests skip, with the reason, when
`apt-get download` is impossible. Postfix is the installed one; its tests skip when not root.
"""

import os
import shutil
import sys
import tempfile
import time

import harness
from deferring_mta import DeferringMta
from exim_client import Exim
from postfix_client import Postfix, skip_unless_postfix

TEXT = "Use PRDR or retry immediately, possibly in the same TCP connection, after DATA End of data; retry=0"
REPLY = {451: "451 4.5.3 " + TEXT, 452: "452 4.5.3 " + TEXT}
SENDER = "alice@sender.example"
RCPTS = ["r1@dest.example", "r2@dest.example", "r3@dest.example"]
BODY = ("From: Alice <alice@sender.example>\n"
        "To: r1@dest.example, r2@dest.example, r3@dest.example\n"
        "Subject: client retry measurement\n"
        "Message-ID: <client-retry@sender.example>\n"
        "\n"
        "one message, three recipients, two of them deferred at first\n")

DELIVERY_TIMEOUT = 40.0   # bound on the whole retry sequence of one measurement
SETTLE = 1.0              # extra time after the last acceptance to catch a duplicate delivery

DOT_DELAY = 0.2          # the server holds each reply to the dot this long and records what the client
                         # sent meanwhile (a pipelined QUIT, a half-close): dotgate holds the dot too

RESULTS = []


class Measurement:
    def __init__(self, client, code, prdr_offered, mta, prdr_used):
        self.client = client
        self.code = code
        self.prdr_offered = prdr_offered
        self.prdr_used = prdr_used
        t0 = mta.first_connect_time()
        times = mta.acceptance_times()
        self.waits = {a: times[a] - t0 for a in times}
        self.last_wait = max(self.waits.values()) if self.waits else None
        self.connections = len(mta.connections())
        txns = mta.transactions()
        self.transactions = len(txns)
        per_conn = {}
        for conn, _ in txns:
            per_conn[conn] = per_conn.get(conn, 0) + 1
        self.same_connection_retry = any(n > 1 for n in per_conn.values())
        self.accepted = mta.accepted()
        early = mta.after_dot()
        self.quit_before_reply = any("QUIT" in e["early"].upper() for e in early)
        self.half_close = any(e["peer_shutdown"] for e in early)

    def row(self):
        return "%-8s %-5s %-13s %20s %12d %13d  %-22s %-22s %s" % (
            self.client, self.code or "-",
            ("yes (used)" if self.prdr_used else "yes (unused)") if self.prdr_offered else "no",
            "%.2f s" % self.last_wait, self.connections, self.transactions,
            "-" if not self.code else ("yes" if self.same_connection_retry else "no"),
            ("QUIT" if self.quit_before_reply else "-") + (" + SHUT_WR" if self.half_close else ""),
            " ".join("%.2f" % self.waits.get(a, -1) for a in RCPTS))


def print_table():
    if not RESULTS:
        return
    out = ["", "measured retry behaviour (3 recipients; 1 accepted per transaction, the rest deferred):",
           "%-8s %-5s %-13s %20s %12s %13s  %-22s %-22s %s" % (
               "client", "code", "prdr-offered", "last-recipient-wait", "connections", "transactions",
               "same-connection-retry", "sent before dot reply", "r1 r2 r3 accepted at (s)")]
    out += [m.row() for m in RESULTS]
    sys.stderr.write("\n".join(out) + "\n\n")
    sys.stderr.flush()


def tearDownModule():
    print_table()


class ClientTest(harness.IntegrationTest):
    """Like IntegrationTest, without dotgate: temp dirs and processes that always go away."""

    def setUp(self):  # no dotgate_bin(): these tests do not run dotgate
        self._root = tempfile.mkdtemp(prefix="dotgate-it-")
        os.chmod(self._root, 0o755)  # Exim and Postfix run as other users and must reach their dirs
        self.addCleanup(shutil.rmtree, self._root, True)
        self._dirs = 0

    def deferring_mta(self, code=451, prdr=False, **extra):
        config = {"prdr": prdr, "defer_reply": REPLY[code] if code else REPLY[451], "dot_delay": DOT_DELAY}
        config.update(extra)
        return DeferringMta(self, config).start()

    def assertAllOnce(self, mta):
        """Every recipient accepted exactly once, nothing else."""
        time.sleep(SETTLE)
        got = mta.accepted()
        self.assertEqual(sorted(got), sorted(RCPTS), "each recipient exactly once; transcript:\n"
                         + mta.transcript_text())

    def record(self, m):
        RESULTS.append(m)
        return m


class EximRetryTest(ClientTest):

    def assertEximQuitsEarly(self, m):
        """Exim pipelines QUIT after the dot of its last message and half-closes (shutdown SHUT_WR)
        before it has the reply to the dot. A server that holds the dot (dotgate, for its verdicts)
        reads EOF from Exim while Exim still waits for the reply: EOF there is not a disconnect."""
        self.assertTrue(m.quit_before_reply, "Exim sent no QUIT before the reply to the dot")
        self.assertTrue(m.half_close, "Exim did not half-close before the reply to the dot")

    def exim(self, mta, **kw):
        ex = Exim(self, mta.port, **kw)
        ex.start_queue_runner()
        return ex

    def test_exim_451_waits_for_the_retry_rule_and_a_queue_run(self):
        mta = self.deferring_mta(451)
        ex = self.exim(mta)
        ex.submit(SENDER, RCPTS, BODY)
        mta.wait_accepted(RCPTS, DELIVERY_TIMEOUT)
        self.assertAllOnce(mta)
        ex.wait_delivered(RCPTS, 10)
        harness.wait_until(ex.completed, 10, interval=0.1, what="Exim: Completed in its log")
        m = self.record(Measurement("exim", 451, False, mta, False))
        # the first attempt delivers r1 and defers r2 and r3 (== in the log, -44: SMTP 4xx after RCPT)
        deferred = [(a, l) for flag, a, l in ex.deliveries() if flag == "=="]
        self.assertTrue(any(a == "r2@dest.example" and "451 4.5.3" in l for a, l in deferred), ex.mainlog())
        # each retry is a new connection from a later queue run, never the same connection
        self.assertFalse(m.same_connection_retry, mta.transcript_text())
        self.assertEqual(m.connections, 3, mta.transcript_text())
        self.assertEqual(m.transactions, 3, mta.transcript_text())
        self.assertIn("Start queue run", ex.mainlog())
        self.assertEximQuitsEarly(m)
        # the retry rule's 2 s is honoured: a deferred recipient is not retried before it (Exim
        # keeps retry times in whole seconds, hence "- 1"); r3, deferred again with r2's retry,
        # waits for a second retry time
        self.assertGreaterEqual(m.waits["r2@dest.example"], 2.0 - 1)
        self.assertGreaterEqual(m.last_wait, 2 * (2.0 - 1))
        self.assertEqual(ex.paniclog().strip(), "")

    def test_exim_452_retries_at_once_in_the_same_connection(self):
        mta = self.deferring_mta(452)
        ex = self.exim(mta)
        ex.submit(SENDER, RCPTS, BODY)
        # all three are done when the -odi submission returns: no queue run was needed
        self.assertEqual(sorted(mta.accepted()), sorted(RCPTS), mta.transcript_text())
        self.assertAllOnce(mta)
        ex.wait_delivered(RCPTS, 10)
        self.assertTrue(ex.completed())
        m = self.record(Measurement("exim", 452, False, mta, False))
        self.assertTrue(m.same_connection_retry)
        self.assertEqual(m.connections, 1, mta.transcript_text())
        self.assertEqual(m.transactions, 3, mta.transcript_text())
        self.assertLess(m.last_wait, 2.0)
        # on the wire: after the dot of the first message, a new MAIL FROM for the deferred ones
        lines = [l for _, c, d, l in mta.transcript(conn=1) if d == "<"]
        mails = [i for i, l in enumerate(lines) if l.startswith("MAIL FROM:")]
        self.assertEqual(len(mails), 3)
        self.assertEqual(lines[mails[1] + 1:mails[1] + 3], ["RCPT TO:<r2@dest.example>", "RCPT TO:<r3@dest.example>"])
        self.assertEqual(lines[mails[2] + 1], "RCPT TO:<r3@dest.example>")
        self.assertEximQuitsEarly(m)
        self.assertEqual(ex.paniclog().strip(), "")

    def test_exim_negotiates_prdr(self):
        mta = self.deferring_mta(451, prdr=True)
        ex = self.exim(mta)
        ex.submit(SENDER, RCPTS, BODY)
        mta.wait_accepted(RCPTS, 10)
        self.assertAllOnce(mta)
        ex.wait_delivered(RCPTS, 10)
        self.assertTrue(ex.completed())
        m = self.record(Measurement("exim", None, True, mta, True))
        self.assertEqual((m.connections, m.transactions), (1, 1), mta.transcript_text())
        # server side: MAIL FROM:<...> PRDR, one transaction, no deferral
        mails = [l for _, l in mta.transactions()]
        self.assertRegex(mails[0], r"^MAIL FROM:<%s>.* PRDR" % SENDER)
        self.assertEqual(mta.messages()[0]["deferred"], [])
        self.assertTrue(mta.messages()[0]["prdr"])
        # client side (Exim's -v transcript): PRDR sent, 353 and the per-recipient replies read
        sent = [l for d, l in ex.transcript() if d == ">"]
        got = [l for d, l in ex.transcript() if d == "<"]
        self.assertTrue(any(l.startswith("MAIL FROM:<%s>" % SENDER) and " PRDR" in l for l in sent), sent)
        self.assertTrue(any(l.startswith("353") for l in got), got)
        self.assertEqual(len([l for l in got if l.startswith("250 2.1.5 <r")]), 3, got)
        # and the log says delivered for all three, each flagged PRDR
        self.assertEqual(sorted(ex.delivered()), sorted(RCPTS))
        self.assertTrue(all(" PRDR " in l for f, _, l in ex.deliveries() if f in ("=>", "->")), ex.mainlog())
        self.assertEximQuitsEarly(m)
        self.assertEqual(ex.paniclog().strip(), "")

    def test_exim_prdr_per_recipient_refusal(self):
        """A 550 for one recipient in the PRDR replies: Exim fails that one, delivers the others."""
        mta = self.deferring_mta(451, prdr=True,
                                 prdr_rcpt_replies={"r2@dest.example": "550 5.7.1 <r2@dest.example> refuses the content"})
        ex = self.exim(mta)
        ex.submit(SENDER, RCPTS, BODY)
        ex.wait_delivered(["r1@dest.example", "r3@dest.example"], 10)
        harness.wait_until(lambda: any(f == "**" and a == "r2@dest.example" for f, a, _ in ex.deliveries()),
                           10, interval=0.1, what="Exim to fail r2 (log:\n%s)" % ex.mainlog())
        first = mta.messages()[0]
        self.assertTrue(first["prdr"])
        self.assertEqual(first["accepted"], ["r1@dest.example", "r3@dest.example"])
        # r2's refusal is Exim's to report: it bounces to the sender (null sender, same route)
        bounce = mta.wait_accepted([SENDER], 10) and [m for m in mta.messages() if SENDER in m["accepted"]][0]
        self.assertRegex(bounce["mail"], r"^MAIL FROM:<>")
        self.assertTrue(any(f == "=>" and a == SENDER for f, a, _ in ex.deliveries()), ex.mainlog())


class PostfixRetryTest(ClientTest):

    def setUp(self):
        super().setUp()
        skip_unless_postfix(self)

    def measure(self, code):
        mta = self.deferring_mta(code, prdr=True)  # offered: Postfix does not use it
        pf = Postfix(self, mta.port).start()
        pf.submit(SENDER, RCPTS, BODY)
        mta.wait_accepted(RCPTS, DELIVERY_TIMEOUT)
        self.assertAllOnce(mta)
        pf.wait_delivered(RCPTS, 10)
        harness.wait_until(pf.removed, 10, interval=0.1, what="Postfix: message removed from the queue")
        m = self.record(Measurement("postfix", code, True, mta, False))
        # deferred (not bounced) with the server's text, then sent on a later attempt
        deferred = [(a, l) for a, status, l in pf.deliveries() if status == "deferred"]
        self.assertTrue(any(a == "r2@dest.example" and ("%d 4.5.3" % code) in l for a, l in deferred), pf.maillog())
        self.assertNotIn("bounced", pf.maillog())
        # Postfix never says PRDR, even when offered
        self.assertFalse(any("PRDR" in l.upper() for _, l in mta.transactions()), mta.transactions())
        # Postfix pipelines QUIT after the dot too (last message of the connection), but keeps
        # its sending side open until it has the reply
        self.assertTrue(m.quit_before_reply, "Postfix sent no QUIT before the reply to the dot")
        self.assertFalse(m.half_close, "Postfix half-closed before the reply to the dot")
        # both codes: back to the queue, minimal_backoff_time (2 s) later a new connection
        self.assertFalse(m.same_connection_retry, mta.transcript_text())
        self.assertEqual(m.connections, 3, mta.transcript_text())
        self.assertEqual(m.transactions, 3, mta.transcript_text())
        # (Postfix sets the next attempt time in whole seconds, hence "- 1")
        self.assertGreaterEqual(m.waits["r2@dest.example"], 2.0 - 1)
        self.assertGreaterEqual(m.last_wait, 2 * (2.0 - 1))
        return m

    def test_postfix_451_defers_to_the_queue(self):
        self.measure(451)

    def test_postfix_452_defers_to_the_queue(self):
        self.measure(452)


if __name__ == "__main__":
    harness.main()
