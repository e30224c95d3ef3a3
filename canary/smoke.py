"""Post-deploy canary: run the smoke DAG through the Airflow REST API and read its log back.

Run by a Kubernetes Job after every deploy as ``python /canary/smoke.py``, from a ConfigMap
that holds this file and `report.py`, in the platform's Airflow image. Standard library
only. Steps:

1. ``POST /auth/token`` with ``{"username", "password"}`` for a JWT (the FAB auth manager
   and Airflow's SimpleAuthManager both answer this with ``{"access_token": ...}``);
2. wait until the DAG exists (the DAG processor may not have parsed it yet), and unpause it
   (``PATCH /api/v2/dags/{dag_id}``) if it is paused;
3. trigger a run (``POST /api/v2/dags/{dag_id}/dagRuns`` with ``logical_date: null``, a run
   id chosen here so that a retried request cannot start a second run);
4. poll the run until it is ``success`` or ``failed``, or the deadline passes;
5. read the task logs (``GET .../taskInstances/{task_id}/logs/{try_number}``) and require
   the marker line (marker and run id) in the log of the marker task; with
   ``CANARY_REQUIRE_REMOTE_LOG``, also require that the API server read that log from the
   remote log store (the sources it lists in the log's "Log message source details"),
   which proves remote task logging end to end. A worker uploads a task's log when the task
   ends, which may lag the run's state, so the log is read again until the deadline.

Connection errors and 5xx answers (the api-server still starting, a Service without
endpoints) are retried until the deadline. The last line on stdout is always the report
(`report.format_report`); the same report, with a summary for people, goes to the
termination-message file so that ``kubectl describe`` and the failed Job's status show it.
Credentials and tokens are never printed.

Environment variables:

=================================  ========================================================
``CANARY_API_URL``                 api-server base URL (required), e.g.
                                   ``http://airflow-api-server.airflow.svc:8080``
``CANARY_USERNAME``                user to log in as (required; from a Kubernetes Secret)
``CANARY_PASSWORD``                its password (required; from a Kubernetes Secret)
``CANARY_DAG_ID``                  DAG to run (default ``platform_canary``)
``CANARY_TIMEOUT_SECONDS``         overall deadline, from start to report (default 600)
``CANARY_POLL_SECONDS``            pause between polls and retries (default 5)
``CANARY_REQUEST_TIMEOUT_SECONDS`` timeout of one HTTP request (default 15)
``CANARY_FORCE_FAILURE``           ``true`` passes ``{"force_failure": true}`` as run conf,
                                   so the smoke DAG fails on purpose (default false)
``CANARY_LOG_MARKER``              marker the task log must hold, on the same line as the
                                   run id (default ``airflow-platform-canary-marker``)
``CANARY_MARKER_TASK_ID``          task whose log holds the marker (default ``emit_marker``)
``CANARY_REQUIRE_REMOTE_LOG``      ``true``: the API must serve that log from the remote log
                                   store (an ``s3://``-like source), not from a local file or
                                   a worker (default false; the platform's Job sets true)
``CANARY_TERMINATION_LOG``         termination-message file (default
                                   ``/dev/termination-log``; empty to skip)
=================================  ========================================================

Exit status: 0 success; 1 the run failed or its log lacks the marker; 2 timeout; 3 the
canary could not run (configuration, login, API error).
"""

from __future__ import annotations

import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

try:
    from canary.report import CanaryReport, format_report, termination_message
except ModuleNotFoundError:  # run as /canary/smoke.py, beside report.py
    from report import (  # type: ignore[import-not-found,no-redef]
        CanaryReport,
        format_report,
        termination_message,
    )

DEFAULT_DAG_ID: Final = "platform_canary"
DEFAULT_MARKER: Final = "airflow-platform-canary-marker"
DEFAULT_MARKER_TASK_ID: Final = "emit_marker"
DEFAULT_TERMINATION_LOG: Final = "/dev/termination-log"
FORCE_FAILURE_CONF: Final = {"force_failure": True}

EXIT_CODES: Final = {"success": 0, "failed": 1, "timeout": 2, "error": 3}
TERMINAL_STATES: Final = frozenset({"success", "failed"})
FAILED_TASK_STATES: Final = frozenset({"failed", "upstream_failed"})
TRANSIENT_HTTP_STATUSES: Final = frozenset({500, 502, 503, 504})
EXCERPT_LINES: Final = 25
REDACTED: Final = "***"
_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"", "0", "false", "no", "off"})


class CanaryError(Exception):
    """Ends the canary with outcome `error` and this message."""


class Deadline(Exception):
    """The overall deadline passed."""


class ApiError(Exception):
    """An HTTP answer the canary cannot carry on after."""

    def __init__(self, method: str, path: str, status: int, detail: str) -> None:
        super().__init__(f"{method} {path} answered {status}: {detail}")
        self.status = status


@dataclass(frozen=True)
class Config:
    api_url: str
    username: str
    password: str = field(repr=False)
    dag_id: str = DEFAULT_DAG_ID
    timeout_seconds: float = 600.0
    poll_seconds: float = 5.0
    request_timeout_seconds: float = 15.0
    force_failure: bool = False
    marker: str = DEFAULT_MARKER
    marker_task_id: str = DEFAULT_MARKER_TASK_ID
    require_remote_log: bool = False
    termination_log: str = DEFAULT_TERMINATION_LOG

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Read and check every variable; one CanaryError lists every problem."""
        problems: list[str] = []

        def text(name: str, default: str | None = None) -> str:
            value = env.get(name, "").strip()
            if value:
                return value
            if default is None:
                problems.append(f"{name} is required")
                return ""
            return default

        def seconds(name: str, default: float) -> float:
            raw = env.get(name, "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                value = -1.0
            if value <= 0:
                problems.append(f"{name} must be a positive number of seconds, got {raw!r}")
                return default
            return value

        def flag(name: str) -> bool:
            value = env.get(name, "").strip().lower()
            if value not in _TRUE | _FALSE:
                problems.append(f"{name} must be true or false, got {value!r}")
            return value in _TRUE

        api_url = text("CANARY_API_URL")
        if api_url and urllib.parse.urlsplit(api_url).scheme not in ("http", "https"):
            problems.append(f"CANARY_API_URL must be an http(s) URL, got {api_url!r}")
        config = cls(
            api_url=api_url.rstrip("/"),
            username=text("CANARY_USERNAME"),
            password=env.get("CANARY_PASSWORD", ""),
            dag_id=text("CANARY_DAG_ID", DEFAULT_DAG_ID),
            timeout_seconds=seconds("CANARY_TIMEOUT_SECONDS", 600.0),
            poll_seconds=seconds("CANARY_POLL_SECONDS", 5.0),
            request_timeout_seconds=seconds("CANARY_REQUEST_TIMEOUT_SECONDS", 15.0),
            force_failure=flag("CANARY_FORCE_FAILURE"),
            marker=text("CANARY_LOG_MARKER", DEFAULT_MARKER),
            marker_task_id=text("CANARY_MARKER_TASK_ID", DEFAULT_MARKER_TASK_ID),
            require_remote_log=flag("CANARY_REQUIRE_REMOTE_LOG"),
            termination_log=env.get("CANARY_TERMINATION_LOG", DEFAULT_TERMINATION_LOG).strip(),
        )
        if not config.password:
            problems.append("CANARY_PASSWORD is required")
        if problems:
            raise CanaryError("invalid configuration: " + "; ".join(problems))
        return config


def redact(text: str, secrets: tuple[str, ...]) -> str:
    """`text` with every occurrence of each secret replaced."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def render_event(event: Any) -> str:
    """One log line from the API's structured log event (or a plain string)."""
    if not isinstance(event, dict):
        return str(event)
    parts = []
    if event.get("level"):
        parts.append(str(event["level"]).upper())
    parts.append(str(event.get("event", "")))
    for detail in event.get("error_detail") or []:
        if isinstance(detail, dict):
            parts.append(f"{detail.get('exc_type', '')}: {detail.get('exc_value', '')}")
    return " ".join(p for p in parts if p)


SOURCES_GROUP: Final = "::group::Log message source details"


def log_sources(content: list[Any]) -> list[str]:
    """Where the API server read a task log from: the entries of the log's source group.

    Airflow 3's FileTaskHandler puts them first (`airflow/utils/log/file_task_handler.py`,
    `_read`): ``s3://bucket/key`` for the S3 log store, a file path for a local log, a URL
    for a worker's log server.
    """
    events = [e.get("event", "") if isinstance(e, dict) else str(e) for e in content]
    if SOURCES_GROUP not in events:
        return []
    start = events.index(SOURCES_GROUP) + 1
    end = events.index("::endgroup::", start) if "::endgroup::" in events[start:] else start
    return [str(e).strip() for e in events[start:end] if str(e).strip()]


def is_remote_store(source: str) -> bool:
    """True for a log store URL (s3://, gs://, wasb://...), False for files and log servers."""
    scheme, sep, _ = source.partition("://")
    return bool(sep) and scheme.isalnum() and scheme.lower() not in ("http", "https", "file")


def excerpt(lines: list[str], max_lines: int = EXCERPT_LINES) -> str:
    """The lines worth showing from a task's log, in order: every error, then the last lines.

    Airflow's `::group::` markers and the "Log message source details" block (paths of the
    files the log was read from) are left out.
    """
    kept: list[str] = []
    in_sources = False
    for line in lines:
        bare = line.split(" ", 1)[-1] if line[:1].isupper() and " " in line else line
        if "::group::Log message source details" in line:
            in_sources = True
            continue
        if in_sources:
            in_sources = "::endgroup::" not in line
            continue
        if bare.startswith(("::group::", "::endgroup::")):
            continue
        kept.append(line)
    errors = [i for i, line in enumerate(kept) if line.startswith(("ERROR", "CRITICAL"))]
    errors = errors[-(max_lines // 2) :]
    tail = range(max(0, len(kept) - (max_lines - len(errors))), len(kept))
    chosen = sorted(set(errors) | set(tail))
    return "\n".join(kept[i] for i in chosen)


class AirflowApi:
    """The few REST calls the canary makes; every call respects the deadline."""

    def __init__(self, config: Config, deadline: float, say: Callable[[str], None]) -> None:
        self.config = config
        self.deadline = deadline
        self.say = say
        self.token: str | None = None
        self.retries = 0

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def pause(self) -> None:
        left = self.remaining()
        if left <= 0:
            raise Deadline
        time.sleep(min(self.config.poll_seconds, left))

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        left = self.remaining()
        if left <= 0:
            raise Deadline
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        # The URL is the configured http(s) base (checked in Config.from_env) plus a path.
        request = urllib.request.Request(  # noqa: S310
            self.config.api_url + path, data=data, headers=headers, method=method
        )
        timeout = max(0.5, min(self.config.request_timeout_seconds, left))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                raw = response.read()
                return response.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                detail: Any = json.loads(raw).get("detail", raw.decode(errors="replace"))
            except (ValueError, AttributeError):
                detail = raw.decode(errors="replace")
            return exc.code, detail if isinstance(detail, str) else json.dumps(detail)

    def call(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        """One API call: transient failures are retried until the deadline; a 401 logs in
        again once; any other unexpected status raises ApiError."""
        relogged = False
        while True:
            try:
                status, payload = self._request(method, path, body)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                self._retry(f"{method} {path}: {type(exc).__name__}: {reason}")
                continue
            if status in ok:
                return payload
            if status in TRANSIENT_HTTP_STATUSES:
                self._retry(f"{method} {path} answered {status}")
                continue
            if status == 401 and self.token and not relogged:
                relogged = True
                self.login()
                continue
            raise ApiError(method, path, status, str(payload))

    def _retry(self, why: str) -> None:
        self.retries += 1
        if self.retries == 1 or self.retries % 10 == 0:
            self.say(f"retrying ({self.retries}): {why}")
        self.pause()

    def login(self) -> None:
        self.token = None
        body = {"username": self.config.username, "password": self.config.password}
        try:
            payload = self.call("POST", "/auth/token", body, ok=(200, 201))
        except ApiError as exc:
            raise CanaryError(
                f"login as {self.config.username!r} failed: {exc} "
                "(check the canary's credentials Secret and the auth manager's users)"
            ) from None
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str) or not token:
            raise CanaryError("login answered without an access_token")
        self.token = token


def quote(value: str) -> str:
    return urllib.parse.quote(value, safe="")


class Canary:
    """One canary run: trigger, wait, read the logs, judge."""

    def __init__(self, config: Config, say: Callable[[str], None]) -> None:
        self.config = config
        self.say = say
        self.started = time.monotonic()
        self.api = AirflowApi(config, self.started + config.timeout_seconds, say)
        self.run_id: str | None = None
        self.state: str | None = None

    @property
    def dag_path(self) -> str:
        return f"/api/v2/dags/{quote(self.config.dag_id)}"

    @property
    def run_path(self) -> str:
        assert self.run_id is not None
        return f"{self.dag_path}/dagRuns/{quote(self.run_id)}"

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def report(
        self,
        outcome: str,
        message: str,
        *,
        failed_tasks: tuple[str, ...] = (),
        marker_found: bool = False,
        marker_source: str = "",
        log_excerpt: str = "",
        task_states: Mapping[str, str] | None = None,
    ) -> CanaryReport:
        """The report, with the password and the token taken out of every free text."""
        secrets = (self.config.password, self.api.token or "")
        return CanaryReport(
            outcome=outcome,
            dag_id=self.config.dag_id,
            run_id=self.run_id,
            state=self.state,
            seconds=self.elapsed(),
            failed_tasks=failed_tasks,
            marker_found=marker_found,
            marker_source=marker_source,
            log_excerpt=redact(log_excerpt, secrets),
            message=redact(message, secrets),
            task_states=dict(task_states or {}),
        )

    def run(self) -> CanaryReport:
        try:
            return self._run()
        except Deadline:
            where = (
                f"run {self.run_id} was {self.state} when it passed"
                if self.run_id
                else "no run started"
            )
            return self.report(
                "timeout",
                f"deadline of {self.config.timeout_seconds:g} s passed: {where}",
                task_states=self._task_states_quietly(),
            )
        except (CanaryError, ApiError) as exc:
            return self.report("error", str(exc))
        except Exception as exc:  # the report must come out whatever happened
            return self.report("error", f"unexpected {type(exc).__name__}: {exc}")

    def _run(self) -> CanaryReport:
        self.api.login()
        self.say(f"logged in to {self.config.api_url} as {self.config.username}")
        self._ensure_dag_unpaused()
        self._trigger()
        self._wait_for_final_state()
        return self._judge()

    def _ensure_dag_unpaused(self) -> None:
        waited = False
        while True:
            try:
                dag = self.api.call("GET", self.dag_path)
                break
            except ApiError as exc:
                if exc.status != 404:
                    raise
                if not waited:
                    self.say(f"DAG {self.config.dag_id} not found yet; waiting for it")
                    waited = True
                self.api.pause()
        if isinstance(dag, dict) and dag.get("is_paused"):
            self.api.call("PATCH", self.dag_path, {"is_paused": False})
            self.say(f"unpaused DAG {self.config.dag_id}")

    def _trigger(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.run_id = f"canary__{stamp}__{uuid.uuid4().hex[:8]}"
        body = {
            "dag_run_id": self.run_id,
            "logical_date": None,
            "conf": dict(FORCE_FAILURE_CONF) if self.config.force_failure else {},
            "note": "post-deploy canary"
            + (" (forced failure)" if self.config.force_failure else ""),
        }
        try:
            created = self.api.call("POST", f"{self.dag_path}/dagRuns", body, ok=(200, 201))
        except ApiError as exc:
            if exc.status != 409:  # 409: an earlier, retried request already created it
                raise
            created = None
        self.state = created.get("state") if isinstance(created, dict) else None
        forced = " with force_failure" if self.config.force_failure else ""
        self.say(f"triggered run {self.run_id}{forced}")

    def _wait_for_final_state(self) -> None:
        last_said = None
        while True:
            dag_run = self.api.call("GET", self.run_path)
            self.state = str(dag_run.get("state")) if isinstance(dag_run, dict) else None
            if self.state != last_said:
                self.say(f"run {self.run_id} is {self.state} after {self.elapsed():.1f} s")
                last_said = self.state
            if self.state in TERMINAL_STATES:
                return
            self.api.pause()

    def _task_instances(self) -> list[dict[str, Any]]:
        payload = self.api.call("GET", f"{self.run_path}/taskInstances")
        items = payload.get("task_instances", []) if isinstance(payload, dict) else []
        return [ti for ti in items if isinstance(ti, dict)]

    def _task_states_quietly(self) -> dict[str, str]:
        """Task states for a timeout report, if one more short call still fits."""
        if self.run_id is None or self.api.token is None:
            return {}
        self.api.deadline = time.monotonic() + min(5.0, self.config.request_timeout_seconds)
        try:
            return {str(ti["task_id"]): str(ti.get("state")) for ti in self._task_instances()}
        except (Deadline, ApiError, CanaryError, KeyError):
            return {}

    def _log(self, ti: Mapping[str, Any]) -> tuple[list[str], list[str]]:
        """The task's log lines and the sources the API server read them from."""
        try_number = int(ti.get("try_number") or 0)
        if try_number < 1:
            return [], []
        path = f"{self.run_path}/taskInstances/{quote(str(ti['task_id']))}/logs/{try_number}"
        map_index = ti.get("map_index", -1)
        if isinstance(map_index, int) and map_index >= 0:
            path += f"?map_index={map_index}"
        payload = self.api.call("GET", path)
        content = payload.get("content", []) if isinstance(payload, dict) else []
        return [render_event(event) for event in content], log_sources(content)

    def _marker_in(self, lines: list[str]) -> bool:
        assert self.run_id is not None
        return any(self.config.marker in line and self.run_id in line for line in lines)

    def _read_marker(self, ti: Mapping[str, Any]) -> tuple[list[str], str, bool]:
        """Read the marker task's log; for a successful run, again until it holds the marker
        (from the log store, when required) or too little time is left.

        Returns the log lines, where the API read them from, and whether the marker counts.
        """
        while True:
            lines, sources = self._log(ti)
            remote = [s for s in sources if is_remote_store(s)]
            source = (remote or sources or [""])[0]
            found = self._marker_in(lines) and (bool(remote) or not self.config.require_remote_log)
            out_of_time = self.api.remaining() <= self.config.poll_seconds
            if found or out_of_time or self.state != "success":
                return lines, source, found
            self.api.pause()

    def _judge(self) -> CanaryReport:
        tis = self._task_instances()
        task_states = {str(ti["task_id"]): str(ti.get("state")) for ti in tis}
        failed = sorted(t for t, s in task_states.items() if s in FAILED_TASK_STATES)
        marker_ti = next((ti for ti in tis if ti["task_id"] == self.config.marker_task_id), None)
        marker_lines: list[str] = []
        marker_source = ""
        marker_found = False
        if marker_ti is not None and marker_ti.get("state") == "success":
            marker_lines, marker_source, marker_found = self._read_marker(marker_ti)
        log_excerpt = ""
        for ti in tis:
            if ti["task_id"] in failed and ti.get("state") == "failed":
                lines, _ = self._log(ti)
                log_excerpt += f"[{ti['task_id']} try {ti.get('try_number')}]\n{excerpt(lines)}\n"
        task = self.config.marker_task_id
        if self.state == "success" and marker_found:
            return self.report(
                "success",
                f"run succeeded; marker found in the log of {task}",
                marker_found=True,
                marker_source=marker_source,
                task_states=task_states,
            )
        if self.state == "success" and self._marker_in(marker_lines):
            message = (
                f"run succeeded, but the API served the log of {task} only from "
                f"{marker_source or 'nowhere'}, never from the remote log store "
                "(task log upload broken?)"
            )
        elif self.state == "success":
            message = (
                f"run succeeded but the log of {task} lacks the marker "
                f"{self.config.marker!r} for this run (task logging broken?)"
            )
            log_excerpt = excerpt(marker_lines)
        else:
            message = f"run ended {self.state}; failed tasks: {', '.join(failed) or 'none'}"
        return self.report(
            "failed",
            message,
            failed_tasks=tuple(failed),
            marker_found=marker_found,
            marker_source=marker_source,
            log_excerpt=log_excerpt,
            task_states=task_states,
        )


def write_termination_message(path: str, text: str) -> None:
    if not path:
        return
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        print(f"canary: could not write {path}: {exc.strerror}", file=sys.stderr)


def main(env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env

    def say(line: str) -> None:
        print(f"canary: {line}", flush=True)

    try:
        config = Config.from_env(env)
    except CanaryError as exc:
        report = CanaryReport(
            outcome="error", dag_id=env.get("CANARY_DAG_ID") or DEFAULT_DAG_ID, message=str(exc)
        )
        termination_log = env.get("CANARY_TERMINATION_LOG", DEFAULT_TERMINATION_LOG).strip()
    else:
        termination_log = config.termination_log
        report = Canary(config, say).run()
    print(format_report(report), flush=True)
    write_termination_message(termination_log, termination_message(report))
    return EXIT_CODES[report.outcome]


if __name__ == "__main__":
    raise SystemExit(main())
