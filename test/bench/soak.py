#!/usr/bin/env python3
"""test/bench/soak.py — the soak: mail under load and faults, every message reconciled (issue 15).

    Python clients (threads, one unique Message-ID per message)  ┐
    smtp-source (background load, reconciled from dotgate's log) ┴► dotgate (--workers 2; limits,
        keywords, http webhook) ► a real private Postfix smtpd ► its queue ► smtp-sink -d (one
        file per delivered message)

What it is: the driver shared by the long soak (test/bench/soak.sh, 30 minutes) and the CI one
(test/integration/test_soak.py, about 2 minutes, fixed seed). Run alone: soak.sh, or
`DOTGATE_BIN=... python3 test/bench/soak.py --duration 120 --seed 15`.

What it does, in order:
  1. starts smtp-sink (dumping every delivered message), a private Postfix instance
     (postfix_client.Postfix: its own config and queue directories) whose smtpd queues for
     smtp-sink, webhook.py (the http policy's service, scripted here), and dotgate with
     --workers 2 and the chain limits → keywords → http in front of that smtpd;
  2. runs the load for --duration seconds: --clients threads, each a loop of SMTP sessions of 1-3
     messages drawn from the seed (clean, spam that keywords must refuse, oversized that limits
     must refuse, ones the webhook rejects or defers; pipelined or not), and clients that vanish at
     every phase (before MAIL, after RCPT, mid-DATA, right after the dot before reading the reply:
     the RFC 1047 window). Each client records the reply it got at each phase. With
     --bulk-sessions N, smtp-source runs N parallel sessions in the background as well;
  3. injects faults at times drawn from the seed, each kind at least once: the Postfix instance
     stopped (SIGTERM to its master) or killed (SIGKILL to its whole process group) and started
     again after 1-4 s; the webhook hanging past the policy's timeout, or answering garbage, for
     a few seconds; SIGHUP with a changed config (keywords threshold, webhook timeout, the
     downstream pool on/off and its reuse, the spool threshold);
  4. at the end: two probe sessions (one mid-transaction that finishes its message during the
     drain, one idle that must get 421 4.3.2), SIGTERM while the load's last sessions are in
     flight; dotgate must exit 0 within drain_grace + 15 s and log "draining";
  5. flushes Postfix (postqueue -f) until its queue is empty (bounded), then reconciles.

Reconciliation, per Python message (by its Message-ID; a delivery is a distinct Postfix queue ID at
smtp-sink: the same queue ID twice is Postfix redelivering its own queue file after being killed
mid-delivery, reported apart):
  accepted (2xx at the dot)          → delivered exactly once, with the queue ID the client was told
                                       ("queued as X"), to the recipients it accepted, body intact
  refused (4xx/5xx at any phase, or no connection) or cut before the dot → delivered 0 times
  in the window (vanished after the dot, before reading the reply) → 0 or 1, counted
  dot unanswered (connection closed or timed out after the dot) → a failure: dotgate owes a reply
  A refused message that was delivered anyway is "unexpected", a failure, unless the client's reply
  to its dot was dotgate's "the mail server failed at the dot" (4.4.x) while a Postfix stop/kill
  fell between the dot and that reply: Postfix may have queued it and died before saying so (the
  same RFC 1047 window on the other hop; nobody can close it). Those are counted as "MTA window".
  Messages the policies must refuse (spam, oversized, webhook reject/tempfail) must never get a 2xx.
smtp-source's messages are reconciled from dotgate's own log: each transaction dotgate logged as
accepted with "queued as X" must be delivered exactly once; nothing else from it may be delivered
(outside the MTA window).
Fails (exit 1, or the test fails) on any loss, duplicate, unexpected delivery, wrong queue ID,
corrupted body, unanswered dot, policy escape, failed drain, or a fault kind never injected.

Owns every process it starts (the harness stops each by its pid); every loop is bounded in count
and time. The clients are in soak_clients.py, the accounting in soak_reconcile.py.
"""

import argparse
import collections
import json
import os
import random
import re
import signal
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from harness import ConnectionClosed, RawClient, ReplyTimeout, free_port, wait_listening, wait_until  # noqa: E402
from postfix_client import Postfix, skip_unless_postfix  # noqa: E402
from soak_clients import (CLIENT_TIMEOUT, LIMIT_SIZE, SLOW_DOT_SENDER, SPAM_PHRASE, BulkLoad, Clients,  # noqa: E402
                          make_message)
from soak_reconcile import print_table, reconcile, sink_deliveries  # noqa: E402

WEBHOOK = os.path.join(HERE, "..", "integration", "webhook.py")

FAULT_KINDS = ["postfix_stop", "postfix_kill", "webhook_hang", "webhook_garbage", "sighup"]

HOOK_NORMAL = {"mode": "json", "response": {"action": "accept"},
               "match": [{"contains": "X-Soak-Webhook: reject",
                          "response": {"action": "reject", "code": 554, "enhanced": "5.7.1", "message": "soak: rejected by the webhook"}},
                         {"contains": "X-Soak-Webhook: tempfail",
                          "response": {"action": "tempfail", "code": 451, "enhanced": "4.7.1", "message": "soak: deferred by the webhook"}}]}


class Params:
    def __init__(self, duration=120.0, seed=15, clients=6, bulk_sessions=2, fault_gap=8.0, think=0.1,
                 drain_grace=5.0, verbose=False):
        self.duration = duration          # seconds of load (faults within it)
        self.seed = seed
        self.clients = clients            # Python client threads
        self.bulk_sessions = bulk_sessions  # smtp-source parallel sessions (0: none)
        self.fault_gap = fault_gap        # mean seconds between faults
        self.think = think                # a client's pause between sessions, at most (s)
        self.drain_grace = drain_grace
        self.verbose = verbose


# ----------------------------------------------------------------------------------------------
# the parts

class Webhook(harness.ScriptedHttpService):
    name = "webhook"
    program = WEBHOOK
    path = "/verdict"


def dotgate_config(variant, hook_url, keywords_path, drain_grace):
    """The config of SIGHUP variant `variant` (0 is the start): the same refusals, other settings."""
    v = variant % 4
    return {
        "workers": 2,
        "drain_grace": drain_grace,
        "log": {"format": "json", "level": "info"},
        "smtp": {"max_connections": 200, "command_timeout": 30, "data_timeout": 30, "max_message_size": 10000000},
        "downstream": {"connect_timeout": 3, "reply_timeout": 10, "data_end_timeout": 15,
                       "pool": [{"size": 0}, {"size": 2, "max_sessions": 1}, {"size": 0}, {"size": 3, "max_sessions": 5}][v]},
        "verdict": {"deadline": 8},
        "spool": {"memory_threshold": [16384, 0, 262144, 4096][v]},
        "policies": [
            {"type": "limits", "max_message_size": LIMIT_SIZE},
            {"type": "keywords", "lists": [{"path": keywords_path, "score": 10}], "threshold": [5, 8, 3, 9][v]},
            {"type": "http", "url": hook_url, "timeout": [2, 1.5, 2.5, 1][v], "on_error": "tempfail"},
        ],
    }


class Rig:
    """smtp-sink ◄ Postfix ◄ dotgate, the webhook beside it; faults applied here."""

    def __init__(self, tc, params):
        self.tc, self.p = tc, params
        self.sink = harness.Sink(tc).start()
        self.smtpd_port = free_port()
        access_dir = tc.make_dir("postfix-access")
        slow_map = os.path.join(access_dir, "slow_dot")
        with open(slow_map, "w") as f:
            f.write("%s soak_slow_dot\n" % SLOW_DOT_SENDER)
        self.postfix = Postfix(tc, self.sink.port, hostname="soak-mta.example", smtpd_maxproc=60, extra_main={
            "mynetworks": "127.0.0.0/8",
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "default_destination_concurrency_limit": "10",
            # the drain probe's sender: Postfix holds its dot 3 s, then queues it and answers
            "smtpd_restriction_classes": "soak_slow_dot",
            "soak_slow_dot": "sleep 3",
            "smtpd_end_of_data_restrictions": "check_sender_access texthash:" + slow_map,
        }, smtpd=(self.smtpd_port, {"smtpd_relay_restrictions": "permit_mynetworks,reject"})).start()
        wait_listening(self.smtpd_port, self.postfix.master)
        self.hook = Webhook(tc, HOOK_NORMAL).start()
        kw_dir = tc.make_dir("keywords")
        self.keywords_path = os.path.join(kw_dir, "spam.txt")
        with open(self.keywords_path, "w") as f:
            f.write("# soak: the spam messages carry this phrase twice\n%s\n" % SPAM_PHRASE)
        self.variant = 0
        self.dg = harness.Dotgate(tc, self.smtpd_port, admin=True, workers=2)
        self.dg.config = harness.deep_merge(self.dg.config, dotgate_config(0, self.hook.url(), self.keywords_path, params.drain_grace))
        self.dg.start()
        self.postfix_down = []      # [(t_stop, t_up)] monotonic
        self.lock = threading.Lock()

    # -- Postfix ---------------------------------------------------------------------------
    def postfix_stop(self, kill):
        master = self.postfix.master
        t = time.monotonic()
        with self.lock:
            self.postfix_down.append([t, None])
        if kill:
            try:
                os.killpg(master.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        else:
            master.signal(signal.SIGTERM)   # master passes it on to its children, then exits
        if master.wait(10) is None:
            master.signal(signal.SIGKILL)
            master.wait(5)
        Postfix._kill_group(master.pid)     # whatever is left of its group
        return t

    def postfix_start(self):
        before = self.postfix.maillog().count("daemon started")
        self.postfix.master = self.tc.start_proc("postfix-master", [
            "env", "-i", "MAIL_CONFIG=" + self.postfix.conf, os.path.join("/usr/lib/postfix/sbin", "master"),
            "-c", self.postfix.conf, "-s"])
        wait_until(lambda: self.postfix.maillog().count("daemon started") > before or not self.postfix.master.alive(),
                   20, interval=0.05, what="Postfix restarted")
        if not self.postfix.master.alive():
            raise AssertionError("Postfix master did not restart:\n" + self.postfix.master.output()[-2000:])
        wait_listening(self.smtpd_port, self.postfix.master, timeout=20)
        with self.lock:
            self.postfix_down[-1][1] = time.monotonic()

    def postfix_was_down_between(self, t0, t1, slack=0.5):
        with self.lock:
            return any(t0 - slack <= stop <= t1 + slack for stop, _ in self.postfix_down)

    # -- the queue -------------------------------------------------------------------------
    def queue_files(self):
        """Complete queue files (Postfix marks a finished one owner-executable; one a killed
        cleanup left behind is not, and is never delivered: it was never acknowledged)."""
        complete, partial = [], []
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            top = os.path.join(self.postfix.queue, sub)
            for dirpath, _, names in os.walk(top):
                for n in names:
                    path = os.path.join(dirpath, n)
                    try:
                        mode = os.stat(path).st_mode
                    except OSError:
                        continue
                    (complete if (mode & 0o100 or sub in ("maildrop", "hold")) else partial).append(path)
        return complete, partial

    def flush_until_empty(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            complete, _ = self.queue_files()
            if not complete:
                return True
            self.postfix.flush()
            time.sleep(1.0)
        return not self.queue_files()[0]

    # -- dotgate ---------------------------------------------------------------------------
    def sighup(self):
        self.variant += 1
        before = sum(1 for r in self.log_records() if r.get("msg") == "configuration reloaded")
        self.dg.write_config(harness.deep_merge(self.dg.config, dotgate_config(
            self.variant, self.hook.url(), self.keywords_path, self.p.drain_grace)))
        self.dg.signal(signal.SIGHUP)
        wait_until(lambda: sum(1 for r in self.log_records() if r.get("msg") == "configuration reloaded") > before,
                   10, interval=0.05, what="dotgate to apply the reload")

    def log_records(self):
        out = []
        for line in self.dg.log().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def sample(self):
        pid = self.dg.proc.pid
        try:
            with open("/proc/%d/status" % pid) as f:
                rss = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
            fds = len(os.listdir("/proc/%d/fd" % pid))
            return rss, fds
        except (OSError, AttributeError):
            return None


# ----------------------------------------------------------------------------------------------
# the Python clients


# ----------------------------------------------------------------------------------------------
# faults

def fault_schedule(seed, duration, gap):
    """[(t, kind, seconds)]: every kind once (shuffled), then random kinds, about `gap` apart."""
    rng = random.Random(seed)
    slots = max(len(FAULT_KINDS) + 1, int((duration - 10) / gap))
    kinds = FAULT_KINDS + ["sighup"]   # every kind, and a second reload (the pool variants)
    rng.shuffle(kinds)
    kinds += [rng.choice(FAULT_KINDS + ["sighup"]) for _ in range(slots - len(kinds))]
    step = (duration - 10) / slots
    out = []
    for i, kind in enumerate(kinds):
        t = 4 + i * step + rng.uniform(0, step * 0.3)
        length = {"postfix_stop": rng.uniform(1, 4), "postfix_kill": rng.uniform(1, 4),
                  "webhook_hang": rng.uniform(3, 6), "webhook_garbage": rng.uniform(2, 5), "sighup": 0}[kind]
        out.append((t, kind, length))
    return out


class Faults:
    def __init__(self, rig, params, t0):
        self.rig, self.p, self.t0 = rig, params, t0
        self.schedule = fault_schedule(params.seed, params.duration, params.fault_gap)
        self.done = collections.Counter()
        self.stop = threading.Event()
        self.errors = []
        self.log = []
        self.thread = threading.Thread(target=self.run, name="soak-faults", daemon=True)

    def run(self):
        for t, kind, length in self.schedule:
            if self.stop.wait(max(0.0, self.t0 + t - time.monotonic())):
                return
            try:
                self.apply(kind, length)
                self.done[kind] += 1
                self.log.append("%6.1fs %s %.1fs" % (time.monotonic() - self.t0, kind, length))
                if self.p.verbose:
                    print("soak: fault %s" % self.log[-1], flush=True)
            except Exception as e:
                self.errors.append("%s at %.1fs: %r" % (kind, t, e))
                return

    def apply(self, kind, length):
        rig = self.rig
        if kind in ("postfix_stop", "postfix_kill"):
            rig.postfix_stop(kill=kind == "postfix_kill")
            time.sleep(length)
            rig.postfix_start()
        elif kind == "webhook_hang":
            rig.hook.set({"mode": "hang"})
            time.sleep(length)
            rig.hook.set(HOOK_NORMAL)
        elif kind == "webhook_garbage":
            rig.hook.set({"mode": "garbage"})
            time.sleep(length)
            rig.hook.set(HOOK_NORMAL)
        elif kind == "sighup":
            rig.sighup()

    def join(self):
        self.stop.set()
        self.thread.join(60)
        if self.thread.is_alive():
            self.errors.append("the fault thread did not end within 60 s")


# ----------------------------------------------------------------------------------------------
# the end: drain, flush, reconcile

def drain(rig, params, report):
    """SIGTERM with three probe sessions open besides the load's last ones: `quick` is
    mid-transaction and finishes its message at once; `slow` sends its dot one second before
    drain_grace ends, to a Postfix that holds that sender's dot 3 s (smtpd_end_of_data_restrictions
    sleep 3) before it queues the message and answers: the client must get that 250, since a 421
    would make it send a queued message again; `idle` must get 421 4.3.2. Returns (the two
    probes' messages, whether the drain went right)."""
    dg = rig.dg
    quick, slow, idle = (RawClient(dg.port, timeout=CLIENT_TIMEOUT) for _ in range(3))
    probes = []
    for name, sender in (("quick", "sender@soak.example"), ("slow", SLOW_DOT_SENDER)):
        m = make_message(random.Random(params.seed), "soak-%d-drain-%s@soak.example" % (params.seed, name), "clean")
        m.rcpts = m.accepted_rcpts = ["drain-%s@dest.example" % name]
        m.sender = sender
        probes.append(m)
    ok = []
    t_term = time.monotonic()
    try:
        for c in (quick, slow, idle):
            ok.append(c.greeting().code == 220 and c.ehlo("soak-probe.example").code == 250)
        for c, m in ((quick, probes[0]), (slow, probes[1])):
            ok.append(c.converse("MAIL FROM:<%s>" % m.sender).code == 250)
            ok.append(c.converse("RCPT TO:<%s>" % m.rcpts[0]).code == 250)
        ok.append(slow.converse("DATA").code == 354)
        t_term = time.monotonic()
        dg.signal(signal.SIGTERM)
        time.sleep(0.3)
        for c, m, when in ((quick, probes[0], 0), (slow, probes[1], t_term + params.drain_grace - 1.0)):
            time.sleep(max(0.0, when - time.monotonic()))
            if c is quick:
                m.saw("data", c.converse("DATA"))
            c.send(harness.stuff(m.wire) + b".\r\n")
            m.t_dot = time.monotonic()
            if c is quick:
                finish_probe(c, m, report, "drain: quick probe (dot at once)")
        finish_probe(slow, probes[1], report, "drain: slow probe (dot 1 s before the grace ends, Postfix answers 3 s later)")
        rb = idle.read_reply(timeout=params.drain_grace + 10)
        report["drain: idle probe"] = rb.lines[0]
        ok.append(rb.code == 421 and rb.enhanced == "4.3.2")
        ok += [m.outcome == "accepted" for m in probes]
    except (ConnectionClosed, ReplyTimeout, OSError) as e:
        report["drain: probe error"] = str(e)
        ok.append(False)
        dg.signal(signal.SIGTERM)
    finally:
        for c in (quick, slow, idle):
            c.close()
    for m in probes:
        m.outcome = m.outcome or "refused"
    status = dg.proc.wait(params.drain_grace + 15)
    report["drain: exit status"] = status
    report["drain: seconds from SIGTERM to exit"] = round(time.monotonic() - t_term, 1)
    logged = any(r.get("msg") == "draining" for r in rig.log_records())
    stopped = any(r.get("msg") == "dotgate stopped" for r in rig.log_records())
    report["drain: log"] = "draining%s, stopped%s" % ("" if logged else " MISSING", "" if stopped else " MISSING")
    return probes, all(ok) and status == 0 and logged and stopped


def finish_probe(c, m, report, name):
    try:
        r = c.read_reply()
    except (ConnectionClosed, ReplyTimeout, OSError) as e:
        m.outcome = "unanswered"
        m.replies.append(("dot", None, "no reply: %s" % e))
        report[name] = "no reply: %s" % e
        return
    m.t_reply = time.monotonic()
    m.saw("dot", r)
    m.outcome = "accepted" if (r.code or 0) // 100 == 2 else "refused"
    q = re.search(r"queued as (\w+)", r.text)
    m.queue_id = q.group(1) if q else None
    report[name] = r.lines[0]


def run(tc, params, out=sys.stdout):
    """The whole soak on `tc` (a harness.IntegrationTest); returns (counters, problems)."""
    rig = Rig(tc, params)
    clients = Clients(rig.dg.port, params)
    bulk = BulkLoad(rig.dg.port, params)
    t0 = time.monotonic()
    faults = Faults(rig, params, t0)
    samples = []
    clients.start()
    bulk.start()
    faults.thread.start()
    deadline = t0 + params.duration
    for _ in range(int(params.duration / 2) + 10):
        if time.monotonic() >= deadline or not rig.dg.proc.alive():
            break
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
        s = rig.sample()
        if s:
            samples.append((time.monotonic() - t0, s))
        if params.verbose:
            print("soak: %.0fs %d messages, rss/fds %s" % (time.monotonic() - t0, len(clients.messages), s), flush=True)
    report = collections.OrderedDict()
    problems = []
    alive = rig.dg.proc.alive()
    faults.join()
    if rig.postfix.master is None or not rig.postfix.master.alive():
        rig.postfix_start()
    rig.hook.set(HOOK_NORMAL)
    # SIGTERM with the load's last sessions in flight: they stop starting new ones now
    clients.stop.set()
    bulk.stop.set()
    if alive:
        probes, drained = drain(rig, params, report)
        clients.messages.extend(probes)
        if not drained:
            problems.append("drain failed: %s" % {k: v for k, v in report.items() if k.startswith("drain")})
    else:
        problems.append("dotgate died during the soak (status %s):\n%s" % (rig.dg.proc.returncode(), rig.dg.log()[-3000:]))
    for t in clients.threads:
        t.join(CLIENT_TIMEOUT + 10)
    if any(t.is_alive() for t in clients.threads):
        problems.append("client threads still running %.0f s after the end" % (CLIENT_TIMEOUT + 10))
    bulk.join()
    if rig.dg.proc.alive():
        rig.dg.stop()
    flushed = rig.flush_until_empty(120)
    complete, partial = rig.queue_files()
    report["Postfix queue after flush: complete / never-acknowledged files"] = "%d / %d" % (len(complete), len(partial))
    if not flushed:
        problems.append("Postfix's queue did not empty within 120 s: %s" % complete[:10])
    time.sleep(1.0)   # the last delivery's file at smtp-sink is complete
    bounced = rig.postfix.maillog().count("status=bounced")
    report["Postfix bounces"] = bounced
    if samples:
        first = samples[min(len(samples) - 1, 2)][1]
        report["dotgate RSS KiB / fds: early, peak, last"] = "%d/%d, %d/%d, %d/%d" % (
            first[0], first[1], max(s[1][0] for s in samples), max(s[1][1] for s in samples),
            samples[-1][1][0], samples[-1][1][1])
    report["bulk smtp-source runs"] = dict(bulk.runs)
    report["faults"] = "; ".join(faults.log) if len(faults.log) <= 12 else "%d injected" % len(faults.log)
    c, found = reconcile(clients.messages, sink_deliveries(rig.sink), rig.postfix_was_down_between, rig.log_records())
    problems += found
    problems += ["driver: " + e for e in clients.errors + faults.errors]
    for kind in FAULT_KINDS:
        if not faults.done[kind]:
            problems.append("fault %s was never injected" % kind)
    print_table(c, FAULT_KINDS, faults.done, report, params, out)
    for p in problems[:40]:
        print("  PROBLEM: " + p, file=out)
    out.flush()
    return c, problems


class Soak(harness.IntegrationTest):
    """The soak as a test: PARAMS set by whoever runs it (soak.py's main, test_soak.py)."""

    PARAMS = None

    def setUp(self):
        super().setUp()
        skip_unless_postfix(self)

    def test_soak(self):
        params = self.PARAMS or Params()
        c, problems = run(self, params)
        self.assertEqual(problems, [], "the soak found problems (reproduce with --seed %d)" % params.seed)
        # not vacuous: mail flowed, was refused, cut and lost in the window, under every fault
        self.assertGreater(c["outcome accepted"], 20, c)
        self.assertGreater(c["delivered"], 20, c)
        for k in ("outcome refused", "outcome cut", "outcome window"):
            self.assertGreater(c[k], 0, k)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--duration", type=float, default=120)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--clients", type=int, default=6)
    ap.add_argument("--bulk-sessions", type=int, default=2)
    ap.add_argument("--fault-gap", type=float, default=8)
    ap.add_argument("--think", type=float, default=0.1)
    ap.add_argument("--drain-grace", type=float, default=5)
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    Soak.PARAMS = Params(args.duration, args.seed, args.clients, args.bulk_sessions, args.fault_gap, args.think,
                         args.drain_grace, args.verbose)
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, harness._exit_on_signal)
    suite = unittest.TestSuite([Soak("test_soak")])
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    sys.exit(0 if result.wasSuccessful() and not result.skipped else 1)


if __name__ == "__main__":
    main()
