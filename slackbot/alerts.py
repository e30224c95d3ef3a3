"""Firing alerts from a stack's Alertmanager, for `status <stack>`.

The bot asks Alertmanager's API v2 for the alerts that are firing and neither silenced nor
inhibited, restricted to the stack by the `stack` label every alert carries (an external label
of the stack's Prometheus):

    GET <base>/api/v2/alerts?active=true&silenced=false&inhibited=false&filter=stack="<stack>"

(prometheus/alertmanager `api/v2/openapi.yaml`, operation `getAlerts`: the boolean filters
default to true, `filter` is a repeated matcher, and the answer is `gettableAlerts`: `labels`,
`annotations`, `startsAt`, `status`, ...). Alerts of severity `none` are not problems: the
Watchdog (always firing, the heartbeat of Prometheus → Alertmanager) and kube-prometheus-stack's
InfoInhibitor. The Watchdog's absence means the alert pipeline itself is broken, so an empty
list would prove nothing; status says so.
"""

from __future__ import annotations

import json
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slackbot.summary import format_duration
from slackbot.text import escape

ALERTS_PATH = "api/v2/alerts"
STACK_LABEL = "stack"
WATCHDOG = "Watchdog"
NOT_A_PROBLEM = "none"
"""The severity of alerts that only keep the pipeline working (Watchdog, InfoInhibitor)."""
SEVERITY_RANK: Mapping[str, int] = {"page": 0, "critical": 0, "warning": 1, "info": 2}
"""page first, then warning, then info; `critical` (kube-prometheus-stack's bundled rules)
ranks with page, and any other severity comes last."""
MAX_ALERTS_SHOWN = 10
MAX_RESPONSE_BYTES = 4 * 1024 * 1024
_ICON = {0: ":red_circle:", 1: ":large_orange_circle:", 2: ":large_blue_circle:"}
_FRACTION = re.compile(r"(\.\d{6})\d+")
_SAFE_LINK = re.compile(r"^https?://[^\s<>|]+$")


class AlertsUnavailableError(Exception):
    """Alertmanager could not be asked or gave no usable answer; the message is safe to show."""


@dataclass(frozen=True)
class FiringAlert:
    name: str
    severity: str
    since: datetime | None
    summary: str | None
    runbook_url: str | None


@dataclass(frozen=True)
class AlertSnapshot:
    """What Alertmanager says about one stack."""

    alerts: tuple[FiringAlert, ...]
    """Firing alerts that are problems (severity other than `none`), most severe first."""
    watchdog: bool
    """True when the Watchdog alert is firing: the alert pipeline works."""


def alerts_url(base_url: str, stack: str) -> str:
    """The `getAlerts` URL for the stack's firing, unsilenced, uninhibited alerts."""
    quoted = stack.replace("\\", "\\\\").replace('"', '\\"')
    query = urllib.parse.urlencode(
        [
            ("active", "true"),
            ("silenced", "false"),
            ("inhibited", "false"),
            ("filter", f'{STACK_LABEL}="{quoted}"'),
        ]
    )
    return f"{base_url.rstrip('/')}/{ALERTS_PATH}?{query}"


def display_address(base_url: str) -> str:
    """The URL without credentials, query or fragment: what messages may show."""
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}"


class AlertmanagerClient:
    """Reads one Alertmanager's API v2 (no credentials: reach it inside the cluster's network)."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url
        self.timeout = timeout

    def fetch(self, stack: str) -> AlertSnapshot:
        url = alerts_url(self.base_url, stack)
        if not url.startswith(("http://", "https://")):
            raise AlertsUnavailableError("its URL is not http(s)")
        request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                body = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as error:
            raise AlertsUnavailableError(f"it answered HTTP {error.code}") from None
        except TimeoutError:
            raise AlertsUnavailableError(no_answer(self.timeout)) from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise AlertsUnavailableError(no_answer(self.timeout)) from None
            raise AlertsUnavailableError(_reason(error.reason)) from None
        except OSError as error:
            raise AlertsUnavailableError(_reason(error)) from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise AlertsUnavailableError("its answer is too large")
        try:
            payload = json.loads(body)
        except ValueError:
            raise AlertsUnavailableError("its answer is not JSON") from None
        return parse_alerts(payload)


def parse_alerts(payload: Any) -> AlertSnapshot:
    """`gettableAlerts` → the snapshot; anything else is not an Alertmanager API v2 answer."""
    if not isinstance(payload, list):
        raise AlertsUnavailableError("its answer is not an Alertmanager API v2 alert list")
    alerts: list[FiringAlert] = []
    watchdog = False
    for item in payload:
        labels = _strings(item.get("labels")) if isinstance(item, dict) else None
        if labels is None:
            raise AlertsUnavailableError("its answer has an alert without labels")
        annotations = _strings(item.get("annotations")) or {}
        name = labels.get("alertname", "(unnamed)")
        severity = labels.get("severity", "")
        if name == WATCHDOG:
            watchdog = True
            continue
        if severity == NOT_A_PROBLEM:
            continue
        alerts.append(
            FiringAlert(
                name=name,
                severity=severity or "unknown",
                since=_time(item.get("startsAt")),
                summary=annotations.get("summary") or annotations.get("message"),
                runbook_url=annotations.get("runbook_url"),
            )
        )
    return AlertSnapshot(tuple(sort_alerts(alerts)), watchdog)


def sort_alerts(alerts: Sequence[FiringAlert]) -> list[FiringAlert]:
    """Most severe first; within a severity the longest firing first, then by name."""
    oldest = datetime.max.replace(tzinfo=UTC)
    return sorted(
        alerts,
        key=lambda a: (
            SEVERITY_RANK.get(a.severity, len(_ICON)),
            a.since or oldest,
            a.name,
        ),
    )


def render_alerts(snapshot: AlertSnapshot, now: datetime) -> str:
    """The alerts part of `status`: the pipeline's health first, then what is firing."""
    lines: list[str] = []
    if not snapshot.watchdog:
        lines.append(
            ":rotating_light: *The alert pipeline is broken:* the Watchdog alert, which always "
            "fires while Prometheus delivers alerts to Alertmanager, is missing. Alerts may be "
            "firing unseen; check Prometheus and its Alertmanager connection."
        )
    if not snapshot.alerts:
        lines.append(
            "*Alerts:* none firing."
            if snapshot.watchdog
            else "*Alerts:* none reported (which proves nothing while the pipeline is broken)."
        )
        return "\n".join(lines)
    count = len(snapshot.alerts)
    lines.append(f"*Alerts:* {count} firing")
    for alert in snapshot.alerts[:MAX_ALERTS_SHOWN]:
        lines.append(_alert_line(alert, now))
    if count > MAX_ALERTS_SHOWN:
        lines.append(f"• … and {count - MAX_ALERTS_SHOWN} more")
    return "\n".join(lines)


def no_answer(timeout: float) -> str:
    return f"it did not answer within {timeout:g}s"


def render_unavailable(stack: str, base_url: str, reason: str) -> str:
    return (
        f":warning: *Alerts:* could not read the Alertmanager of `{stack}` "
        f"({escape(display_address(base_url), 120)}): {escape(reason, 200)}."
    )


def render_not_configured(stack: str, variable: str) -> str:
    return f"*Alerts:* not configured for `{stack}` (set `{variable}` on the bot)."


def _alert_line(alert: FiringAlert, now: datetime) -> str:
    icon = _ICON.get(SEVERITY_RANK.get(alert.severity, len(_ICON)), ":white_circle:")
    line = f"• {icon} `{escape(alert.name, 80)}` ({escape(alert.severity, 20)})"
    if alert.since is not None:
        firing_for = format_duration(max(0.0, (now - alert.since).total_seconds()))
        line += f" since {alert.since:%Y-%m-%d %H:%M} UTC ({firing_for})"
    if alert.summary:
        line += f": {escape(alert.summary, 160)}"
    if alert.runbook_url:
        if _SAFE_LINK.match(alert.runbook_url) and len(alert.runbook_url) <= 500:
            line += f" · <{alert.runbook_url.replace('&', '&amp;')}|runbook>"
        else:
            line += f" · runbook: {escape(alert.runbook_url, 120)}"
    return line


def _strings(value: Any) -> dict[str, str] | None:
    if not isinstance(value, dict):
        return None
    return {str(key): str(item) for key, item in value.items()}


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _reason(reason: object) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(reason, socket.gaierror):
        return "its host name does not resolve"
    if isinstance(reason, OSError) and reason.strerror:
        return f"it is unreachable ({reason.strerror})"
    return f"it is unreachable ({type(reason).__name__})"
