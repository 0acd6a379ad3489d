#!/usr/bin/env python3
"""/metrics of a Celery worker container (deploy/docker-compose.yml): the worker's processes write
to PROMETHEUS_MULTIPROC_DIR (core.metrics); this serves their sum on :9808, for
`Authorization: Bearer $METRICS_TOKEN` only (404 otherwise, like the web processes' /metrics).

A web container's processes are served by the web processes themselves (core/health.py). A
Celery worker has no HTTP server, and containers must not share one multiprocess directory (each
has its own process ids, and prometheus-client names its files by pid), hence this small server
in the worker's container, next to the worker."""

import hmac
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core import metrics  # noqa: E402  (after the path; needs PROMETHEUS_MULTIPROC_DIR set)

TOKEN = os.environ.get("METRICS_TOKEN", "").encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        given = (self.headers.get("Authorization") or "").encode()
        if self.path != "/metrics" or not TOKEN or not hmac.compare_digest(given, b"Bearer " + TOKEN):
            self.send_response(404)
            self.end_headers()
            return
        body, content_type = metrics.exposition()
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # scrapes every 15 s: no access log
        pass


def main() -> None:
    if not metrics.MULTIPROCESS:
        sys.exit("worker_metrics.py: set PROMETHEUS_MULTIPROC_DIR (shared with the Celery worker)")
    port = int(os.environ.get("WORKER_METRICS_PORT", "9808"))
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
