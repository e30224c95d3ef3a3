"""Alertmanager's configuration for a stack: routes per severity to Slack, grouping, inhibition.

A pure function of the settings. The Slack webhook URL is never part of it: Alertmanager reads
the URL from a file (`api_url_file`) mounted from the Kubernetes Secret `WEBHOOK_SECRET`, so the
configuration itself (a Secret the operator mounts, `alertmanagerSpec.configSecret`) carries no
secret and can be shown, diffed and checked with `amtool check-config`.

Routing:
- `Watchdog` (always firing) goes to the `heartbeat` receiver, which sends nothing: its presence in
  Alertmanager is the proof that rules evaluate and alerts arrive. The Slack bot's `status` reads
  it, and says the alerting pipeline is broken when it is missing.
- `page` goes to the page channel, `warning` and `info` to the alerts channel, each only if the
  stack lists the severity in `monitoring.notifySeverities` and a webhook is set; everything else
  stays visible in Alertmanager only (receiver `quiet`).

Inhibition: a node that is NotReady silences the pod alerts of the pods on it (the rules carry the
`node` label for that); a firing `page` silences the `warning` of the same alert and namespace.
"""

from __future__ import annotations

from typing import Any

from components.settings import Settings

WEBHOOK_SECRET = "alertmanager-slack-webhook"  # noqa: S105 (a Secret's name)
"""Kubernetes Secret with the Slack incoming-webhook URL (key `WEBHOOK_KEY`)."""
WEBHOOK_KEY = "url"
CONFIG_SECRET = "alertmanager-platform-config"  # noqa: S105 (a Secret's name)
"""Kubernetes Secret holding `alertmanager.yaml` (the operator reads it by name)."""
CONFIG_KEY = "alertmanager.yaml"
SECRETS_DIR = "/etc/alertmanager/secrets"
"""Where the operator mounts the Secrets listed in `alertmanagerSpec.secrets`."""

NODE_ALERTS = ("KubernetesNodeNotReady",)
"""Alerts about a node (monitoring/rules/kubernetes.yml); they inhibit the alerts that carry
the same `node` label, which the pod alerts join in from kube_pod_info."""

_TITLE = (
    '[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}]'
    " {{ .CommonLabels.alertname }} ({{ .CommonLabels.stack }})"
)
_TEXT = (
    "{{ range .Alerts }}*{{ .Annotations.summary }}*\n{{ .Annotations.description }}\n"
    "Runbook: {{ .Annotations.runbook_url }}\n{{ end }}"
)


def webhook_file() -> str:
    return f"{SECRETS_DIR}/{WEBHOOK_SECRET}/{WEBHOOK_KEY}"


def _slack(channel: str, url_file: str) -> dict[str, Any]:
    return {
        "api_url_file": url_file,
        "channel": channel,
        "send_resolved": True,
        "title": _TITLE,
        "text": _TEXT,
    }


def alertmanager_config(
    settings: Settings, *, has_webhook: bool, url_file: str | None = None
) -> dict[str, Any]:
    """The `alertmanager.yaml` for a stack, as a dict; the webhook URL is read from `url_file`
    (default: where the operator mounts the webhook Secret)."""
    m = settings.monitoring
    receivers: list[dict[str, Any]] = [{"name": "quiet"}, {"name": "heartbeat"}]
    routes: list[dict[str, Any]] = [
        {
            "receiver": "heartbeat",
            "matchers": ['alertname="Watchdog"'],
            "group_wait": "0s",
            "group_interval": "1m",
            "repeat_interval": "5m",
        }
    ]
    if has_webhook:
        channels = {
            "page": settings.page_channel,
            "warning": settings.alerts_channel,
            "info": settings.alerts_channel,
        }
        for severity in m.notify_severities:
            name = f"slack-{severity}"
            receivers.append(
                {
                    "name": name,
                    "slack_configs": [_slack(channels[severity], url_file or webhook_file())],
                }
            )
            route: dict[str, Any] = {"receiver": name, "matchers": [f'severity="{severity}"']}
            if severity == "page":
                route["group_wait"] = "10s"
            routes.append(route)
    return {
        "route": {
            "receiver": "quiet",
            "group_by": ["alertname", "namespace", "severity"],
            "group_wait": "30s",
            "group_interval": "5m",
            "repeat_interval": m.repeat_interval,
            "routes": routes,
        },
        "inhibit_rules": [
            {
                "source_matchers": [f'alertname=~"{"|".join(NODE_ALERTS)}"'],
                "target_matchers": ['node!=""', f'alertname!~"{"|".join(NODE_ALERTS)}"'],
                "equal": ["node"],
            },
            {
                "source_matchers": ['severity="page"'],
                "target_matchers": ['severity="warning"'],
                "equal": ["alertname", "namespace"],
            },
        ],
        "receivers": receivers,
    }
