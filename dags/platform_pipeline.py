"""A small scheduled pipeline: extract -> transform -> load, wired through XCom.

It needs nothing outside Airflow, so it is the first thing to look at after a
deploy: if it runs green, the scheduler, the workers, the metadata database and
XCom all work. Copy it as a template for new pipelines.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pendulum
from airflow.sdk import dag, task

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "platform",
    "retries": 2,
    "retry_delay": timedelta(minutes=1),
}


@dag(
    dag_id="platform_pipeline",
    description="Scheduled smoke pipeline: extract, transform and load through XCom.",
    schedule="@daily",
    start_date=pendulum.datetime(2025, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["platform", "example", "xcom"],
    doc_md=__doc__,
)
def platform_pipeline() -> None:
    @task
    def extract() -> list[dict[str, Any]]:
        """Produce a fixed batch of orders (stands in for reading a source)."""
        return [
            {"order_id": 1, "sku": "apple", "quantity": 3, "unit_price": 0.5},
            {"order_id": 2, "sku": "pear", "quantity": 2, "unit_price": 0.75},
            {"order_id": 3, "sku": "apple", "quantity": 1, "unit_price": 0.5},
        ]

    @task
    def transform(orders: list[dict[str, Any]]) -> dict[str, Any]:
        """Aggregate the batch into totals per SKU."""
        per_sku: dict[str, float] = {}
        for order in orders:
            amount = order["quantity"] * order["unit_price"]
            per_sku[order["sku"]] = per_sku.get(order["sku"], 0.0) + amount
        return {
            "orders": len(orders),
            "revenue": round(sum(per_sku.values()), 2),
            "per_sku": dict(sorted(per_sku.items())),
        }

    @task
    def load(summary: dict[str, Any]) -> str:
        """Report the summary (stands in for writing to a sink)."""
        line = f"loaded {summary['orders']} orders, revenue {summary['revenue']:.2f}"
        print(line)
        return line

    load(transform(extract()))  # type: ignore[arg-type]


platform_pipeline()
