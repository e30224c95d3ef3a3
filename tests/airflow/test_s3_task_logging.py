"""Task logs reach S3 with the `[logging]` settings the platform deploys.

A local Airflow gets exactly the `[logging]` section that the program passes to
the chart (the local stack's recorded Helm values) as AIRFLOW__LOGGING__*
variables, and the task-log connection the program puts in its Secret, with the
endpoint pointed at moto's S3 server instead of the in-cluster store. The
pipeline DAG runs through an executor, so each task runs under the task SDK
supervisor as on a worker: the supervisor writes the task log file and, when
the task ends, uploads it with the remote log handler the settings select. The
test then reads the log back the way the API server does, with the local copy
deleted.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from components import chart_values as cv
from tests.airflow.af_harness import AirflowSandbox, LocalS3, logging_env, record_figure
from tests.chart_support import secrets_by_name, values_of
from tests.harness import run_stack


@cache
def program_log_settings() -> tuple[dict[str, str], str, dict[str, Any]]:
    """The `[logging]` values and the task-log connection the local stack deploys."""
    run = run_stack("local")
    logging: dict[str, str] = values_of(run)["config"]["logging"]
    conn_env = cv.env_name("CONN", logging["remote_log_conn_id"])
    secret = secrets_by_name(run)[cv.SECRETS.task_logs_connection]
    return logging, conn_env, json.loads(secret.inputs["stringData"][conn_env])


def program_bucket_and_prefix() -> tuple[str, str]:
    folder = urlsplit(program_log_settings()[0]["remote_base_log_folder"])
    return folder.netloc, folder.path.strip("/")


LOGGED_LINE = "loaded 3 orders, revenue 3.50"
TASK_IDS = {"extract", "transform", "load"}


def run_pipeline_with_remote_logs(
    sandbox: AirflowSandbox, s3: LocalS3, bucket: str
) -> tuple[dict[str, Any], str]:
    """Run the pipeline with the program's logging settings, the bucket swapped if asked."""
    logging, conn_env, program_connection = program_log_settings()
    _, prefix = program_bucket_and_prefix()
    settings = {**logging, "remote_base_log_folder": f"s3://{bucket}/{prefix}"}
    connection = {
        **program_connection,
        "login": "testing",
        "password": "testing",
        "extra": {**program_connection["extra"], "endpoint_url": s3.endpoint_url},
    }
    env = {**logging_env(settings), conn_env: json.dumps(connection)}
    result = sandbox.run("run-dag", "platform_pipeline", "supervised", extra_env=env)
    return result.data, result.stdout + result.stderr


def test_task_logs_are_uploaded_to_s3_and_read_back(
    sandbox: AirflowSandbox, local_s3: LocalS3
) -> None:
    logging, _, program_connection = program_log_settings()
    assert logging["remote_logging"] == "True" and program_connection["conn_type"] == "aws"
    bucket, prefix = program_bucket_and_prefix()
    if bucket not in local_s3.buckets():
        local_s3.client().create_bucket(Bucket=bucket)
    run, _ = run_pipeline_with_remote_logs(sandbox, local_s3, bucket)
    record_figure(f"supervised run with S3 logging: {run['elapsed_s']:.2f} s")

    assert run["remote_base_log_folder"] == f"s3://{bucket}/{prefix}"
    assert run["state"] == "success"
    tasks = run["tasks"]
    assert {tid: t["state"] for tid, t in tasks.items()} == dict.fromkeys(TASK_IDS, "success")

    expected_keys = sorted(f"{prefix}/{t['log_relative_path']}" for t in tasks.values())
    assert local_s3.keys(bucket, f"{prefix}/") == expected_keys

    load = tasks["load"]
    stored = local_s3.read(bucket, f"{prefix}/{load['log_relative_path']}")
    assert LOGGED_LINE in stored

    read_back = load["read_back"]
    assert read_back["local_before_read"] == "", "an uploaded log is truncated locally"
    assert read_back["remote_io"] == "S3RemoteLogIO"
    assert read_back["remote_error"] is None
    assert read_back["remote_sources"] == [f"s3://{bucket}/{prefix}/{load['log_relative_path']}"]
    assert any(LOGGED_LINE in text for text in read_back["remote_logs"])
    assert read_back["reader_error"] is None
    assert any(LOGGED_LINE in event for event in read_back["reader_events"])


def test_unreachable_log_bucket_produces_no_remote_log(
    sandbox: AirflowSandbox, local_s3: LocalS3
) -> None:
    """Point the same settings at a bucket that does not exist: nothing lands in S3."""
    _, prefix = program_bucket_and_prefix()
    real_bucket = local_s3.new_bucket("task-logs")
    missing_bucket = f"{real_bucket}-missing"
    buckets_before = local_s3.buckets()
    run, output = run_pipeline_with_remote_logs(sandbox, local_s3, missing_bucket)

    assert run["remote_base_log_folder"] == f"s3://{missing_bucket}/{prefix}"
    assert run["state"] == "success", "a failed log upload does not fail the task"
    assert local_s3.buckets() == buckets_before
    assert local_s3.keys(real_bucket) == []
    assert "Could not write logs to" in output or "NoSuchBucket" in output

    read_back = run["tasks"]["load"]["read_back"]
    assert LOGGED_LINE in (read_back["local_before_read"] or ""), "the log stays only on the worker"
    assert not read_back["remote_logs"]
    assert "NoSuchBucket" in (read_back["remote_error"] or "")
    assert not any(LOGGED_LINE in event for event in read_back["reader_events"])
    assert "NoSuchBucket" in (read_back["reader_error"] or "")
