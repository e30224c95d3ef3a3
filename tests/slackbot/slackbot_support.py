"""Test doubles and a live bot harness shared by the Slack bot tests.

`FakeRunner` stands in for the Pulumi CLI (there is none on the test machine); everything else
is the product: the bolt app behind a real HTTP server, the real poster talking HTTP to a
local server that records Slack Web API calls, the real audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from pulumi.automation import EngineEvent
from slack_sdk import WebClient

from slackbot.access import AccessConfig
from slackbot.app import build_app
from slackbot.audit import AuditLog
from slackbot.http_server import BoltHTTPServer
from slackbot.jobs import JobPool
from slackbot.poster import SlackPoster
from slackbot.redact import Redactor
from slackbot.runner import (
    ConfigEntry,
    EventSink,
    RunnerError,
    RunRequest,
    RunResult,
    StackStatus,
    rollback_settings,
)
from slackbot.service import BotOptions, ChatOps

SIGNING_SECRET = "test-signing-secret-0123456789"
BOT_TOKEN = "xoxb-test-token"
STACKS = ["integration", "local", "production"]
WAIT = 10.0

ALICE, BOB, CAROL, MALLORY = "UALICE", "UBOB", "UCAROL", "UMALLORY"
OPS_CHANNEL, DEPLOY_CHANNEL, RANDOM_CHANNEL = "COPS", "CDEPLOY", "CRANDOM"

ACCESS = {
    "approval_window_minutes": 10,
    "stacks": {
        "local": {
            "allow": [
                {
                    "users": ["*"],
                    "channels": [OPS_CHANNEL, DEPLOY_CHANNEL],
                    "commands": ["preview", "up", "refresh", "destroy", "status"],
                }
            ]
        },
        "integration": {
            "allow": [
                {
                    "users": [ALICE, BOB],
                    "channels": [OPS_CHANNEL],
                    "commands": ["preview", "up", "refresh", "status"],
                }
            ]
        },
        "production": {
            "allow": [
                {
                    "users": [ALICE, BOB, CAROL],
                    "channels": [DEPLOY_CHANNEL],
                    "commands": ["preview", "up", "refresh", "destroy", "status"],
                },
                {"users": [MALLORY], "channels": ["*"], "commands": ["status"]},
            ],
            "approvers": [BOB, CAROL],
        },
    },
}


# ---- engine events, built from the JSON the engine writes ----------------------------------

URN = "urn:pulumi:{stack}::airflow-platform::{type}::{name}"


def event(sequence: int, **payload: Any) -> EngineEvent:
    return EngineEvent.from_json({"sequence": sequence, "timestamp": 1_700_000_000, **payload})


def step(sequence: int, kind: str, op: str, type_: str, name: str, stack: str) -> EngineEvent:
    key = "resourcePreEvent" if kind == "pre" else "resOutputsEvent"
    metadata = {
        "op": op,
        "urn": URN.format(stack=stack, type=type_, name=name),
        "type": type_,
        "provider": "",
    }
    return event(sequence, **{key: {"metadata": metadata, "planning": False}})


def diagnostic(sequence: int, message: str, severity: str = "error") -> EngineEvent:
    return event(
        sequence, diagnosticEvent={"message": message, "color": "never", "severity": severity}
    )


def summary(sequence: int, changes: Mapping[str, int]) -> EngineEvent:
    return event(
        sequence,
        summaryEvent={
            "maybeCorrupt": False,
            "durationSeconds": 1,
            "resourceChanges": dict(changes),
            "PolicyPacks": {},
        },
    )


def typical_events(stack: str) -> list[EngineEvent]:
    """An update creating a bucket and a role, updating a release, two unchanged resources."""
    return [
        event(1, preludeEvent={"config": {"aws:region": "eu-west-1"}}),
        step(2, "pre", "create", "aws:s3/bucket:Bucket", "logs", stack),
        step(3, "out", "create", "aws:s3/bucket:Bucket", "logs", stack),
        step(4, "pre", "create", "aws:iam/role:Role", "logs-role", stack),
        step(5, "out", "create", "aws:iam/role:Role", "logs-role", stack),
        step(6, "pre", "update", "kubernetes:helm.sh/v3:Release", "airflow", stack),
        step(7, "out", "update", "kubernetes:helm.sh/v3:Release", "airflow", stack),
        step(8, "out", "same", "pulumi:pulumi:Stack", "airflow-platform-" + stack, stack),
        step(9, "out", "same", "pulumi:providers:aws", "default", stack),
        summary(10, {"create": 2, "update": 1, "same": 2}),
        event(11, cancelEvent={}),
    ]


# ---- a StackRunner without the CLI -----------------------------------------------------------


@dataclass
class Script:
    """What the fake runner does for one stack."""

    events: list[EngineEvent] = field(default_factory=list)
    result: RunResult = field(default_factory=lambda: RunResult(changes={}))
    error: Exception | None = None
    gate: threading.Event | None = None
    """When set, the operation waits for this event (a slow operation)."""
    event_delay: float = 0.0
    hang: bool = False
    """Wait until cancelled through `FakeRunner.cancel` (a hung operation)."""
    ignore_cancel: bool = False
    """With `gate`: a cancel does not stop the operation (Pulumi never answers)."""


class CancelledByRunner(RunnerError):
    """What the fake raises when an operation was cancelled."""


class FakeRunner:
    """A `StackRunner` that replays scripted engine events instead of calling the CLI."""

    def __init__(self, supports_plans: bool = True) -> None:
        self._supports_plans = supports_plans
        self.scripts: dict[str, Script] = {}
        self.fingerprints: dict[str, str] = {}
        self.statuses: dict[str, StackStatus] = {}
        self.requests: list[RunRequest] = []
        self.running: dict[str, int] = {}
        self.max_parallel_per_stack: dict[str, int] = {}
        self.started = threading.Event()
        self.configs: dict[str, dict[str, ConfigEntry]] = {}
        self.config_writes: list[tuple[str, dict[str, str | None]]] = []
        self.config_at_run: list[tuple[RunRequest, dict[str, str]]] = []
        """The stack's plain config as each operation saw it."""
        self.cancels: list[str] = []
        self.status_delay = 0.0
        self.status_calls = 0
        self.fingerprint_error: Exception | None = None
        self.errors: dict[str, Exception] = {}
        """Raise this from `config` or `status` (keyed by method name)."""
        self.outputs: dict[str, dict[str, Any]] = {}
        """The plain outputs `rollback_config` hands to `deploy.rollback`."""
        self.exports: dict[str, dict[str, Any]] = {}
        """`pulumi stack export` of each stack, for `deploy.rollback`."""
        self._cancelled: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    @property
    def supports_plans(self) -> bool:
        return self._supports_plans

    def run(self, request: RunRequest, on_event: EventSink) -> RunResult:
        with self._lock:
            self.requests.append(request)
            current = self.configs.get(request.stack, {})
            self.config_at_run.append(
                (request, {key: entry.value for key, entry in current.items()})
            )
            count = self.running.get(request.stack, 0) + 1
            self.running[request.stack] = count
            peak = self.max_parallel_per_stack.get(request.stack, 0)
            self.max_parallel_per_stack[request.stack] = max(peak, count)
            cancelled = self._cancelled[request.stack] = threading.Event()
        self.started.set()
        script = self.scripts.get(request.stack, Script())
        try:
            if request.save_plan is not None:
                request.save_plan.write_text('{"plan": true}', encoding="utf-8")
            if script.hang:
                if not cancelled.wait(WAIT):
                    raise RunnerError("the hung operation was never cancelled")
                raise CancelledByRunner("error: update canceled")
            if script.gate is not None:
                deadline = time.monotonic() + WAIT
                while not script.gate.wait(0.01):
                    if cancelled.is_set() and not script.ignore_cancel:
                        raise CancelledByRunner("error: update canceled")
                    if time.monotonic() > deadline:
                        raise RunnerError("the test never released the operation")
            for engine_event in script.events:
                on_event(engine_event)
                if script.event_delay:
                    time.sleep(script.event_delay)
            if script.error is not None:
                raise script.error
            return script.result
        finally:
            with self._lock:
                self.running[request.stack] -= 1

    def status(self, stack: str) -> StackStatus:
        with self._lock:
            self.status_calls += 1
        if "status" in self.errors:
            raise self.errors["status"]
        if self.status_delay:
            time.sleep(self.status_delay)
        return self.statuses.get(stack, StackStatus(stack, None, ()))

    def fingerprint(self, stack: str) -> str:
        if self.fingerprint_error is not None:
            raise self.fingerprint_error
        return self.fingerprints.get(stack, "v1")

    def config(self, stack: str) -> dict[str, ConfigEntry]:
        if "config" in self.errors:
            raise self.errors["config"]
        with self._lock:
            return dict(self.configs.get(stack, {}))

    def set_config(self, stack: str, values: Mapping[str, str | None]) -> None:
        with self._lock:
            self.config_writes.append((stack, dict(values)))
            current = self.configs.setdefault(stack, {})
            for key, value in values.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = ConfigEntry(value, secret=False)

    def rollback_config(self, stack: str) -> dict[str, str]:
        with self._lock:
            outputs = dict(self.outputs.get(stack, {}))
            state = self.exports.get(stack)
        return rollback_settings(outputs, state)

    def cancel(self, stack: str) -> None:
        with self._lock:
            self.cancels.append(stack)
            event = self._cancelled.get(stack)
        if event is not None:
            event.set()

    def requests_for(self, stack: str) -> list[RunRequest]:
        with self._lock:
            return [request for request in self.requests if request.stack == stack]


# ---- a recording Slack Web API ---------------------------------------------------------------


@dataclass(frozen=True)
class ApiCall:
    method: str
    params: dict[str, Any]

    @property
    def text(self) -> str:
        """Everything a person could read in this call: text and blocks."""
        return json.dumps(self.params, sort_keys=True, ensure_ascii=False)


class SlackApiRecorder:
    """A local stand-in for https://slack.com/api/ that records every call."""

    def __init__(self) -> None:
        self.calls: list[ApiCall] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._ts = 0
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                if "json" in (self.headers.get("Content-Type") or ""):
                    params = json.loads(raw or "{}")
                else:
                    params = dict(urllib.parse.parse_qsl(raw))
                method = self.path.rsplit("/", 1)[-1]
                body = json.dumps(recorder._answer(method, params)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/api/"

    def _answer(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        with self._changed:
            self._ts += 1
            ts = f"1700000000.{self._ts:06d}"
            if method != "auth.test":
                self.calls.append(ApiCall(method, params))
            self._changed.notify_all()
        if method == "auth.test":
            return {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1"}
        return {"ok": True, "ts": ts, "channel": params.get("channel", "")}

    def posts(self) -> list[ApiCall]:
        with self._lock:
            return list(self.calls)

    def texts(self) -> list[str]:
        return [call.text for call in self.posts()]

    def wait_for(self, predicate: Callable[[list[ApiCall]], bool], timeout: float = WAIT) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self.calls)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        "Slack calls never matched; got:\n" + "\n".join(c.text for c in self.calls)
                    )
                self._changed.wait(remaining)

    def wait_for_text(self, fragment: str, timeout: float = WAIT) -> ApiCall:
        self.wait_for(lambda calls: any(fragment in c.text for c in calls), timeout)
        return next(call for call in self.posts() if fragment in call.text)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


# ---- the bot, live on 127.0.0.1 ----------------------------------------------------------------


def sign(body: str, timestamp: int, secret: str = SIGNING_SECRET) -> str:
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: str
    seconds: float

    @property
    def text(self) -> str:
        if not self.body:
            return ""
        return str(json.loads(self.body).get("text", ""))


class BotHarness:
    def __init__(
        self,
        chatops: ChatOps,
        server: BoltHTTPServer,
        jobs: JobPool,
        audit: AuditLog,
        clock: MutableClock,
        listeners: ThreadPoolExecutor,
    ) -> None:
        self.listeners = listeners
        self.chatops = chatops
        self.server = server
        self.jobs = jobs
        self.audit = audit
        self.clock = clock
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/slack/events"

    def post(self, body: str, headers: Mapping[str, str]) -> HttpReply:
        host, port = self.server.server_address[:2]
        connection = http.client.HTTPConnection(str(host), int(port), timeout=WAIT)
        started = time.perf_counter()
        try:
            connection.request(
                "POST",
                "/slack/events",
                body=body.encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
            )
            response = connection.getresponse()
            return HttpReply(
                response.status, response.read().decode(), time.perf_counter() - started
            )
        finally:
            connection.close()

    def signed(self, body: str, timestamp: int | None = None) -> HttpReply:
        ts = int(time.time()) if timestamp is None else timestamp
        return self.post(
            body, {"X-Slack-Request-Timestamp": str(ts), "X-Slack-Signature": sign(body, ts)}
        )

    def command(self, text: str, user: str = ALICE, channel: str = OPS_CHANNEL) -> HttpReply:
        return self.signed(command_body(text, user, channel))

    def click(self, action_id: str, value: str, user: str, channel: str) -> HttpReply:
        return self.signed(action_body(action_id, value, user, channel))

    def idle(self, timeout: float = WAIT) -> None:
        assert self.chatops.wait_idle(timeout), "background jobs did not finish"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
        self.chatops.close()
        self.jobs.wait_idle(WAIT)
        self.jobs.shutdown()
        self.listeners.shutdown(wait=True)


_TRIGGERS = itertools.count(1)


def trigger_id() -> str:
    """Slack gives every invocation (command, click) its own trigger id."""
    return f"{next(_TRIGGERS)}.{time.time_ns()}"


def command_body(text: str, user: str, channel: str) -> str:
    return urllib.parse.urlencode(
        {
            "token": "legacy",
            "team_id": "T1",
            "team_domain": "example",
            "channel_id": channel,
            "channel_name": "ops",
            "user_id": user,
            "user_name": user.lower(),
            "command": "/airflow",
            "text": text,
            "api_app_id": "A1",
            "response_url": "https://hooks.slack.invalid/commands/T1/1/x",
            "trigger_id": trigger_id(),
        }
    )


def action_body(action_id: str, value: str, user: str, channel: str) -> str:
    payload = {
        "type": "block_actions",
        "team": {"id": "T1", "domain": "example"},
        "user": {"id": user, "team_id": "T1"},
        "api_app_id": "A1",
        "token": "legacy",
        "container": {"type": "message", "channel_id": channel, "message_ts": "1.1"},
        "trigger_id": trigger_id(),
        "channel": {"id": channel, "name": "deploy"},
        "message": {"ts": "1.1", "text": "approval"},
        "response_url": "https://hooks.slack.invalid/actions/T1/1/x",
        "actions": [
            {
                "action_id": action_id,
                "block_id": "airflow_approval",
                "value": value,
                "type": "button",
                "action_ts": "1.2",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)})


class MutableClock:
    """Wall-clock seconds that a test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


def start_bot(
    tmp_path: Path,
    slack_api: SlackApiRecorder,
    runner: FakeRunner,
    access: Mapping[str, Any] = ACCESS,
    stacks: Iterable[str] = STACKS,
    progress_interval: float = 30.0,
    operation_timeout: float = 3600.0,
    cancel_grace: float = 5.0,
    housekeeping_interval: float = 60.0,
    alertmanager_urls: Mapping[str, str] | None = None,
    alerts_timeout: float = 3.0,
    pipeline_check_interval: float = 300.0,
) -> BotHarness:
    client = WebClient(token=BOT_TOKEN, base_url=slack_api.base_url, timeout=5)
    redactor = Redactor()
    poster = SlackPoster(client, redactor)
    audit = AuditLog(tmp_path / "audit" / "audit.jsonl")
    jobs = JobPool(workers=8)
    clock = MutableClock()
    chatops = ChatOps(
        stacks=list(stacks),
        access=AccessConfig.model_validate(access),
        runner=runner,
        poster=poster,
        audit=audit,
        jobs=jobs,
        redactor=redactor,
        options=BotOptions(
            state_dir=tmp_path / "state",
            progress_interval=progress_interval,
            operation_timeout=operation_timeout,
            cancel_grace=cancel_grace,
            housekeeping_interval=housekeeping_interval,
            alertmanager_urls=dict(alertmanager_urls or {}),
            alerts_timeout=alerts_timeout,
            pipeline_check_interval=pipeline_check_interval,
        ),
        clock=clock,
    )
    listeners = ThreadPoolExecutor(max_workers=16, thread_name_prefix="test-listener")
    app = build_app(
        chatops,
        poster,
        jobs,
        client=client,
        signing_secret=SIGNING_SECRET,
        listener_executor=listeners,
    )
    server = BoltHTTPServer(("127.0.0.1", 0), app, signing_secret=SIGNING_SECRET)
    chatops.start()
    return BotHarness(chatops, server, jobs, audit, clock, listeners)


def approval_id_from(call: ApiCall) -> str:
    for block in call.params.get("blocks") or []:
        for element in block.get("elements", []):
            if element.get("action_id") == "airflow_approve":
                return str(element["value"])
    raise AssertionError(f"no Approve button in {call.text}")
