"""The Alertmanager configuration each stack renders, checked by Alertmanager's own tools.

`amtool check-config` parses it as Alertmanager would; `amtool config routes test` walks the
routing tree for a label set and prints the receivers; a real Alertmanager shows inhibition
(`/api/v2/alerts?inhibited=false`) and really delivers a page to a Slack-compatible webhook whose
URL it reads from a file — the URL is in no configuration.
Sources: prometheus/alertmanager `config/config.go` (`api_url_file`), `cmd/amtool`
(`check-config`, `config routes test`), `api/v2/openapi.yaml`.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from components import alert_rules
from components import alertmanager_config as amc
from components.settings import Settings
from tests.alertmanager_server import alertmanager, amtool, get_alerts, post_alerts
from tests.chart_render import stack_settings
from tests.harness import STACKS

NODE = amc.NODE_ALERTS[0]
POD = "AirflowPodCrashLooping"


def write_config(tmp_path: Path, settings: Settings, *, has_webhook: bool, **kw: Any) -> Path:
    path = tmp_path / f"{settings.stack}-{has_webhook}.yml"
    config = amc.alertmanager_config(settings, has_webhook=has_webhook, **kw)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def route(config: Path, **labels: str) -> list[str]:
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("has_webhook", [True, False])
def test_amtool_accepts_every_stack_config(tmp_path: Path, stack: str, has_webhook: bool) -> None:
    config = write_config(tmp_path, stack_settings(stack), has_webhook=has_webhook)
    result = amtool("check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_production_pages_its_channel_and_warns_the_other(tmp_path: Path) -> None:
    prod = stack_settings("production")
    config = write_config(tmp_path, prod, has_webhook=True)
    assert route(config, alertname="AirflowSchedulerHeartbeatMissing", severity="page") == [
        "slack-page"
    ]
    assert route(config, alertname="AirflowDagImportErrors", severity="warning") == [
        "slack-warning"
    ]
    assert route(config, alertname="AirflowSomethingInformational", severity="info") == ["quiet"]
    assert route(config, alertname="Watchdog", severity="none") == ["heartbeat"]
    receivers = {r["name"]: r for r in yaml.safe_load(config.read_text())["receivers"]}
    assert receivers["slack-page"]["slack_configs"][0]["channel"] == "#airflow-production-pages"
    assert receivers["slack-warning"]["slack_configs"][0]["channel"] == (
        "#airflow-production-alerts"
    )


def test_integration_is_quieter(tmp_path: Path) -> None:
    integ = stack_settings("integration")
    config = write_config(tmp_path, integ, has_webhook=True)
    assert route(config, alertname="AirflowSchedulerHeartbeatMissing", severity="page") == [
        "slack-page"
    ]
    assert route(config, alertname="AirflowDagImportErrors", severity="warning") == ["quiet"]
    doc = yaml.safe_load(config.read_text())
    assert doc["route"]["repeat_interval"] == "12h"
    prod = yaml.safe_load(
        write_config(tmp_path, stack_settings("production"), has_webhook=True).read_text()
    )
    assert prod["route"]["repeat_interval"] == "4h"


def test_without_a_webhook_nothing_is_sent_anywhere(tmp_path: Path) -> None:
    config = write_config(tmp_path, stack_settings("local"), has_webhook=False)
    assert route(config, alertname="AirflowSchedulerHeartbeatMissing", severity="page") == ["quiet"]
    assert "slack_configs" not in config.read_text()


@pytest.mark.parametrize("stack", STACKS)
def test_the_webhook_url_is_read_from_the_mounted_secret(tmp_path: Path, stack: str) -> None:
    doc = amc.alertmanager_config(stack_settings(stack), has_webhook=True)
    slack = [c for r in doc["receivers"] for c in r.get("slack_configs", [])]
    assert slack and all("api_url" not in c for c in slack)
    assert {c["api_url_file"] for c in slack} == {
        f"/etc/alertmanager/secrets/{amc.WEBHOOK_SECRET}/{amc.WEBHOOK_KEY}"
    }


class _Hook(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[dict[str, Any]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def slack_hook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    received: list[dict[str, Any]] = []
    handler = type("Hook", (_Hook,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/T0/B0/hook", received
    finally:
        server.shutdown()
        server.server_close()


def _alert(name: str, severity: str, **labels: str) -> dict[str, Any]:
    return {
        "labels": {"alertname": name, "severity": severity, "stack": "production", **labels},
        "annotations": {
            "summary": f"{name} summary",
            "description": f"{name} description",
            "runbook_url": f"https://example.com/runbooks#{name.lower()}",
        },
    }


def rule_severity(alert: str) -> str:
    [rule] = [r for r in alert_rules.alerts() if r["alert"] == alert]
    severity: str = rule["labels"]["severity"]
    return severity


def test_node_alerts_are_rules_and_pod_alerts_carry_the_node() -> None:
    """Inhibition matches on names and the `node` label: both must come from the real rules."""
    names = {r["alert"] for r in alert_rules.alerts()}
    assert set(amc.NODE_ALERTS) <= names
    pod_alerts = [r for r in alert_rules.alerts() if r["alert"].startswith("AirflowPod")]
    assert pod_alerts
    for rule in pod_alerts:
        assert "group_left (node)" in " ".join(str(rule["expr"]).split()), rule["alert"]


def test_a_real_alertmanager_inhibits_pods_on_a_dead_node_and_notifies_slack(
    tmp_path: Path, slack_hook: tuple[str, list[dict[str, Any]]]
) -> None:
    hook_url, received = slack_hook
    url_file = tmp_path / "webhook-url"
    url_file.write_text(hook_url)
    config = write_config(
        tmp_path, stack_settings("production"), has_webhook=True, url_file=str(url_file)
    )
    assert hook_url not in config.read_text()
    with alertmanager(config, tmp_path) as am:
        post_alerts(
            am,
            [
                _alert(NODE, rule_severity(NODE), node="ip-10-20-1-5"),
                _alert(POD, rule_severity(POD), node="ip-10-20-1-5", namespace="airflow"),
                _alert(POD, rule_severity(POD), node="ip-10-20-2-9", namespace="airflow"),
            ],
        )
        active = get_alerts(am, active="true", inhibited="false", silenced="false")
        shown = sorted((a["labels"]["alertname"], a["labels"].get("node")) for a in active)
        assert shown == sorted([(POD, "ip-10-20-2-9"), (NODE, "ip-10-20-1-5")])
        inhibited = get_alerts(am, inhibited="true", active="false")
        assert [(a["labels"]["alertname"], a["labels"]["node"]) for a in inhibited] == [
            (POD, "ip-10-20-1-5")
        ]
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not any(
            NODE in m["attachments"][0]["title"] for m in received
        ):
            time.sleep(0.5)
    assert received, "Alertmanager sent nothing to the webhook"
    by_alert = {m["attachments"][0]["title"].split()[1]: m for m in received}
    node = by_alert[NODE]
    prod = stack_settings("production")
    expected = prod.page_channel if rule_severity(NODE) == "page" else prod.alerts_channel
    assert node["channel"] == expected
    assert f"runbooks#{NODE.lower()}" in node["attachments"][0]["text"]
