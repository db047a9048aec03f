#!/usr/bin/env python3
"""test/integration/test_rewrite.py — reply rewriting (issue 14): rules and built-ins end to end.

Covers: the built-ins (hide_banner on the greeting and EHLO, enhanced_codes where the MTA gave none,
greeting_code) and switching them off; configured rules matching by code, enhanced code and regex
and replacing code, enhanced code and text ($0, groups), at their stages only, first match first;
the maintenance flag (RCPT 5xx sent as 4xx) set through the admin port (POST /maintenance/on|off,
refused when rewrite.maintenance_admin is false) and by SIGHUP (only when the reload changes the
key); rules replaced by SIGHUP, a bad rule refused at reload with its key path; config refusals at
start with their key paths; dotgate_reply_rewrites_total{rule} and dotgate_maintenance.
Downstreams: smtp-sink (its own replies), a real Postfix smtpd queueing for smtp-sink (needs root;
skipped otherwise), and fake_mta.py for the odd replies neither sends: multi-line, no enhanced
codes, a 2xx greeting, 521 to RCPT. Each test checks what the client saw and what the downstream
received.
"""

import json
import os
import re
import signal
import smtplib
import subprocess
import time

from harness import (IntegrationTest, LOOPBACK, dotgate_bin, free_port, main, metric, sink_form, stuff,
                     wait_until)
from postfix_client import Postfix, skip_unless_postfix

MESSAGE = b"Subject: rewrite\r\n\r\nthe body\r\n"

# A downstream with nothing but odd replies.
ODD = {
    "greeting": ["250-mx.internal.example ESMTP Sendmail 8.15.2/8.15.2", "250 Ubuntu, ready"],
    "ehlo": ["250-mx.internal.example Hello client [127.0.0.1]", "250-PIPELINING", "250 SIZE 1000000"],
    "rules": [
        {"command": "MAIL", "reply": "250 Sender ok"},
        {"command": "RCPT", "nth": 2, "reply": ["550-No such user here", "550 Try another"]},
        {"command": ".", "reply": "250 Queued as X1"},
    ],
}

# The second and third RCPT of each connection are refused by the MTA, with an enhanced code.
UNKNOWN = "550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown"
REFUSE_SECOND = {"rules": [{"command": "RCPT", "nth": 2, "reply": UNKNOWN},
                           {"command": "RCPT", "nth": 3, "reply": UNKNOWN}]}


class RewriteTest(IntegrationTest):

    def session(self, dg):
        c = dg.client()
        g = c.greeting()
        self.assertValidReply(g)
        return c, g

    def two_rcpts(self, c, first="alice@example.net", second="bob@example.net", ehlo=True):
        """MAIL, two RCPTs (the MTA refuses the second): the two RCPT replies."""
        if ehlo:
            self.assertReply(c.ehlo(), 250)
        self.assertEqual(c.converse("MAIL FROM:<a@example.org>").code, 250)
        return c.converse("RCPT TO:<%s>" % first), c.converse("RCPT TO:<%s>" % second)

    def finish_message(self, c):
        self.assertReply(c.converse("DATA"), 354)
        c.send(stuff(MESSAGE) + b".\r\n")
        return c.read_reply()

    def rewrites(self, dg, rule):
        return metric(dg.metrics(), "dotgate_reply_rewrites_total", rule=rule) or 0

    # -- built-ins --------------------------------------------------------------------------------

    def test_builtins_on_odd_replies(self):
        fake = self.fake(ODD)
        dg = self.dotgate(fake.port, {"smtp": {"hostname": "gate.example"}})
        c, g = self.session(dg)
        self.assertEqual(g.raw, b"220 gate.example ESMTP\r\n")  # 2xx greeting -> 220, one line, our name
        e = c.ehlo()
        self.assertEqual(e.lines[0], "250-gate.example")
        self.assertIn("ENHANCEDSTATUSCODES", e.keywords())  # the MTA has none; dotgate adds them
        self.assertEqual(c.converse("MAIL FROM:<a@example.org>").raw, b"250 2.0.0 Sender ok\r\n")
        self.assertEqual(c.converse("RCPT TO:<one@example.net>").raw, b"250 2.1.5 Ok\r\n")
        self.assertEqual(c.converse("RCPT TO:<two@example.net>").raw,
                         b"550-5.0.0 No such user here\r\n550 5.0.0 Try another\r\n")
        self.assertEqual(self.finish_message(c).raw, b"250 2.0.0 Queued as X1\r\n")
        (m,) = fake.wait_for(1)
        self.assertEqual(m["data"], MESSAGE)
        self.assertEqual(m["rcpts"], ["RCPT TO:<one@example.net>", "RCPT TO:<two@example.net>"])
        self.assertEqual(fake.commands(1)[0], "EHLO client.example")
        m = dg.metrics()
        self.assertEqual(metric(m, "dotgate_reply_rewrites_total", rule="greeting_code"), 1)
        self.assertEqual(metric(m, "dotgate_reply_rewrites_total", rule="hide_banner"), 2)  # greeting, EHLO
        self.assertEqual(metric(m, "dotgate_reply_rewrites_total", rule="enhanced_codes"), 3)  # MAIL, RCPT 2, dot
        self.assertEqual(metric(m, "dotgate_reply_rewrites_total", rule="maintenance"), 0)

    def test_builtins_switched_off(self):
        fake = self.fake(ODD)
        dg = self.dotgate(fake.port, {"rewrite": {"hide_banner": False, "enhanced_codes": False}})
        c, g = self.session(dg)
        # greeting_code is not switchable (invariant 4): the code still becomes 220
        self.assertEqual(g.raw, b"220-mx.internal.example ESMTP Sendmail 8.15.2/8.15.2\r\n220 Ubuntu, ready\r\n")
        e = c.ehlo()
        self.assertEqual(e.lines[0], "250-mx.internal.example Hello client [127.0.0.1]")
        # no enhanced codes promised when neither dotgate adds them nor the MTA offers them
        self.assertNotIn("ENHANCEDSTATUSCODES", e.keywords())
        self.assertEqual(c.converse("MAIL FROM:<a@example.org>").raw, b"250 Sender ok\r\n")
        self.assertEqual(c.converse("RCPT TO:<one@example.net>").raw, b"250 2.1.5 Ok\r\n")
        self.assertEqual(c.converse("RCPT TO:<two@example.net>").raw, b"550-No such user here\r\n550 Try another\r\n")
        self.assertEqual(self.finish_message(c).raw, b"250 Queued as X1\r\n")
        self.assertEqual(len(fake.wait_for(1)), 1)
        self.assertEqual(self.rewrites(dg, "hide_banner"), 0)
        self.assertEqual(self.rewrites(dg, "enhanced_codes"), 0)

    def test_enhanced_codes_off_keeps_the_mta_s_announcement(self):
        fake = self.fake()  # fake_mta's default EHLO offers ENHANCEDSTATUSCODES
        dg = self.dotgate(fake.port, {"rewrite": {"enhanced_codes": False}})
        c, _ = self.session(dg)
        self.assertIn("ENHANCEDSTATUSCODES", c.ehlo().keywords())

    def test_smtp_sink_greeting_and_ehlo_hidden(self):
        sink = self.sink()
        direct = self.raw_client(sink.port)
        self.assertIn(b"smtp-sink", direct.greeting().raw)  # what there is to hide
        self.assertIn("smtp-sink", direct.ehlo().lines[0])
        direct.converse("QUIT")
        dg = self.dotgate(sink.port)
        c, g = self.session(dg)
        self.assertEqual(g.raw, b"220 localhost ESMTP\r\n")
        e = c.ehlo()
        self.assertEqual(e.lines[0], "250-localhost")
        replies = c.send_message("a@example.org", ["b@example.net"], MESSAGE, ehlo=False)
        self.assertEqual([r.code for r in replies], [250, 250, 354, 250])
        for r in replies:
            if r.code != 354:
                self.assertIsNotNone(r.enhanced, r)
        (m,) = sink.wait_for(1)
        self.assertEqual(m.content, sink_form(MESSAGE))

    # -- configured rules -------------------------------------------------------------------------

    RULES = [
        {"name": "user-unknown", "stage": "rcpt",
         "match": {"code": 550, "enhanced": "5.1.x", "text": "<([^>]+)>: Recipient address rejected: User unknown"},
         "replace": {"text": "No mailbox $1 here"}},
        {"name": "queued", "stage": "dot", "match": {"code": "2xx", "text": "queued(?: as)? (\\S+)"},
         "replace": {"text": "Accepted, id $1"}},
        {"name": "greeting", "stage": "greeting", "match": {"code": 220}, "replace": {"text": "$0 (filtered)"}},
        {"name": "never-here", "stage": "mail", "match": {"text": "User unknown"}, "replace": {"text": "wrong stage"}},
    ]

    def test_rules_by_code_enhanced_and_regex(self):
        script = {"rules": REFUSE_SECOND["rules"] + [{"command": ".", "reply": "250 2.0.0 Ok: queued as 4XyZ"}]}
        fake = self.fake(script)
        dg = self.dotgate(fake.port, {"rewrite": {"rules": self.RULES}})
        c, g = self.session(dg)
        # the admin's greeting text is kept (hide_banner leaves it alone), the code normalised
        self.assertEqual(g.raw, b"220 fake.example ESMTP (filtered)\r\n")
        first, second = self.two_rcpts(c)
        self.assertEqual(first.raw, b"250 2.1.5 Ok\r\n")
        self.assertEqual(second.raw, b"550 5.1.1 No mailbox bob@example.net here\r\n")
        self.assertEqual(self.finish_message(c).raw, b"250 2.0.0 Accepted, id 4XyZ\r\n")
        (m,) = fake.wait_for(1)
        self.assertEqual(m["data"], MESSAGE)
        self.assertEqual(m["rcpts"], ["RCPT TO:<alice@example.net>", "RCPT TO:<bob@example.net>"])
        self.assertEqual(self.rewrites(dg, "user-unknown"), 1)
        self.assertEqual(self.rewrites(dg, "queued"), 1)
        self.assertEqual(self.rewrites(dg, "greeting"), 1)
        self.assertEqual(self.rewrites(dg, "never-here"), 0)

    def test_rule_replaces_code_and_enhanced_code(self):
        rules = [{"name": "full-is-temporary", "stage": ["rcpt", "dot"], "match": {"code": "55x", "text": "(?i)quota"},
                  "replace": {"code": 452, "enhanced": "4.2.2", "text": "Mailbox full, try again later"}},
                 {"name": "shadowed", "stage": "rcpt", "match": {"code": 552}, "replace": {"text": "never seen"}}]
        fake = self.fake({"rules": [
            {"command": "RCPT", "nth": 1, "reply": ["552-5.2.2 Over QUOTA", "552 5.2.2 see postmaster"]},
            {"command": "RCPT", "nth": 2, "reply": "552 5.3.4 Too big for this mailbox"}]})
        dg = self.dotgate(fake.port, {"rewrite": {"rules": rules}})
        c, _ = self.session(dg)
        first, second = self.two_rcpts(c)
        self.assertEqual(first.raw, b"452 4.2.2 Mailbox full, try again later\r\n")  # the first rule only
        self.assertEqual(second.raw, b"552 5.3.4 never seen\r\n")  # regex did not match: the next rule
        # the MTA got both RCPTs (the refusals were its own) and no message
        self.assertEqual(c.converse("QUIT").code, 221)
        self.assertEqual(fake.commands(1)[2:4], ["RCPT TO:<alice@example.net>", "RCPT TO:<bob@example.net>"])
        self.assertNoMessage(fake)
        self.assertEqual(self.rewrites(dg, "full-is-temporary"), 1)
        self.assertEqual(self.rewrites(dg, "shadowed"), 1)

    def test_rule_at_stage_any_reaches_other_commands(self):
        rules = [{"name": "noop", "match": {"code": "2xx", "text": "^Ok$"}, "replace": {"text": "Nothing to do"}}]
        fake = self.fake()
        dg = self.dotgate(fake.port, {"rewrite": {"rules": rules}})
        c, _ = self.session(dg)
        self.assertReply(c.ehlo(), 250)
        self.assertEqual(c.converse("NOOP").raw, b"250 2.0.0 Nothing to do\r\n")
        self.assertEqual(c.converse("RSET").raw, b"250 2.0.0 Nothing to do\r\n")
        self.assertEqual(fake.commands(1)[1:3], ["NOOP", "RSET"])

    def test_521_to_rcpt_under_maintenance_is_450_and_the_session_goes_on(self):
        fake = self.fake({"rules": [{"command": "RCPT", "nth": 1, "reply": "521 5.3.2 no mail here"}]})
        dg = self.dotgate(fake.port, {"rewrite": {"maintenance": True}})
        c, _ = self.session(dg)
        first, second = self.two_rcpts(c)
        self.assertEqual(first.raw, b"450 4.3.2 no mail here\r\n")  # not 421: nobody is closing
        self.assertEqual(second.code, 250)
        self.assertEqual(self.finish_message(c).code, 250)
        (m,) = fake.wait_for(1)
        self.assertEqual(m["rcpts"], ["RCPT TO:<alice@example.net>", "RCPT TO:<bob@example.net>"])

    # -- the maintenance flag ---------------------------------------------------------------------

    def test_maintenance_through_the_admin_port(self):
        fake = self.fake(REFUSE_SECOND)
        dg = self.dotgate(fake.port, workers=2)
        self.assertEqual(dg.http("/maintenance"), (200, "off\n"))
        self.assertEqual(metric(dg.metrics(), "dotgate_maintenance"), 0)
        c, _ = self.session(dg)
        _, refused = self.two_rcpts(c)
        self.assertEqual(refused.code, 550)

        self.assertEqual(dg.http("/maintenance/on", method="POST"), (200, "on\n"))
        self.assertEqual(dg.http("/maintenance"), (200, "on\n"))
        self.assertEqual(metric(dg.metrics(), "dotgate_maintenance"), 1)
        dg.wait_log(r"maintenance on.*by=admin")
        # a session that was already running sees it at its next RCPT (the MTA refuses the third too)
        self.assertEqual(c.converse("RCPT TO:<carol@example.net>").raw,
                         b"450 4.1.1 <bob@example.net>: Recipient address rejected: User unknown\r\n")
        self.assertEqual(c.converse("QUIT").code, 221)
        # new sessions, on either worker: the refusal arrives as 4xx; the accepted one is delivered
        for i in range(3):
            d, _ = self.session(dg)
            first, second = self.two_rcpts(d)
            self.assertEqual(first.code, 250)
            self.assertEqual(second.raw, b"450 4.1.1 <bob@example.net>: Recipient address rejected: User unknown\r\n")
            self.assertEqual(self.finish_message(d).code, 250)
        msgs = fake.wait_for(3)
        self.assertEqual([m["rcpts"][1] for m in msgs], ["RCPT TO:<bob@example.net>"] * 3)  # the MTA said 550 to it
        self.assertEqual(self.rewrites(dg, "maintenance"), 4)

        self.assertEqual(dg.http("/maintenance/off", method="POST"), (200, "off\n"))
        d, _ = self.session(dg)
        self.assertEqual(self.two_rcpts(d)[1].code, 550)
        # a GET never changes it; unknown methods are refused
        self.assertEqual(dg.http("/maintenance/on")[0], 405)
        self.assertEqual(dg.http("/maintenance", method="POST")[0], 405)
        self.assertEqual(dg.http("/maintenance"), (200, "off\n"))

    def test_maintenance_admin_false_refuses_the_admin_port(self):
        fake = self.fake(REFUSE_SECOND)
        dg = self.dotgate(fake.port, {"rewrite": {"maintenance_admin": False}})
        status, body = dg.http("/maintenance/on", method="POST")
        self.assertEqual(status, 403)
        self.assertIn("rewrite.maintenance_admin", body)
        self.assertEqual(dg.http("/maintenance"), (200, "off\n"))
        c, _ = self.session(dg)
        self.assertEqual(self.two_rcpts(c)[1].code, 550)

    def reload(self, dg, count, **rewrite):
        dg.config.setdefault("rewrite", {}).update(rewrite)
        dg.write_config()
        dg.signal(signal.SIGHUP)
        dg.wait_log("configuration reloaded", count=count)

    def test_maintenance_by_sighup(self):
        fake = self.fake(REFUSE_SECOND)
        dg = self.dotgate(fake.port)
        self.reload(dg, 1, maintenance=True)
        self.assertEqual(dg.http("/maintenance"), (200, "on\n"))
        dg.wait_log(r"maintenance on.*by=configuration")
        c, _ = self.session(dg)
        self.assertEqual(self.two_rcpts(c)[1].raw,
                         b"450 4.1.1 <bob@example.net>: Recipient address rejected: User unknown\r\n")
        # switched off by hand; a reload that does not change the key leaves it off
        self.assertEqual(dg.http("/maintenance/off", method="POST"), (200, "off\n"))
        self.reload(dg, 2, maintenance=True)
        self.assertEqual(dg.http("/maintenance"), (200, "off\n"))
        c, _ = self.session(dg)
        self.assertEqual(self.two_rcpts(c)[1].code, 550)
        # on again by hand; a reload that turns the key off ends it
        dg.http("/maintenance/on", method="POST")
        self.reload(dg, 3, maintenance=False)
        self.assertEqual(dg.http("/maintenance"), (200, "off\n"))
        c, _ = self.session(dg)
        self.assertEqual(self.two_rcpts(c)[1].code, 550)
        self.assertEqual(len(fake.connections()), 3)

    # -- reloads and refusals ---------------------------------------------------------------------

    def test_rules_replaced_by_sighup_and_a_bad_rule_refused(self):
        fake = self.fake(REFUSE_SECOND)
        one = [{"name": "one", "stage": "rcpt", "match": {"code": 550}, "replace": {"text": "first wording"}}]
        dg = self.dotgate(fake.port, {"rewrite": {"rules": one}})
        c, _ = self.session(dg)
        self.assertEqual(self.two_rcpts(c)[1].raw, b"550 5.1.1 first wording\r\n")
        two = [{"name": "two", "stage": "rcpt", "match": {"code": 550}, "replace": {"text": "second wording"}}]
        self.reload(dg, 1, rules=two)
        d, _ = self.session(dg)
        self.assertEqual(self.two_rcpts(d)[1].raw, b"550 5.1.1 second wording\r\n")
        # the session that started before the reload keeps its rules
        self.assertEqual(c.converse("RCPT TO:<carol@example.net>").raw, b"550 5.1.1 first wording\r\n")
        bad = [{"name": "bad", "stage": "rcpt", "match": {"code": 550}, "replace": {"code": 250}}]
        dg.config["rewrite"]["rules"] = bad
        dg.write_config()
        dg.signal(signal.SIGHUP)
        line = dg.wait_log("configuration reload refused")[0]
        self.assertIn("rewrite.rules[0].replace.code", line)
        e, _ = self.session(dg)
        self.assertEqual(self.two_rcpts(e)[1].raw, b"550 5.1.1 second wording\r\n")  # the running config stays
        self.assertEqual(self.rewrites(dg, "one"), 2)
        self.assertEqual(self.rewrites(dg, "two"), 2)

    BAD = [
        ({"rules": [{"replace": {"text": "x"}, "stage": "later"}]}, "rewrite.rules[0].stage"),
        ({"rules": [{"match": {"code": 550}}]}, "rewrite.rules[0].replace"),
        ({"rules": [{"match": {"code": 550}, "replace": {"text": "x"}},
                    {"match": {"text": "(open"}, "replace": {"text": "x"}}]}, "rewrite.rules[1].match.text"),
        ({"rules": [{"stage": "rcpt", "match": {"code": 250}, "replace": {"code": 550}}]}, "rewrite.rules[0].replace.code"),
        ({"rules": [{"stage": "greeting", "match": {"code": 554}, "replace": {"code": 550}}]}, "rewrite.rules[0].replace.code"),
        ({"rules": [{"stage": "rcpt", "match": {"code": "4xx"}, "replace": {"code": 450}}]}, "rewrite.rules[0].replace.code"),
        ({"rules": [{"stage": "rcpt", "match": {"code": 550}, "replace": {"enhanced": "4.1.1"}}]},
         "rewrite.rules[0].replace.enhanced"),
        ({"rules": [{"stage": "greeting", "replace": {"enhanced": "2.0.0"}}]}, "rewrite.rules[0].replace.enhanced"),
        ({"rules": [{"match": {"text": "(a)"}, "replace": {"text": "$2"}}]}, "rewrite.rules[0].replace.text"),
        ({"rules": [{"stage": "greeting", "replace": {"text": "Welcome, friend"}}]}, "rewrite.rules[0].replace.text"),
        ({"rules": [{"stage": "data", "match": {"code": 250}, "replace": {"text": "x"}}]}, "rewrite.rules[0].match.code"),
        ({"rules": [{"match": {"enhanced": "5.1"}, "replace": {"text": "x"}}]}, "rewrite.rules[0].match.enhanced"),
        ({"rules": [{"name": "maintenance", "replace": {"text": "x"}}]}, "rewrite.rules[0].name"),
        ({"maintenance": "yes"}, "rewrite.maintenance"),
        ({"hide_banner": 1}, "rewrite.hide_banner"),
    ]

    def test_config_refusals_name_the_key_path(self):
        d = self.make_dir("cfg")
        for i, (rewrite, path) in enumerate(self.BAD):
            with self.subTest(path=path):
                cfg = os.path.join(d, "bad-%d.json" % i)
                with open(cfg, "w") as f:
                    json.dump({"listeners": [{"address": LOOPBACK, "port": free_port()}], "rewrite": rewrite}, f)
                p = subprocess.run([dotgate_bin(), "--config", cfg, "--check-config"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10)
                out = p.stdout.decode("utf-8", "replace")
                self.assertNotEqual(p.returncode, 0, out)
                self.assertIn(path + ": ", out)
        # and at start, not only with --check-config
        cfg = os.path.join(d, "bad-start.json")
        with open(cfg, "w") as f:
            json.dump({"listeners": [{"address": LOOPBACK, "port": free_port()}], "rewrite": self.BAD[3][0]}, f)
        p = subprocess.run([dotgate_bin(), "--config", cfg], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=10)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("rewrite.rules[0].replace.code: would turn a 250 at stage rcpt into 550",
                      p.stdout.decode("utf-8", "replace"))


class PostfixRewriteTest(IntegrationTest):
    """A real Postfix smtpd behind dotgate, queueing for smtp-sink (as test_postfix_downstream.py)."""

    def setUp(self):
        super().setUp()
        skip_unless_postfix(self)

    def deploy(self, config=None):
        self.final = self.sink()
        self.smtpd_port = free_port()
        self.postfix = Postfix(self, self.final.port, hostname="after-filter.example", extra_main={
            "mynetworks": "127.0.0.0/8",
        }, smtpd=(self.smtpd_port, {
            "smtpd_relay_restrictions": "permit_mynetworks,reject",
            "smtpd_recipient_restrictions": "reject_non_fqdn_recipient",
        })).start()
        self.dg = self.dotgate(self.smtpd_port, config)
        return self.dg

    def test_postfix_banner_and_ehlo_name_hidden(self):
        self.deploy({"smtp": {"hostname": "gate.example"}})
        with smtplib.SMTP(LOOPBACK, self.smtpd_port, timeout=10) as s:
            code, banner = s.ehlo("probe.example")
            self.assertIn(b"after-filter.example", banner)  # what there is to hide
        c = self.dg.client(timeout=30)
        g = c.greeting()
        self.assertEqual(g.raw, b"220 gate.example ESMTP\r\n")
        e = c.ehlo()
        self.assertEqual(e.lines[0], "250-gate.example")
        self.assertNotIn("after-filter", e.raw.decode())
        self.assertEqual(c.converse("QUIT").code, 221)

    def test_postfix_banner_kept_with_hide_banner_off(self):
        self.deploy({"rewrite": {"hide_banner": False}})
        c = self.dg.client(timeout=30)
        g = c.greeting()
        self.assertEqual(g.code, 220)
        self.assertIn("after-filter.example ESMTP", g.text)

    def test_postfix_refusal_reworded_and_softened_in_maintenance(self):
        rules = [{"name": "fqdn", "stage": "rcpt", "match": {"code": "5xx", "text": "<([^>]*)>: Recipient address rejected: need fully-qualified address"},
                  "replace": {"text": "Please write $1 as user@domain"}}]
        self.deploy({"rewrite": {"rules": rules, "maintenance": True}})
        c = self.dg.client(timeout=30)
        self.assertEqual(c.greeting().code, 220)
        c.ehlo()
        c.send(b"MAIL FROM:<sender@example.org>\r\nRCPT TO:<a@example.net>\r\nRCPT TO:<nodomain>\r\n"
               b"RCPT TO:<b@example.net>\r\nDATA\r\n")
        replies = c.read_replies(5)
        self.assertEqual([r.code for r in replies], [250, 250, 404, 250, 354], replies)
        self.assertEqual(replies[2].raw, b"404 4.5.2 Please write nodomain as user@domain\r\n")
        c.send(stuff(MESSAGE) + b".\r\n")
        final = c.read_reply()
        self.assertEqual(final.code, 250)
        self.assertIn("queued as", final.text)
        # Postfix itself refused permanently: the 4xx is dotgate's, under maintenance
        self.assertRegex(self.postfix.maillog(), r"reject: RCPT from .*: 504 5\.5\.2 <nodomain>")
        (delivered,) = self.final.wait_for(1, timeout=20)
        self.assertEqual(sorted(r.split()[0] for r in delivered.rcpts), ["<a@example.net>", "<b@example.net>"])
        # Postfix adds its own headers (Message-Id, Date, From): the body arrives intact
        self.assertIn(b"\nSubject: rewrite\n", delivered.content)
        self.assertTrue(delivered.content.endswith(b"\n\nthe body\n"), delivered.content)
        m = self.dg.metrics()
        self.assertEqual(metric(m, "dotgate_reply_rewrites_total", rule="fqdn"), 1)
        self.assertEqual(metric(m, "dotgate_reply_rewrites_total", rule="maintenance"), 1)


if __name__ == "__main__":
    main()
