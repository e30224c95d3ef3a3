"""Write an object to S3 through an Airflow connection, then read it back.

Proves that workers reach the platform bucket with the credentials the platform
wires in (IRSA on EKS, the in-cluster object store on minikube). Nothing about
the account is in this file; everything comes from Airflow Variables, which can
also be set as environment variables (`AIRFLOW_VAR_<NAME>`):

* `platform_s3_conn_id` - connection id to use, default `aws_default`
* `platform_s3_bucket` - bucket to write to (required)
* `platform_s3_prefix` - key prefix, default `platform-checks`
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

CONN_ID_VARIABLE = "platform_s3_conn_id"
BUCKET_VARIABLE = "platform_s3_bucket"
PREFIX_VARIABLE = "platform_s3_prefix"
DEFAULT_CONN_ID = "aws_default"
DEFAULT_PREFIX = "platform-checks"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "platform",
    "retries": 1,
    "retry_delay": timedelta(minutes=1),
}


def object_key(prefix: str, dag_id: str, run_id: str) -> str:
    """A key under `prefix` that is unique per run and safe to use in S3."""
    safe_run_id = re.sub(r"[^A-Za-z0-9._-]+", "_", run_id)
    parts = [p for p in (prefix.strip("/"), dag_id, f"{safe_run_id}.txt") if p]
    return "/".join(parts)


@dag(
    dag_id="platform_s3_roundtrip",
    description="Write and read back an object in S3 through an Airflow connection.",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["platform", "example", "s3"],
    doc_md=__doc__,
)
def platform_s3_roundtrip() -> None:
    @task
    def resolve_target() -> dict[str, str]:
        """Read the connection id, bucket and key from Variables."""
        from airflow.sdk import Variable, get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        bucket = Variable.get(BUCKET_VARIABLE, default=None)
        if not bucket:
            raise AirflowFailException(
                f"Variable {BUCKET_VARIABLE!r} is not set "
                f"(set it in the UI or as AIRFLOW_VAR_{BUCKET_VARIABLE.upper()})"
            )
        context = get_current_context()
        prefix = Variable.get(PREFIX_VARIABLE, default=DEFAULT_PREFIX)
        return {
            "conn_id": Variable.get(CONN_ID_VARIABLE, default=DEFAULT_CONN_ID),
            "bucket": bucket,
            "key": object_key(prefix, context["dag"].dag_id, context["run_id"]),
            "payload": f"platform s3 roundtrip for run {context['run_id']}",
        }

    @task
    def write_object(target: dict[str, str]) -> str:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        hook = S3Hook(aws_conn_id=target["conn_id"])
        hook.load_string(
            target["payload"], key=target["key"], bucket_name=target["bucket"], replace=True
        )
        uri = f"s3://{target['bucket']}/{target['key']}"
        print(f"wrote {uri}")
        return uri

    @task
    def read_object(target: dict[str, str], uri: str) -> int:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        hook = S3Hook(aws_conn_id=target["conn_id"])
        content = hook.read_key(key=target["key"], bucket_name=target["bucket"])
        if content != target["payload"]:
            raise ValueError(f"{uri} holds {content!r}, expected {target['payload']!r}")
        print(f"read back {len(content)} characters from {uri}")
        return len(content)

    target = resolve_target()
    read_object(target, write_object(target))  # type: ignore[arg-type]


platform_s3_roundtrip()
