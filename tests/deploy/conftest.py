"""Fixtures for the deploy tests: moto's HTTP server, dummy credentials, clients on it."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from deploy.bootstrap import BACKEND_FILE, render_backend_file
from tests.deploy.test_backend import SHARED
from tests.deploy.test_check import complete_eks_stacks
from tests.harness import ROOT_DIR
from tests.moto_server import moto_server

REGION = "eu-west-1"
DUMMY_ACCOUNT = "123456789012"
"""The account moto answers as when nothing else says which."""


@dataclass(frozen=True)
class Aws:
    """boto3 clients on the moto server, with the dummy credentials."""

    endpoint_url: str

    def client(self, service: str, region: str = REGION, account: str | None = None) -> Any:
        """A client; with `account`, moto serves its requests as that account."""
        import boto3

        client = boto3.client(service, region_name=region, endpoint_url=self.endpoint_url)
        if account is not None:

            def as_account(request: Any, **_: Any) -> None:
                request.headers["x-moto-account-id"] = account

            client.meta.events.register(f"before-sign.{service}", as_account)
        return client


@dataclass(frozen=True)
class Names:
    bucket: str
    key_alias: str


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server on 127.0.0.1, on a free port, stopped at the end of the session."""
    with moto_server() as endpoint:
        yield endpoint


@pytest.fixture(autouse=True)
def dummy_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Dummy credentials only: no profile, config file or endpoint from the environment."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
        "AWS_ENDPOINT_URL_KMS",
        "AWS_ENDPOINT_URL_STS",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "MOTO_ACCOUNT_ID",
        "MOTO_S3_ALLOW_CROSSACCOUNT_ACCESS",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def aws(moto_endpoint: str, dummy_aws_env: None) -> Aws:
    return Aws(endpoint_url=moto_endpoint)


@pytest.fixture
def names() -> Names:
    """Names no other test uses: the server (and S3's global namespace) is shared."""
    suffix = uuid.uuid4().hex[:10]
    return Names(bucket=f"test-state-{suffix}", key_alias=f"alias/test-secrets-{suffix}")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """The project's stack files, completed by a team and bootstrapped (test_check.py has its
    own, uncompleted copy)."""
    root = tmp_path / "project"
    root.mkdir()
    for path in ROOT_DIR.glob("Pulumi*.yaml"):
        shutil.copy(path, root / path.name)
    complete_eks_stacks(root)
    (root / BACKEND_FILE).write_text(render_backend_file(SHARED))
    return root
