#!/usr/bin/env python3
"""A fake certificate authority verify endpoint for the tests: a real HTTP
server on 127.0.0.1. The URL chooses the behaviour, so a test picks it by
setting kakunin.verify_url:

    GET /v1/<mode>/<agent id>/verify/<serial>

mode: active, revoked, expired, suspended (a 200 answer with that status),
404, 429, 500 (that HTTP status), garbage (200 with a non-JSON body),
wrong-serial (200 for another serial), hang (answers after 30 s), slow (an
active answer after 0.5 s). GET /stats answers {"requests": N, "by_serial":
{serial: N}}: how many verify requests arrived (the shared-cache tests count
them). Usage: fake_ca.py PORT
"""
import json
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

REQUESTS = Counter()
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def send(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            # The client gave up first (a timeout or a cancel under test): expected.
            pass

    def do_GET(self):
        if self.path == "/stats":
            with LOCK:
                stats = {"requests": sum(REQUESTS.values()), "by_serial": dict(REQUESTS)}
            return self.send(200, json.dumps(stats))
        parts = self.path.strip("/").split("/")
        if len(parts) != 5 or parts[0] != "v1" or parts[3] != "verify":
            return self.send(404, '{"error": "not found"}')
        _, mode, agent, _, serial = parts
        with LOCK:
            REQUESTS[serial] += 1
        if mode == "slow":
            time.sleep(0.5)
        if mode in ("404", "429", "500"):
            return self.send(int(mode), '{"error": "%s"}' % mode)
        if mode == "garbage":
            return self.send(200, "<html>not json", "text/html")
        if mode == "hang":
            time.sleep(30)
            return self.send(200, "{}")
        status = mode if mode in ("active", "revoked", "expired", "suspended") else "active"
        answer = {
            "data": {
                "serial_number": "ffff" if mode == "wrong-serial" else serial,
                "status": status,
                "valid": status == "active",
                "issued_at": "2026-01-01T00:00:00Z",
                "expires_at": "2027-01-01T00:00:00Z",
                "agent": {"id": agent, "name": agent, "model": "test", "version": "1"},
                "permitted_instruments": ["TSLA"],
            }
        }
        return self.send(200, json.dumps(answer))


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
