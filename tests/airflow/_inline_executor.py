"""An executor for the tests: each task goes through the task SDK supervisor.

Loaded by Airflow from `[core] executor` in the runner's child process, never
imported by pytest itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.executors.base_executor import BaseExecutor


class InlineSupervisorExecutor(BaseExecutor):
    """Run each task through the task SDK supervisor, one at a time, in this process.

    This is what the LocalExecutor's workers do (``supervise()`` forks the task
    process, writes the task log file and, when the task ends, uploads it with
    the configured remote log handler). The only difference is the transport to
    the Execution API: an in-process client instead of HTTP to an API server.
    """

    def _process_workloads(self, workloads: Sequence[Any]) -> None:
        from airflow.executors import workloads as wl
        from airflow.sdk.execution_time.supervisor import InProcessTestSupervisor, supervise

        for workload in workloads:
            if not isinstance(workload, wl.ExecuteTask):
                raise ValueError(f"unsupported workload {type(workload).__name__}")
            key = workload.ti.key
            del self.queued_tasks[key]
            self.running.add(key)
            exit_code = supervise(
                ti=workload.ti,  # type: ignore[arg-type]
                dag_rel_path=workload.dag_rel_path,
                bundle_info=workload.bundle_info,
                token=workload.token,
                log_path=workload.log_path,
                client=InProcessTestSupervisor._api_client(),
            )
            if exit_code == 0:
                self.success(key)
            else:
                self.fail(key)

    def end(self) -> None:
        """Nothing to wait for: every workload finished inside `_process_workloads`."""

    def terminate(self) -> None:
        """Nothing runs in the background."""
