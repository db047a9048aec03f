#!/usr/bin/env python3
"""test/integration/fake_mta.py — a scripted SMTP server for the misbehaviour smtp-sink cannot produce.

What it is: one small process on loopback that the integration tests start (through
harness.FakeMta) as dotgate's downstream when they need a greeting like `250 hi`, a garbage reply,
a server that stops answering, an EHLO list with every extension, or the raw wire bytes of DATA
(smtp-sink dumps a line-ending-normalised, dot-unstuffed copy; these tests need the bytes exactly).

Who drives it: a JSON script file (argument --script), read once at start:
  {
    "greeting": "220 fake ESMTP" | ["220-a", "220 b"] | null,   null: never greet (hang)
    "greeting_delay": 0.0,
    "ehlo": ["250-fake", "250-PIPELINING", ..., "250 DSN"],     the EHLO reply, line by line
    "lenient_dot": false,     true: also end DATA at the bare-LF/bare-CR/NUL variants of the 2023
                              smuggling disclosure, like a vulnerable MTA would (strict: CRLF.CRLF)
    "rules": [ {"command": "MAIL",          CONNECT, EHLO, HELO, MAIL, RCPT, DATA, "." (end of data),
                                            RSET, NOOP, QUIT, VRFY, EXPN, HELP or any other verb
                "nth": 1,                   optional: only the nth such command of a connection
                "connection": 1,            optional: only on the nth accepted connection
                "delay": 0.0,               seconds to wait before acting
                "reply": "550 5.7.1 no" | ["250-a", "250 b"],   lines, CRLF added
                "raw": "bytes\r\n",         sent as is (latin-1), instead of / after "reply"
                "action": "reply" | "close" | "hang"            after replying: go on, close, or
                                                              stop reading and answering
              }, ... ]
  }
Rules are tried in order; the first that matches a command decides. Commands without a rule get
ordinary answers (250 / 354 / 221 / 500 for unknown verbs).

What it owns and records (--record DIR): DIR/events.jsonl, one JSON object a line, flushed at once:
  {"conn": n, "event": "connect"} / {"conn": n, "event": "command", "line": "MAIL FROM:<a@b>"} /
  {"conn": n, "event": "message", "mail": ..., "rcpts": [...], "data_b64": ...}   (raw wire bytes
  of the body, still dot-stuffed, up to and including the CRLF before the final dot) /
  {"conn": n, "event": "close", "reason": ...}
and DIR/conn-N.raw, every byte received on connection N. It writes DIR/ready once listening.
It runs until killed (SIGTERM); every connection thread is a daemon and dies with it.
"""

import argparse
import base64
import json
import os
import re
import sys
import threading
import time

from line_server import Close, LineConnection, serve

DEFAULT_EHLO = [
    "250-fake.example",
    "250-PIPELINING",
    "250-SIZE 10240000",
    "250-8BITMIME",
    "250-ENHANCEDSTATUSCODES",
    "250 DSN",
]

# Bounds: a misbehaving client (dotgate under test) must not make this helper hang or grow forever.
MAX_BUFFER = 64 * 1024 * 1024
IO_TIMEOUT = 120.0

STRICT_END = re.compile(rb"\r\n\.\r\n")
# What vulnerable MTAs accept as end of data (2023 SMTP smuggling): any line ending, optional NUL.
LENIENT_END = re.compile(rb"(?:\r\n|\n|\r)\x00?\.(?:\r\n|\n|\r)")


class Recorder:
    def __init__(self, directory):
        self.dir = directory
        self.lock = threading.Lock()
        self.events = open(os.path.join(directory, "events.jsonl"), "a", encoding="utf-8")

    def event(self, **fields):
        with self.lock:
            self.events.write(json.dumps(fields) + "\n")
            self.events.flush()

    def raw(self, conn, data):
        with self.lock:
            with open(os.path.join(self.dir, "conn-%d.raw" % conn), "ab") as f:
                f.write(data)


class Hang(Exception):
    pass




class Connection(LineConnection):
    max_buffer = MAX_BUFFER

    def __init__(self, sock, index, script, rec):
        super().__init__(sock, index)
        self.script = script
        self.rec = rec
        self.counts = {}

    def received(self, data):
        self.rec.raw(self.index, data)

    def send_lines(self, lines):
        if isinstance(lines, str):
            lines = [lines]
        self.sock.sendall(b"".join(l.encode("latin-1") + b"\r\n" for l in lines))

    # -- script --------------------------------------------------------------------------------
    def rule_for(self, verb):
        n = self.counts.get(verb, 0) + 1
        self.counts[verb] = n
        for rule in self.script.get("rules", []):
            if rule.get("command", "").upper() != verb:
                continue
            if "nth" in rule and rule["nth"] != n:
                continue
            if "connection" in rule and rule["connection"] != self.index:
                continue
            return rule
        return None

    def act(self, verb, default):
        """Answer one command: the matching rule if any, else `default` (a list of lines)."""
        rule = self.rule_for(verb)
        if rule is None:
            self.send_lines(default)
            return default if isinstance(default, str) else default[0]
        first = None
        if rule.get("delay"):
            time.sleep(float(rule["delay"]))
        if "reply" in rule:
            self.send_lines(rule["reply"])
            first = rule["reply"] if isinstance(rule["reply"], str) else rule["reply"][0]
        if "raw" in rule:
            self.sock.sendall(rule["raw"].encode("latin-1"))
            first = first or rule["raw"]
        if "reply" not in rule and "raw" not in rule and rule.get("action", "reply") == "reply":
            self.send_lines(default)
            first = default if isinstance(default, str) else default[0]
        action = rule.get("action", "reply")
        if action == "close":
            raise Close("script: close after " + verb)
        if action == "hang":
            raise Hang()
        return first or ""

    def read_data(self):
        pattern = LENIENT_END if self.script.get("lenient_dot") else STRICT_END
        # The body starts right after "DATA\r\n": an empty body is just ".\r\n", hence the CRLF
        # put in front of the buffer for the search.
        while True:
            probe = b"\r\n" + self.buf
            m = pattern.search(probe)
            if m:
                nl = re.match(rb"\r\n|\n|\r", m.group(0)).group(0)
                body = self.buf[: max(m.start() - 2 + len(nl), 0)]
                self.buf = probe[m.end():]
                return body
            self.fill()

    def run(self):
        reason = "done"
        self.sock.settimeout(IO_TIMEOUT)
        try:
            self.rec.event(conn=self.index, event="connect")
            if self.script.get("greeting_delay"):
                time.sleep(float(self.script["greeting_delay"]))
            greeting = self.script.get("greeting", "220 fake.example ESMTP")
            if greeting is None:
                raise Hang()
            self.act("CONNECT", greeting)
            mail, rcpts = None, []
            while True:
                line = self.readline()
                text = line.rstrip(b"\r\n").decode("latin-1")
                self.rec.event(conn=self.index, event="command", line=text)
                verb = text.split(" ", 1)[0].upper()
                if verb == "MAIL":
                    mail, rcpts = text, []
                    self.act(verb, "250 2.1.0 Ok")
                elif verb == "RCPT":
                    rcpts.append(text)
                    self.act(verb, "250 2.1.5 Ok")
                elif verb in ("EHLO",):
                    self.act(verb, self.script.get("ehlo", DEFAULT_EHLO))
                elif verb in ("HELO",):
                    self.act(verb, "250 fake.example")
                elif verb == "DATA":
                    if not self.act(verb, "354 End data with <CR><LF>.<CR><LF>").startswith("354"):
                        continue
                    body = self.read_data()
                    self.rec.event(conn=self.index, event="message", mail=mail, rcpts=rcpts,
                                   data_b64=base64.b64encode(body).decode("ascii"))
                    self.rec.event(conn=self.index, event="command", line=".")
                    mail, rcpts = None, []
                    self.act(".", "250 2.0.0 Ok: queued")
                elif verb == "RSET":
                    mail, rcpts = None, []
                    self.act(verb, "250 2.0.0 Ok")
                elif verb == "NOOP":
                    self.act(verb, "250 2.0.0 Ok")
                elif verb == "QUIT":
                    self.act(verb, "221 2.0.0 Bye")
                    raise Close("quit")
                elif verb in ("VRFY", "EXPN", "HELP"):
                    self.act(verb, "252 2.0.0 fake")
                else:
                    self.act(verb, "500 5.5.2 Error: command not recognized")
        except Hang:
            reason = "hang"
            # Stop answering, but keep the connection until the peer closes or we are killed.
            try:
                self.sock.settimeout(IO_TIMEOUT)
                while True:
                    data = self.sock.recv(65536)
                    if not data:
                        break
                    self.rec.raw(self.index, data)
            except OSError:
                pass
        except Close as e:
            reason = str(e)
        except OSError as e:
            reason = "error: %s" % e
        finally:
            self.rec.event(conn=self.index, event="close", reason=reason)
            try:
                self.sock.close()
            except OSError:
                pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="HOST:PORT (IPv6 in brackets)")
    ap.add_argument("--script", required=True)
    ap.add_argument("--record", required=True)
    args = ap.parse_args()
    with open(args.script, encoding="utf-8") as f:
        script = json.load(f)
    rec = Recorder(args.record)
    serve(args.listen, args.record, lambda sock, index: Connection(sock, index, script, rec))

if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
