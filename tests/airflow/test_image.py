"""Static checks of image/: pinned base and packages, no secrets, runs as airflow."""

from __future__ import annotations

import re
import shlex
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.airflow.af_harness import REPO_ROOT

IMAGE_DIR = REPO_ROOT / "image"
DOCKERFILE = (IMAGE_DIR / "Dockerfile").read_text()
BASE_IMAGE = "apache/airflow:3.2.2-python3.12"
DB_CONSTRAINTS = IMAGE_DIR / "metadata-db-constraints.txt"
AIRFLOW_CONSTRAINTS_URL = (
    "https://raw.githubusercontent.com/apache/airflow/"
    "constraints-${AIRFLOW_VERSION}/constraints-${PYTHON_VERSION}.txt"
)
DB_STACK = {"SQLAlchemy", "psycopg2-binary", "asyncpg"}
"""The stack named as install targets; the pins also hold psycopg 3 (see the pins file)."""
PINNED_STACK = DB_STACK | {"psycopg", "psycopg-binary"}


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


def requirements(path: Path = IMAGE_DIR / "requirements.txt") -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
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
    assert lines == ["*", "!Dockerfile", "!requirements.txt", f"!{DB_CONSTRAINTS.name}"]


def pip_installs() -> list[list[str]]:
    """The arguments of every `pip install` in a RUN instruction, shell-split."""
    installs = []
    for kw, args in instructions():
        if kw != "RUN":
            continue
        for command in args.split("&&"):
            words = shlex.split(command)
            if words[:2] == ["pip", "install"]:
                installs.append(words[2:])
    return installs


def constraints_of(words: list[str]) -> list[str]:
    return [words[i + 1] for i, word in enumerate(words) if word == "--constraint"]


def test_airflow_is_installed_with_its_own_constraints_for_the_image_python() -> None:
    python_args = [args for kw, args in instructions() if kw == "ARG" and "PYTHON_VERSION" in args]
    assert python_args == [f"PYTHON_VERSION={BASE_IMAGE.rpartition('-python')[2]}"]
    assert BASE_IMAGE.split(":")[1].split("-")[0] == version("apache-airflow")
    with_airflow_constraints = [
        words for words in pip_installs() if AIRFLOW_CONSTRAINTS_URL in constraints_of(words)
    ]
    assert len(with_airflow_constraints) == 1
    targets = with_airflow_constraints[0]
    assert "apache-airflow==${AIRFLOW_VERSION}" in targets
    assert set(targets) >= DB_STACK
    runs = " ".join(args for kw, args in instructions() if kw == "RUN")
    assert '= "${PYTHON_VERSION}"' in runs, "the build checks the image's Python"


def test_platform_packages_keep_the_tested_database_stack() -> None:
    copied = f"{DB_CONSTRAINTS.name} /opt/airflow/{DB_CONSTRAINTS.name}"
    assert any(kw == "COPY" and args.endswith(copied) for kw, args in instructions())
    platform = [w for w in pip_installs() if "/opt/airflow/platform-requirements.txt" in w]
    assert len(platform) == 1
    words = platform[0]
    assert constraints_of(words) == [f"/opt/airflow/{DB_CONSTRAINTS.name}"]
    assert set(words) >= DB_STACK, "the drivers are install targets, held by the pins"
    assert "psycopg[binary]" in words, "psycopg 3 as in the tests"
    assert "apache-airflow==${AIRFLOW_VERSION}" in words


def test_database_stack_pins_equal_the_test_environment() -> None:
    pins = requirements(DB_CONSTRAINTS)
    assert set(pins) == PINNED_STACK
    for package, pinned in pins.items():
        assert version(package) == pinned, package
    dev = (IMAGE_DIR.parent / "requirements-dev.txt").read_text().splitlines()
    lock = (IMAGE_DIR.parent / "requirements.lock").read_text().splitlines()
    for package, pinned in pins.items():
        assert f"{package}=={pinned}" in lock
        if package in ("psycopg2-binary", "asyncpg"):
            assert f"{package}=={pinned}" in dev
    assert "psycopg[binary]==" + pins["psycopg"] in dev
