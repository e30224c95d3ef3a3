"""Real servers for the metadata-database tests, configured by the program's own functions.

``tls_stack``: PostgreSQL 15 that accepts only TLS (``hostssl`` + SCRAM, certificate for
``localhost`` from a CA made here) and PgBouncer in front of it, run from the
``pgbouncer.ini``/``users.txt`` that ``components.metadata_db`` generates for the chart,
with only the listen address, ports, file paths and CA file substituted.

``local_stack``: the minikube shape, a PostgreSQL that Airflow reaches over plain TCP
(``sslmode=disable`` today) without PgBouncer. It is a second server rather than an
extra ``host`` line on the first, so the first keeps no plain ``host`` line at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2  # type: ignore[import-untyped]
import pytest

from components import metadata_db as mdb
from tests.metadata import servers as sv

REPO_ROOT = Path(__file__).resolve().parents[2]
RELEASE_NAME = "airflow"
"""The chart release's name (``chart_values.RELEASE_NAME``): it names PgBouncer's alias."""
POOL_SIZE = 20
"""The pool size the release passes to ``pgbouncer_ini``."""
DB_NAME = "airflow"
DB_USER = "airflow"
LOAD_WORKERS = 8
LOAD_TRANSACTIONS = 30
AIRFLOW_TIMEOUT_S = 300

FIGURES: list[str] = []


def record_figure(line: str) -> None:
    print(line)
    FIGURES.append(line)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("metadata database figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def new_password() -> str:
    """Random, with characters a URI must escape (and none users.txt cannot hold)."""
    return f"{secrets.token_urlsafe(12)}@:/%+?"


def create_login(pg: sv.Postgres, user: str, password: str, database: str) -> None:
    conn = psycopg2.connect(pg.admin_dsn())
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE ROLE "{user}" LOGIN PASSWORD %s', (password,))
            cur.execute(f'CREATE DATABASE "{database}" OWNER "{user}"')
    finally:
        conn.close()


@dataclass(frozen=True)
class Endpoint:
    """Where Airflow connects, and the two URIs the release would put in its Secret."""

    host: str
    port: int
    database: str
    user: str
    password: str
    tls: mdb.TlsMode

    @property
    def sync_uri(self) -> str:
        return mdb.sync_uri(self.user, self.password, self.host, self.port, self.database, self.tls)

    @property
    def async_uri(self) -> str:
        return mdb.async_uri(
            self.user, self.password, self.host, self.port, self.database, self.tls
        )


@dataclass(frozen=True)
class TlsStack:
    bins: sv.Binaries
    account: sv.RunAs
    root: Path
    postgres: sv.Postgres
    ca: sv.CertificateAuthority
    ca_file: Path
    bouncer: sv.PgBouncer
    bouncer_port: int
    password: str
    airflow: Endpoint
    """Airflow -> PgBouncer, as in the release (plain TCP inside the cluster)."""

    def bouncer_ini(self, port: int, users_path: Path, ca_file: Path) -> str:
        layout = mdb.PgBouncerLayout(
            listen_addr="127.0.0.1",
            listen_port=port,
            auth_file=str(users_path),
            ca_file=str(ca_file),
            unix_socket_dir=str(self.postgres.socket_dir),
        )
        return mdb.pgbouncer_ini(
            "localhost",
            self.postgres.port,
            DB_NAME,
            DB_USER,
            POOL_SIZE,
            mdb.pgbouncer_metadata_alias(RELEASE_NAME),
            layout,
        )


@dataclass(frozen=True)
class LocalStack:
    postgres: sv.Postgres
    airflow: Endpoint


def public_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o644)
    return path


@pytest.fixture(scope="session")
def binaries() -> sv.Binaries:
    return sv.require_binaries()


@pytest.fixture(scope="session")
def tls_stack(binaries: sv.Binaries) -> Iterator[TlsStack]:
    account = sv.server_account()
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(sv.private_dir(account, "metadata-tls-"))
        ca = sv.make_ca("airflow-platform test CA")
        cert, key = sv.make_server_cert(ca, "localhost")
        ca_file = public_file(root / "test-ca.pem", ca.pem)
        postgres = sv.Postgres(
            binaries,
            account,
            root,
            sv.free_port(),
            secrets.token_hex(16),
            (cert, key),
            ["local all all scram-sha-256", "hostssl all all 127.0.0.1/32 scram-sha-256"],
        )
        stack.callback(postgres.stop)
        postgres.start()
        password = new_password()
        create_login(postgres, DB_USER, password, DB_NAME)
        bouncer = sv.PgBouncer(binaries, account, root, "pgbouncer")
        stack.callback(bouncer.stop)
        port = sv.free_port()
        partial = TlsStack(
            binaries,
            account,
            root,
            postgres,
            ca,
            ca_file,
            bouncer,
            port,
            password,
            Endpoint(
                "127.0.0.1",
                port,
                mdb.pgbouncer_metadata_alias(RELEASE_NAME),
                DB_USER,
                password,
                mdb.TlsMode.DISABLE,
            ),
        )
        bouncer.start(
            partial.bouncer_ini(port, bouncer.users_path, ca_file),
            mdb.pgbouncer_users(DB_USER, password),
            port,
        )
        yield partial


@pytest.fixture(scope="session")
def local_stack(binaries: sv.Binaries) -> Iterator[LocalStack]:
    account = sv.server_account()
    with contextlib.ExitStack() as stack:
        root = stack.enter_context(sv.private_dir(account, "metadata-local-"))
        postgres = sv.Postgres(
            binaries,
            account,
            root,
            sv.free_port(),
            secrets.token_hex(16),
            None,
            ["local all all scram-sha-256", "host all all 127.0.0.1/32 scram-sha-256"],
        )
        stack.callback(postgres.stop)
        postgres.start()
        password = new_password()
        create_login(postgres, DB_USER, password, DB_NAME)
        yield LocalStack(
            postgres,
            Endpoint("127.0.0.1", postgres.port, DB_NAME, DB_USER, password, mdb.TlsMode.DISABLE),
        )


# --- Airflow in child processes -------------------------------------------------------


def airflow_home(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """An AIRFLOW_HOME whose config/ holds the release's ``airflow_local_settings.py``."""
    home = tmp_path_factory.mktemp(name)
    (home / "config").mkdir()
    (home / "config" / "airflow_local_settings.py").write_text(mdb.airflow_local_settings())
    (home / "dags").mkdir()
    return home


def airflow_env(
    home: Path, sync_uri: str, async_uri: str | None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment an Airflow pod gets from the release, nothing inherited."""
    prefixes = ("AIRFLOW", "_AIRFLOW", "PYTHONPATH", "PGSSL")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            mdb.SYNC_CONN_ENV: sync_uri,
            mdb.ASYNC_CONNECT_ARGS_ENV: mdb.ASYNC_CONNECT_ARGS_IMPORT_PATH,
        }
    )
    if async_uri is not None:
        env[mdb.ASYNC_CONN_ENV] = async_uri
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return f"{self.stdout[-6000:]}\n{self.stderr[-6000:]}"


def run_python(args: list[str], env: Mapping[str, str], cwd: Path) -> Completed:
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *args],
        env=dict(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=AIRFLOW_TIMEOUT_S,
        check=False,
    )
    return Completed(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - began)


def airflow_cli(env: Mapping[str, str], *args: str) -> Completed:
    return run_python(["-m", "airflow", *args], env, Path(env["AIRFLOW_HOME"]))


def load_process(
    env: Mapping[str, str],
    mode: str,
    workers: int = LOAD_WORKERS,
    transactions: int = LOAD_TRANSACTIONS,
) -> Completed:
    """Run ``tests/metadata/_load.py`` in an Airflow child process configured by ``env``."""
    return run_python(
        ["-m", "tests.metadata._load", mode, str(workers), str(transactions)],
        {**env, "PYTHONPATH": str(REPO_ROOT)},
        REPO_ROOT,
    )


def run_load(env: Mapping[str, str], mode: str) -> dict[str, Any]:
    """Concurrent transactions through the engine Airflow builds; the parsed figures."""
    done = load_process(env, mode)
    if done.returncode != 0:
        pytest.fail(f"the {mode} load did not run:\n{done.output}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def migrate_and_check(env: Mapping[str, str], label: str) -> None:
    migrate = airflow_cli(env, "db", "migrate")
    assert migrate.returncode == 0, f"airflow db migrate failed ({label}):\n{migrate.output}"
    record_figure(f"airflow db migrate ({label}): {migrate.seconds:.1f} s")
    check = airflow_cli(env, "db", "check")
    assert check.returncode == 0, f"airflow db check failed ({label}):\n{check.output}"
    assert "Connection successful" in check.output
