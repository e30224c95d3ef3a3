"""Each stack file builds the resources the per-stack matrix promises, wired as components."""

from __future__ import annotations

import pytest

from components.upgrades import GUARD_TYPE
from tests.harness import STACKS, Run

COMPONENT_PREFIX = "airflow-platform:"


def count(run: Run, type_: str) -> int:
    return run.type_counts().get(type_, 0)


def test_local_runs_on_minikube_without_aws(stack_runs: dict[str, Run]) -> None:
    run = stack_runs["local"]
    assert [r for r in run.resources if r.type.startswith("aws:")] == []
    assert count(run, "eks:index:Cluster") == 0
    assert count(run, "airflow-platform:network:Network") == 0
    postgres = run.one("kubernetes:apps/v1:StatefulSet")
    container = postgres.inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("postgres:")
    claim = postgres.inputs["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert count(run, "kubernetes:core/v1:Service") >= 1
    provider = run.one("pulumi:providers:kubernetes")
    assert provider.inputs["context"] == "minikube"
    image = run.one("docker:index/image:Image")
    assert image.inputs["skipPush"] is True


@pytest.mark.parametrize(("stack", "azs", "nats"), [("integration", 2, 1), ("production", 3, 3)])
def test_eks_network_shape(stack_runs: dict[str, Run], stack: str, azs: int, nats: int) -> None:
    run = stack_runs[stack]
    assert count(run, "aws:ec2/vpc:Vpc") == 1
    subnets = run.of_type("aws:ec2/subnet:Subnet")
    public = [s for s in subnets if s.inputs["tags"].get("kubernetes.io/role/elb") == "1"]
    private = [s for s in subnets if s.inputs["tags"].get("kubernetes.io/role/internal-elb") == "1"]
    assert (len(public), len(private)) == (azs, azs)
    assert len({s.inputs["availabilityZone"] for s in private}) == azs
    assert count(run, "aws:ec2/natGateway:NatGateway") == nats
    assert count(run, "aws:ec2/eip:Eip") == nats
    flow = run.one("aws:ec2/flowLog:FlowLog")
    assert flow.inputs["trafficType"] == "ALL"
    default_sg = run.one("aws:ec2/defaultSecurityGroup:DefaultSecurityGroup")
    assert default_sg.inputs.get("ingress", []) == [] and default_sg.inputs.get("egress", []) == []
    # private subnets route through NAT, never straight to the internet gateway
    private_routes = [
        rt for rt in run.of_type("aws:ec2/routeTable:RouteTable") if "private" in rt.name
    ]
    assert len(private_routes) == azs
    assert all("natGatewayId" in rt.inputs["routes"][0] for rt in private_routes)


def test_integration_database_is_small_single_az(stack_runs: dict[str, Run]) -> None:
    rds = stack_runs["integration"].one("aws:rds/instance:Instance")
    assert rds.inputs["multiAz"] is False
    assert rds.inputs["instanceClass"] == "db.t4g.small"
    assert rds.inputs["skipFinalSnapshot"] is True
    assert rds.protect is True, "integration's data is protected from replacement too"


def test_production_database_is_protected(stack_runs: dict[str, Run]) -> None:
    rds = stack_runs["production"].one("aws:rds/instance:Instance")
    assert rds.inputs["multiAz"] is True
    assert rds.inputs["deletionProtection"] is True
    assert rds.inputs["skipFinalSnapshot"] is False
    assert rds.inputs["finalSnapshotIdentifier"]
    assert rds.inputs["backupRetentionPeriod"] == 14
    assert rds.protect is True


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_rds_is_private_encrypted_and_tls_only(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    rds = run.one("aws:rds/instance:Instance")
    assert rds.inputs["storageEncrypted"] is True
    assert rds.inputs["publiclyAccessible"] is False
    assert rds.inputs["engine"] == "postgres" and rds.inputs["engineVersion"] == "16"
    params = run.one("aws:rds/parameterGroup:ParameterGroup")
    assert {"name": "rds.force_ssl", "value": "1"} in [
        {"name": p["name"], "value": p["value"]} for p in params.inputs["parameters"]
    ]
    assert rds.inputs["parameterGroupName"] == params.outputs["name"]
    rule = run.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert (rule.inputs["fromPort"], rule.inputs["toPort"]) == (5432, 5432)
    assert rule.inputs["referencedSecurityGroupId"] == "sg-0eksclustersg0001"
    assert "cidrIpv4" not in rule.inputs
    sg = run.one("aws:ec2/securityGroup:SecurityGroup")
    assert not sg.inputs.get("ingress")


@pytest.mark.parametrize(
    ("stack", "mutability", "capacity", "public_endpoint"),
    [("integration", "MUTABLE", "SPOT", True), ("production", "IMMUTABLE", "ON_DEMAND", True)],
)
def test_registry_and_cluster_per_stack(
    stack_runs: dict[str, Run], stack: str, mutability: str, capacity: str, public_endpoint: bool
) -> None:
    run = stack_runs[stack]
    repo = run.one("aws:ecr/repository:Repository")
    assert repo.inputs["imageScanningConfiguration"]["scanOnPush"] is True
    assert repo.inputs["imageTagMutability"] == mutability
    assert (
        run.one("aws:ecr/lifecyclePolicy:LifecyclePolicy").inputs["repository"]
        == repo.outputs["name"]
    )
    eks = run.one("eks:index:Cluster")
    assert eks.inputs["createOidcProvider"] is True
    assert eks.inputs["endpointPublicAccess"] is public_endpoint
    assert eks.inputs["endpointPrivateAccess"] is True
    assert sorted(eks.inputs["enabledClusterLogTypes"]) == sorted(
        ["api", "audit", "authenticator", "controllerManager", "scheduler"]
    )
    [secrets_key] = [k for k in run.of_type("aws:kms/key:Key") if k.name == "cluster-secrets"]
    assert eks.inputs["encryptionConfigKeyArn"] == secrets_key.outputs["arn"]
    assert eks.inputs["autoMode"]["enabled"] is True
    assert run.of_type("eks:index:ManagedNodeGroup") == [], "Auto Mode launches the nodes"
    pools = {
        r.inputs["metadata"]["name"]: r.inputs["spec"]
        for r in run.of_type("kubernetes:karpenter.sh/v1:NodePool")
    }
    tasks = pools["airflow-tasks"]["template"]["spec"]["requirements"]
    capacity_types = next(r["values"] for r in tasks if r["key"] == "karpenter.sh/capacity-type")
    assert ("spot" in capacity_types) is (capacity == "SPOT")


def test_image_tag_follows_image_content(stack_runs: dict[str, Run]) -> None:
    from components.naming import content_tag
    from tests.harness import ROOT_DIR

    tag = content_tag(ROOT_DIR / "image")
    for stack in STACKS:
        image = stack_runs[stack].one("docker:index/image:Image")
        assert image.inputs["imageName"].endswith(f":{tag}")
        name = stack_runs[stack].outputs["image"].partition("@")[0]
        assert name.endswith(f":{tag}")


@pytest.mark.parametrize("stack", STACKS)
def test_every_child_is_parented_to_its_component(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    components = {r.urn: r for r in run.resources if r.type.startswith(COMPONENT_PREFIX)}
    assert components, "no components registered"
    for res in run.resources:
        parent = res.parent
        if res.type.startswith(COMPONENT_PREFIX) or res.type == "pulumi:providers:aws":
            assert parent.endswith("pulumi:pulumi:Stack::airflow-platform-" + stack)
            continue
        owner = components.get(parent)
        assert owner is not None, f"{res.type} {res.name} is not inside a component"
        assert res.name.startswith(f"{owner.name}-"), f"{res.name} not named after {owner.name}"
    for component in components.values():
        # The one exception: on minikube the upgrade guard only records versions (no RDS to
        # snapshot, no previous outputs to read).
        if stack == "local" and component.type == GUARD_TYPE:
            continue
        assert run.children(component), f"{component.name} has no children"


@pytest.mark.parametrize("stack", STACKS)
def test_outputs_are_exported(stack_runs: dict[str, Run], stack: str) -> None:
    outputs = stack_runs[stack].outputs
    assert {"cluster_name", "kubeconfig", "db_host", "image"} <= outputs.keys()
    if stack == "local":
        assert outputs["db_host"] == "postgres.airflow-postgres.svc.cluster.local"
    else:
        assert outputs["db_host"].endswith(".rds.amazonaws.com")
        assert outputs["cluster_name"] == f"airflow-platform-{stack}"
