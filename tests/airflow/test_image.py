"""Static checks of image/: pinned base and packages, no secrets, runs as airflow."""

from __future__ import annotations

import re
from importlib.metadata import version

import pytest

from tests.airflow.af_harness import REPO_ROOT

IMAGE_DIR = REPO_ROOT / "image"
DOCKERFILE = (IMAGE_DIR / "Dockerfile").read_text()
BASE_IMAGE = "apache/airflow:3.2.2-python3.12"


def instructions() -> list[tuple[str, str]]:
    """Dockerfile instructions as (KEYWORD, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, args = stripped.partition(" ")
            result.append((keyword.upper(), args.strip()))
    return result


def requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in (IMAGE_DIR / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, pinned = line.partition("==")
            assert sep, f"{line!r} is not pinned with =="
            pins[name.strip()] = pinned.strip()
    return pins


def test_base_image_is_the_pinned_official_image() -> None:
    froms = [args for kw, args in instructions() if kw == "FROM"]
    assert froms == [BASE_IMAGE]


def test_image_runs_as_airflow_user() -> None:
    users = [args for kw, args in instructions() if kw == "USER"]
    assert users and users[-1] == "airflow"
    assert instructions()[-1] == ("USER", "airflow")


def test_pip_install_keeps_airflow_version_and_uses_no_cache() -> None:
    runs = " ".join(args for kw, args in instructions() if kw == "RUN")
    assert "pip install --no-cache-dir" in runs
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in runs
    assert "-r /opt/airflow/platform-requirements.txt" in runs


def test_no_secrets_baked_in() -> None:
    for kw, args in instructions():
        if kw in {"ENV", "ARG"}:
            assert not re.search(r"(?i)(secret|password|token|access_key|fernet)", args), args
    assert not re.search(r"AKIA[0-9A-Z]{16}", DOCKERFILE)


@pytest.mark.parametrize(
    "package", ["apache-airflow-providers-amazon", "apache-airflow-providers-cncf-kubernetes"]
)
def test_providers_pinned_to_the_versions_under_test(package: str) -> None:
    assert requirements()[package] == version(package)


def test_dockerignore_admits_only_the_build_inputs() -> None:
    lines = [
        line.strip()
        for line in (IMAGE_DIR / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == ["*", "!Dockerfile", "!requirements.txt"]
