"""Fixtures for the Airflow tests; the helpers they use live in `af_harness.py`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.af_harness import (
    DAGS_DIR,
    FIGURES,
    RUN_TIMEOUT_S,
    AirflowSandbox,
    LocalS3,
    sandbox_env,
)
from tests.moto_server import moto_server


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("airflow figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def migrated_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A metadata database migrated once per session; sandboxes get a copy."""
    home = tmp_path_factory.mktemp("airflow-template")
    env = sandbox_env(home, home / "dags")
    (home / "dags").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"airflow db migrate failed\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return home / "airflow.db"


@pytest.fixture(scope="session")
def make_sandbox(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest):
    """Factory of sandboxes; the database is migrated only once one needs it."""

    def make(dags_folder: Path = DAGS_DIR, with_db: bool = True) -> AirflowSandbox:
        home = tmp_path_factory.mktemp("airflow-home")
        if with_db:
            shutil.copyfile(request.getfixturevalue("migrated_db"), home / "airflow.db")
        return AirflowSandbox(home=home, env=sandbox_env(home, dags_folder))

    return make


@pytest.fixture
def sandbox(make_sandbox) -> AirflowSandbox:
    sb: AirflowSandbox = make_sandbox()
    return sb


@pytest.fixture(scope="session")
def local_s3() -> Iterator[LocalS3]:
    """moto's S3 server on 127.0.0.1, on a free port, stopped at the end."""
    with moto_server() as endpoint:
        yield LocalS3(endpoint_url=endpoint)
