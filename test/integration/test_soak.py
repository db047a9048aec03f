#!/usr/bin/env python3
"""test/integration/test_soak.py — the soak's CI variant: about 2 minutes, fixed seed (issue 15).

The driver is test/bench/soak.py (its header says what runs and what is reconciled): dotgate with
--workers 2 and limits, keywords and a webhook, in front of a real private Postfix that delivers to
smtp-sink; Python clients with a unique Message-ID per message and smtp-source as background
load; Postfix stopped and killed, the webhook hanging and answering garbage, clients vanishing at
every phase, SIGHUP with changed configs, SIGTERM draining at the end. The test fails on any lost,
duplicated or unexpectedly delivered message (the RFC 1047 window is counted, not failed), on a
dot left unanswered, a policy escape, a failed drain, a fault kind never injected, and on any
sanitizer report. Under a sanitizer build (ASAN_OPTIONS set, as deploy/run-tests.sh's asan stage
does, or the binary linked with ASan) the load is lower: fewer clients, no smtp-source, the same
faults. SOAK_SEED, SOAK_DURATION, SOAK_CLIENTS override by hand. Needs root (a private Postfix
instance); skips otherwise.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench"))

from harness import main  # noqa: E402
import soak  # noqa: E402


def sanitized():
    if os.environ.get("ASAN_OPTIONS"):
        return True
    try:
        with open(os.environ.get("DOTGATE_BIN", ""), "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


class SoakCiTest(soak.Soak):
    slow = sanitized()
    PARAMS = soak.Params(duration=float(os.environ.get("SOAK_DURATION", "75")),
                         seed=int(os.environ.get("SOAK_SEED", "15")),
                         clients=int(os.environ.get("SOAK_CLIENTS", "3" if slow else "6")),
                         bulk_sessions=0 if slow else 2,
                         fault_gap=7.0)



if __name__ == "__main__":
    main()
