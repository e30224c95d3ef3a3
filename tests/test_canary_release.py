"""The post-deploy canary as the program declares it (mock record): a Job after the release.

What the engine does with it is pulumi-kubernetes' Job await (provider/pkg/await/job.go):
`up` waits until the Job completes and fails when it fails, quoting the failed container's
termination message (checker/pod/check.go `containerTerminatedError`), which is where the
canary writes its report. These tests check what the program hands that await: the order
(the Job waits for the Helm release, whose hooks ran the migrations and created the user it
logs in as), what the pod runs and reads, and that nothing secret is in its spec.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pulumi
import pytest

from canary import job as canary_job
from components import chart_values as cv
from components import node_pools as np
from components.airflow import job_metadata
from tests.chart_support import release, secrets_by_name, values_of
from tests.harness import (
    STACKS,
    Resource,
    Run,
    fake_secret,
    go_duration_seconds,
    run_stack,
    stack_config,
    try_stack,
)

JOB = "kubernetes:batch/v1:Job"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"


def canary_of(run: Run) -> Resource:
    [job] = [r for r in run.of_type(JOB) if r.name == "airflow-canary"]
    return job


def env_of(job: Resource) -> dict[str, Any]:
    [container] = job.inputs["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


@pytest.mark.parametrize("stack", STACKS)
def test_the_canary_job_waits_for_the_release(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    job = canary_of(run)
    assert run.depends_on(job, release(run))
    assert job.inputs["metadata"]["namespace"] == "airflow"
    assert job.inputs["metadata"]["name"].startswith(f"{canary_job.NAME_PREFIX}-")
    assert run.outputs["canary_job"] == job.inputs["metadata"]["name"]
    # A failed canary is rerun by the next `up`, not awaited again (pulumi-kubernetes Diff).
    assert job.inputs["metadata"]["annotations"] == {"pulumi.com/replaceUnready": "true"}


@pytest.mark.parametrize("stack", STACKS)
def test_the_canary_job_carries_no_secret(stack_runs: dict[str, Run], stack: str) -> None:
    """Credentials reach the pod as secretKeyRefs to the admin-user Secret; no secret config
    value and no generated password appears anywhere in the Job."""
    run = stack_runs[stack]
    job = canary_of(run)
    text = json.dumps(job.inputs)
    _, secure = stack_config(stack)
    for key in secure:
        assert fake_secret(key) not in text, key
    assert run.outputs["admin_password"] not in text
    assert job.secret_paths() == []
    env = env_of(job)
    for var, key in (("CANARY_USERNAME", "username"), ("CANARY_PASSWORD", "password")):
        ref = env[var]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (cv.SECRETS.admin_user, key)
    admin = secrets_by_name(run)[cv.SECRETS.admin_user].inputs["stringData"]
    assert {"username", "password"} <= admin.keys()
    assert admin["username"] == run.outputs["admin_username"]


@pytest.mark.parametrize("stack", STACKS)
def test_the_canary_runs_the_platform_image_and_this_checkouts_script(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    job = canary_of(run)
    pod = job.inputs["spec"]["template"]["spec"]
    image = values_of(run)["images"]["airflow"]
    assert pod["containers"][0]["image"] == f"{image['repository']}:{image['tag']}"
    [script] = [r for r in run.of_type(CONFIG_MAP) if r.name == "airflow-canary-script"]
    assert script.inputs["data"] == canary_job.canary_config_map_data()
    [volume] = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == script.inputs["metadata"]["name"]
    env = env_of(job)
    assert env["CANARY_API_URL"] == "http://airflow-api-server.airflow.svc:8080"
    assert env["CANARY_DAG_ID"] == "platform_canary"
    assert env["CANARY_REQUIRE_REMOTE_LOG"] == "true"
    assert env["CANARY_FORCE_FAILURE"] == "false"
    timeout = int(env["CANARY_TIMEOUT_SECONDS"])
    deadline = job.inputs["spec"]["activeDeadlineSeconds"]
    assert deadline == timeout + canary_job.DEADLINE_MARGIN_SECONDS
    # `up` waits longer than the Job may run (the provider's Job default is 10 minutes,
    # pulumi-kubernetes await/job.go `DefaultJobTimeoutMins`), so the canary's report ends it.
    for when in ("create", "update"):
        assert go_duration_seconds(job.custom_timeouts[when]) > deadline
    expected = dict(np.PLATFORM_SELECTOR) if stack != "local" else None
    assert pod.get("nodeSelector") == expected


def test_the_job_name_follows_what_was_deployed(stack_runs: dict[str, Run]) -> None:
    """Same deploy, same Job (nothing reruns); a change to the chart values, or the drill's
    forced failure, makes a new Job and so a new canary run."""
    name = canary_of(stack_runs["integration"]).inputs["metadata"]["name"]
    again = canary_of(run_stack("integration")).inputs["metadata"]["name"]
    assert again == name
    changed = run_stack("integration", set_values={"airflow.adminUsername": "operator"})
    assert canary_of(changed).inputs["metadata"]["name"] != name
    drill = canary_of(run_stack("integration", set_values={"upgrades.canaryForceFailure": True}))
    assert drill.inputs["metadata"]["name"].startswith(f"{canary_job.NAME_PREFIX}-drill-")
    assert env_of(drill)["CANARY_FORCE_FAILURE"] == "true"


def test_canary_off_leaves_no_job_and_no_door_open() -> None:
    run = run_stack("integration", set_values={"upgrades.canary": False})
    assert [r for r in run.of_type(JOB) if r.name == "airflow-canary"] == []
    assert [r for r in run.of_type(CONFIG_MAP) if r.name == "airflow-canary-script"] == []
    names = {
        r.inputs["metadata"]["name"]
        for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    assert canary_job.EGRESS_POLICY_NAME not in names
    peers = values_of(run)["apiServer"]["networkPolicy"]["ingress"]["from"]
    assert {"podSelector": {"matchLabels": dict(canary_job.POD_LABELS)}} not in peers
    assert "canary_job" not in run.outputs or run.outputs["canary_job"] is None


def test_a_canary_without_the_admin_user_is_refused() -> None:
    error, run = try_stack("integration", set_values={"airflow.createAdminUser": False})
    assert error is not None
    assert "upgrades.canary: needs airflow.createAdminUser" in str(error)
    assert run.resources == []


def test_an_unknown_manifest_keeps_metadata_a_map_with_a_computed_name() -> None:
    """In a preview (the image not built yet) the whole manifest is unknown; the Job's
    metadata must still be a map whose `name` is computed, or pulumi-kubernetes auto-names
    the Job in the preview (provider/pkg/metadata/naming.go `IsNamed`)."""
    previous = asyncio.get_event_loop_policy().get_event_loop()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)  # Output.apply schedules on the current loop
    try:

        def resolved(value: Any) -> asyncio.Future[Any]:
            future: asyncio.Future[Any] = loop.create_future()
            future.set_result(value)
            return future

        unknown: pulumi.Output[dict[str, Any]] = pulumi.Output(
            set(), resolved(None), resolved(False)
        )
        metadata = job_metadata(unknown)
        assert isinstance(metadata, dict)
        assert set(metadata) == {"name", "namespace", "labels", "annotations"}
        known = loop.run_until_complete(metadata["name"].is_known())
        assert known is False
    finally:
        asyncio.set_event_loop(previous)
        loop.close()
