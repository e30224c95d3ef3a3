"""The canary Job, its ConfigMap data and its egress policy, as manifests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from canary import job as cj
from canary.smoke import DEFAULT_MARKER, DEFAULT_MARKER_TASK_ID, Config

SECRET_NAME = "airflow-canary-credentials"
PASSWORD_SENTINEL = "never-in-a-manifest"
DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def manifest(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "namespace": "airflow",
        "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow:abc123",
        "api_url": "http://airflow-api-server.airflow.svc:8080",
        "credentials_secret_name": SECRET_NAME,
        "config_map_name": "airflow-canary-script",
        "name_suffix": cj.name_suffix("values-digest", "image-tag"),
        "timeout_seconds": 300,
        "node_selector": {"airflow-platform/pool": "system"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "system"}],
    }
    return cj.canary_job_manifest(**{**args, **overrides})


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod_spec(job)["containers"]
    c: dict[str, Any] = only
    return c


def env_of(job: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(job)["env"]}


def test_every_field_is_a_real_batch_v1_job_field() -> None:
    """Round-trip through the `kubernetes` client's V1Job model (generated from the
    Kubernetes OpenAPI spec): a misspelt or misplaced key would be dropped, and the
    result would differ from the manifest."""
    from kubernetes.client import ApiClient  # type: ignore[import-untyped,unused-ignore]

    client = ApiClient()

    class Response:
        data = json.dumps(manifest())

    model = client.deserialize(Response(), "V1Job")
    assert client.sanitize_for_serialization(model) == manifest()

    policy = cj.canary_egress_policy("airflow", "airflow")

    class PolicyResponse:
        data = json.dumps(policy)

    policy_model = client.deserialize(PolicyResponse(), "V1NetworkPolicy")
    assert client.sanitize_for_serialization(policy_model) == policy


def test_the_job_runs_once_within_a_deadline_above_the_canary_timeout() -> None:
    job = manifest(timeout_seconds=300)
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["backoffLimit"] == 0
    assert 300 < spec["activeDeadlineSeconds"] <= 300 + 300
    assert spec["ttlSecondsAfterFinished"] >= 3600
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert env_of(job)["CANARY_TIMEOUT_SECONDS"]["value"] == "300"


def test_credentials_come_only_from_the_secret() -> None:
    job = manifest(username_key="user", password_key="pass")
    env = env_of(job)
    assert env["CANARY_USERNAME"] == {
        "name": "CANARY_USERNAME",
        "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "user", "optional": False}},
    }
    assert env["CANARY_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"] == "pass"
    from_secrets = {n for n, e in env.items() if "valueFrom" in e}
    assert from_secrets == {"CANARY_USERNAME", "CANARY_PASSWORD"}
    assert all("value" not in env[n] for n in from_secrets)
    text = json.dumps(job)
    assert "secretKeyRef" in text and PASSWORD_SENTINEL not in text
    assert "envFrom" not in text  # no whole Secret dumped into the environment


def test_the_env_is_what_the_script_reads() -> None:
    """The plain variables of the Job form a valid configuration for `smoke.py`."""
    env = {n: e["value"] for n, e in env_of(manifest()).items() if "value" in e}
    config = Config.from_env({**env, "CANARY_USERNAME": "u", "CANARY_PASSWORD": "p"})
    assert config.api_url == "http://airflow-api-server.airflow.svc:8080"
    assert (config.marker, config.marker_task_id) == (DEFAULT_MARKER, DEFAULT_MARKER_TASK_ID)
    assert config.require_remote_log is True
    assert config.force_failure is False
    assert config.termination_log == container(manifest())["terminationMessagePath"]
    assert Config.from_env({**env, "CANARY_USERNAME": "u", "CANARY_PASSWORD": "p"}) == config
    drill = {n: e["value"] for n, e in env_of(manifest(force_failure=True)).items() if "value" in e}
    assert Config.from_env({**drill, "CANARY_USERNAME": "u", "CANARY_PASSWORD": "p"}).force_failure


def test_the_pod_is_hardened() -> None:
    job = manifest()
    pod = pod_spec(job)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    sc = container(job)["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    resources = container(job)["resources"]
    assert set(resources) == {"requests", "limits"}
    assert resources["limits"]["memory"] == "128Mi"


def test_the_termination_message_carries_the_report() -> None:
    c = container(manifest())
    assert c["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert env_of(manifest())["CANARY_TERMINATION_LOG"]["value"] == c["terminationMessagePath"]


def test_the_script_is_mounted_from_the_config_map() -> None:
    job = manifest()
    c = container(job)
    assert c["command"] == ["python", "/canary/smoke.py"]
    (script_volume,) = [v for v in pod_spec(job)["volumes"] if "configMap" in v]
    assert script_volume["configMap"]["name"] == "airflow-canary-script"
    items = {i["key"]: i["path"] for i in script_volume["configMap"]["items"]}
    assert items == {name: name for name in cj.canary_config_map_data()}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts[script_volume["name"]]["mountPath"] == "/canary"
    assert mounts[script_volume["name"]]["readOnly"] is True


def test_config_map_data_is_the_script_and_its_report_module() -> None:
    data = cj.canary_config_map_data()
    here = Path(cj.__file__).parent
    assert data == {
        "smoke.py": (here / "smoke.py").read_text(),
        "report.py": (here / "report.py").read_text(),
    }
    imports = re.findall(r"^(?:from|import) ([\w.]+)", data["smoke.py"], flags=re.MULTILINE)
    third_party = {m.split(".")[0] for m in imports} - {
        "__future__", "http", "json", "os", "sys", "time", "urllib", "uuid", "collections",
        "dataclasses", "datetime", "typing", "canary", "report",
    }  # fmt: skip
    assert third_party == set(), "the Job runs the script in the stock image: stdlib only"
    annotation = manifest()["spec"]["template"]["metadata"]["annotations"]
    assert annotation["airflow-platform/canary-script-sha256"] == cj.canary_script_digest()


def test_the_name_follows_what_was_deployed() -> None:
    a = manifest(name_suffix=cj.name_suffix("values-1", "image-1"))["metadata"]["name"]
    again = manifest(name_suffix=cj.name_suffix("values-1", "image-1"))["metadata"]["name"]
    b = manifest(name_suffix=cj.name_suffix("values-2", "image-1"))["metadata"]["name"]
    drill = manifest(name_suffix=cj.name_suffix("values-1", "image-1"), force_failure=True)
    assert a == again and a != b
    assert drill["metadata"]["name"] not in (a, b)
    for name in (a, b, drill["metadata"]["name"]):
        assert DNS_1123_LABEL.match(name) and len(name) <= 63
    job = manifest(name_suffix="ABC_def-123456789xyz")
    assert job["metadata"]["name"] == "airflow-canary-abcdef123456"
    assert job["spec"]["template"]["metadata"]["labels"]["airflow-platform/canary-run"] == (
        "airflow-canary-abcdef123456"
    )


@pytest.mark.parametrize("suffix", ["", "---", "__"])
def test_a_suffix_without_letters_or_digits_is_refused(suffix: str) -> None:
    with pytest.raises(ValueError, match="suffix"):
        manifest(name_suffix=suffix)


def test_scheduling_constraints_pass_through() -> None:
    pod = pod_spec(manifest())
    assert pod["nodeSelector"] == {"airflow-platform/pool": "system"}
    assert pod["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "system"}]
    bare = pod_spec(manifest(node_selector=None, tolerations=()))
    assert "nodeSelector" not in bare and "tolerations" not in bare


def test_the_egress_policy_selects_the_canary_pods_and_opens_dns_and_the_api_server() -> None:
    policy = cj.canary_egress_policy("airflow", "airflow")
    labels = manifest()["spec"]["template"]["metadata"]["labels"]
    selector = policy["spec"]["podSelector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Egress"]
    ports = {(p["protocol"], p["port"]) for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert ports == {("UDP", 53), ("TCP", 53), ("TCP", 8080)}
    api_peer = policy["spec"]["egress"][1]["to"][0]["podSelector"]["matchLabels"]
    assert api_peer == {"tier": "airflow", "release": "airflow", "component": "api-server"}
