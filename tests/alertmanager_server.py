"""A real Alertmanager (Debian's `prometheus-alertmanager`) on 127.0.0.1 for tests, and `amtool`.

`alertmanager(config_path, tmp)` starts the binary on a free loopback port with no clustering,
waits until its API answers, yields its base URL and always stops it. Where the binaries are
missing the tests skip, except under CI (`CI` set), where they fail: `.ci/run` installs them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ALERTMANAGER = "prometheus-alertmanager"
AMTOOL = "amtool"
START_TIMEOUT_SECONDS = 20.0


def binary(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else "")
    if not path:
        message = f"{name} is not installed (Debian: prometheus-alertmanager)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary(AMTOOL), *args], capture_output=True, text=True, timeout=30, check=False
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def alertmanager(config: Path, workdir: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (workdir / "alertmanager.log").open("w")
    proc = subprocess.Popen(
        [
            binary(ALERTMANAGER),
            f"--config.file={config}",
            f"--storage.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"alertmanager exited: {(workdir / 'alertmanager.log').read_text()}"
                )
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("alertmanager did not become ready")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def post_alerts(url: str, alerts: list[dict[str, Any]]) -> None:
    request = urllib.request.Request(  # noqa: S310 (loopback http)
        f"{url}/api/v2/alerts",
        data=json.dumps(alerts).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
        assert resp.status == 200


def get_alerts(url: str, **params: str) -> list[dict[str, Any]]:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    with urllib.request.urlopen(f"{url}/api/v2/alerts?{query}", timeout=5) as resp:  # noqa: S310
        result: list[dict[str, Any]] = json.loads(resp.read())
        return result
