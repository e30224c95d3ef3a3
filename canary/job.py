"""The canary's Kubernetes objects as plain manifests: its Job, ConfigMap data and egress policy.

The program creates the ConfigMap (`canary_config_map_data()`), the NetworkPolicy
(`canary_egress_policy`) and then the Job (`canary_job_manifest`) after the chart release;
pulumi-kubernetes waits for a Job to complete and fails the update when the Job fails. The
Job's name carries a suffix the caller derives from what was deployed (chart values, image
tag, `canary_script_digest()`), so every deploy that changes something runs a new canary,
and an unchanged deploy leaves the finished Job alone.

Credentials reach the pod only as `secretKeyRef`s to an existing Secret; nothing secret is
in these manifests.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from canary.smoke import DEFAULT_DAG_ID, DEFAULT_MARKER, DEFAULT_MARKER_TASK_ID
from components.naming import PART_OF

Manifest = dict[str, Any]

HERE: Final = Path(__file__).resolve().parent
SCRIPT_FILES: Final = ("smoke.py", "report.py")
"""What the ConfigMap holds: the script and the report module it imports."""
MOUNT_PATH: Final = "/canary"
CONTAINER_NAME: Final = "canary"
TERMINATION_LOG: Final = "/dev/termination-log"
NAME_PREFIX: Final = "airflow-canary"
CONFIG_MAP_NAME: Final = "airflow-canary-script"
EGRESS_POLICY_NAME: Final = "airflow-canary-egress"
MAX_NAME_LENGTH: Final = 63
"""The Job controller labels the Job's pods with `batch.kubernetes.io/job-name: <name>`, and
a label value holds at most 63 characters."""
SUFFIX_LENGTH: Final = 12
DEADLINE_MARGIN_SECONDS: Final = 120
"""activeDeadlineSeconds = canary timeout + this: room to pull the image and start Python,
while the script's own deadline still ends it first, with a report."""
DEFAULT_TTL_SECONDS: Final = 24 * 3600
"""A finished Job and its pod stay a day, so its log and termination message can be read."""
AIRFLOW_UID: Final = 50000
AIRFLOW_GID: Final = 0
"""The stock image's user and the chart's defaults (values.yaml `uid`, `gid`)."""
API_SERVER_PORT: Final = 8080
REPLACE_UNREADY: Final = {"pulumi.com/replaceUnready": "true"}
"""On the Job: an `up` after a failed canary replaces the failed Job, so the canary runs again.
Without it, pulumi-kubernetes keeps waiting on the failed Job at the next update
(provider/pkg/provider/provider.go, Diff: a Job whose live object is not ready is replaced;
the provider deletes it first, as the replacement keeps its name)."""

POD_LABELS: Final = {
    **PART_OF,
    "app.kubernetes.io/name": "airflow-canary",
    "app.kubernetes.io/component": "canary",
}
"""Labels of the canary's pods: the api-server's ingress policy admits pods with these."""

_SUFFIX_CHARS = re.compile(r"[^a-z0-9]+")


def canary_script_digest() -> str:
    """sha256 of the files the ConfigMap holds; put it in the hash the caller passes."""
    digest = hashlib.sha256()
    for name, text in sorted(canary_config_map_data().items()):
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


def canary_config_map_data() -> dict[str, str]:
    """The ConfigMap's data: the canary script and the module it imports, read from here."""
    return {name: (HERE / name).read_text(encoding="utf-8") for name in SCRIPT_FILES}


def name_suffix(*parts: str) -> str:
    """A short suffix from anything that identifies a deploy (values hash, image tag...)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:SUFFIX_LENGTH]


def canary_job_name(suffix: str, force_failure: bool = False) -> str:
    """`airflow-canary-<suffix>` (`airflow-canary-drill-<suffix>` when failing on purpose)."""
    clean = _SUFFIX_CHARS.sub("", suffix.lower())[:SUFFIX_LENGTH]
    if not clean:
        raise ValueError(f"the canary Job's name suffix needs letters or digits, got {suffix!r}")
    name = f"{NAME_PREFIX}-{'drill-' if force_failure else ''}{clean}"
    if len(name) > MAX_NAME_LENGTH:  # pragma: no cover - prefix and suffix are bounded
        raise ValueError(f"canary Job name {name!r} is longer than {MAX_NAME_LENGTH}")
    return name


def _env(
    *,
    api_url: str,
    dag_id: str,
    timeout_seconds: int,
    poll_seconds: int,
    force_failure: bool,
    require_remote_log: bool,
    credentials_secret_name: str,
    username_key: str,
    password_key: str,
) -> list[dict[str, Any]]:
    def from_secret(name: str, key: str) -> dict[str, Any]:
        ref = {"name": credentials_secret_name, "key": key, "optional": False}
        return {"name": name, "valueFrom": {"secretKeyRef": ref}}

    plain = {
        "CANARY_API_URL": api_url,
        "CANARY_DAG_ID": dag_id,
        "CANARY_TIMEOUT_SECONDS": str(timeout_seconds),
        "CANARY_POLL_SECONDS": str(poll_seconds),
        "CANARY_FORCE_FAILURE": "true" if force_failure else "false",
        "CANARY_LOG_MARKER": DEFAULT_MARKER,
        "CANARY_MARKER_TASK_ID": DEFAULT_MARKER_TASK_ID,
        "CANARY_REQUIRE_REMOTE_LOG": "true" if require_remote_log else "false",
        "CANARY_TERMINATION_LOG": TERMINATION_LOG,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    }
    return [{"name": k, "value": v} for k, v in plain.items()] + [
        from_secret("CANARY_USERNAME", username_key),
        from_secret("CANARY_PASSWORD", password_key),
    ]


def canary_job_manifest(
    *,
    namespace: str,
    image: str,
    api_url: str,
    credentials_secret_name: str,
    config_map_name: str,
    name_suffix: str,
    username_key: str = "username",
    password_key: str = "password",  # noqa: S107 - the key's name in the Secret
    dag_id: str = DEFAULT_DAG_ID,
    timeout_seconds: int = 600,
    poll_seconds: int = 5,
    force_failure: bool = False,
    require_remote_log: bool = True,
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] = (),
    image_pull_policy: str = "IfNotPresent",
    ttl_seconds_after_finished: int = DEFAULT_TTL_SECONDS,
) -> Manifest:
    """A batch/v1 Job that runs the canary once: no retries, a hard deadline, hardened pod.

    `require_remote_log` (on by default: every stack ships task logs to S3 or its in-cluster
    S3-compatible store) makes the canary insist that the API read the marker from there.
    """
    if timeout_seconds <= 0 or poll_seconds <= 0:
        raise ValueError("timeout_seconds and poll_seconds must be positive")
    name = canary_job_name(name_suffix, force_failure)
    labels = {**POD_LABELS, "airflow-platform/canary-run": name}
    container = {
        "name": CONTAINER_NAME,
        "image": image,
        "imagePullPolicy": image_pull_policy,
        "command": ["python", f"{MOUNT_PATH}/smoke.py"],
        "env": _env(
            api_url=api_url,
            dag_id=dag_id,
            timeout_seconds=timeout_seconds,
            poll_seconds=poll_seconds,
            force_failure=force_failure,
            require_remote_log=require_remote_log,
            credentials_secret_name=credentials_secret_name,
            username_key=username_key,
            password_key=password_key,
        ),
        "resources": {
            "requests": {"cpu": "50m", "memory": "64Mi"},
            "limits": {"cpu": "250m", "memory": "128Mi"},
        },
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": AIRFLOW_UID,
            "runAsGroup": AIRFLOW_GID,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "canary-script", "mountPath": MOUNT_PATH, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108 - an emptyDir, not the host's
        ],
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": AIRFLOW_UID,
            "runAsGroup": AIRFLOW_GID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {
                "name": "canary-script",
                "configMap": {
                    "name": config_map_name,
                    "defaultMode": 0o444,
                    "items": [{"key": f, "path": f} for f in SCRIPT_FILES],
                },
            },
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}},
        ],
    }
    if node_selector:
        pod_spec["nodeSelector"] = dict(node_selector)
    if tolerations:
        pod_spec["tolerations"] = [dict(t) for t in tolerations]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": labels,
            "annotations": dict(REPLACE_UNREADY),
        },
        "spec": {
            "backoffLimit": 0,
            "activeDeadlineSeconds": timeout_seconds + DEADLINE_MARGIN_SECONDS,
            "ttlSecondsAfterFinished": ttl_seconds_after_finished,
            "template": {
                "metadata": {
                    "labels": labels,
                    "annotations": {
                        "airflow-platform/canary-script-sha256": canary_script_digest()
                    },
                },
                "spec": pod_spec,
            },
        },
    }


def canary_egress_policy(namespace: str, release_name: str) -> Manifest:
    """Egress for the canary's pods: DNS, and the api-server's port on the release's api-server.

    The api-server's own ingress policy (the chart's, `apiServer.networkPolicy.ingress.from`)
    must also admit a peer with `POD_LABELS`.
    """
    dns_peer = {
        "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
    }
    api_server = {
        "podSelector": {
            "matchLabels": {"tier": "airflow", "release": release_name, "component": "api-server"}
        }
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {
            "name": EGRESS_POLICY_NAME,
            "namespace": namespace,
            "labels": dict(PART_OF),
        },
        "spec": {
            "podSelector": {"matchLabels": {k: POD_LABELS[k] for k in sorted(POD_LABELS)}},
            "policyTypes": ["Egress"],
            "egress": [
                {
                    "to": [dns_peer],
                    "ports": [{"protocol": p, "port": 53} for p in ("UDP", "TCP")],
                },
                {"to": [api_server], "ports": [{"protocol": "TCP", "port": API_SERVER_PORT}]},
            ],
        },
    }
