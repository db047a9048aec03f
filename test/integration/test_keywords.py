#!/usr/bin/env python3
"""test/integration/test_keywords.py — the `keywords` policy (word lists over decoded MIME).

dotgate in front of smtp-sink with a keywords policy whose list file the test writes; a real
client (smtplib) sends. A clean message is relayed byte for byte; a message whose listed word is
visible only after decoding — inside a base64 text/plain part, a quoted-printable text/html part
(split by a soft line break and an inline tag), or an RFC 2047 encoded Subject — gets the
configured reply after the dot, and smtp-sink receives nothing. The hits are logged. SIGHUP after
editing the list file changes the outcome for a new session; a SIGHUP with a list path that does
not exist is refused with the key path in the log, and the old lists stay in force.
"""

import base64
import json
import os
import signal
import smtplib

from harness import IntegrationTest, main, sink_form, wait_until

REPLY_TEXT = "Message refused: listed words"

CLEAN = (b"From: a@example.org\r\n"
         b"To: b@example.net\r\n"
         b"Subject: lunch\r\n"
         b"\r\n"
         b"Shall we meet at noon? The casinos of old are closed.\r\n"
         b".a line with a leading dot\r\n")


def base64_plain(words):
    body = base64.encodebytes(("Dear friend,\nplay at our %s tonight!\n" % words).encode()).replace(b"\n", b"\r\n")
    return (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: news\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n"
            b"--zz\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body +
            b"--zz--\r\n")


def qp_html():
    # "casino" only once decoded: QP soft line break inside the word, and an inline tag.
    return (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: news\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n"
            b"--alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nnothing here\r\n"
            b"--alt\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
            b"<html><body><p>Caf=E9 and <b>ca</b>si=\r\nno tonight</p></body></html>\r\n"
            b"--alt--\r\n")


def encoded_subject():
    return (b"From: a@example.org\r\nTo: b@example.net\r\n"
            b"Subject: =?UTF-8?B?Q2hlYXAg?= =?ISO-8859-1?Q?CASINO_bonus?=\r\n\r\nplain body\r\n")


class KeywordsTest(IntegrationTest):

    def write_list(self, path, words):
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write("# test list\n" + "".join(w + "\n" for w in words))
        os.replace(tmp, path)

    def start(self, words=("casino", "viagra"), policy=None, config=None):
        self.lists = self.make_dir("lists")
        self.list_path = os.path.join(self.lists, "words.txt")
        self.write_list(self.list_path, words)
        p = {"type": "keywords", "lists": [{"path": self.list_path, "score": 1}], "threshold": 1,
             "action": "reject", "code": 550, "enhanced": "5.7.1", "message": REPLY_TEXT}
        p.update(policy or {})
        cfg = {"policies": [p]}
        cfg.update(config or {})
        sink = self.sink()
        dg = self.dotgate(sink.port, cfg)
        return sink, dg

    def send(self, dg, message):
        """smtplib, a session per message: None when accepted, else (code, text)."""
        with smtplib.SMTP(dg.host, dg.port, timeout=20) as s:
            try:
                s.sendmail("a@example.org", ["b@example.net"], message)
            except smtplib.SMTPDataError as e:
                return e.smtp_code, e.smtp_error.decode("latin-1")
            return None

    def assertRefused(self, dg, sink, message):
        got = self.send(dg, message)
        self.assertEqual(got, (550, "5.7.1 " + REPLY_TEXT))
        self.assertNoMessage(sink)
        dg.wait_log("keywords hits")

    # ---- outcomes ------------------------------------------------------------------------------

    def test_clean_message_is_relayed(self):
        sink, dg = self.start()
        self.assertIsNone(self.send(dg, CLEAN))
        self.assertEqual(sink.wait_for(1)[0].content, sink_form(CLEAN))
        self.assertFalse(any("keywords hits" in l for l in dg.log_lines()))

    def test_word_in_base64_text_part_is_refused(self):
        sink, dg = self.start()
        self.assertRefused(dg, sink, base64_plain("Casino"))
        line = dg.wait_log("keywords hits")[0]
        self.assertIn("casino", line.lower())

    def test_word_in_quoted_printable_html_part_is_refused(self):
        sink, dg = self.start()
        self.assertRefused(dg, sink, qp_html())

    def test_word_in_encoded_subject_is_refused(self):
        sink, dg = self.start()
        self.assertRefused(dg, sink, encoded_subject())

    def test_threshold_and_tempfail(self):
        sink, dg = self.start(policy={"threshold": 2, "action": "tempfail", "code": 451, "enhanced": "4.7.1",
                                      "message": "Later"})
        self.assertIsNone(self.send(dg, base64_plain("casino")))  # score 1 < 2
        self.assertEqual(self.send(dg, base64_plain("casino and viagra")), (451, "4.7.1 Later"))
        self.assertEqual(len(sink.settle()), 1)

    def test_quarantine_keeps_a_copy(self):
        q = self.make_dir("quarantine")
        sink, dg = self.start(policy={"action": "quarantine"}, config={"quarantine": {"directory": q}})
        self.assertRefused(dg, sink, encoded_subject())
        names = sorted(os.listdir(q))
        self.assertEqual(len(names), 2, names)
        with open(os.path.join(q, [n for n in names if n.endswith(".json")][0])) as f:
            meta = json.load(f)
        self.assertIn("keywords: score 1 >= 1: casino x1", meta["reason"])

    # ---- SIGHUP ----------------------------------------------------------------------------------

    def reloads(self, dg):
        return len([l for l in dg.log_lines() if "configuration reloaded" in l])

    def test_sighup_reloads_an_edited_list(self):
        sink, dg = self.start(words=("viagra",))
        message = base64_plain("casino")
        self.assertIsNone(self.send(dg, message))
        self.write_list(self.list_path, ["viagra", "CASINO"])
        before = self.reloads(dg)
        dg.signal(signal.SIGHUP)
        wait_until(lambda: self.reloads(dg) > before, 5, what="configuration reloaded")
        self.assertEqual(self.send(dg, message), (550, "5.7.1 " + REPLY_TEXT))
        self.assertEqual(len(sink.settle()), 1, "only the message sent before the reload is relayed")

    def test_sighup_with_a_missing_list_keeps_the_old_lists(self):
        sink, dg = self.start()
        config = json.loads(json.dumps(dg.config))
        config["policies"][0]["lists"][0]["path"] = os.path.join(self.lists, "missing.txt")
        dg.write_config(config)
        dg.signal(signal.SIGHUP)
        line = dg.wait_log("configuration reload refused")[0]
        self.assertIn("policies[0].lists[0].path", line)
        self.assertIn("missing.txt", line)
        self.assertTrue(dg.proc.alive(), "dotgate died on a bad reload")
        # the old lists still judge new sessions
        self.assertRefused(dg, sink, encoded_subject())
        self.assertIsNone(self.send(dg, CLEAN))
        self.assertEqual(len(sink.wait_for(1)), 1)


if __name__ == "__main__":
    main()
