"""HTTP mode: a threaded HTTP server that hands Slack's requests to the bolt app.

Each request gets its own thread, so acknowledging one command never waits for another.
Bolt verifies the request signature (and rejects replays) before any listener runs.
Serve it behind a TLS-terminating proxy; Slack only calls HTTPS endpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 1024 * 1024


class _BoltHandler(BaseHTTPRequestHandler):
    server: BoltHTTPServer
    protocol_version = "HTTP/1.1"
    timeout = 30

    def do_GET(self) -> None:
        if self.path.partition("?")[0] == HEALTH_PATH:
            self._send(200, {"Content-Type": ["text/plain"]}, "ok")
        else:
            self._send(404, {}, "")

    def do_POST(self) -> None:
        path, _, query = self.path.partition("?")
        if path != self.server.events_path:
            self._send(404, {}, "")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._send(400, {}, "")
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self._send(413, {}, "")
            return
        body = self.rfile.read(length).decode("utf-8", errors="replace")
        headers: dict[str, str | Sequence[str]] = {}
        for name in self.headers:
            headers[name.lower()] = self.headers.get_all(name) or []
        response: BoltResponse = self.server.app.dispatch(
            BoltRequest(body=body, query=query, headers=headers)
        )
        self._send(response.status, response.headers, response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, headers: dict[str, Any], body: str) -> None:
        payload = body.encode("utf-8")
        self.send_response(status)
        for name, values in headers.items():
            if name.lower() == "content-length":
                continue
            for value in values if isinstance(values, list | tuple) else [values]:
                self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class BoltHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    """A burst of commands must not overflow the listen backlog (a dropped SYN costs 1 s)."""

    def __init__(self, address: tuple[str, int], app: App, events_path: str = EVENTS_PATH):
        self.app = app
        self.events_path = events_path
        super().__init__(address, _BoltHandler)
