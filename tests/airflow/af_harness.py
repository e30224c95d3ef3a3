"""Helpers for the Airflow tests: isolated Airflow sandboxes and a local S3.

Nothing here imports Airflow. Each piece of Airflow work runs in a child
process (`_airflow_runner.py`) with an environment built from scratch: its own
AIRFLOW_HOME, a SQLite metadata database copied from a once-migrated template,
no example DAGs, and no AIRFLOW_* / AWS_* variables inherited from the caller.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DAGS_DIR = REPO_ROOT / "dags"
RUNNER = HERE / "_airflow_runner.py"
INLINE_EXECUTOR = "_inline_executor.InlineSupervisorExecutor"
MOTO_REGION = "us-east-1"
RUN_TIMEOUT_S = 180

FIGURES: list[str] = []


def record_figure(line: str) -> None:
    """Print a measured figure and keep it for the end-of-session summary."""
    print(line)
    FIGURES.append(line)


def logging_env(settings: Mapping[str, str]) -> dict[str, str]:
    """Turn a `[logging]` section into the env vars Airflow reads it from."""
    return {f"AIRFLOW__LOGGING__{key.upper()}": value for key, value in settings.items()}


def aws_connection_env(conn_id: str, endpoint_url: str) -> dict[str, str]:
    """An `aws` connection to a local S3 endpoint with dummy credentials."""
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": endpoint_url, "region_name": MOTO_REGION},
    }
    return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(conn)}


def _clean_environ() -> dict[str, str]:
    prefixes = ("AIRFLOW", "_AIRFLOW", "AWS_", "BOTO", "KUBECONFIG", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}


@dataclass
class RunResult:
    data: Any
    stdout: str
    stderr: str


@dataclass
class AirflowSandbox:
    """One throw-away Airflow installation: a home, a database, an environment."""

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    _runs: int = 0

    def run(
        self, command: str, *args: str, extra_env: Mapping[str, str] | None = None
    ) -> RunResult:
        self._runs += 1
        out = self.home / f"result-{self._runs}.json"
        env = {**self.env, **(extra_env or {})}
        proc = subprocess.run(
            [sys.executable, str(RUNNER), command, str(out), *args],
            env=env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
        (self.home / f"result-{self._runs}.stdout").write_text(proc.stdout)
        (self.home / f"result-{self._runs}.stderr").write_text(proc.stderr)
        if proc.returncode != 0 or not out.exists():
            pytest.fail(
                f"airflow runner {command} {args} exited {proc.returncode}\n"
                f"--- stdout ---\n{proc.stdout[-6000:]}\n--- stderr ---\n{proc.stderr[-6000:]}"
            )
        return RunResult(json.loads(out.read_text()), proc.stdout, proc.stderr)


def sandbox_env(home: Path, dags_folder: Path) -> dict[str, str]:
    no_file = str(home / "absent")
    return {
        **_clean_environ(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": INLINE_EXECUTOR,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
        "PYTHONPATH": str(HERE),
        "AWS_CONFIG_FILE": no_file,
        "AWS_SHARED_CREDENTIALS_FILE": no_file,
        "AWS_EC2_METADATA_DISABLED": "true",
        "KUBECONFIG": no_file,
    }


@dataclass(frozen=True)
class LocalS3:
    endpoint_url: str

    def client(self) -> Any:
        import boto3  # type: ignore[import-untyped,unused-ignore]

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=MOTO_REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def new_bucket(self, stem: str) -> str:
        name = f"{stem}-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        paginator = self.client().get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for page in pages for obj in page.get("Contents", []))

    def read(self, bucket: str, key: str) -> str:
        body: bytes = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body.decode()

    def buckets(self) -> set[str]:
        return {b["Name"] for b in self.client().list_buckets().get("Buckets", [])}
