"""The canary's report: one machine-readable line, and the summary people read.

The canary script (`smoke.py`) ends by printing exactly one line::

    airflow-platform canary: {"outcome": "failed", "dag_id": "platform_canary", ...}

to stdout, and writes `termination_message(report)` (the summary from `describe`, then the
same line) to its container's termination-message file. `parse_report` finds that line in
any text that carries it verbatim: the pod's log, its termination message, or the error of
a failed `pulumi up` (pulumi-kubernetes puts a failed Job pod's container termination
message into the error it returns). The CLI and the Slack bot show `describe(report)`.

Standard library only: the Job runs this file beside `smoke.py` from a ConfigMap, in the
stock Airflow image, with nothing installed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final

REPORT_PREFIX: Final = "airflow-platform canary: "
OUTCOMES: Final = ("success", "failed", "timeout", "error")
"""`success`: the run succeeded and its log holds the marker; `failed`: the run failed, or the
marker is missing from its log; `timeout`: no final state before the deadline; `error`: the
canary could not do its job (configuration, credentials, an API error)."""

MAX_EXCERPT_CHARS: Final = 1500
MAX_MESSAGE_CHARS: Final = 400
MAX_FAILED_TASKS: Final = 20
TERMINATION_MESSAGE_LIMIT: Final = 4096
"""Kubernetes keeps at most 4096 bytes of a container's termination message."""

_HEADLINES: Final = {
    "success": "PASSED",
    "failed": "FAILED",
    "timeout": "TIMED OUT",
    "error": "ERROR",
}


def _tail(text: str, limit: int) -> str:
    """The end of `text` within `limit` characters, marked when something was cut."""
    if len(text) <= limit:
        return text
    return "…" + text[len(text) - limit + 1 :]


def _head(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


@dataclass(frozen=True)
class CanaryReport:
    """What one canary run found. Never holds credentials or tokens."""

    outcome: str
    dag_id: str
    run_id: str | None = None
    state: str | None = None
    seconds: float = 0.0
    failed_tasks: tuple[str, ...] = ()
    marker_found: bool = False
    marker_source: str = ""
    log_excerpt: str = ""
    message: str = ""
    task_states: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, got {self.outcome!r}")

    @property
    def ok(self) -> bool:
        return self.outcome == "success"

    def bounded(self) -> CanaryReport:
        """The same report with the excerpt, message and task list cut to their limits."""
        return replace(
            self,
            seconds=round(self.seconds, 1),
            failed_tasks=self.failed_tasks[:MAX_FAILED_TASKS],
            log_excerpt=_tail(self.log_excerpt, MAX_EXCERPT_CHARS),
            message=_head(self.message, MAX_MESSAGE_CHARS),
            marker_source=_head(self.marker_source, MAX_MESSAGE_CHARS),
            task_states=dict(sorted(self.task_states.items())[:MAX_FAILED_TASKS]),
        )


def format_report(report: CanaryReport) -> str:
    """The report as one line: the prefix, then compact JSON (newlines stay escaped)."""
    data = asdict(report.bounded())
    data["failed_tasks"] = list(data["failed_tasks"])
    return REPORT_PREFIX + json.dumps(data, sort_keys=True, ensure_ascii=False)


def _from_dict(data: Any) -> CanaryReport | None:
    if not isinstance(data, dict):
        return None
    outcome, dag_id = data.get("outcome"), data.get("dag_id")
    if outcome not in OUTCOMES or not isinstance(dag_id, str):
        return None
    failed = data.get("failed_tasks") or []
    states = data.get("task_states") or {}
    seconds = data.get("seconds")
    return CanaryReport(
        outcome=outcome,
        dag_id=dag_id,
        run_id=data["run_id"] if isinstance(data.get("run_id"), str) else None,
        state=data["state"] if isinstance(data.get("state"), str) else None,
        seconds=float(seconds) if isinstance(seconds, int | float) else 0.0,
        failed_tasks=tuple(str(t) for t in failed) if isinstance(failed, list) else (),
        marker_found=data.get("marker_found") is True,
        marker_source=str(data.get("marker_source") or ""),
        log_excerpt=str(data.get("log_excerpt") or ""),
        message=str(data.get("message") or ""),
        task_states=(
            {str(k): str(v) for k, v in states.items()} if isinstance(states, dict) else {}
        ),
    )


def parse_report(text: str) -> CanaryReport | None:
    """The last canary report in `text`, wherever the line starts; None if there is none.

    The line may sit behind any prefix (a log timestamp, `* [Pod ns/name]: [Error] ` in a
    Pulumi error) and be followed by more text; lines that start with the prefix but do not
    hold a valid report are skipped.
    """
    decoder = json.JSONDecoder()
    end = len(text)
    while (start := text.rfind(REPORT_PREFIX, 0, end)) >= 0:
        end = start
        body = text[start + len(REPORT_PREFIX) :].lstrip(" ")
        try:
            data, _ = decoder.raw_decode(body)
        except ValueError:
            continue
        report = _from_dict(data)
        if report is not None:
            return report
    return None


def describe(report: CanaryReport) -> str:
    """A few lines for people: verdict, run, state, failed tasks and the log excerpt."""
    run = report.run_id or "(no run)"
    lines = [f"Canary {_HEADLINES[report.outcome]}: {report.dag_id} run {run}"]
    if report.state is not None or report.outcome != "error":
        state = report.state or "unknown"
        lines.append(f"State: {state} after {report.seconds:.1f} s")
    if report.message:
        lines.append(report.message)
    if report.failed_tasks:
        lines.append("Failed tasks: " + ", ".join(report.failed_tasks))
    elif report.task_states and not report.ok:
        states = ", ".join(f"{task}={state}" for task, state in report.task_states.items())
        lines.append(f"Task states: {states}")
    if report.run_id and report.outcome in ("success", "failed"):
        found = "found" if report.marker_found else "NOT found"
        source = f" (read from {report.marker_source})" if report.marker_source else ""
        lines.append(f"Log marker: {found}{source}")
    if report.log_excerpt:
        lines.append("Log excerpt:")
        lines.extend("  " + line for line in report.log_excerpt.splitlines())
    return "\n".join(lines)


def _shrunk(report: CanaryReport) -> CanaryReport | None:
    """The report with its longest free text halved, or None when nothing is left to cut."""
    if len(report.log_excerpt) > 40:
        return replace(report, log_excerpt=_tail(report.log_excerpt, len(report.log_excerpt) // 2))
    if report.log_excerpt:
        return replace(report, log_excerpt="")
    if len(report.message) > 40:
        return replace(report, message=_head(report.message, len(report.message) // 2))
    if report.task_states:
        return replace(report, task_states={})
    return None


def termination_message(report: CanaryReport, limit: int = TERMINATION_MESSAGE_LIMIT) -> str:
    """`describe(report)` then the report line, within `limit` bytes of UTF-8.

    The excerpt shrinks first (keeping its end, where the error is), then the message; the
    report line always stays whole, so `parse_report` finds it in the termination message.
    """
    current = report.bounded()
    while True:
        text = describe(current) + "\n" + format_report(current) + "\n"
        if len(text.encode()) <= limit:
            return text
        smaller = _shrunk(current)
        if smaller is None:
            return format_report(current) + "\n"
        current = smaller
