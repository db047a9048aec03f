#!/usr/bin/env python3
"""test/integration/webhook.py — a scripted verdict service for the `http` policy's tests.

What it is: an http.server (HTTP/1.1, keep-alive) started by test_http_policy.py as its own
process: webhook.py --listen 127.0.0.1:PORT --script script.json --record DIR.
script.json is {"mode": ..., "response": {...}} and is re-read on every request, so a test can
change the answer between messages. Modes:
  json     — 200 with the "response" object as JSON (default {"action": "accept"})
  status   — answer with HTTP status "status" and a JSON accept body (for non-2xx)
  garbage  — 200 with a body that is not JSON
  hang     — read the request, never answer (until the test stops us)
  close    — read the request, close the connection without a byte
  raw      — write "raw" (a string) as the whole response, then close
  close_reused — like json on a connection's first request; on a later one, close without a byte
                 (a server that dropped an idle keep-alive connection just as the request came)
  close_idle — like json (keep-alive announced), then close the connection 0.2 s later
A "delay" (seconds) in the script holds any answer that long first (a slow verdict service).
"match" ([{"contains": "text", "response": {...}}], json mode only): the first entry whose text is
in the request body answers with its response instead (a verdict per message, test/bench/soak.py).
Every request is recorded in DIR/requests.jsonl: the connection number, the method, path, the
headers (in order, repeated ones kept) and the body (base64). DIR/ready appears once listening.
Owns only its listening socket and connections; ends on SIGTERM.
"""

import argparse
import base64
import http.server
import itertools
import json
import os
import socketserver
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
            self.served = 0

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
                                    "body_b64": base64.b64encode(body).decode()}) + "\n")
            mode = script.get("mode", "json")
            self.served += 1
            if script.get("delay"):
                time.sleep(float(script["delay"]))
            if mode == "close_reused" and self.served > 1:
                self.close_connection = True
                return
            if mode == "hang":
                time.sleep(3600)
                return
            if mode == "close":
                self.close_connection = True
                return
            if mode == "raw":
                self.wfile.write(script["raw"].encode("latin-1"))
                self.close_connection = True
                return
            status = script.get("status", 200) if mode == "status" else 200
            if mode == "garbage":
                out, ctype = b"this is not json", "text/plain"
            else:
                response = script.get("response", {"action": "accept"})
                for rule in script.get("match", []) if mode == "json" else []:
                    if rule["contains"].encode() in body:
                        response = rule["response"]
                        break
                out, ctype = json.dumps(response).encode(), "application/json"
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)
            if mode == "close_idle":
                self.wfile.flush()
                time.sleep(0.2)
                self.close_connection = True

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        allow_reuse_address = True

    server = Server((host.strip("[]"), int(port)), Handler)
    open(os.path.join(args.record, "ready"), "w").close()
    server.serve_forever()


if __name__ == "__main__":
    main()
