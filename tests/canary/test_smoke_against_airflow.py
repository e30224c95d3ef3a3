"""The canary script, run as the Job runs it, against a real Airflow 3.2.2.

One Airflow per module, all on 127.0.0.1: a SQLite metadata database migrated by
`airflow db migrate`, the smoke DAG serialized by `airflow dags reserialize` (what the DAG
processor does in the cluster), `airflow api-server` on a free port, and `airflow scheduler`
with the LocalExecutor. Its workers run each task under the task SDK supervisor, talk to the
api-server's Execution API over HTTP, and write the task logs that the api-server then
serves through `GET .../taskInstances/{task_id}/logs/{try_number}`.

The canary is the ConfigMap's content (`canary_config_map_data()`) copied into a folder and
run as ``python <folder>/smoke.py`` with only its environment variables, as the Job runs it.

Login: the chart deploys the FAB auth manager, which is not installed here; the api-server
runs Airflow's SimpleAuthManager with a user and a passwords file. The canary's token call is
the same for both: each auth manager's FastAPI app is mounted under ``/auth``
(`AUTH_MANAGER_FASTAPI_APP_PREFIX`, airflow-core `airflow/api_fastapi/app.py`), and each
answers ``POST /auth/token`` with a JSON body ``{"username", "password"}`` by 201 and
``{"access_token": ...}``: airflow-core `api_fastapi/auth/managers/simple/routes/login.py`
(`LoginBody`, `LoginResponse.access_token`) and apache-airflow-providers-fab 3.10.2
`auth_manager/api_fastapi/routes/login.py` (`create_token` hands the body to
`FabAuthManager.create_token`, which reads ``body["username"]`` and ``body["password"]``;
`datamodels/login.py` `LoginResponse.access_token`), in apache/airflow under
`providers/fab/src/airflow/providers/fab/auth_manager/api_fastapi/`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from canary.job import canary_config_map_data
from canary.report import CanaryReport, describe, parse_report
from tests.airflow.af_harness import (
    DAGS_DIR,
    LocalS3,
    aws_connection_env,
    logging_env,
    record_figure,
    sandbox_env,
)
from tests.moto_server import moto_server

DAG_ID = "platform_canary"
USER = "canary"
LOGS_CONN_ID = "canary_task_logs"
LOGS_PREFIX = "task-logs"
START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 15


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop_process_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL whatever is left after a grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=STOP_TIMEOUT_S)


def http(method: str, url: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    """One JSON request to the local api-server; HTTP errors come back as (status, text)."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310 (loopback http)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310
            raw = resp.read()
            return resp.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@dataclass
class AirflowStack:
    """An api-server and, on demand, a scheduler, sharing one home and database."""

    home: Path
    env: dict[str, str]
    port: int
    password: str
    s3: LocalS3
    bucket: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def airflow(self, *args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "airflow", *args],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(
                f"airflow {' '.join(args)} failed\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )

    def start(self, name: str, *args: str) -> None:
        with open(self.home / f"{name}.log", "ab") as out:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                env=self.env,
                cwd=self.home,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def log_tail(self, name: str) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def wait_for_api(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.processes["api-server"].poll() is not None:
                pytest.fail(f"api-server exited\n{self.log_tail('api-server')}")
            with contextlib.suppress(OSError):
                if http("GET", f"{self.url}/api/v2/version")[0] == 200:
                    return
            time.sleep(0.25)
        pytest.fail(f"api-server not ready in {START_TIMEOUT_S} s\n{self.log_tail('api-server')}")

    def ensure_scheduler(self) -> None:
        proc = self.processes.get("scheduler")
        if proc is None or proc.poll() is not None:
            self.start("scheduler", "scheduler", "--skip-serve-logs")

    def stop_scheduler(self) -> None:
        proc = self.processes.pop("scheduler", None)
        if proc is not None:
            stop_process_group(proc)

    def stop_all(self) -> None:
        for name in list(self.processes):
            stop_process_group(self.processes.pop(name))

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A REST call as the canary's user, for the tests' own checks."""
        login = {"username": USER, "password": self.password}
        status, payload = http("POST", f"{self.url}/auth/token", login)
        assert status == 201, payload
        return http(method, self.url + path, body, payload["access_token"])

    def dag_run(self, run_id: str) -> dict[str, Any]:
        status, payload = self.call(
            "GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
        )
        assert status == 200, payload
        return dict(payload)


@pytest.fixture(scope="module")
def local_s3() -> Iterator[LocalS3]:
    """moto's S3 server on 127.0.0.1, a free port, stopped with the module."""
    with moto_server() as endpoint:
        yield LocalS3(endpoint_url=endpoint)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, local_s3: LocalS3) -> Iterator[AirflowStack]:
    started = time.perf_counter()
    bucket = local_s3.new_bucket("canary-logs")
    home = tmp_path_factory.mktemp("canary-airflow")
    dags = home / "dags"
    dags.mkdir()
    shutil.copy(DAGS_DIR / f"{DAG_ID}.py", dags)
    port = free_port()
    password = secrets.token_urlsafe(18)
    (home / "passwords.json").write_text(json.dumps({USER: password}))
    env = {
        **sandbox_env(home, dags),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__AUTH_MANAGER": (
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
        ),
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:user",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        # Task logs go to S3 (moto) and the workers delete their local copies, as task pods
        # vanish in the cluster: the api-server can serve the marker only from the log store.
        **logging_env(
            {
                "remote_logging": "True",
                "remote_base_log_folder": f"s3://{bucket}/{LOGS_PREFIX}",
                "remote_log_conn_id": LOGS_CONN_ID,
                "delete_local_logs": "True",
            }
        ),
        **aws_connection_env(LOGS_CONN_ID, local_s3.endpoint_url),
    }
    airflow = AirflowStack(
        home=home, env=env, port=port, password=password, s3=local_s3, bucket=bucket
    )
    try:
        airflow.airflow("db", "migrate")
        airflow.start(
            "api-server", "api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"
        )
        airflow.airflow("dags", "reserialize")
        airflow.wait_for_api()
        record_figure(
            f"canary test Airflow up (migrate, serialize, api-server): "
            f"{time.perf_counter() - started:.1f} s"
        )
        yield airflow
    finally:
        airflow.stop_all()


@dataclass
class CanaryRun:
    returncode: int
    stdout: str
    stderr: str
    termination: str
    seconds: float

    @property
    def report(self) -> CanaryReport:
        report = parse_report(self.stdout)
        assert report is not None, f"no report in stdout:\n{self.stdout}\n{self.stderr}"
        return report


def run_canary(
    url: str, password: str, workdir: Path, *, timeout_s: float = 90, **env: str
) -> CanaryRun:
    """Run the ConfigMap's script as the Job does: copied into a folder, env vars only."""
    mount = workdir / "canary-mount"
    mount.mkdir(exist_ok=True)
    for name, text in canary_config_map_data().items():
        (mount / name).write_text(text)
    termination = workdir / "termination-log"
    termination.write_text("")
    canary_env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CANARY_API_URL": url,
        "CANARY_USERNAME": USER,
        "CANARY_PASSWORD": password,
        "CANARY_DAG_ID": DAG_ID,
        "CANARY_TIMEOUT_SECONDS": str(timeout_s),
        "CANARY_POLL_SECONDS": "0.5",
        "CANARY_REQUIRE_REMOTE_LOG": "true",
        "CANARY_TERMINATION_LOG": str(termination),
        **env,
    }
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(mount / "smoke.py")],
        env=canary_env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout_s + 30,
        check=False,
    )
    return CanaryRun(
        proc.returncode,
        proc.stdout,
        proc.stderr,
        termination.read_text(),
        time.perf_counter() - started,
    )


def assert_reported_everywhere(run: CanaryRun, secret: str) -> None:
    """The report is the last stdout line and sits in the termination message; no secret
    and no traceback anywhere."""
    last_line = run.stdout.strip().splitlines()[-1]
    assert parse_report(last_line) == run.report
    assert parse_report(run.termination) == run.report
    assert describe(run.report).splitlines()[0] in run.termination
    for text in (run.stdout, run.stderr, run.termination):
        assert secret not in text
        assert "Traceback" not in text


def test_canary_times_out_while_nothing_schedules_the_run(
    stack: AirflowStack, tmp_path: Path
) -> None:
    stack.stop_scheduler()
    run = run_canary(stack.url, stack.password, tmp_path, timeout_s=4)
    record_figure(f"canary timeout case: {run.seconds:.1f} s")

    assert run.returncode == 2, run.stdout + run.stderr
    report = run.report
    assert report.outcome == "timeout"
    assert report.run_id is not None and report.state == "queued"
    assert "deadline of 4 s passed" in report.message and "queued" in report.message
    assert 4 <= report.seconds < 15
    assert stack.dag_run(report.run_id)["state"] == "queued"
    assert_reported_everywhere(run, stack.password)
    status, _ = stack.call(
        "DELETE", f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(report.run_id, safe='')}"
    )
    assert status == 204


def test_canary_unpauses_the_dag_and_passes_on_a_healthy_platform(
    stack: AirflowStack, tmp_path: Path
) -> None:
    stack.ensure_scheduler()
    status, dag = stack.call("PATCH", f"/api/v2/dags/{DAG_ID}", {"is_paused": True})
    assert status == 200 and dag["is_paused"] is True

    run = run_canary(stack.url, stack.password, tmp_path)
    record_figure(f"canary success case: {run.seconds:.1f} s")

    assert run.returncode == 0, run.stdout + run.stderr
    report = run.report
    assert report.outcome == "success" and report.ok
    assert report.state == "success" and report.marker_found
    assert report.failed_tasks == ()
    assert report.task_states == {"emit_marker": "success", "verify_marker": "success"}
    assert report.run_id is not None
    # What Airflow itself recorded, independent of the canary's own account:
    assert stack.call("GET", f"/api/v2/dags/{DAG_ID}")[1]["is_paused"] is False
    dag_run = stack.dag_run(report.run_id)
    assert (dag_run["state"], dag_run["conf"]) == ("success", {})
    # The api-server read the marker from the log store, as it says, and the object is there:
    assert report.marker_source.startswith(f"s3://{stack.bucket}/{LOGS_PREFIX}/")
    assert report.run_id in report.marker_source and "task_id=emit_marker" in report.marker_source
    key = report.marker_source.removeprefix(f"s3://{stack.bucket}/")
    uploaded = stack.s3.read(stack.bucket, key)
    assert f"airflow-platform-canary-marker run_id={report.run_id}" in uploaded
    assert_reported_everywhere(run, stack.password)


def test_canary_fails_with_the_runs_state_and_error_when_the_run_fails(
    stack: AirflowStack, tmp_path: Path
) -> None:
    stack.ensure_scheduler()
    run = run_canary(stack.url, stack.password, tmp_path, CANARY_FORCE_FAILURE="true")
    record_figure(f"canary forced-failure case: {run.seconds:.1f} s")

    assert run.returncode == 1, run.stdout + run.stderr
    report = run.report
    assert report.outcome == "failed" and report.state == "failed"
    assert report.failed_tasks == ("verify_marker",)
    assert report.marker_found  # the first task ran and logged before the forced failure
    assert "AirflowFailException" in report.log_excerpt
    assert "failure forced by run conf force_failure=true" in report.log_excerpt
    assert report.run_id is not None
    dag_run = stack.dag_run(report.run_id)
    assert (dag_run["state"], dag_run["conf"]) == ("failed", {"force_failure": True})
    assert "AirflowFailException" in run.termination
    assert_reported_everywhere(run, stack.password)


def test_canary_reports_a_rejected_login_without_leaking_the_password(
    stack: AirflowStack, tmp_path: Path
) -> None:
    wrong = secrets.token_urlsafe(18)
    run = run_canary(stack.url, wrong, tmp_path, timeout_s=20)

    assert run.returncode == 3, run.stdout + run.stderr
    report = run.report
    assert report.outcome == "error" and report.run_id is None
    assert "401" in report.message and USER in report.message
    assert_reported_everywhere(run, wrong)


def test_canary_retries_an_unreachable_api_until_its_deadline(tmp_path: Path) -> None:
    """Nothing listens on the port: connection errors are retried, then a timeout report."""
    password = secrets.token_urlsafe(18)
    run = run_canary(f"http://127.0.0.1:{free_port()}", password, tmp_path, timeout_s=2)

    assert run.returncode == 2, run.stdout + run.stderr
    assert run.report.outcome == "timeout" and run.report.run_id is None
    assert "no run started" in run.report.message
    assert "retrying (1): POST /auth/token" in run.stdout
    assert_reported_everywhere(run, password)


def test_canary_reports_every_configuration_problem_at_once(tmp_path: Path) -> None:
    run = run_canary(
        "ftp://example.invalid",
        "",
        tmp_path,
        CANARY_USERNAME="",
        CANARY_TIMEOUT_SECONDS="soon",
        CANARY_FORCE_FAILURE="maybe",
    )

    assert run.returncode == 3
    message = run.report.message
    for problem in (
        "CANARY_API_URL must be an http(s) URL",
        "CANARY_USERNAME is required",
        "CANARY_PASSWORD is required",
        "CANARY_TIMEOUT_SECONDS must be a positive number",
        "CANARY_FORCE_FAILURE must be true or false",
    ):
        assert problem in message
    assert parse_report(run.termination) == run.report
