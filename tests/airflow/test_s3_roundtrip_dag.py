"""The S3 round-trip DAG writes and reads an object through the configured connection."""

from __future__ import annotations

from tests.airflow.af_harness import AirflowSandbox, LocalS3, aws_connection_env

CONN_ID = "platform_s3_test"


def test_roundtrip_writes_and_reads_through_the_variable_connection(
    sandbox: AirflowSandbox, local_s3: LocalS3
) -> None:
    bucket = local_s3.new_bucket("platform-data")
    env = {
        **aws_connection_env(CONN_ID, local_s3.endpoint_url),
        "AIRFLOW_VAR_PLATFORM_S3_CONN_ID": CONN_ID,
        "AIRFLOW_VAR_PLATFORM_S3_BUCKET": bucket,
        "AIRFLOW_VAR_PLATFORM_S3_PREFIX": "smoke",
    }
    run = sandbox.run("run-dag", "platform_s3_roundtrip", "in-process", extra_env=env).data

    assert run["state"] == "success"
    tasks = run["tasks"]
    assert {tid: t["state"] for tid, t in tasks.items()} == {
        "resolve_target": "success",
        "write_object": "success",
        "read_object": "success",
    }
    target = tasks["resolve_target"]["xcom"]
    assert target["conn_id"] == CONN_ID
    assert target["bucket"] == bucket
    assert target["key"].startswith("smoke/platform_s3_roundtrip/")

    assert local_s3.keys(bucket) == [target["key"]]
    assert local_s3.read(bucket, target["key"]) == target["payload"]
    assert tasks["write_object"]["xcom"] == f"s3://{bucket}/{target['key']}"
    assert tasks["read_object"]["xcom"] == len(target["payload"])


def test_roundtrip_fails_fast_without_a_bucket_variable(
    sandbox: AirflowSandbox, local_s3: LocalS3
) -> None:
    env = aws_connection_env("aws_default", local_s3.endpoint_url)
    result = sandbox.run("run-dag", "platform_s3_roundtrip", "in-process", extra_env=env)
    run = result.data

    assert run["state"] == "failed"
    assert "Variable 'platform_s3_bucket' is not set" in result.stdout + result.stderr
    assert {tid: t["state"] for tid, t in run["tasks"].items()} == {
        "resolve_target": "failed",
        "write_object": "upstream_failed",
        "read_object": "upstream_failed",
    }
    assert run["tasks"]["resolve_target"]["try_number"] == 1, "no retry for a missing setting"
