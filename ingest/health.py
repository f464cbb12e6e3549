"""`GET /healthz` (200 when broker and database are reachable, else 503) and `GET /metrics`
(Prometheus text), served by the standard library from a daemon thread."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ingest.metrics import IngestMetrics


class HealthServer:
    def __init__(self, metrics: IngestMetrics, host: str, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/metrics":
                    self._send(200, "text/plain; version=0.0.4", metrics.render())
                elif self.path == "/healthz":
                    body = json.dumps({"broker_connected": metrics.broker_connected,
                                       "database_up": metrics.database_up})
                    self._send(200 if metrics.healthy else 503, "application/json", body)
                else:
                    self._send(404, "text/plain", "not found: try /healthz or /metrics\n")

            def _send(self, status: int, content_type: str, body: str) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return  # scrapes every few seconds would drown the worker's own log

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="ingest-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
