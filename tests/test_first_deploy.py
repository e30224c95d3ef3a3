"""What a real first (and second) `pulumi up` depends on, pinned against the real engine's rules.

Each test names the upstream source of the rule it encodes; the assertions are on
what the program registers under the mock engine, which is exactly what the real
engine would receive.
"""

from __future__ import annotations

import json

import pulumi
import pytest

from components import chart_values as cv
from components.registry import BUILD_CONTEXT, image_platform, pinned_ref
from components.settings import RawConfig, parse_settings
from tests.chart_support import release as airflow_release
from tests.chart_support import secrets_by_name, values_of
from tests.harness import ROOT_DIR, SITE_VALUES, STACKS, Run, fake_secret, run_stack, try_stack

EKS_STACKS = ("integration", "production")
PREFIX = "airflow-platform:"


# --- 2. reaching the API ---------------------------------------------------------------


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_the_api_is_public_only_to_the_deployers_and_private_inside(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """EKS: with a public endpoint, `publicAccessCidrs` is the allow-list (else 0.0.0.0/0);
    private access keeps node and in-VPC traffic inside. pulumi-eks refuses `publicAccessCidrs`
    without a public endpoint (pulumi-eks `nodejs/eks/cluster/cluster.ts`, createCore)."""
    eks = stack_runs[stack].one("eks:index:Cluster")
    assert eks.inputs["endpointPublicAccess"] is True
    assert eks.inputs["endpointPrivateAccess"] is True
    assert eks.inputs["publicAccessCidrs"] == SITE_VALUES[f"{PREFIX}cluster.publicAccessCidrs"]
    rules = stack_runs[stack].of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert [r.inputs.get("cidrIpv4") for r in rules] == [None], "only the database's rule"


def test_a_private_only_endpoint_opens_443_to_the_private_ranges_only() -> None:
    """A private-only endpoint is reached through the cluster security group (EKS user guide,
    "Cluster API server endpoint"): each listed private range gets 443, nothing else."""
    run = run_stack(
        "production",
        set_values={
            "cluster.endpointPublicAccess": False,
            "cluster.privateAccessCidrs": ["10.99.0.0/16", "172.20.0.0/20"],
        },
        remove=("cluster.publicAccessCidrs",),
    )
    eks = run.one("eks:index:Cluster")
    assert eks.inputs["endpointPublicAccess"] is False
    assert "publicAccessCidrs" not in eks.inputs
    rules = [
        r
        for r in run.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
        if r.inputs.get("cidrIpv4")
    ]
    assert sorted(r.inputs["cidrIpv4"] for r in rules) == ["10.99.0.0/16", "172.20.0.0/20"]
    for rule in rules:
        assert (rule.inputs["fromPort"], rule.inputs["toPort"], rule.inputs["ipProtocol"]) == (
            443,
            443,
            "tcp",
        )
        assert rule.inputs["securityGroupId"] == eks.outputs["clusterSecurityGroupId"]


# --- 3. who may use the cluster ---------------------------------------------------------


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_access_entries_grant_the_listed_principals(stack_runs: dict[str, Run], stack: str) -> None:
    """`authenticationMode: API`: only the creator is admin; others need an access entry
    (EKS user guide, "Grant IAM users access to Kubernetes with EKS access entries").
    Cluster admins: AmazonEKSClusterAdminPolicy on the cluster; namespace admins:
    AmazonEKSAdminPolicy scoped to the Airflow namespace."""
    eks = stack_runs[stack].one("eks:index:Cluster")
    assert eks.inputs["authenticationMode"] == "API"
    entries = {
        e["principalArn"]: e["accessPolicies"]["access"]
        for e in eks.inputs["accessEntries"].values()
    }
    admins = SITE_VALUES[f"{PREFIX}cluster.adminArns"]
    editors = SITE_VALUES[f"{PREFIX}cluster.namespaceAdminArns"]
    assert set(entries) == {*admins, *editors}
    for arn in admins:
        assert entries[arn] == {
            "policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy",
            "accessScope": {"type": "cluster"},
        }
    for arn in editors:
        assert entries[arn] == {
            "policyArn": "arn:aws:eks::aws:cluster-access-policy/AmazonEKSAdminPolicy",
            "accessScope": {"type": "namespace", "namespaces": ["airflow"]},
        }


def test_access_policies_follow_the_partition() -> None:
    from components.cluster import access_grants
    from components.settings import Settings

    s = Settings.model_validate(
        {
            "stack": "china",
            "target": "eks",
            "environment": "china",
            "aws": {"region": "cn-north-1"},
            "cluster": {"adminArns": ["arn:aws-cn:iam::123456789012:role/ops"]},
        }
    )
    (grant,) = access_grants(s).values()
    assert grant.policy_arn.startswith("arn:aws-cn:eks::aws:cluster-access-policy/")


# --- 5. nothing waits for storage -------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_triggerer_claims_no_volume(stack_runs: dict[str, Run], stack: str) -> None:
    """Chart 1.22 `triggerer.persistence.enabled: true` claims 100Gi with no class; an EKS cluster
    has no default StorageClass (EKS 1.30+), so it would stay Pending while `skipAwait` reports
    success. Trigger logs go to the remote store like every other log."""
    values = values_of(stack_runs[stack])
    assert values["triggerer"]["persistence"] == {"enabled": False}
    assert values["config"]["logging"]["remote_logging"] == "True"


# --- 6. a first login -------------------------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_every_stack_offers_a_first_login_without_a_password_in_a_file(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """The chart's FAB auth manager needs a user (chart values `config.core.auth_manager`)."""
    run = stack_runs[stack]
    values = values_of(run)
    job = values["createUserJob"]
    assert job["enabled"] is True and job["useHelmHooks"] is True
    script = job["args"][2]
    assert "airflow users create" in script and "airflow users reset-password" in script
    ref = next(e for e in job["env"] if e["name"] == "ADMIN_PASSWORD")["valueFrom"]["secretKeyRef"]
    secret = secrets_by_name(run)[ref["name"]]
    password = secret.inputs["stringData"][ref["key"]]
    assert password == fake_secret("random-airflow-admin-password")
    assert secret.has_secret_under("stringData")
    assert run.outputs["admin_username"] == "admin"
    assert run.outputs["admin_password"] == password
    assert "admin_password" in run.secret_outputs
    assert password not in json.dumps(values)


# --- 8. the release waits for the image ------------------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_the_release_takes_the_image_from_the_build(stack_runs: dict[str, Run], stack: str) -> None:
    """The image reference is an output of the `docker.Image` (pulumi-docker), so Helm can only
    move to a tag whose build (and, on eks, push) succeeded; task pods use the same image."""
    run = stack_runs[stack]
    image = run.one("docker:index/image:Image")
    release = airflow_release(run)
    assert run.depends_on(release, image)
    values = values_of(run)
    assert values["images"]["pod_template"] == values["images"]["airflow"]
    ref = f"{values['images']['airflow']['repository']}:{values['images']['airflow']['tag']}"
    if stack == "local":
        assert ref == image.outputs["imageName"]
    else:
        assert ref == pinned_ref(image.outputs["imageName"], image.outputs["repoDigest"])
        assert "@sha256:" in ref


def test_pinned_ref_refuses_an_image_that_was_not_pushed() -> None:
    with pytest.raises(ValueError):
        pinned_ref("repo:tag", "")


# --- 9. the same build inputs from any checkout -----------------------------------------


@pytest.mark.parametrize("stack", STACKS)
def test_build_inputs_do_not_depend_on_the_checkout(stack_runs: dict[str, Run], stack: str) -> None:
    """pulumi-docker's Image diffs the context and dockerfile paths: an absolute path makes every
    other checkout (CI, the bot, a colleague) rebuild and re-push, which immutable ECR refuses."""
    build = stack_runs[stack].one("docker:index/image:Image").inputs["build"]
    assert build["context"] == BUILD_CONTEXT == "image"
    assert build["dockerfile"] == "image/Dockerfile"
    assert str(ROOT_DIR) not in json.dumps(stack_runs[stack].one("docker:index/image:Image").inputs)
    assert (ROOT_DIR / build["dockerfile"]).is_file()


@pytest.mark.parametrize(
    ("machine", "platform"),
    [("x86_64", "linux/amd64"), ("arm64", "linux/arm64"), ("aarch64", "linux/arm64")],
)
def test_the_local_image_is_built_for_the_machine(machine: str, platform: str) -> None:
    settings = parse_settings(RawConfig("local", {"target": "minikube"}, frozenset()))
    assert image_platform(settings, machine) == platform


# --- 10. no data-destroying update ------------------------------------------------------


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_the_database_cannot_be_replaced(stack_runs: dict[str, Run], stack: str) -> None:
    """The engine refuses to replace a protected resource ("unable to replace resource ...
    as it is currently marked for protection", pulumi/pulumi
    `pkg/resource/deploy/step_generator.go`); a new db name or master user would replace
    the RDS instance and take its data (AWS provider: forceNew on `db_name`, `username`)."""
    rds = stack_runs[stack].one("aws:rds/instance:Instance")
    assert rds.protect is True


def test_a_major_upgrade_is_in_place_and_ordered() -> None:
    """RDS: a major upgrade needs `allow_major_version_upgrade` and a parameter group of the new
    family. The group is named per version, so the engine creates the new one, updates the
    instance to it, and deletes the old one last (Pulumi deletes what left the program after
    the updates that depend on it)."""
    before = run_stack("integration")
    after = run_stack("integration", set_values={"database.engineVersion": "17"})
    old = before.one("aws:rds/parameterGroup:ParameterGroup")
    new = after.one("aws:rds/parameterGroup:ParameterGroup")
    assert (old.inputs["family"], new.inputs["family"]) == ("postgres16", "postgres17")
    assert old.name != new.name, "a new group beside the old, not a replacement under it"
    rds_before = before.one("aws:rds/instance:Instance")
    rds = after.one("aws:rds/instance:Instance")
    assert rds.name == rds_before.name, "the same instance, upgraded in place"
    assert rds.inputs["allowMajorVersionUpgrade"] is True
    assert rds.inputs["applyImmediately"] is True
    assert rds.inputs["engineVersion"] == "17"
    assert rds.inputs["parameterGroupName"] == new.outputs["name"]
    assert after.depends_on(rds, new)


# --- 11. changed secrets roll the pods ---------------------------------------------------


def _checksums(run: Run) -> tuple[str, str]:
    values = values_of(run)
    return (
        values["airflowPodAnnotations"][cv.CHECKSUM_ANNOTATION],
        values["pgbouncer"]["podAnnotations"][cv.CHECKSUM_ANNOTATION],
    )


def test_a_changed_connection_rolls_the_airflow_pods_only() -> None:
    """Connections and variables from the environment are read at process start (Airflow);
    the annotation in each pod template changes with them, so Kubernetes rolls the pods."""
    conns = {"warehouse": "postgres://etl:one@dw:5432/dw"}
    a = run_stack("integration", set_secrets={"connections": json.dumps(conns)})
    b = run_stack(
        "integration",
        set_secrets={"connections": json.dumps({"warehouse": "postgres://etl:two@dw:5432/dw"})},
    )
    again = run_stack("integration", set_secrets={"connections": json.dumps(conns)})
    assert _checksums(a) == _checksums(again), "stable while nothing changes"
    assert _checksums(a)[0] != _checksums(b)[0], "airflow pods roll"
    assert _checksums(a)[1] == _checksums(b)[1], "pgbouncer does not read connections"


def test_a_changed_database_password_rolls_airflow_and_pgbouncer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests import harness

    first = run_stack("integration")
    real = harness.fake_secret

    def rotated(key: str) -> str:
        return real(key) + ("-rotated" if key == "random-database-password" else "")

    monkeypatch.setattr(harness, "fake_secret", rotated)
    second = run_stack("integration")
    old, new = _checksums(first), _checksums(second)
    assert old[0] != new[0] and old[1] != new[1]


def test_the_checksum_does_not_reveal_the_secret() -> None:
    values = values_of(run_stack("local", set_secrets={"adminPassword": "hunter2"}))
    digest = values["airflowPodAnnotations"][cv.CHECKSUM_ANNOTATION]
    assert len(digest) == 64 and "hunter2" not in json.dumps(values)


# --- 15. a settings error is Pulumi's own error, not a traceback -----------------------


def test_a_settings_error_ends_the_run_as_a_run_error() -> None:
    """The Python language host prints a `pulumi.RunError` with `pulumi.log.error(str(e))` and
    a traceback for anything else (pulumi/pulumi `sdk/python/cmd/pulumi-language-python-exec`)."""
    error, run = try_stack("production", set_values={"cluster.version": "1.99"})
    assert isinstance(error, pulumi.RunError)
    assert run.resources == []
    text = str(error)
    assert text.startswith("1 problem(s) in Pulumi.production.yaml:")
    assert "airflow-platform:cluster.version" in text and "Traceback" not in text
