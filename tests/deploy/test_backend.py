"""Each stack's backend: local on this machine's file backend, eks on the shared S3 + KMS one.

Sources of the rules: pulumi/pulumi `pkg/backend/diy/lock.go` (the S3/file backend
locks each stack update with a lock object, so two machines on one bucket cannot update
a stack at once) and Pulumi's docs on state and secrets providers (a file backend lives
where the CLI runs; a lost passphrase makes the secrets unreadable, `awskms://` ties
them to a KMS key and IAM).
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from deploy.backend import BackendError, backend_for, ensure_local_state
from deploy.bootstrap import BACKEND_FILE, StateBackend, render_backend_file

SHARED = StateBackend(
    bucket="airflow-platform-pulumi-state-123456789012-eu-west-1",
    region="eu-west-1",
    key_alias="alias/airflow-platform-pulumi-secrets",
)


def test_local_stack_uses_the_file_backend_and_a_generated_passphrase(tmp_path: Path) -> None:
    backend = backend_for(tmp_path, "local", "minikube", {})
    assert backend.url == (tmp_path / ".pulumi-state").resolve().as_uri()
    assert backend.secrets_provider == "passphrase" and not backend.shared
    env = backend.env()
    assert env["PULUMI_BACKEND_URL"].startswith("file://")
    ensure_local_state(backend)
    passphrase = Path(env["PULUMI_CONFIG_PASSPHRASE_FILE"])
    assert len(passphrase.read_text()) == 64
    assert stat.S_IMODE(passphrase.stat().st_mode) == 0o600
    first = passphrase.read_text()
    ensure_local_state(backend)
    assert passphrase.read_text() == first, "generated once, never replaced"


def test_a_given_passphrase_is_left_alone(tmp_path: Path) -> None:
    backend = backend_for(tmp_path, "local", "minikube", {"PULUMI_CONFIG_PASSPHRASE": "x"})
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in backend.env()


def test_eks_stack_without_bootstrap_says_how_to_bootstrap(tmp_path: Path) -> None:
    with pytest.raises(BackendError) as err:
        backend_for(tmp_path, "production", "eks", {})
    assert "make bootstrap REGION=" in str(err.value) and BACKEND_FILE in str(err.value)


def test_eks_stack_uses_the_committed_shared_backend(tmp_path: Path) -> None:
    (tmp_path / BACKEND_FILE).write_text(render_backend_file(SHARED))
    backend = backend_for(tmp_path, "production", "eks", {})
    assert backend.shared
    assert backend.url == f"s3://{SHARED.bucket}?region=eu-west-1"
    assert backend.secrets_provider == (
        "awskms://alias/airflow-platform-pulumi-secrets?region=eu-west-1"
    )
    assert "PULUMI_CONFIG_PASSPHRASE_FILE" not in backend.env()


def test_eks_stack_refuses_a_machine_local_backend(tmp_path: Path) -> None:
    (tmp_path / BACKEND_FILE).write_text(render_backend_file(SHARED))
    with pytest.raises(BackendError, match="this machine only"):
        backend_for(tmp_path, "production", "eks", {"PULUMI_BACKEND_URL": "file:///tmp/state"})


def test_an_explicit_shared_backend_needs_its_kms_key(tmp_path: Path) -> None:
    env = {"PULUMI_BACKEND_URL": "s3://other-bucket?region=eu-west-1"}
    with pytest.raises(BackendError, match="PULUMI_SECRETS_PROVIDER"):
        backend_for(tmp_path, "integration", "eks", env)
    env["PULUMI_SECRETS_PROVIDER"] = "awskms://alias/other?region=eu-west-1"
    backend = backend_for(tmp_path, "integration", "eks", env)
    assert backend.url == env["PULUMI_BACKEND_URL"] and backend.shared


def test_a_broken_backend_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / BACKEND_FILE).write_text("backend_url: file:///x\n")
    with pytest.raises(BackendError, match=BACKEND_FILE):
        backend_for(tmp_path, "production", "eks", {})
