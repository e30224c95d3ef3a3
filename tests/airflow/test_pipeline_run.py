"""The scheduled pipeline DAG runs end to end on a real Airflow (`dag.test()`)."""

from __future__ import annotations

from tests.airflow.af_harness import AirflowSandbox, record_figure

EXPECTED_SUMMARY = {
    "orders": 3,
    "revenue": 3.5,
    "per_sku": {"apple": 2.0, "pear": 1.5},
}


def test_platform_pipeline_runs_and_passes_xcom(sandbox: AirflowSandbox) -> None:
    result = sandbox.run("run-dag", "platform_pipeline", "in-process").data
    record_figure(f"dag.test(platform_pipeline): {result['elapsed_s']:.2f} s")

    assert result["state"] == "success"
    tasks = result["tasks"]
    assert set(tasks) == {"extract", "transform", "load"}
    assert {tid: t["state"] for tid, t in tasks.items()} == dict.fromkeys(tasks, "success")

    orders = tasks["extract"]["xcom"]
    assert [o["order_id"] for o in orders] == [1, 2, 3]
    assert tasks["transform"]["xcom"] == EXPECTED_SUMMARY
    assert tasks["load"]["xcom"] == "loaded 3 orders, revenue 3.50"
