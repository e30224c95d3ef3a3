"""Independent resources do not wait on each other: only real data dependencies."""

from __future__ import annotations

import pytest

from tests.harness import Run


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_image_build_and_rds_do_not_wait_for_the_cluster(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    eks = run.one("eks:index:Cluster")
    assert not run.depends_on(run.one("docker:index/image:Image"), eks)
    assert not run.depends_on(run.one("aws:rds/instance:Instance"), eks)
    assert not run.depends_on(run.one("aws:ecr/repository:Repository"), eks)


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_only_the_ingress_rule_needs_the_cluster(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    eks = run.one("eks:index:Cluster")
    rule = run.one("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
    assert run.depends_on(rule, eks)  # the check sees a real dependency
    assert not run.depends_on(run.one("aws:rds/subnetGroup:SubnetGroup"), eks)


def test_cluster_and_database_do_not_wait_for_each_other(stack_runs: dict[str, Run]) -> None:
    run = stack_runs["production"]
    rds = run.one("aws:rds/instance:Instance")
    assert not run.depends_on(run.one("eks:index:Cluster"), rds)
    for pool in run.of_type("kubernetes:karpenter.sh/v1:NodePool"):
        assert not run.depends_on(pool, rds)
