"""The bot's settings, all from environment variables."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

_N = TypeVar("_N", int, float)

DEFAULT_PORT = 3000
DEFAULT_PROJECT_DIR = Path(__file__).resolve().parent.parent
ALERTMANAGER_PREFIX = "SLACKBOT_ALERTMANAGER_URL_"
"""`SLACKBOT_ALERTMANAGER_URL_<STACK>`: the Alertmanager `status <stack>` reads alerts from."""
_NOT_IN_NAME = re.compile(r"[^A-Z0-9]")
PIPELINE_CHECK_VARIABLE = "SLACKBOT_PIPELINE_CHECK_MINUTES"
DEFAULT_PIPELINE_CHECK_MINUTES = 5.0
MAX_PIPELINE_CHECK_MINUTES = 24 * 60


def alertmanager_variable(stack: str) -> str:
    """The variable naming a stack's Alertmanager: `production` → `..._PRODUCTION`,
    `eu-prod` → `..._EU_PROD`."""
    return ALERTMANAGER_PREFIX + _NOT_IN_NAME.sub("_", stack.upper())


class SettingsError(Exception):
    """A required variable is missing or a value is invalid; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    bot_token: str = field(repr=False)
    signing_secret: str | None = field(repr=False)
    app_token: str | None = field(repr=False)
    access_file: Path
    audit_log: Path
    project_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    command: str = "/airflow"
    progress_interval: float = 30.0
    notify_channel: str | None = None
    backend_url: str | None = None
    secrets_provider: str = "passphrase"
    slack_api_url: str | None = None
    state_dir: Path | None = None
    """Pending approvals and their plans; defaults to `state/` beside the audit log."""
    operation_timeout: float = 2 * 3600.0
    cancel_grace: float = 120.0
    alertmanager_urls: Mapping[str, str] = field(default_factory=dict)
    """Alertmanager base URLs by variable (`SLACKBOT_ALERTMANAGER_URL_<STACK>`)."""
    alerts_timeout: float = 3.0
    pipeline_check_minutes: float = DEFAULT_PIPELINE_CHECK_MINUTES
    """How often the bot checks each stack's alerting pipeline (its Watchdog); 0: never."""

    @property
    def socket_mode(self) -> bool:
        return self.app_token is not None

    def alertmanagers(self, stacks: Iterable[str]) -> dict[str, str]:
        """Each stack's Alertmanager URL, for the stacks that have one."""
        return {
            stack: self.alertmanager_urls[alertmanager_variable(stack)]
            for stack in stacks
            if alertmanager_variable(stack) in self.alertmanager_urls
        }


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Read the settings; socket mode when `SLACK_APP_TOKEN` is set, HTTP mode otherwise."""

    def optional(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or None

    def required(name: str, why: str) -> str:
        value = optional(name)
        if value is None:
            raise SettingsError(f"{name} is not set: {why}")
        return value

    bot_token = required("SLACK_BOT_TOKEN", "the bot token (xoxb-...) of the Slack app")
    app_token = optional("SLACK_APP_TOKEN")
    signing_secret = (
        optional("SLACK_SIGNING_SECRET")
        if app_token
        else required(
            "SLACK_SIGNING_SECRET",
            "HTTP mode needs the app's signing secret (or set SLACK_APP_TOKEN for Socket Mode)",
        )
    )
    access_file = Path(required("SLACKBOT_ACCESS_FILE", "path of the access file (YAML)"))
    audit_log = Path(required("SLACKBOT_AUDIT_LOG", "path of the audit log (JSON lines)"))
    project_dir = Path(optional("SLACKBOT_PROJECT_DIR") or DEFAULT_PROJECT_DIR)
    if not (project_dir / "Pulumi.yaml").is_file():
        raise SettingsError(f"SLACKBOT_PROJECT_DIR: {project_dir} has no Pulumi.yaml")
    command = optional("SLACKBOT_COMMAND") or "/airflow"
    if not command.startswith("/"):
        raise SettingsError("SLACKBOT_COMMAND must start with '/'")
    return Settings(
        bot_token=bot_token,
        signing_secret=signing_secret,
        app_token=app_token,
        access_file=access_file,
        audit_log=audit_log,
        project_dir=project_dir,
        host=optional("SLACKBOT_HOST") or "127.0.0.1",
        port=_number("PORT", optional("PORT"), DEFAULT_PORT, int, 1, 65535),
        command=command,
        progress_interval=_number(
            "SLACKBOT_PROGRESS_SECONDS", optional("SLACKBOT_PROGRESS_SECONDS"), 30.0, float, 1, 3600
        ),
        notify_channel=optional("SLACKBOT_NOTIFY_CHANNEL"),
        backend_url=optional("PULUMI_BACKEND_URL"),
        secrets_provider=optional("PULUMI_SECRETS_PROVIDER") or "passphrase",
        slack_api_url=optional("SLACK_API_URL"),
        state_dir=Path(optional("SLACKBOT_STATE_DIR") or audit_log.parent / "state"),
        operation_timeout=_number(
            "SLACKBOT_OPERATION_TIMEOUT_SECONDS",
            optional("SLACKBOT_OPERATION_TIMEOUT_SECONDS"),
            2 * 3600.0,
            float,
            10,
            24 * 3600,
        ),
        cancel_grace=_number(
            "SLACKBOT_CANCEL_GRACE_SECONDS",
            optional("SLACKBOT_CANCEL_GRACE_SECONDS"),
            120.0,
            float,
            1,
            3600,
        ),
        alertmanager_urls={
            name: _alertmanager_url(name, value.strip())
            for name, value in sorted(environ.items())
            if name.startswith(ALERTMANAGER_PREFIX) and value.strip()
        },
        alerts_timeout=_number(
            "SLACKBOT_ALERTMANAGER_TIMEOUT_SECONDS",
            optional("SLACKBOT_ALERTMANAGER_TIMEOUT_SECONDS"),
            3.0,
            float,
            0.2,
            30,
        ),
        pipeline_check_minutes=_pipeline_check_minutes(optional(PIPELINE_CHECK_VARIABLE)),
    )


def _pipeline_check_minutes(raw: str | None) -> float:
    """0 turns the check off; otherwise at least a minute (the housekeeping timer's tick)."""
    name = PIPELINE_CHECK_VARIABLE
    minutes = _number(
        name, raw, DEFAULT_PIPELINE_CHECK_MINUTES, float, 0, MAX_PIPELINE_CHECK_MINUTES
    )
    if 0 < minutes < 1:
        raise SettingsError(f"{name} must be 0 (off) or at least 1 minute")
    return minutes


def _alertmanager_url(name: str, value: str) -> str:
    """An http(s) base URL without credentials (the bot's messages may show it)."""
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{name} must be an http:// or https:// URL with a host name")
    if parts.username is not None or parts.password is not None:
        raise SettingsError(
            f"{name} must not carry credentials; reach Alertmanager inside the cluster's network"
        )
    if parts.query or parts.fragment:
        raise SettingsError(f"{name} is a base URL: no query or fragment")
    try:
        parts.port  # noqa: B018 - raises on an invalid port
    except ValueError:
        raise SettingsError(f"{name} has an invalid port") from None
    return value.rstrip("/")


def _number(name: str, raw: str | None, default: _N, kind: type[_N], low: _N, high: _N) -> _N:
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}")
    return value
