"""Throw-away PostgreSQL 15 and PgBouncer servers on 127.0.0.1, stopped by PID.

PostgreSQL refuses to run as root and so does PgBouncer: when the tests run as root,
both run as the ``postgres`` system user (the Debian package creates it) from a
private directory under /tmp that user owns. Every server is started in the
foreground, so the PID we hold is the server's own; it is stopped with a signal to
that PID, and the kernel kills it if the test process dies first.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime
import ipaddress
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PG_VERSION = "15"
SUPERUSER = "postgres"
START_TIMEOUT_S = 30
STOP_TIMEOUT_S = 15


@dataclass(frozen=True)
class Binaries:
    pg_bindir: Path
    pgbouncer: Path


def find_binaries() -> Binaries | None:
    """PostgreSQL's server binaries (15 preferred) and pgbouncer, or None when missing."""
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda d: (
            d.parent.name != PG_VERSION,
            -int(d.parent.name) if d.parent.name.isdigit() else 0,
        ),
    )
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        installed.append(Path(out.stdout.strip()))
    bindir = next(
        (d for d in installed if (d / "initdb").exists() and (d / "postgres").exists()), None
    )
    bouncer = shutil.which("pgbouncer") or next(
        (p for p in ("/usr/sbin/pgbouncer", "/usr/bin/pgbouncer") if Path(p).exists()), None
    )
    if bindir is None or bouncer is None:
        return None
    return Binaries(pg_bindir=bindir, pgbouncer=Path(bouncer))


def require_binaries() -> Binaries:
    """The binaries; without them skip, except on CI (``CI`` set), where it is a failure."""
    found = find_binaries()
    if found is not None:
        return found
    message = (
        f"PostgreSQL {PG_VERSION} (initdb, postgres) and pgbouncer are needed: "
        "apt-get install -y postgresql pgbouncer"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{read_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"server did not listen on 127.0.0.1:{port} in time:\n{read_tail(log)}")


def read_tail(path: Path, chars: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


# --- who runs the servers -------------------------------------------------------------


@dataclass(frozen=True)
class RunAs:
    """The account the servers run as: ``postgres`` when we are root, else ourselves."""

    uid: int
    gid: int

    @property
    def switching(self) -> bool:
        return self.uid != os.getuid()


def server_account() -> RunAs:
    if os.getuid() != 0:
        return RunAs(os.getuid(), os.getgid())
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", "postgres"], check=True
        )
        pw = pwd.getpwnam("postgres")
    return RunAs(pw.pw_uid, pw.pw_gid)


def _die_with_parent() -> None:
    """In the child, after the user switch: SIGKILL when the test process goes away."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def spawn(cmd: list[str], account: RunAs, log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in the foreground as ``account``, stdout and stderr to ``log``."""
    with log.open("ab") as out:
        kwargs: dict[str, object] = {}
        if account.switching:
            kwargs = {"user": account.uid, "group": account.gid, "extra_groups": []}
        return subprocess.Popen(  # type: ignore[call-overload,no-any-return]
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            preexec_fn=_die_with_parent,
            **kwargs,
        )


def run_as(cmd: list[str], account: RunAs, cwd: Path) -> None:
    kwargs: dict[str, object] = {}
    if account.switching:
        kwargs = {"user": account.uid, "group": account.gid, "extra_groups": []}
    proc = subprocess.run(  # type: ignore[call-overload]
        cmd, cwd=cwd, capture_output=True, text=True, check=False, **kwargs
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")


def stop(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGINT) -> None:
    """Stop one server by its PID: ``sig`` first (fast shutdown), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)


@contextlib.contextmanager
def private_dir(account: RunAs, prefix: str) -> Iterator[Path]:
    """A directory under /tmp that only ``account`` (and root) can enter; removed after."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        os.chown(path, account.uid, account.gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def write_private(path: Path, text: str | bytes, account: RunAs) -> Path:
    """A file only ``account`` can read (keys, passwords, configs)."""
    data = text.encode() if isinstance(text, str) else text
    path.write_bytes(data)
    os.chown(path, account.uid, account.gid)
    path.chmod(0o600)
    return path


# --- certificates ---------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateAuthority:
    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str) -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CertificateAuthority(common_name, key, cert)


def make_server_cert(ca: CertificateAuthority, host: str) -> tuple[bytes, bytes]:
    """(certificate PEM, key PEM) for ``host``, signed by ``ca``."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(host)]
    with contextlib.suppress(ValueError):
        names = [x509.IPAddress(ipaddress.ip_address(host))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(host))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
        .sign(ca.key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


# --- PostgreSQL -----------------------------------------------------------------------


@dataclass
class Postgres:
    """One PostgreSQL 15 cluster listening on 127.0.0.1:``port`` only."""

    bins: Binaries
    account: RunAs
    root: Path
    port: int
    superuser_password: str
    tls: tuple[bytes, bytes] | None
    hba: list[str]
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)
    socket_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "postgres.log"
        self.socket_dir = self.root / "sock"

    def start(self) -> None:
        data = self.root / "data"
        pwfile = write_private(self.root / "pwfile", self.superuser_password, self.account)
        run_as(
            [
                str(self.bins.pg_bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=scram-sha-256",
                f"--pwfile={pwfile}",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
            ],
            self.account,
            self.root,
        )
        pwfile.unlink()
        self.socket_dir.mkdir()
        os.chown(self.socket_dir, self.account.uid, self.account.gid)
        settings = [
            "listen_addresses = '127.0.0.1'",
            f"port = {self.port}",
            f"unix_socket_directories = '{self.socket_dir}'",
            "password_encryption = 'scram-sha-256'",
            "max_connections = 100",
            "shared_buffers = 32MB",
            "fsync = off",
            "synchronous_commit = off",
            "full_page_writes = off",
            "logging_collector = off",
        ]
        if self.tls is not None:
            cert, key = self.tls
            write_private(data / "server.crt", cert, self.account)
            write_private(data / "server.key", key, self.account)
            settings += ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"]
        else:
            settings.append("ssl = off")
        with (data / "postgresql.conf").open("a") as conf:
            conf.write("\n".join(settings) + "\n")
        write_private(data / "pg_hba.conf", "\n".join(self.hba) + "\n", self.account)
        self.proc = spawn(
            [str(self.bins.pg_bindir / "postgres"), "-D", str(data)],
            self.account,
            self.log,
            self.root,
        )
        wait_for_port(self.port, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGINT)

    def admin_dsn(self, database: str = "postgres") -> str:
        """libpq DSN for the superuser over the private unix socket."""
        return (
            f"host={self.socket_dir} port={self.port} dbname={database} "
            f"user={SUPERUSER} password={self.superuser_password}"
        )


# --- PgBouncer ------------------------------------------------------------------------


@dataclass
class PgBouncer:
    bins: Binaries
    account: RunAs
    root: Path
    name: str
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / f"{self.name}.log"

    @property
    def users_path(self) -> Path:
        return self.root / f"{self.name}-users.txt"

    def start(self, ini_text: str, users_text: str, port: int) -> None:
        """Write ``users_text`` to :attr:`users_path` and run PgBouncer with ``ini_text``."""
        write_private(self.users_path, users_text, self.account)
        ini = write_private(self.root / f"{self.name}.ini", ini_text, self.account)
        self.proc = spawn([str(self.bins.pgbouncer), str(ini)], self.account, self.log, self.root)
        wait_for_port(port, self.proc, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc, signal.SIGINT)

    def log_text(self) -> str:
        return read_tail(self.log, 20000)
