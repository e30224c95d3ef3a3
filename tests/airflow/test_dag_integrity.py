"""Every DAG file loads cleanly, follows the platform's conventions and imports fast."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.af_harness import DAGS_DIR, AirflowSandbox, record_figure

EXPECTED_DAGS = {
    "platform_pipeline",
    "platform_s3_roundtrip",
    "platform_k8s_pod",
    "platform_canary",
}
DAG_FILES = sorted(p for p in DAGS_DIR.glob("*.py") if not p.name.startswith("_"))
IMPORT_BUDGET_S = 1.0

CYCLIC_DAG = """
import pendulum
from airflow.sdk import DAG
from airflow.providers.standard.operators.empty import EmptyOperator

with DAG("cyclic", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
    a = EmptyOperator(task_id="a")
    b = EmptyOperator(task_id="b")
    a >> b >> a
"""

BROKEN_DAG = """
from airflow.sdk import dag
import module_that_does_not_exist
"""


@pytest.fixture(scope="module")
def dagbag_report(make_sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Load the real dags/ and a folder of deliberately bad DAGs in one DagBag run."""
    bad = tmp_path_factory.mktemp("bad-dags")
    (bad / "cyclic.py").write_text(CYCLIC_DAG)
    (bad / "broken.py").write_text(BROKEN_DAG)
    sandbox: AirflowSandbox = make_sandbox(with_db=False)
    report: dict[str, Any] = sandbox.run("dagbag", str(DAGS_DIR), str(bad)).data
    report["bad_folder"] = str(bad)
    for name, seconds in sorted(report[str(DAGS_DIR)]["file_stats"].items()):
        record_figure(f"DagBag parse {name}: {seconds:.3f} s")
    return report


def test_dags_folder_loads_without_import_errors(dagbag_report: dict[str, Any]) -> None:
    real = dagbag_report[str(DAGS_DIR)]
    assert real["import_errors"] == {}
    assert set(real["dags"]) == EXPECTED_DAGS
    files_with_dags = {Path(d["fileloc"]).name for d in real["dags"].values()}
    assert files_with_dags == {p.name for p in DAG_FILES}


def test_dagbag_reports_broken_and_cyclic_dags(dagbag_report: dict[str, Any]) -> None:
    bad = dagbag_report[dagbag_report["bad_folder"]]
    errors = {Path(f).name: msg for f, msg in bad["import_errors"].items()}
    assert set(errors) == {"cyclic.py", "broken.py"}
    assert "cycle" in errors["cyclic.py"].lower()
    assert "module_that_does_not_exist" in errors["broken.py"]
    assert bad["dags"] == {}


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_follows_platform_conventions(dagbag_report: dict[str, Any], dag_id: str) -> None:
    dag = dagbag_report[str(DAGS_DIR)]["dags"][dag_id]
    assert dag["tags"], "every DAG needs tags"
    assert dag["catchup"] is False
    assert dag["default_args"].get("owner") not in (None, "", "airflow")
    for task_id, task in dag["tasks"].items():
        assert task["owner"] not in ("", "airflow"), f"{task_id} has the default owner"
        assert task["retries"] >= 1, f"{task_id} has no retries"
    start = datetime.fromisoformat(dag["start_date"])
    assert (start.hour, start.minute, start.second, start.microsecond) == (0, 0, 0, 0)


@pytest.mark.parametrize("dag_id", sorted(EXPECTED_DAGS))
def test_dag_has_no_cycles(dagbag_report: dict[str, Any], dag_id: str) -> None:
    dag = dagbag_report[str(DAGS_DIR)]["dags"][dag_id]
    remaining: dict[str, set[str]] = {tid: set() for tid in dag["tasks"]}
    for upstream, downstream in dag["edges"]:
        remaining[downstream].add(upstream)
    while remaining:
        ready = [tid for tid, ups in remaining.items() if not ups]
        assert ready, f"cycle among {sorted(remaining)}"
        for tid in ready:
            del remaining[tid]
        for ups in remaining.values():
            ups.difference_update(ready)


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_fast(make_sandbox, dag_file: Path) -> None:
    """Import each file in a fresh interpreter, after `airflow.sdk` as a DAG processor has it."""
    sandbox: AirflowSandbox = make_sandbox(with_db=False)
    timing = sandbox.run("import-time", str(dag_file)).data
    record_figure(
        f"import {dag_file.name}: {timing['dag_file_s']:.3f} s "
        f"(airflow.sdk first: {timing['airflow_sdk_s']:.3f} s)"
    )
    assert timing["dag_file_s"] < IMPORT_BUDGET_S
