"""HTTP mode: a threaded HTTP server that hands Slack's requests to the bolt app.

Each request gets its own thread, so acknowledging one command never waits for another.
The server checks the request signature itself before bolt sees the request: a rejected
request is answered 401 and logged as one short line (bolt would log the whole body), and a
malformed timestamp is a rejection, not a crash. Bolt verifies the signature again.
Serve it behind a TLS-terminating proxy; Slack only calls HTTPS endpoints.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 1024 * 1024
SIGNATURE_WINDOW_SECONDS = 5 * 60
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_SIGNATURE = re.compile(r"^v0=[0-9a-f]{64}$")
_INVALID = '{"error": "invalid request"}'


def signature_problem(
    secret: str,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
) -> str | None:
    """Why the request is not a genuine, fresh Slack request; None when it is."""
    if not timestamp or not signature:
        return "missing signature headers"
    if not _TIMESTAMP.match(timestamp):
        return "malformed timestamp"
    if abs(now - int(timestamp)) > SIGNATURE_WINDOW_SECONDS:
        return "stale timestamp"
    if not _SIGNATURE.match(signature):
        return "malformed signature"
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "bad signature"
    return None


def one_line(value: str, limit: int = 120) -> str:
    """A value safe to put in a log line: no control characters, cut to `limit`."""
    cleaned = "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in value[:limit])
    return cleaned + ("…" if len(value) > limit else "")


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
            self.close_connection = True
            self._send(404, {}, "")
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._reject(400, "bad Content-Length", 0)
            return
        if length < 0 or length > MAX_BODY_BYTES:
            self._reject(413, "body too large", length)
            return
        raw = self.rfile.read(length)
        problem = signature_problem(
            self.server.signing_secret,
            self.headers.get("X-Slack-Request-Timestamp"),
            self.headers.get("X-Slack-Signature"),
            raw,
            self.server.clock(),
        )
        if problem is not None:
            self._reject(401, problem, len(raw), _INVALID)
            return
        body = raw.decode("utf-8", errors="replace")
        headers: dict[str, str | Sequence[str]] = {}
        for name in self.headers:
            headers[name.lower()] = self.headers.get_all(name) or []
        response: BoltResponse = self.server.app.dispatch(
            BoltRequest(body=body, query=query, headers=headers)
        )
        self._send(response.status, response.headers, response.body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), one_line(format % args, 300))

    def _reject(self, status: int, reason: str, size: int, body: str = "") -> None:
        logger.warning(
            "rejected request from %s: %s (%d bytes, HTTP %d)",
            self.client_address[0],
            reason,
            size,
            status,
        )
        if status != 401:
            self.close_connection = True
        headers = {"Content-Type": ["application/json"]} if body else {}
        self._send(status, headers, body)

    def _send(self, status: int, headers: Mapping[str, Any], body: str) -> None:
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

    def __init__(
        self,
        address: tuple[str, int],
        app: App,
        *,
        signing_secret: str,
        events_path: str = EVENTS_PATH,
        clock: Callable[[], float] = time.time,
    ):
        if not signing_secret:
            raise ValueError("HTTP mode needs the app's signing secret")
        self.app = app
        self.signing_secret = signing_secret
        self.events_path = events_path
        self.clock = clock
        super().__init__(address, _BoltHandler)
