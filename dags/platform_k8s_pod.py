"""Run one isolated pod with the KubernetesPodOperator.

Shows that Airflow can launch pods in the cluster (RBAC, scheduling, log
streaming) and is the template for work that needs its own image. The pod runs
in the namespace from `PLATFORM_POD_NAMESPACE`, else in the namespace of the
Airflow worker itself, and is deleted when it finishes.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import pendulum
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import dag
from kubernetes.client import models as k8s  # type: ignore[import-untyped,unused-ignore]

POD_IMAGE = "busybox:1.37.0"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "platform",
    "retries": 1,
    "retry_delay": timedelta(minutes=2),
}


@dag(
    dag_id="platform_k8s_pod",
    description="Launch a small isolated pod and stream its logs.",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["platform", "example", "kubernetes"],
    doc_md=__doc__,
)
def platform_k8s_pod() -> None:
    KubernetesPodOperator(
        task_id="hello_pod",
        name="platform-hello",
        namespace=os.environ.get("PLATFORM_POD_NAMESPACE") or None,
        image=POD_IMAGE,
        cmds=["sh", "-c"],
        arguments=['echo "hello from $(hostname) at {{ ts }}"'],
        labels={"app.kubernetes.io/part-of": "airflow-platform"},
        container_resources=k8s.V1ResourceRequirements(
            requests={"cpu": "10m", "memory": "16Mi"},
            limits={"cpu": "100m", "memory": "64Mi"},
        ),
        get_logs=True,
        on_finish_action="delete_pod",
        startup_timeout_seconds=300,
        execution_timeout=timedelta(minutes=10),
    )


platform_k8s_pod()
