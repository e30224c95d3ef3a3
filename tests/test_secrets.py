"""Secrets reach the engine only as secrets; no plaintext secret in any input or output."""

from __future__ import annotations

import pytest

from tests.harness import SECRET_SIG, SIG_KEY, STACKS, Run, fake_secret, run_stack
from tests.secrets_check import plaintext_leaks

PRIVATE_REPO = {
    "set_values": {
        "airflow.gitSync.repo": "git@github.com:acme-data/airflow-platform.git",
        "gitSyncKnownHosts": "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6",
    },
    "set_secrets": {"gitSyncSshKey": fake_secret("gitSyncSshKey")},
}


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_rds_password_and_kubeconfig_are_secrets(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    rds = run.one("aws:rds/instance:Instance")
    assert "password" in rds.secret_paths()
    assert rds.inputs["password"].startswith("TESTSECRET-")
    provider = next(
        r for r in run.of_type("pulumi:providers:kubernetes") if "kubeconfig" in r.raw_inputs
    )
    assert "kubeconfig" in provider.secret_paths()
    assert "kubeconfig" in run.secret_outputs
    image = run.one("docker:index/image:Image")
    assert {"registry", "registry.password"} & set(image.secret_paths())
    assert image.inputs["registry"]["password"].startswith("TESTSECRET-")


def test_local_database_password_is_a_secret(stack_runs: dict[str, Run]) -> None:
    secret = next(
        r
        for r in stack_runs["local"].of_type("kubernetes:core/v1:Secret")
        if r.name == "database-credentials"
    )
    assert secret.has_secret_under("stringData")
    statefulset = stack_runs["local"].one("kubernetes:apps/v1:StatefulSet")
    env = statefulset.inputs["spec"]["template"]["spec"]["containers"][0]["env"]
    password = next(e for e in env if e["name"] == "POSTGRES_PASSWORD")
    assert "value" not in password and password["valueFrom"]["secretKeyRef"]["name"]


@pytest.mark.parametrize("stack", STACKS)
def test_no_plaintext_secret_anywhere(stack_runs: dict[str, Run], stack: str) -> None:
    assert plaintext_leaks(stack_runs[stack]) == []


@pytest.mark.parametrize("stack", STACKS)
def test_no_plaintext_secret_with_stack_secrets_set(stack: str) -> None:
    run = run_stack(stack, **PRIVATE_REPO)  # type: ignore[arg-type]
    assert plaintext_leaks(run) == []


def test_the_leak_check_finds_a_plaintext_secret() -> None:
    run = Run("x", [], {"db": "TESTSECRET-x", "kubeconfig": "TESTSECRET-y"}, {"kubeconfig"}, [])
    assert plaintext_leaks(run) == ["output db: TESTSECRET-x"]
    wrapped = {SIG_KEY: SECRET_SIG, "value": "TESTSECRET-z"}
    assert plaintext_leaks(Run("x", [], {"a": wrapped}, set(), [])) == []
