"""The values components.metadata_db hands the release, checked without servers."""

from __future__ import annotations

import configparser
import datetime
import hashlib
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from sqlalchemy.engine import make_url

from components import chart_values as cv
from components import metadata_db as mdb
from tests.chart_support import secrets_by_name
from tests.harness import Run
from tests.metadata.conftest import DB_NAME, DB_USER, POOL_SIZE, RELEASE_NAME

PASSWORD = "p@ss:w/rd%+?"


def ini_sections(text: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)
    return parser


def test_sync_uri_names_psycopg2_and_escapes_credentials() -> None:
    uri = mdb.sync_uri("air flow", PASSWORD, "db.example", 5432, "meta/db", mdb.TlsMode.REQUIRE)
    assert uri.startswith("postgresql+psycopg2://")
    url = make_url(uri)
    assert (url.username, url.password, url.host, url.port, url.database) == (
        "air flow",
        PASSWORD,
        "db.example",
        5432,
        "meta/db",
    )
    assert dict(url.query) == {"sslmode": "require"}
    assert url.get_dialect().driver == "psycopg2"


def test_sync_uri_with_a_ca_file_verifies() -> None:
    uri = mdb.sync_uri("u", "p", "h", 1, "d", mdb.TlsMode.VERIFY_FULL, ca_file="/ca.pem")
    assert dict(make_url(uri).query) == {"sslmode": "verify-full", "sslrootcert": "/ca.pem"}


@pytest.mark.parametrize("tls", list(mdb.TlsMode))
def test_async_uri_is_asyncpg_with_ssl_in_its_own_terms(tls: mdb.TlsMode) -> None:
    uri = mdb.async_uri("airflow", PASSWORD, "pgb", 6543, "airflow-metadata", tls)
    url = make_url(uri)
    assert url.drivername == "postgresql+asyncpg"
    assert url.password == PASSWORD
    assert "sslmode" not in url.query
    dialect = url.get_dialect()()
    _, kwargs = dialect.create_connect_args(url)
    assert kwargs["ssl"] == tls.value
    assert kwargs["prepared_statement_cache_size"] == 0
    assert "sslmode" not in kwargs


def test_airflow_would_derive_an_async_uri_asyncpg_rejects() -> None:
    """Why the async URI is its own value: Airflow's derivation keeps ``sslmode``."""
    from airflow.settings import _get_async_conn_uri_from_sync

    sync = mdb.sync_uri("u", "p", "h", 1, "d", mdb.TlsMode.DISABLE)
    derived = _get_async_conn_uri_from_sync(sync)
    assert derived.startswith("postgresql+asyncpg://")
    assert "sslmode=disable" in derived


def test_local_settings_define_the_connect_args_airflow_imports() -> None:
    namespace: dict[str, object] = {}
    exec(compile(mdb.airflow_local_settings(), "airflow_local_settings.py", "exec"), namespace)  # noqa: S102
    module, _, name = mdb.ASYNC_CONNECT_ARGS_IMPORT_PATH.rpartition(".")
    assert module == "airflow_local_settings"
    assert namespace[name] == {"statement_cache_size": 0}


def test_secret_keys_and_env_names() -> None:
    assert mdb.SECRET_KEYS.connection == "connection"
    assert mdb.SECRET_KEYS.async_connection == "async-connection"
    assert (mdb.PGBOUNCER_SECRET_KEYS.ini, mdb.PGBOUNCER_SECRET_KEYS.users) == (
        "pgbouncer.ini",
        "users.txt",
    )
    assert mdb.ASYNC_CONN_ENV == "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"
    assert mdb.ASYNC_CONNECT_ARGS_ENV == "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"
    assert mdb.async_connection_env("the-secret") == {
        "envName": "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC",
        "secretName": "the-secret",
        "secretKey": "async-connection",
    }


def test_stats_uri_is_libpq_syntax_for_the_exporter() -> None:
    assert mdb.stats_uri("airflow", "p@ss") == (
        "postgresql://airflow:p%40ss@127.0.0.1:6543/pgbouncer?sslmode=disable"
    )


def test_pgbouncer_ini_for_the_chart_verifies_rds() -> None:
    alias = mdb.pgbouncer_metadata_alias("airflow")
    text = mdb.pgbouncer_ini("db.rds.example", 5432, "airflow", "airflow", 20, alias)
    ini = ini_sections(text)
    assert ini["databases"][alias] == ("host=db.rds.example dbname=airflow port=5432 pool_size=20")
    bouncer = ini["pgbouncer"]
    assert bouncer["pool_mode"] == "transaction"
    assert bouncer["listen_addr"] == "*"
    assert bouncer["listen_port"] == str(mdb.PGBOUNCER_PORT)
    assert bouncer["auth_type"] == "scram-sha-256"
    assert bouncer["auth_file"] == "/etc/pgbouncer/users.txt"
    assert bouncer["stats_users"] == "airflow"
    assert bouncer["server_tls_sslmode"] == "verify-full"
    assert bouncer["server_tls_ca_file"] == mdb.RDS_CA_MOUNT_PATH
    assert "unix_socket_dir" not in bouncer


def test_the_ca_mount_is_where_the_ini_looks() -> None:
    assert f"{mdb.RDS_CA_MOUNT_DIR}/{mdb.RDS_CA_CONFIGMAP_KEY}" == mdb.RDS_CA_MOUNT_PATH
    volumes = mdb.pgbouncer_ca_volumes("rds-ca")
    assert volumes == {
        "extraVolumes": [{"name": "rds-ca", "configMap": {"name": "rds-ca"}}],
        "extraVolumeMounts": [
            {
                "name": "rds-ca",
                "mountPath": mdb.RDS_CA_MOUNT_PATH,
                "subPath": mdb.RDS_CA_CONFIGMAP_KEY,
                "readOnly": True,
            }
        ],
    }


def test_users_txt_quotes_the_user() -> None:
    assert mdb.pgbouncer_users("airflow", PASSWORD) == f'"airflow" "{PASSWORD}"\n'


def test_rds_ca_bundle_is_x509_ca_certificates() -> None:
    pem = mdb.rds_ca_bundle_pem()
    certs = x509.load_pem_x509_certificates(pem.encode())
    assert len(certs) == pem.count("-----BEGIN CERTIFICATE-----") > 50
    for cert in certs:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        assert constraints.ca, cert.subject.rfc4514_string()
        organisation = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        assert organisation[0].value == "Amazon Web Services, Inc."
    now = datetime.datetime.now(datetime.UTC)
    current = {
        str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        for cert in certs
        if cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
    }
    for kind in ("RSA2048", "RSA4096", "ECC384"):
        assert f"Amazon RDS us-east-1 Root CA {kind} G1" in current
        assert f"Amazon RDS eu-west-1 Root CA {kind} G1" in current


def test_rds_ca_bundle_matches_its_recorded_sha256(tmp_path: Path) -> None:
    recorded = Path(f"{mdb.RDS_CA_BUNDLE_FILE}.sha256").read_text().split()
    data = mdb.RDS_CA_BUNDLE_FILE.read_bytes()
    assert recorded == [hashlib.sha256(data).hexdigest(), mdb.RDS_CA_BUNDLE_FILE.name]
    copy = tmp_path / mdb.RDS_CA_BUNDLE_FILE.name
    copy.write_bytes(data.replace(b"MII", b"MIJ", 1))
    shutil.copy(f"{mdb.RDS_CA_BUNDLE_FILE}.sha256", tmp_path)
    with pytest.raises(ValueError, match="sha256"):
        mdb.rds_ca_bundle_pem(copy)


def test_rds_ca_bundle_covers_the_stacks_regions() -> None:
    regions = mdb.rds_ca_regions()
    assert {"eu-west-1", "us-east-1"} <= regions
    assert len(regions) >= 25
    assert "Beta" not in " ".join(regions)


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_the_servers_run_what_the_release_generates(stack_runs: dict[str, Run], stack: str) -> None:
    """The fixture's PgBouncer is configured by the same call the release makes: the release's
    pgbouncer.ini equals the function's output for its own arguments, and the servers' ini is
    that output with only the listen address, ports, file paths and CA file substituted."""
    run = stack_runs[stack]
    created = secrets_by_name(run)
    ini = created[cv.SECRETS.pgbouncer_config].inputs["stringData"][mdb.PGBOUNCER_SECRET_KEYS.ini]
    rds = run.one("aws:rds/instance:Instance").outputs
    alias = mdb.pgbouncer_metadata_alias(RELEASE_NAME)
    assert ini == mdb.pgbouncer_ini(rds["address"], 5432, DB_NAME, DB_USER, POOL_SIZE, alias)
    metadata = created[cv.SECRETS.metadata].inputs["stringData"]
    password = run.one("aws:rds/instance:Instance").inputs["password"]
    host = mdb.pgbouncer_host("airflow", RELEASE_NAME)
    for key, uri in (
        (mdb.SECRET_KEYS.connection, mdb.sync_uri),
        (mdb.SECRET_KEYS.async_connection, mdb.async_uri),
    ):
        assert metadata[key] == uri(
            DB_USER, password, host, mdb.PGBOUNCER_PORT, alias, mdb.TlsMode.DISABLE
        )
    assert RELEASE_NAME == cv.RELEASE_NAME
