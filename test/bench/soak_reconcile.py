"""test/bench/soak_reconcile.py — the soak's accounting: what was delivered against what each
client was told, and the table.

What it is: the half of test/bench/soak.py that judges. sink_deliveries reads smtp-sink's files
(one per delivered message: the Message-ID, Postfix's queue ID from its Received header, the
recipients, a hash of the body); reconcile holds every Message (soak_clients.py) against them and
dotgate's own log (for smtp-source's messages) and returns the counters and the problems (any is
a failure); print_table prints them. Pure: owns nothing, starts nothing.
"""

import collections
import hashlib
import re

from soak_clients import BULK_SENDER, EXPECT_REFUSED


def sink_deliveries(sink):
    """{message-id: [(postfix queue id, [rcpts], body sha256)]} from smtp-sink's files."""
    out = collections.defaultdict(list)
    for m in sink.messages():
        content = m.content
        head, _, body = content.partition(b"\n\n")
        mid = re.search(rb"(?im)^Message-I[dD]:\s*<([^>]+)>", head)
        qid = re.search(rb"with E?SMTP id (\w+)", head)
        rcpts = sorted(r.split()[0].strip("<>") for r in m.rcpts)
        out[mid.group(1).decode() if mid else "?"].append(
            (qid.group(1).decode() if qid else "?", rcpts, hashlib.sha256(body).hexdigest()))
    return out


MTA_WINDOW_TEXT = re.compile(r"^4\d\d 4\.4\.\d")


def reconcile(messages, deliveries, postfix_was_down_between, log_records):
    """(counters, problems). postfix_was_down_between(t0, t1): a Postfix stop or kill fell in
    that span (the MTA window's condition)."""
    c = collections.Counter()
    problems = []
    for m in messages:
        got = deliveries.get(m.msgid, [])
        qids = sorted({q for q, _, _ in got})
        c["sent"] += 1
        c["outcome " + m.outcome] += 1
        if m.outcome == "refused":
            phase, code, text = m.final_reply()
            c["refused: %s %s" % (phase, " ".join((text or "closed").split()[:2]))] += 1
        c["postfix redelivered (same queue id)"] += len(got) - len(qids)
        if m.kind in EXPECT_REFUSED and m.outcome == "accepted":
            problems.append("policy escape: %s (%s) got %r" % (m.msgid, m.kind, m.final_reply()))
            c["policy escapes"] += 1
        if m.outcome == "accepted":
            if not qids:
                c["lost"] += 1
                problems.append("LOST: %s accepted %r, never delivered" % (m.msgid, m.final_reply()))
            elif len(qids) > 1:
                c["duplicated"] += 1
                problems.append("DUPLICATED: %s accepted once, delivered as %s" % (m.msgid, qids))
            else:
                c["delivered"] += 1
                if m.queue_id != qids[0]:
                    c["wrong queue id"] += 1
                    problems.append("%s: the client was told queued as %s, Postfix delivered %s" % (m.msgid, m.queue_id, qids[0]))
                rcpts = sorted({r for _, rs, _ in got for r in rs})
                if rcpts != sorted(m.accepted_rcpts):
                    c["wrong recipients"] += 1
                    problems.append("%s: accepted %s, delivered to %s" % (m.msgid, m.accepted_rcpts, rcpts))
                if any(sha != m.sha for _, _, sha in got):
                    c["corrupted"] += 1
                    problems.append("%s: delivered body differs from the one sent" % m.msgid)
        elif m.outcome == "window":
            c["window delivered" if qids else "window not delivered"] += 1
            if len(qids) > 1:
                c["duplicated"] += 1
                problems.append("DUPLICATED (window): %s delivered as %s" % (m.msgid, qids))
            else:
                c["delivered"] += len(qids)
        elif m.outcome == "unanswered":
            c["unanswered dot"] += 1
            c["delivered"] += len(qids)
            problems.append("UNANSWERED: %s got no reply to its dot: %r" % (m.msgid, m.replies[-1]))
        elif qids:   # refused, cut, not connected: must not be delivered
            phase, code, text = m.final_reply()
            if (m.outcome == "refused" and phase == "dot" and MTA_WINDOW_TEXT.match(text or "")
                    and m.t_dot and postfix_was_down_between(m.t_dot, m.t_reply)):
                c["MTA window delivered"] += 1
                c["delivered"] += len(qids)
            else:
                c["unexpected deliveries"] += 1
                c["delivered"] += len(qids)
                problems.append("UNEXPECTED: %s (%s, %s) delivered as %s; replies %r"
                                % (m.msgid, m.kind, m.outcome, qids, m.replies))
        if m.outcome == "refused" and m.final_reply()[0] == "dot" and MTA_WINDOW_TEXT.match(m.final_reply()[2] or "") \
                and not qids and m.t_dot and postfix_was_down_between(m.t_dot, m.t_reply):
            c["MTA window not delivered"] += 1
        if m.outcome == "cut":
            c["cut " + m.cut_phase] += 1

    # smtp-source: dotgate's log says what it accepted (with Postfix's queue id); reconcile those.
    bulk_accepted, bulk_tempfailed_at_dot = set(), 0
    for r in log_records:
        if r.get("msg") != "transaction" or r.get("from") != BULK_SENDER:
            continue
        c["bulk transactions"] += 1
        q = re.search(r"queued as (\w+)", str(r.get("reply", "")))
        if r.get("outcome") == "accepted" and q:
            bulk_accepted.add(q.group(1))
        elif MTA_WINDOW_TEXT.match(str(r.get("reply", ""))):
            bulk_tempfailed_at_dot += 1
    bulk_delivered = collections.Counter()
    for mid, got in deliveries.items():
        if mid.endswith("@load.example"):
            for q in {q for q, _, _ in got}:
                bulk_delivered[q] += 1
    c["bulk accepted"] = len(bulk_accepted)
    c["bulk delivered"] = len(bulk_delivered)
    lost = bulk_accepted - set(bulk_delivered)
    extra = set(bulk_delivered) - bulk_accepted
    if lost:
        c["lost"] += len(lost)
        problems.append("LOST (smtp-source): queue ids %s accepted, never delivered" % sorted(lost)[:20])
    # a bulk message delivered that dotgate did not log as accepted: only inside the MTA window
    c["bulk MTA window delivered"] = min(len(extra), bulk_tempfailed_at_dot)
    if len(extra) > bulk_tempfailed_at_dot:
        c["unexpected deliveries"] += len(extra) - bulk_tempfailed_at_dot
        problems.append("UNEXPECTED (smtp-source): %d delivered without a logged 2xx (%d MTA-window tempfails)"
                        % (len(extra), bulk_tempfailed_at_dot))
    known = {m.msgid for m in messages}
    strays = [mid for mid in deliveries if mid not in known and not mid.endswith("@load.example")]
    if strays:
        c["unexpected deliveries"] += len(strays)
        problems.append("UNEXPECTED: deliveries of unknown messages %s" % strays[:10])
    return c, problems


def print_table(c, fault_kinds, faults_done, report, params, out):
    rows = [
        ("messages sent (Python clients)", c["sent"]),
        ("  accepted (2xx at the dot)", c["outcome accepted"]),
        ("  refused (4xx/5xx, or no greeting)", c["outcome refused"] + c["outcome not_connected"]),
        ("  cut before the dot", c["outcome cut"]),
        ("    before MAIL / after RCPT / mid-DATA", "%d / %d / %d" % (c["cut before MAIL"], c["cut after RCPT"], c["cut mid-DATA"])),
        ("  in the RFC 1047 window (vanished after the dot)", c["outcome window"]),
        ("    of which delivered / not", "%d / %d" % (c["window delivered"], c["window not delivered"])),
        ("  dot unanswered (must be 0)", c["unanswered dot"]),
        ("delivered (distinct Postfix queue ids)", c["delivered"]),
        ("lost (must be 0)", c["lost"]),
        ("duplicated (must be 0)", c["duplicated"]),
        ("unexpected deliveries (must be 0)", c["unexpected deliveries"]),
        ("MTA window: 4.4.x at the dot as Postfix died, delivered / not", "%d / %d" % (c["MTA window delivered"], c["MTA window not delivered"])),
        ("wrong queue id / recipients / corrupted body (must be 0)", "%d / %d / %d" % (c["wrong queue id"], c["wrong recipients"], c["corrupted"])),
        ("policy escapes: spam, oversize, webhook refusals with 2xx (must be 0)", c["policy escapes"]),
        ("Postfix redelivered its own queue file (same queue id)", c["postfix redelivered (same queue id)"]),
        ("smtp-source: transactions / accepted / delivered", "%d / %d / %d" % (c["bulk transactions"], c["bulk accepted"], c["bulk delivered"])),
        ("smtp-source: MTA window delivered", c["bulk MTA window delivered"]),
    ]
    refusals = sorted(((k, v) for k, v in c.items() if k.startswith("refused: ")), key=lambda kv: -kv[1])
    rows.append(("refusals by phase and reply", ", ".join("%s: %d" % (k[9:], v) for k, v in refusals[:8])))
    for kind in fault_kinds:
        rows.append(("fault: %s" % kind, faults_done[kind]))
    for k, v in report.items():
        rows.append((k, v))
    width = max(len(r[0]) for r in rows)
    print("soak reconciliation (seed %d, %.0f s of load, %d clients, %d smtp-source sessions)"
          % (params.seed, params.duration, params.clients, params.bulk_sessions), file=out)
    for name, value in rows:
        print("  %-*s  %s" % (width, name, value), file=out)
    out.flush()
