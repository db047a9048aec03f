#!/usr/bin/env python3
"""test/integration/lookup_service.py — a scripted recipient -> profile lookup service for
test_profile_lookup.py (dotgate's "profile_lookup", README "Recipient profiles").

What it is: an http.server (HTTP/1.1, keep-alive) run as its own process:
lookup_service.py --listen 127.0.0.1:PORT --script script.json --record DIR.
script.json is re-read on every request, so a test can change the answers between RCPTs:
  {"mode": "json",            json (default): 200 {"profile": map[recipient]} -- the recipient
                              lower-cased; a null value answers {"profile": null}; a recipient
                              not in the map gets {}
   "map": {"a@x": "strict", "n@x": null},
   "status": 500,             mode "status": that HTTP status with a valid-looking JSON body
                              mode "garbage": 200 with a body that is not JSON
                              mode "hang": read the request, never answer (until stopped)
                              mode "close": read the request, close without a byte
   "hang": ["slow@x"],        these recipients hang whatever the mode
   "delay": 0.5}              hold every answer that long first (a slow service)
Every request is recorded in DIR/requests.jsonl (connection number, method, path, headers in
order, the body as text) before it is answered. DIR/ready appears once listening.
Owns only its listening socket and connections; ends on SIGTERM.
"""

import argparse
import itertools
import json
import os
import socketserver
import http.server
import threading
import time

_conn_ids = itertools.count(1)
_lock = threading.Lock()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--script", required=True)
    ap.add_argument("--record", required=True)
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive

        def setup(self):
            super().setup()
            self.conn_id = next(_conn_ids)

        def log_message(self, fmt, *a):
            pass

        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            with open(args.script) as f:
                script = json.load(f)
            with _lock, open(os.path.join(args.record, "requests.jsonl"), "a") as f:
                f.write(json.dumps({"conn": self.conn_id, "method": self.command, "path": self.path,
                                    "headers": list(self.headers.items()),
                                    "body": body.decode("utf-8", "replace"), "at": time.time()}) + "\n")
            try:
                recipient = json.loads(body)["recipient"]
            except (ValueError, KeyError, TypeError):
                recipient = None
            mode = script.get("mode", "json")
            if recipient is not None and recipient.lower() in [h.lower() for h in script.get("hang", [])]:
                mode = "hang"
            if script.get("delay"):
                time.sleep(float(script["delay"]))
            if mode == "hang":
                time.sleep(3600)
                return
            if mode == "close":
                self.close_connection = True
                return
            status = 200
            if mode == "status":
                status = int(script.get("status", 500))
                out = json.dumps({"profile": "strict"}).encode()
            elif mode == "garbage":
                out = b"profile: strict"
            else:
                answers = {k.lower(): v for k, v in script.get("map", {}).items()}
                key = (recipient or "").lower()
                out = json.dumps({"profile": answers[key]} if key in answers else {}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server((host.strip("[]"), int(port)), Handler)
    open(os.path.join(args.record, "ready"), "w").close()
    server.serve_forever()


if __name__ == "__main__":
    main()
