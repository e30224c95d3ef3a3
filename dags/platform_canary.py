"""The post-deploy smoke DAG: the canary Job triggers it after every deploy.

It takes seconds and needs nothing outside Airflow. A green run proves that
the scheduler schedules, a worker pod starts with the platform image, tasks
talk to the Execution API, XCom works, and the task log reaches the log store:
the canary reads the marker line below back through the REST API, which
serves it from remote logging once the worker pod is gone.

* `emit_marker` logs one line that is unique per run:
  ``airflow-platform-canary-marker run_id=<run id>``, and returns the run id.
* `verify_marker` checks the XCom it received, then fails on purpose, without
  retrying, when the run conf asks for it with ``{"force_failure": true}``.
  The upgrade drill uses this to prove that a failed canary fails the deploy.

Schedule: none; only the canary (or someone in the UI) triggers it. The DAG is
active as soon as it is parsed, and the canary unpauses it if someone paused it.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

MARKER = "airflow-platform-canary-marker"
FORCE_FAILURE_CONF_KEY = "force_failure"

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "platform",
    "retries": 1,
    "retry_delay": timedelta(seconds=10),
    "execution_timeout": timedelta(minutes=2),
}

log = logging.getLogger(__name__)


def marker_line(run_id: str) -> str:
    """The line the canary looks for in the task log of `emit_marker`."""
    return f"{MARKER} run_id={run_id}"


def failure_requested(conf: dict[str, Any] | None) -> bool:
    """True only when the run conf holds ``force_failure`` set to true (bool or string)."""
    value = (conf or {}).get(FORCE_FAILURE_CONF_KEY, False)
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "yes"}
    return value is True


@dag(
    dag_id="platform_canary",
    description="Post-deploy smoke run: logs a marker the deploy canary reads back.",
    schedule=None,
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    is_paused_upon_creation=False,
    dagrun_timeout=timedelta(minutes=10),
    default_args=DEFAULT_ARGS,
    tags=["platform", "canary", "smoke"],
    doc_md=__doc__,
)
def platform_canary() -> None:
    @task
    def emit_marker() -> str:
        """Log the run's marker line; the canary requires it in this task's log."""
        from airflow.sdk import get_current_context

        run_id = str(get_current_context()["run_id"])
        log.info(marker_line(run_id))
        return run_id

    @task
    def verify_marker(logged_run_id: str) -> None:
        """Check the XCom from `emit_marker`; fail on purpose when the run conf asks."""
        from airflow.sdk import get_current_context
        from airflow.sdk.exceptions import AirflowFailException

        context = get_current_context()
        if logged_run_id != context["run_id"]:
            raise ValueError(
                f"XCom carried run id {logged_run_id!r}, expected {context['run_id']!r}"
            )
        dag_run = context["dag_run"]
        if failure_requested(dag_run.conf):
            raise AirflowFailException(
                f"platform canary: failure forced by run conf {FORCE_FAILURE_CONF_KEY}=true"
            )
        log.info("platform canary: marker for %s verified", logged_run_id)

    verify_marker(emit_marker())  # type: ignore[arg-type]


platform_canary()
