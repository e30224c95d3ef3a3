"""Airflow work for the tests, run in a child process with its own environment.

Airflow reads its configuration once, at import time, and keeps global state
(ORM session, logging, secrets backends). Running every piece of Airflow work in
a fresh interpreter keeps that state out of the pytest process and away from
the other test modules. Usage::

    python _airflow_runner.py <command> <result.json> [args...]

The result is written as JSON to ``result.json``; stdout and stderr are left to
Airflow's own logging.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

_LIVE_EXECUTION_APIS: list[Any] = []


def _keep_in_process_execution_api_alive() -> None:
    """Start one in-process Execution API, wait for its lifespan, and keep it for the process.

    `InProcessExecutionAPI.transport` starts the app's lifespan on a2wsgi's loop
    without waiting for it, and `InProcessTestSupervisor._api_client()` keeps
    only the transport: the API object, and with it the lifespan's exit stack,
    can be collected right away, which ends the lifespan and takes
    `app.state.svcs_registry` with it. Requests then fail with a 500 from the
    routes that need the registry (task-instances/{id}/run among them). An API
    server under uvicorn holds its app and finishes the lifespan before serving,
    so only the in-process client (`dag.test()`, these tests) needs this.
    """
    from airflow.sdk.execution_time import supervisor

    original = supervisor.in_process_api_server

    def in_process_api_server_started() -> Any:
        if _LIVE_EXECUTION_APIS:
            return _LIVE_EXECUTION_APIS[0]
        api = original()
        _ = api.transport
        deadline = time.monotonic() + 30
        while not hasattr(api.app.state, "svcs_registry"):
            if time.monotonic() > deadline:
                raise RuntimeError("in-process Execution API lifespan did not start")
            time.sleep(0.01)
        _LIVE_EXECUTION_APIS.append(api)
        return api

    supervisor.in_process_api_server = in_process_api_server_started


def cmd_import_time(dag_file: str) -> dict[str, Any]:
    """Time `import airflow.sdk`, then the DAG file itself, in this fresh interpreter."""
    import importlib.util

    t0 = time.perf_counter()
    import airflow.sdk  # noqa: F401

    t1 = time.perf_counter()
    spec = importlib.util.spec_from_file_location("dag_file_under_test", dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    t2 = time.perf_counter()
    return {"file": dag_file, "airflow_sdk_s": t1 - t0, "dag_file_s": t2 - t1}


def _describe_dag(dag: Any) -> dict[str, Any]:
    dag.check_cycle()
    dag.validate()
    return {
        "fileloc": dag.fileloc,
        "owner": dag.owner,
        "tags": sorted(dag.tags),
        "catchup": dag.catchup,
        "start_date": dag.start_date.isoformat() if dag.start_date else None,
        "default_args": {k: str(v) for k, v in (dag.default_args or {}).items()},
        "tasks": {
            t.task_id: {"owner": t.owner, "retries": t.retries, "operator": type(t).__name__}
            for t in dag.tasks
        },
        "edges": sorted(
            [t.task_id, downstream] for t in dag.tasks for downstream in t.downstream_task_ids
        ),
    }


def cmd_dagbag(*folders: str) -> dict[str, Any]:
    """Load each folder in a DagBag; report import errors, per-file parse times and DAGs."""
    from airflow.dag_processing.dagbag import DagBag

    result: dict[str, Any] = {}
    for folder in folders:
        bag = DagBag(dag_folder=folder, include_examples=False, safe_mode=False)
        result[folder] = {
            "import_errors": dict(bag.import_errors),
            "file_stats": {
                Path(stat.file).name: stat.duration.total_seconds() for stat in bag.dagbag_stats
            },
            "dags": {dag_id: _describe_dag(dag) for dag_id, dag in bag.dags.items()},
        }
    return result


def _read_back(ti: Any, rel_path: str) -> dict[str, Any]:
    """Read a finished task's log the ways the API server does, with the local copy gone."""
    from airflow.configuration import conf
    from airflow.logging_config import get_remote_task_log
    from airflow.utils.log.log_reader import TaskLogReader

    local = Path(conf.get("logging", "base_log_folder")) / rel_path
    local_text = local.read_text() if local.exists() else None
    if local.exists():
        local.unlink()

    remote_io = get_remote_task_log()
    sources: list[str] = []
    logs: list[str] | None = None
    remote_error = None
    try:
        if remote_io:
            sources, logs = remote_io.read(rel_path, ti)
    except Exception as exc:
        remote_error = f"{type(exc).__name__}: {exc}"

    reader = TaskLogReader()
    events: list[str] = []
    reader_error = None
    try:
        stream, _ = reader.read_log_chunks(ti, ti.try_number, {"end_of_log": False})
        events = [str(msg.event) for msg in stream if getattr(msg, "event", None)]
    except Exception as exc:
        reader_error = f"{type(exc).__name__}: {exc}"
    return {
        "local_before_read": local_text,
        "remote_io": type(remote_io).__name__ if remote_io else None,
        "remote_sources": list(sources),
        "remote_logs": list(logs) if logs is not None else None,
        "remote_error": remote_error,
        "reader_handler": type(reader.log_handler).__name__,
        "reader_events": events,
        "reader_error": reader_error,
    }


def cmd_run_dag(dag_id: str, mode: str) -> dict[str, Any]:
    """Run one DAG run with `dag.test()`; `mode` is `in-process` or `supervised`.

    `supervised` routes the tasks through an executor (``use_executor=True``),
    so each task runs under the task SDK supervisor exactly as on a worker, and
    its log is written to a file and shipped with the remote log handler.
    """
    from airflow.configuration import conf
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.taskinstance import TaskInstance
    from airflow.models.xcom import XComModel
    from airflow.utils.helpers import log_filename_template_renderer
    from airflow.utils.session import create_session
    from sqlalchemy import select

    _keep_in_process_execution_api_alive()
    bag = DagBag(dag_folder=conf.get("core", "dags_folder"), include_examples=False)
    if dag_id not in bag.dags:
        raise SystemExit(f"DAG {dag_id!r} not found; import errors: {bag.import_errors}")
    started = time.perf_counter()
    dag_run = bag.dags[dag_id].test(use_executor=mode == "supervised")
    elapsed = time.perf_counter() - started

    render = log_filename_template_renderer()
    tasks: dict[str, Any] = {}
    with create_session() as session:
        tis = session.scalars(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id, TaskInstance.run_id == dag_run.run_id
            )
        ).all()
        rows: list[Any] = list(
            session.scalars(
                XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_id, key="return_value")
            )
        )
        xcoms = {x.task_id: XComModel.deserialize_value(x) for x in rows}
        for ti in tis:
            rel_path = render(ti=ti)
            entry: dict[str, Any] = {
                "state": str(ti.state) if ti.state else None,
                "try_number": ti.try_number,
                "log_relative_path": rel_path,
                "xcom": xcoms.get(ti.task_id),
            }
            if mode == "supervised":
                entry["read_back"] = _read_back(ti, rel_path)
            tasks[ti.task_id] = entry
    return {
        "dag_id": dag_id,
        "run_id": dag_run.run_id,
        "state": str(dag_run.state),
        "elapsed_s": elapsed,
        "remote_base_log_folder": conf.get("logging", "remote_base_log_folder"),
        "tasks": tasks,
    }


COMMANDS: dict[str, Callable[..., dict[str, Any]]] = {
    "import-time": cmd_import_time,
    "dagbag": cmd_dagbag,
    "run-dag": cmd_run_dag,
}


def main(argv: list[str]) -> int:
    command, out, *args = argv
    result = COMMANDS[command](*args)
    Path(out).write_text(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
