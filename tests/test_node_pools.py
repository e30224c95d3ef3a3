"""Nodes that follow the task load, storage that provisions, an ALB class: EKS Auto Mode.

Sources: Amazon EKS User Guide, "Automate cluster infrastructure with EKS Auto Mode" (the
managed Karpenter, EBS CSI driver `ebs.csi.eks.amazonaws.com` and load balancer controller
`eks.amazonaws.com/alb`; the built-in `system` pool and its `default` NodeClass), "Create a
Node Pool for EKS Auto Mode", "Create a storage class", "Create an IngressClass"; Karpenter
docs, "NodePools" (requirements, limits, disruption) and "Disruption" (`karpenter.sh/
do-not-disrupt` keeps a pod's node from voluntary disruption).
"""

from __future__ import annotations

from typing import Any

import pytest

from components import node_pools as np
from components.capacity import (
    allocatable,
    memory_gib,
    reserved_millicores,
    task_pool_capacity,
    tasks_per_node,
    vcpus,
)
from components.chart_values import _sizes
from tests.chart_render import render_run, stack_settings
from tests.chart_support import release as airflow_release
from tests.chart_support import storage_classes, values_of
from tests.harness import STACKS, Run, _hex, run_stack

EKS_STACKS = ("integration", "production")
POOL = "kubernetes:karpenter.sh/v1:NodePool"


def pools(run: Run) -> dict[str, dict[str, Any]]:
    return {r.inputs["metadata"]["name"]: r.inputs for r in run.of_type(POOL)}


def requirement(pool: dict[str, Any], key: str) -> list[str]:
    reqs = pool["spec"]["template"]["spec"]["requirements"]
    return next(r["values"] for r in reqs if r["key"] == key)


def test_the_local_stack_stays_lean(stack_runs: dict[str, Run]) -> None:
    run = stack_runs["local"]
    assert run.of_type("airflow-platform:addons:ClusterAddons") == []
    assert run.of_type(POOL) == []
    assert run.of_type("kubernetes:storage.k8s.io/v1:StorageClass") == []


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_auto_mode_runs_compute_storage_and_load_balancing(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    eks = run.one("eks:index:Cluster").inputs
    assert eks["autoMode"]["enabled"] is True
    assert eks["autoMode"]["computeConfig"]["nodePools"] == ["system"]
    assert run.of_type("eks:index:ManagedNodeGroup") == []
    (addons,) = run.of_type("airflow-platform:addons:ClusterAddons")
    kinds = sorted(c.type for c in run.children(addons))
    assert kinds == [
        "kubernetes:eks.amazonaws.com/v1:IngressClassParams",
        "kubernetes:eks.amazonaws.com/v1:NodeClass",
        POOL,
        POOL,
        "kubernetes:networking.k8s.io/v1:IngressClass",
        "kubernetes:storage.k8s.io/v1:StorageClass",
    ]


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_platform_pool_is_small_stable_and_on_demand(
    stack_runs: dict[str, Run], stack: str
) -> None:
    settings = stack_settings(stack)
    pool = pools(stack_runs[stack])[np.PLATFORM_POOL]
    assert requirement(pool, "karpenter.sh/capacity-type") == ["on-demand"]
    assert requirement(pool, "node.kubernetes.io/instance-type") == settings.cluster.instance_types
    assert pool["spec"]["disruption"]["consolidationPolicy"] == "WhenEmpty"
    assert pool["spec"]["disruption"]["budgets"] == [{"nodes": "1"}]
    largest = max(vcpus(t) for t in settings.cluster.instance_types)
    assert pool["spec"]["limits"]["cpu"] == str(settings.cluster.max_nodes * largest)
    assert pool["spec"]["template"]["spec"]["nodeClassRef"] == np.NODE_CLASS_REF
    assert "taints" not in pool["spec"]["template"]["spec"]


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_nodes_launch_in_the_private_subnets_only(stack_runs: dict[str, Run], stack: str) -> None:
    """A NodeClass selects subnets by id (a tag could match another VPC's subnets), with the
    cluster security group the database admits, as the node role EKS gave an access entry."""
    run = stack_runs[stack]
    node_class = run.one("kubernetes:eks.amazonaws.com/v1:NodeClass").inputs
    subnets = run.of_type("aws:ec2/subnet:Subnet")
    private = {
        f"subnet-{_hex(s.name)}"  # the id the mocks give a subnet
        for s in subnets
        if s.inputs["tags"].get("kubernetes.io/role/internal-elb") == "1"
    }
    public = {
        f"subnet-{_hex(s.name)}"
        for s in subnets
        if s.inputs["tags"].get("kubernetes.io/role/elb") == "1"
    }
    chosen = {t["id"] for t in node_class["spec"]["subnetSelectorTerms"]}
    assert chosen == private and not chosen & public
    eks = run.one("eks:index:Cluster").outputs
    assert node_class["spec"]["securityGroupSelectorTerms"] == [
        {"id": eks["clusterSecurityGroupId"]}
    ]
    assert node_class["spec"]["role"] == eks["autoModeNodeRoleName"]
    rule = run.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule").inputs
    assert rule["referencedSecurityGroupId"] == eks["clusterSecurityGroupId"]


@pytest.mark.parametrize(("stack", "spot"), [("integration", True), ("production", False)])
def test_task_pool_follows_the_load_and_shrinks_to_zero(
    stack_runs: dict[str, Run], stack: str, spot: bool
) -> None:
    """No minimum size exists on a NodePool: with consolidation on empty or underused nodes,
    an idle task pool has no nodes. Spot only where allowed, never on production."""
    settings = stack_settings(stack)
    pool = pools(stack_runs[stack])[np.TASK_POOL]
    assert ("spot" in requirement(pool, "karpenter.sh/capacity-type")) is spot
    assert pool["spec"]["disruption"] == {
        "consolidationPolicy": "WhenEmptyOrUnderutilized",
        "consolidateAfter": "1m",
    }
    assert pool["spec"]["limits"] == {"cpu": str(settings.cluster.task_cpu_limit)}
    assert pool["spec"]["template"]["spec"]["taints"] == [np.TASK_TAINT]
    assert "replicas" not in pool["spec"], "no fixed size: the scaler decides"


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_task_pods_land_on_the_task_pool_and_the_rest_on_the_platform_pool(
    stack_runs: dict[str, Run], stack: str
) -> None:
    rendered = render_run(stack_runs[stack])
    for pod in rendered.pods():
        selector = pod.spec.get("nodeSelector") or {}
        tolerations = pod.spec.get("tolerations") or []
        if pod.component == "worker":
            assert selector == np.TASK_SELECTOR, pod.owner
            assert np.TASK_TOLERATION in tolerations, pod.owner
            assert pod.annotations.get("karpenter.sh/do-not-disrupt") == "true", pod.owner
        else:
            assert selector == np.PLATFORM_SELECTOR, pod.owner
            assert np.TASK_TOLERATION not in tolerations, pod.owner


def test_minikube_pods_are_not_pinned(stack_runs: dict[str, Run]) -> None:
    for pod in render_run(stack_runs["local"]).pods():
        assert not pod.spec.get("nodeSelector"), pod.owner


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_claims_get_an_encrypted_gp3_volume(stack_runs: dict[str, Run], stack: str) -> None:
    """EKS 1.30+ marks no StorageClass default; Auto Mode's driver serves the program's."""
    classes = storage_classes(stack_runs[stack])
    defaults = [c for c in classes.values() if c.default]
    assert [c.name for c in defaults] == [np.STORAGE_CLASS]
    assert defaults[0].provisioner == np.EBS_PROVISIONER
    assert defaults[0].provisioned_by == "EKS Auto Mode block storage"
    sc = stack_runs[stack].one("kubernetes:storage.k8s.io/v1:StorageClass").inputs
    assert sc["parameters"] == {"type": "gp3", "encrypted": "true"}
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"


def test_an_ingress_becomes_an_internal_alb_with_tls_from_acm() -> None:
    cert = "arn:aws:acm:eu-west-1:123456789012:certificate/0f3c2d1e-1111-2222-3333-444455556666"
    run = run_stack(
        "production",
        set_values={
            "airflow.ingress.enabled": True,
            "airflow.ingress.host": "airflow.internal.example.com",
            "airflow.ingress.certificateArn": cert,
        },
    )
    params = run.one("kubernetes:eks.amazonaws.com/v1:IngressClassParams").inputs
    ingress_class = run.one("kubernetes:networking.k8s.io/v1:IngressClass").inputs
    assert params["spec"] == {"scheme": "internal"}
    assert ingress_class["spec"]["controller"] == np.ALB_CONTROLLER
    assert ingress_class["metadata"]["name"] == np.INGRESS_CLASS
    ingress = values_of(run)["ingress"]["apiServer"]
    assert ingress["ingressClassName"] == np.INGRESS_CLASS
    assert ingress["annotations"]["alb.ingress.kubernetes.io/certificate-arn"] == cert
    assert ingress["annotations"]["alb.ingress.kubernetes.io/scheme"] == "internal"
    assert run.outputs["ui_url"] == "https://airflow.internal.example.com/"
    (rendered,) = render_run(run).of_kind("Ingress")
    assert rendered["spec"]["ingressClassName"] == np.INGRESS_CLASS


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_the_release_does_not_wait_for_the_add_ons(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    release = airflow_release(run)
    (addons,) = run.of_type("airflow-platform:addons:ClusterAddons")
    for child in [addons, *run.children(addons)]:
        assert not run.depends_on(release, child), child.name
    rds = run.one("aws:rds/instance:Instance")
    for child in run.children(addons):
        assert not run.depends_on(child, rds), child.name


# --- capacity arithmetic ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instance_type", "cpus", "gib"),
    [
        ("m6i.large", 2, 8),
        ("m6i.xlarge", 4, 16),
        ("m6i.4xlarge", 16, 64),
        ("c6i.2xlarge", 8, 16),
        ("r6i.large", 2, 16),
        ("t3.large", 2, 8),
        ("t3a.medium", 2, 4),
    ],
)
def test_instance_sizes_by_their_names(instance_type: str, cpus: int, gib: int) -> None:
    """EC2 "Instance types" (Amazon EC2 docs): vCPUs by size, GiB per vCPU by family."""
    assert (vcpus(instance_type), memory_gib(instance_type)) == (cpus, gib)


def test_unknown_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        vcpus("m6i.metal")
    with pytest.raises(ValueError):
        memory_gib("p5.48xlarge")


def test_the_kubelet_reservation_follows_the_eks_formula() -> None:
    """EKS AMI bootstrap: 6 % of the first core, 1 % of the second, 0.5 % of cores 3-4,
    0.25 % of the rest."""
    assert [reserved_millicores(n) for n in (1, 2, 4, 8)] == [60, 70, 80, 90]
    cpu, memory = allocatable("m6i.xlarge")
    assert cpu == 3920 and 14_000 < memory < 16 * 1024


def test_tasks_per_node_are_bound_by_the_scarcer_resource() -> None:
    assert tasks_per_node("m6i.xlarge", "500m", "1Gi") == 7  # CPU-bound
    assert tasks_per_node("c6i.xlarge", "250m", "1Gi") == 6  # memory-bound


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_production_holds_200_concurrent_tasks_without_a_config_change(stack: str) -> None:
    settings = stack_settings(stack)
    worker = _sizes(settings).worker
    capacity = task_pool_capacity(
        settings.cluster.instance_types,
        settings.cluster.task_cpu_limit,
        worker["requests"]["cpu"],
        worker["requests"]["memory"],
    )
    print(
        f"\n{stack}: {capacity.tasks} concurrent tasks of {worker['requests']} on"
        f" {capacity.nodes} x {capacity.instance_type} ({capacity.per_node} per node)"
    )
    if settings.is_production:
        assert capacity.tasks >= 200
    else:
        assert capacity.tasks > 0


def test_every_stack_is_covered(stack_runs: dict[str, Run]) -> None:
    assert set(stack_runs) == set(STACKS)
