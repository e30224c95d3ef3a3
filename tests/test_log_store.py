"""Where task logs go: an S3 bucket + IRSA role on eks, MinIO with its bucket on minikube."""

from __future__ import annotations

import json

import pytest

from tests.chart_support import release as airflow_release
from tests.harness import Resource, Run

SSE = "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration"


def for_bucket(run: Run, type_: str, bucket: str) -> Resource:
    """The one resource of `type_` configuring the bucket named `bucket`."""
    [found] = [r for r in run.of_type(type_) if r.inputs.get("bucket") == bucket]
    return found


def task_log_bucket(run: Run) -> Resource:
    return next(r for r in run.of_type("aws:s3/bucket:Bucket") if r.name == "airflow-logs")


@pytest.mark.parametrize(
    ("stack", "versioned", "days"), [("integration", False, 30), ("production", True, 365)]
)
def test_eks_log_bucket_is_locked_down(
    stack_runs: dict[str, Run], stack: str, versioned: bool, days: int
) -> None:
    run = stack_runs[stack]
    bucket = task_log_bucket(run)
    name = f"airflow-platform-{stack}-task-logs"
    assert bucket.inputs["bucket"] == name
    block = for_bucket(run, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock", name).inputs
    assert all(
        block[k] is True
        for k in (
            "blockPublicAcls",
            "blockPublicPolicy",
            "ignorePublicAcls",
            "restrictPublicBuckets",
        )
    )
    versionings = run.of_type("aws:s3/bucketVersioning:BucketVersioning")
    assert len([v for v in versionings if v.inputs["bucket"] == name]) == int(versioned)
    lifecycle = for_bucket(
        run, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration", name
    ).inputs
    assert lifecycle["rules"][0]["expiration"]["days"] == days
    assert lifecycle["rules"][0]["filter"]["prefix"] == "task-logs/"
    policy = json.loads(for_bucket(run, "aws:s3/bucketPolicy:BucketPolicy", name).inputs["policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert bucket.inputs["forceDestroy"] is (stack != "production")


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_task_log_role_policy_is_scoped_to_the_bucket(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    policy = next(
        r for r in run.of_type("aws:iam/rolePolicy:RolePolicy") if r.name == "airflow-task-logs"
    )
    doc = json.loads(policy.inputs["policy"])
    s3 = {s["Resource"] for s in doc["Statement"] if s["Sid"] != "UseTaskLogKeyThroughS3"}
    assert s3 == {
        f"arn:aws:s3:::airflow-platform-{stack}-task-logs/task-logs/*",
        f"arn:aws:s3:::airflow-platform-{stack}-task-logs",
    }


def test_local_log_store_is_minio_with_its_bucket_created(stack_runs: dict[str, Run]) -> None:
    run = stack_runs["local"]
    assert run.of_type("aws:s3/bucket:Bucket") == []
    deployment = run.one("kubernetes:apps/v1:Deployment")
    container = deployment.inputs["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("minio/minio:RELEASE.")
    [job] = [j for j in run.of_type("kubernetes:batch/v1:Job") if j.name == "airflow-minio-bucket"]
    script = job.inputs["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert "mc mb --ignore-existing store/airflow-platform-local-task-logs" in script
    # the release waits for the bucket: tasks write logs from their first run
    assert job.urn in airflow_release(run).dependencies
    credentials = next(
        r
        for r in run.of_type("kubernetes:core/v1:Secret")
        if r.inputs["metadata"]["name"] == "minio-root"
    )
    assert credentials.has_secret_under("stringData")


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_release_waits_only_for_what_it_reads(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    rel = airflow_release(run)
    data_deps = {urn for urns in rel.property_dependencies.values() for urn in urns}
    assert set(rel.dependencies) <= data_deps  # no explicit depends_on on eks
    assert run.depends_on(rel, task_log_bucket(run))
    for bucket in run.of_type("aws:s3/bucket:Bucket"):
        assert not run.depends_on(bucket, run.one("eks:index:Cluster")), bucket.name
    assert not run.depends_on(run.one("docker:index/image:Image"), run.one("eks:index:Cluster"))
