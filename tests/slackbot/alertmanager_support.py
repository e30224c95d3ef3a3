"""A real Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1 for the status tests.

It runs with a tmp storage path, no gossip (`--cluster.listen-address=` empty), a route to a
receiver that sends nothing, and one inhibit rule (a firing `page` alert of a stack mutes its
`info` alerts). The process runs under coreutils `timeout`, so it stops by itself even if the
test run is killed; the fixture stops it first.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

BINARY = shutil.which("prometheus-alertmanager") or (
    "/usr/bin/prometheus-alertmanager"
    if Path("/usr/bin/prometheus-alertmanager").is_file()
    else None
)
LIFETIME_SECONDS = 120
"""The longest an Alertmanager started here lives, whatever happens to the test run."""
READY_SECONDS = 10.0

CONFIG = """\
route:
  receiver: nowhere
  group_by: [alertname, stack]
receivers:
  - name: nowhere
inhibit_rules:
  - source_matchers: ['severity="page"']
    target_matchers: ['severity="info"']
    equal: [stack]
"""


def require_alertmanager() -> str:
    """The binary's path; without it the test fails in CI and is skipped elsewhere."""
    if BINARY is None:
        message = (
            "prometheus-alertmanager is not installed "
            "(Debian package prometheus-alertmanager; CI installs it)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return BINARY


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Alertmanager:
    """One Alertmanager process and the two API v2 calls the tests make."""

    def __init__(self, binary: str, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "alertmanager.yml"
        config.write_text(CONFIG, encoding="utf-8")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = (workdir / "alertmanager.log").open("wb")
        command = [
            binary,
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--cluster.listen-address=",
        ]
        limiter = shutil.which("timeout")
        if limiter is not None:
            command = [limiter, "-s", "KILL", str(LIFETIME_SECONDS), *command]
        self._process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self._workdir = workdir
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                break
            try:
                ready = f"{self.url}/-/ready"
                with urllib.request.urlopen(ready, timeout=1) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.close()
        log = (self._workdir / "alertmanager.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"Alertmanager did not become ready:\n{log}")

    def post_alerts(self, alerts: list[Mapping[str, Any]]) -> None:
        """`POST /api/v2/alerts` (`postableAlerts`: labels, annotations, startsAt, endsAt)."""
        self._call("POST", "/api/v2/alerts", list(alerts))

    def silence(self, matchers: Mapping[str, str], comment: str = "maintenance") -> str:
        """`POST /api/v2/silences` for one hour; returns the silence id."""
        now = datetime.now(UTC)
        body = {
            "matchers": [
                {"name": name, "value": value, "isRegex": False, "isEqual": True}
                for name, value in matchers.items()
            ],
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=1)).isoformat(),
            "createdBy": "tests",
            "comment": comment,
        }
        answer = self._call("POST", "/api/v2/silences", body)
        return str(answer["silenceID"])

    def _call(self, method: str, path: str, body: Any) -> Any:
        request = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.url + path,
            data=json.dumps(body).encode(),
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
            raw = response.read()
        return json.loads(raw) if raw.strip() else None

    def close(self) -> None:
        if self._process.poll() is None:
            os.killpg(self._process.pid, 15)
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, 9)
                self._process.wait(timeout=5)
        self._log.close()


def alert(
    name: str,
    stack: str,
    severity: str,
    summary: str = "",
    started: datetime | None = None,
    runbook: str | None = None,
) -> dict[str, Any]:
    """A firing alert as Prometheus sends it, with the stack's external label."""
    annotations = {"summary": summary} if summary else {}
    if runbook:
        annotations["runbook_url"] = runbook
    item: dict[str, Any] = {
        "labels": {"alertname": name, "stack": stack, "severity": severity},
        "annotations": annotations,
    }
    if started is not None:
        item["startsAt"] = started.isoformat()
    return item
