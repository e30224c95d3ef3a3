"""The release's database settings against real PostgreSQL 15 and PgBouncer servers.

Every URI, ``pgbouncer.ini`` and ``users.txt`` comes from ``components.metadata_db``;
Airflow runs in child processes configured only through its environment, as in a pod.
"""

from __future__ import annotations

import asyncio
import importlib.util
import time
from pathlib import Path

import psycopg2  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from components import metadata_db as mdb
from tests.metadata import servers as sv
from tests.metadata.conftest import (
    DB_NAME,
    DB_USER,
    Endpoint,
    LocalStack,
    TlsStack,
    airflow_env,
    airflow_home,
    load_process,
    migrate_and_check,
    public_file,
    record_figure,
    run_load,
)

CONNECT_TIMEOUT_S = 3
CONTROL_ROUNDS = 3


def libpq_uri(sqlalchemy_uri: str) -> str:
    """The same URI without SQLAlchemy's driver suffix: what libpq (and psycopg2) reads."""
    scheme, _, rest = sqlalchemy_uri.partition("://")
    return f"{scheme.split('+')[0]}://{rest}"


def load_figure(label: str, result: dict[str, object]) -> str:
    return (
        f"{label}: driver {result['driver']}, {result['failures']} failures"
        f" / {result['attempts']} transactions in {result['seconds']} s"
    )


def assert_no_failures(label: str, result: dict[str, object], driver: str) -> None:
    record_figure(load_figure(label, result))
    assert result["driver"] == driver
    assert result["failures"] == 0, result["errors"]


@pytest.fixture(scope="module")
def tls_env(tls_stack: TlsStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An Airflow pod of the eks release: both URIs point at PgBouncer."""
    home = airflow_home(tmp_path_factory, "airflow-pgbouncer")
    return airflow_env(home, tls_stack.airflow.sync_uri, tls_stack.airflow.async_uri)


@pytest.fixture(scope="module")
def local_env(local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """An Airflow pod of the minikube release: straight to the in-cluster Postgres."""
    home = airflow_home(tmp_path_factory, "airflow-local")
    return airflow_env(home, local_stack.airflow.sync_uri, local_stack.airflow.async_uri)


def test_missing_servers_skip_locally_and_fail_on_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sv, "find_binaries", lambda: None)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        sv.require_binaries()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install -y postgresql pgbouncer"):
        sv.require_binaries()


# --- the eks shape: PgBouncer in front of a TLS-only Postgres -----------------------------


def test_airflow_db_migrate_and_check_through_pgbouncer(tls_env: dict[str, str]) -> None:
    migrate_and_check(tls_env, "through PgBouncer")


def test_pgbouncer_reaches_postgres_over_verified_tls(tls_stack: TlsStack) -> None:
    conn = psycopg2.connect(libpq_uri(tls_stack.airflow.sync_uri))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone() == (True,)
    finally:
        conn.close()


def test_plain_tcp_straight_to_postgres_is_refused(tls_stack: TlsStack) -> None:
    with pytest.raises(psycopg2.OperationalError) as refused:
        psycopg2.connect(
            host="127.0.0.1",
            port=tls_stack.postgres.port,
            dbname=DB_NAME,
            user=DB_USER,
            password=tls_stack.password,
            sslmode="disable",
            connect_timeout=CONNECT_TIMEOUT_S,
        )
    message = str(refused.value)
    assert "no pg_hba.conf entry" in message
    assert "no encryption" in message


def direct(stack: TlsStack, tls: mdb.TlsMode, password: str | None = None) -> Endpoint:
    return Endpoint(
        "localhost",
        stack.postgres.port,
        DB_NAME,
        DB_USER,
        stack.password if password is None else password,
        tls,
    )


def test_sync_uri_with_verify_full_reaches_postgres(tls_stack: TlsStack) -> None:
    end = direct(tls_stack, mdb.TlsMode.VERIFY_FULL)
    uri = mdb.sync_uri(
        end.user, end.password, end.host, end.port, end.database, end.tls, str(tls_stack.ca_file)
    )
    conn = psycopg2.connect(libpq_uri(uri), connect_timeout=CONNECT_TIMEOUT_S)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            assert cur.fetchone() == (True,)
    finally:
        conn.close()


@pytest.mark.parametrize("tls", [mdb.TlsMode.REQUIRE, mdb.TlsMode.VERIFY_FULL])
def test_async_uri_speaks_tls_in_asyncpgs_terms(
    tls_stack: TlsStack, tls: mdb.TlsMode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PGSSLROOTCERT", str(tls_stack.ca_file))
    engine = create_async_engine(
        direct(tls_stack, tls).async_uri, connect_args=dict(mdb.ASYNC_CONNECT_ARGS)
    )

    async def ssl_in_use() -> object:
        try:
            async with engine.connect() as conn:
                query = text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                return (await conn.execute(query)).scalar_one()
        finally:
            await engine.dispose()

    # A loop of its own, so the process's current loop (the Pulumi mock runs use it) is kept.
    loop = asyncio.new_event_loop()
    try:
        assert loop.run_until_complete(ssl_in_use()) is True
    finally:
        loop.close()


def test_wrong_password_is_an_authentication_error(tls_stack: TlsStack) -> None:
    end = direct(tls_stack, mdb.TlsMode.VERIFY_FULL, password="not-the-password")
    with pytest.raises(psycopg2.OperationalError) as straight:
        psycopg2.connect(
            host=end.host,
            port=end.port,
            dbname=end.database,
            user=end.user,
            password=end.password,
            sslmode="verify-full",
            sslrootcert=str(tls_stack.ca_file),
            connect_timeout=CONNECT_TIMEOUT_S,
        )
    assert f'password authentication failed for user "{DB_USER}"' in str(straight.value)
    bouncer = tls_stack.airflow
    with pytest.raises(psycopg2.OperationalError) as through:
        psycopg2.connect(
            host=bouncer.host,
            port=bouncer.port,
            dbname=bouncer.database,
            user=bouncer.user,
            password="not-the-password",
            sslmode="disable",
            connect_timeout=CONNECT_TIMEOUT_S,
        )
    assert "SASL authentication failed" in str(through.value)


def test_stats_connection_answers_show_pools(tls_stack: TlsStack) -> None:
    uri = mdb.stats_uri(DB_USER, tls_stack.password, port=tls_stack.bouncer_port)
    conn = psycopg2.connect(uri, connect_timeout=CONNECT_TIMEOUT_S)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SHOW POOLS")
            assert cur.description is not None
            columns = [c.name for c in cur.description]
            pools = [dict(zip(columns, row, strict=True)) for row in cur.fetchall()]
    finally:
        conn.close()
    assert {p["database"] for p in pools} >= {mdb.pgbouncer_metadata_alias("airflow")}


def test_pgbouncer_verifies_the_server_certificate(tls_stack: TlsStack, tmp_path: Path) -> None:
    """A PgBouncer trusting another CA cannot reach Postgres; the right CA can."""
    stranger = sv.make_ca("some other CA")
    other_ca = public_file(tls_stack.root / "other-ca.pem", stranger.pem)
    bouncer = sv.PgBouncer(tls_stack.bins, tls_stack.account, tls_stack.root, "pgbouncer-other-ca")
    port = sv.free_port()
    try:
        bouncer.start(
            tls_stack.bouncer_ini(port, bouncer.users_path, other_ca),
            mdb.pgbouncer_users(DB_USER, tls_stack.password),
            port,
        )
        with pytest.raises(psycopg2.OperationalError):
            psycopg2.connect(
                host="127.0.0.1",
                port=port,
                dbname=mdb.pgbouncer_metadata_alias("airflow"),
                user=DB_USER,
                password=tls_stack.password,
                sslmode="disable",
                connect_timeout=CONNECT_TIMEOUT_S,
            )
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while "certificate verify failed" not in bouncer.log_text():
            assert time.monotonic() < deadline, bouncer.log_text()
            time.sleep(0.1)
    finally:
        bouncer.stop()
    assert "certificate verify failed" in bouncer.log_text()
    assert "certificate verify failed" not in tls_stack.bouncer.log_text()
    right = psycopg2.connect(libpq_uri(tls_stack.airflow.sync_uri))
    right.close()


def test_sync_engine_through_pgbouncer_has_no_failures(tls_env: dict[str, str]) -> None:
    result = run_load(tls_env, "sync")
    assert_no_failures("sync through PgBouncer", result, mdb.SYNC_DRIVER)


def test_async_engine_through_pgbouncer_has_no_failures(tls_env: dict[str, str]) -> None:
    result = run_load(tls_env, "async")
    assert_no_failures("async through PgBouncer", result, mdb.ASYNC_DRIVER)


def fails_within_rounds(
    env: dict[str, str], mode: str, label: str, driver: str
) -> dict[str, object]:
    """Run the load up to CONTROL_ROUNDS times; the first result with failures."""
    counts = []
    for round_ in range(1, CONTROL_ROUNDS + 1):
        result = run_load(env, mode)
        assert result["driver"] == driver
        record_figure(load_figure(f"{label} (round {round_})", result))
        counts.append(result["failures"])
        if result["failures"]:
            return result
    pytest.fail(f"{label} never failed ({counts}): the load would detect nothing")


def test_undecided_driver_fails_under_the_same_load(
    tls_stack: TlsStack, tls_env: dict[str, str]
) -> None:
    """The control: a bare ``postgresql://`` is psycopg 3 under SQLAlchemy 2.1, and breaks."""
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip("psycopg 3 is not installed: the control needs it")
    env = {**tls_env, mdb.SYNC_CONN_ENV: libpq_uri(tls_stack.airflow.sync_uri)}
    result = fails_within_rounds(env, "sync", "control, bare postgresql://", "psycopg")
    assert "prepared statement" in " ".join(result["errors"])  # type: ignore[arg-type]


def test_async_engine_without_the_connect_args_fails(tls_env: dict[str, str]) -> None:
    """The second control: the URL's cache setting alone leaves asyncpg naming statements."""
    env = {k: v for k, v in tls_env.items() if k != mdb.ASYNC_CONNECT_ARGS_ENV}
    result = fails_within_rounds(env, "async", "control, async URI without connect args", "asyncpg")
    assert "__asyncpg_stmt_" in " ".join(result["errors"])  # type: ignore[arg-type]


def test_airflow_derived_async_uri_is_rejected_by_asyncpg(
    tls_stack: TlsStack, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Without its own async URI, Airflow derives one asyncpg cannot take."""
    home = airflow_home(tmp_path_factory, "airflow-derived")
    env = airflow_env(home, tls_stack.airflow.sync_uri, None)
    done = load_process(env, "async", workers=1, transactions=1)
    assert done.returncode != 0
    assert "unexpected keyword argument 'sslmode'" in done.output


# --- the minikube shape: Postgres in the cluster, no PgBouncer ---------------------------


def test_local_stack_migrates_and_checks(local_env: dict[str, str]) -> None:
    migrate_and_check(local_env, "local stack, no PgBouncer")


def test_local_stack_sync_engine_has_no_failures(local_env: dict[str, str]) -> None:
    result = run_load(local_env, "sync")
    assert_no_failures("sync, local stack", result, mdb.SYNC_DRIVER)


def test_local_stack_async_engine_has_no_failures(local_env: dict[str, str]) -> None:
    result = run_load(local_env, "async")
    assert_no_failures("async, local stack", result, mdb.ASYNC_DRIVER)
