"""The egress NetworkPolicies of `components/network_policies.py`, checked against the chart.

Each stack's policies are built from its settings, validated as NetworkPolicy objects, and
evaluated against the pods the pinned chart really renders for that stack (`render_run`):
every pod the policies mean to govern is selected, and every connection the platform needs is
allowed, while a few it does not need stay closed.

Semantics follow the Kubernetes docs, "Network Policies": a pod selected by a policy with
`Egress` in `policyTypes` may open only connections some such policy allows; a rule allows
a connection when one of its `to` peers and one of its `ports` match (an empty list matches
everything); a peer's `podSelector` alone means pods of the policy's namespace, with a
`namespaceSelector` pods of the selected namespaces, and an `ipBlock` a CIDR outside the
cluster's pod network. Policies are additive.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import jsonschema
import pytest

from canary import job as canary_job
from components import network_policies as npol
from components.settings import Settings
from tests.chart_render import (
    Pod,
    Rendered,
    named_containers,
    render_run,
    selector_matches,
    stack_settings,
)
from tests.chart_support import CHART_DIR, is_eks
from tests.harness import STACKS, Run

NAMESPACE = "airflow"
DNS_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
S3_ADDRESS = "52.218.0.10"
"""An address from S3's published eu-west-1 ranges: what a bucket name resolves to."""
GIT_HOST_ADDRESS = "140.82.121.4"
"""An address of the git host (github.com)."""
MINIKUBE_API_ADDRESS = "192.168.49.2"
"""minikube's node (docker driver), where its apiserver listens on 8443."""
METADATA_SERVICE = "169.254.169.254"

AIRFLOW_COMPONENTS = frozenset(npol.AIRFLOW_COMPONENTS)


def policies_of(stack: str) -> list[dict[str, Any]]:
    return npol.egress_policies(stack_settings(stack), NAMESPACE)


# --------------------------------------------------------------------------- the shape


def _closed(schema: Any) -> Any:
    """The Kubernetes definitions with unknown fields refused, as the API server's strict
    field validation does (`kubectl apply --validate=strict`)."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@cache
def network_policy_schema() -> dict[str, Any]:
    """NetworkPolicy (networking.k8s.io/v1) from the Kubernetes OpenAPI definitions the pinned
    chart ships in values.schema.json (`io.k8s.api.networking.v1.NetworkPolicyPeer`, `...Port`,
    `IPBlock`, `meta.v1.LabelSelector`); the object and spec levels follow the API reference
    (NetworkPolicy v1: `podSelector` required, `policyTypes` Ingress/Egress)."""
    chart = json.loads((CHART_DIR / "values.schema.json").read_text())
    definitions = _closed(chart["definitions"])
    rule = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "to": {
                "type": "array",
                "items": {"$ref": "#/definitions/io.k8s.api.networking.v1.NetworkPolicyPeer"},
            },
            "ports": {
                "type": "array",
                "items": {"$ref": "#/definitions/io.k8s.api.networking.v1.NetworkPolicyPort"},
            },
        },
    }
    return {
        "definitions": definitions,
        "type": "object",
        "additionalProperties": False,
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"const": "networking.k8s.io/v1"},
            "kind": {"const": "NetworkPolicy"},
            "metadata": {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"},
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "required": ["podSelector"],
                "properties": {
                    "podSelector": {
                        "$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.LabelSelector"
                    },
                    "policyTypes": {
                        "type": "array",
                        "items": {"enum": ["Ingress", "Egress"]},
                    },
                    "egress": {"type": "array", "items": rule},
                    "ingress": {"type": "array"},
                },
            },
        },
    }


def shape_problems(policy: dict[str, Any]) -> list[str]:
    """Schema errors, and the API server's validation rules the schema cannot say."""
    validator = jsonschema.Draft7Validator(network_policy_schema())
    name = str((policy.get("metadata") or {}).get("name"))
    problems = [
        f"{name}: {'.'.join(str(p) for p in e.absolute_path)}: {e.message[:160]}"
        for e in validator.iter_errors(policy)
    ]
    if problems:
        return problems
    meta, spec = policy["metadata"], policy["spec"]
    if len(name) > 253 or not DNS_NAME.match(name):
        problems.append(f"{name}: not a DNS subdomain name")
    if not meta.get("namespace"):
        problems.append(f"{name}: no namespace")
    if spec.get("egress") and "Egress" not in (spec.get("policyTypes") or []):
        problems.append(f"{name}: egress rules without Egress in policyTypes")
    for rule in spec.get("egress") or []:
        for peer in rule.get("to") or []:
            if "ipBlock" in peer and len(peer) > 1:
                problems.append(f"{name}: ipBlock beside a selector in one peer: {peer}")
            if "ipBlock" in peer:
                block = peer["ipBlock"]
                cidr = ipaddress.ip_network(block["cidr"])
                for excluded in block.get("except") or []:
                    if not ipaddress.ip_network(excluded).subnet_of(cidr):  # type: ignore[arg-type]
                        problems.append(f"{name}: except {excluded} outside {cidr}")
        for port in rule.get("ports") or []:
            if port.get("protocol", "TCP") not in ("TCP", "UDP", "SCTP"):
                problems.append(f"{name}: protocol {port.get('protocol')}")
            number = port.get("port")
            if isinstance(number, int) and not 1 <= number <= 65535:
                problems.append(f"{name}: port {number}")
    for selector in _selectors(spec):
        for req in selector.get("matchExpressions") or []:
            if req["operator"] in ("In", "NotIn") and not req.get("values"):
                problems.append(f"{name}: {req['operator']} with no values")
    return problems


def _selectors(spec: dict[str, Any]) -> list[dict[str, Any]]:
    found = [spec["podSelector"]]
    for rule in spec.get("egress") or []:
        for peer in rule.get("to") or []:
            found += [peer[k] for k in ("podSelector", "namespaceSelector") if k in peer]
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_policy_is_a_valid_network_policy(stack: str) -> None:
    """Each manifest is a NetworkPolicy the API server accepts (Kubernetes API reference,
    NetworkPolicy v1), with unique names in the release namespace."""
    policies = policies_of(stack)
    problems = [p for policy in policies for p in shape_problems(policy)]
    names = [p["metadata"]["name"] for p in policies]
    if len(set(names)) != len(names):
        problems.append(f"duplicate names: {names}")
    if any(p["metadata"]["namespace"] != NAMESPACE for p in policies):
        problems.append("a policy outside the release namespace")
    assert problems == []


def test_the_shape_check_rejects_broken_policies() -> None:
    policy = policies_of("production")[0]
    for mutate in (
        lambda p: p["spec"].update(podSelector=None),
        lambda p: p["spec"].update(policyTypes=["Outbound"]),
        lambda p: p["spec"]["egress"][0]["to"][0].update(podselector={}),
        lambda p: p["spec"]["egress"][0]["ports"][0].update(protocol="ICMP"),
        lambda p: p["spec"]["egress"][0]["to"][0].update(ipBlock={"cidr": "10.0.0.0/8"}),
        lambda p: p["metadata"].update(name="Not_A_Name"),
        lambda p: p.update(kind="NetworkPolicies"),
    ):
        broken = copy.deepcopy(policy)
        mutate(broken)
        assert shape_problems(broken), broken


def test_policies_are_pure_data() -> None:
    """Plain JSON, equal from call to call: the caller can hand them to any resource."""
    settings = stack_settings("production")
    first = npol.egress_policies(settings, NAMESPACE)
    assert json.loads(json.dumps(first)) == first
    assert npol.egress_policies(settings, NAMESPACE) == first


# --------------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Peer:
    """A destination: a pod (namespace and labels) or an address outside the cluster."""

    port: int
    protocol: str = "TCP"
    namespace: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    address: str | None = None

    def __str__(self) -> str:
        where = self.address or f"{self.namespace}/{self.labels}"
        return f"{where}:{self.port}/{self.protocol}"


def namespace_labels(name: str) -> dict[str, str]:
    """Every namespace carries its name as `kubernetes.io/metadata.name` (Kubernetes 1.21+)."""
    return {"kubernetes.io/metadata.name": name}


def _peer_matches(peer: dict[str, Any], policy_ns: str, dest: Peer) -> bool:
    if "ipBlock" in peer:
        if dest.address is None:
            return False
        address = ipaddress.ip_address(dest.address)
        block = peer["ipBlock"]
        return address in ipaddress.ip_network(block["cidr"]) and not any(
            address in ipaddress.ip_network(e) for e in block.get("except") or []
        )
    if dest.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not selector_matches(peer["namespaceSelector"], namespace_labels(dest.namespace)):
            return False
    elif dest.namespace != policy_ns:
        return False
    return "podSelector" not in peer or selector_matches(peer["podSelector"], dest.labels)


def _port_matches(port: dict[str, Any], dest: Peer) -> bool:
    if port.get("protocol", "TCP") != dest.protocol:
        return False
    if "port" not in port:
        return True
    end = port.get("endPort", port["port"])
    return bool(port["port"] <= dest.port <= end)


def selecting(policies: list[dict[str, Any]], pod: Pod, namespace: str) -> list[dict[str, Any]]:
    return [
        p
        for p in policies
        if p["metadata"]["namespace"] == namespace
        and "Egress" in (p["spec"].get("policyTypes") or [])
        and selector_matches(p["spec"]["podSelector"], pod.labels)
    ]


def egress_allowed(policies: list[dict[str, Any]], pod: Pod, namespace: str, dest: Peer) -> bool:
    chosen = selecting(policies, pod, namespace)
    if not chosen:
        return True
    for policy in chosen:
        for rule in policy["spec"].get("egress") or []:
            peers = rule.get("to") or []
            ports = rule.get("ports") or []
            if (not peers or any(_peer_matches(p, namespace, dest) for p in peers)) and (
                not ports or any(_port_matches(p, dest) for p in ports)
            ):
                return True
    return False


# --------------------------------------------------------------------------- the needs


def _service_port(rendered: Rendered, name: str, port_name: str) -> tuple[int, str]:
    """The pod port behind a chart Service's named port (NetworkPolicies see pod ports)."""
    service = rendered.get("Service", f"{rendered.release_name}-{name}")
    port = next(p for p in service["spec"]["ports"] if p["name"] == port_name)
    target = port.get("targetPort", port["port"])
    assert isinstance(target, int), f"named targetPort {target} on Service {name}"
    return target, str(port.get("protocol", "TCP"))


def _pod_labels(rendered: Rendered, component: str) -> dict[str, str]:
    pods = rendered.pods_of(component)
    assert pods, f"no rendered {component} pod"
    return {k: str(v) for k, v in pods[0].labels.items()}


def _program_pod(run: Run, type_: str, name: str) -> tuple[str, dict[str, str]]:
    """Namespace and pod labels of a workload the program creates itself."""
    for res in run.of_type(type_):
        meta = res.inputs["metadata"]
        if meta["name"] == name:
            return meta["namespace"], dict(res.inputs["spec"]["template"]["metadata"]["labels"])
    raise AssertionError(f"no {type_} {name}")


def _first_address(cidr: str) -> str:
    return str(next(ipaddress.ip_network(cidr).hosts()))


def needs(run: Run, rendered: Rendered, settings: Settings) -> list[tuple[Pod, Peer, str]]:
    """`(pod, destination, why)` for every connection the platform needs from a release pod."""
    found: list[tuple[Pod, Peer, str]] = []
    api_port, _ = _service_port(rendered, "api-server", "api-server")
    statsd_port, statsd_protocol = _service_port(rendered, "statsd", "statsd-ingest")
    triggerer_port, _ = _service_port(rendered, "triggerer", "triggerer-logs")
    kube_dns = {"k8s-app": "kube-dns"}
    for pod in rendered.pods():
        for protocol in ("UDP", "TCP"):
            found.append((pod, Peer(53, protocol, "kube-system", kube_dns), "DNS"))
        if pod.component not in AIRFLOW_COMPONENTS:
            continue
        if is_eks(run):
            port, _ = _service_port(rendered, "pgbouncer", "pgbouncer")
            found.append(
                (pod, Peer(port, "TCP", NAMESPACE, _pod_labels(rendered, "pgbouncer")), "db")
            )
            found.append((pod, Peer(443, address=S3_ADDRESS), "S3/STS"))
        else:
            ns, labels = _program_pod(run, "kubernetes:apps/v1:StatefulSet", "postgres")
            found.append((pod, Peer(5432, "TCP", ns, labels), "db"))
            ns, labels = _program_pod(run, "kubernetes:apps/v1:Deployment", "minio")
            found.append((pod, Peer(9000, "TCP", ns, labels), "task-log store"))
        found.append(
            (
                pod,
                Peer(api_port, "TCP", NAMESPACE, _pod_labels(rendered, "api-server")),
                "execution API",
            )
        )
        found.append(
            (
                pod,
                Peer(statsd_port, statsd_protocol, NAMESPACE, _pod_labels(rendered, "statsd")),
                "metrics",
            )
        )
        names = {c.get("name") for _, c in named_containers(pod.spec)}
        if names & {"git-sync", "git-sync-init"}:
            port = 22 if npol.git_uses_ssh(settings.airflow.git_sync.repo) else 443
            found.append((pod, Peer(port, address=GIT_HOST_ADDRESS), "git remote"))
        if pod.component in ("scheduler", "worker", "api-server"):
            if is_eks(run):
                for subnet in run.of_type("aws:ec2/subnet:Subnet"):
                    if "private" in subnet.name:
                        address = _first_address(subnet.inputs["cidrBlock"])
                        found.append((pod, Peer(443, address=address), "Kubernetes API"))
            else:
                found.append((pod, Peer(8443, address=MINIKUBE_API_ADDRESS), "Kubernetes API"))
        if pod.component == "api-server":
            found.append(
                (
                    pod,
                    Peer(triggerer_port, "TCP", NAMESPACE, _pod_labels(rendered, "triggerer")),
                    "triggerer logs",
                )
            )
    for pod in rendered.pods_of("pgbouncer"):
        rds = run.one("aws:rds/instance:Instance")
        port = int(rds.outputs.get("port") or 5432)
        for subnet in run.of_type("aws:ec2/subnet:Subnet"):
            if "private" in subnet.name:
                address = _first_address(subnet.inputs["cidrBlock"])
                found.append((pod, Peer(port, address=address), "RDS"))
    return found


@pytest.mark.parametrize("stack", STACKS)
def test_every_release_pod_is_governed_and_nothing_else(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """Every pod the chart renders (workloads, hook Jobs, the worker pod template) is selected
    by an egress policy; the program's own MinIO and bucket Job are not."""
    run = stack_runs[stack]
    rendered = render_run(run)
    policies = policies_of(stack)
    problems = [
        f"{stack}: {pod.owner} ({pod.labels}) is selected by no egress policy"
        for pod in rendered.pods()
        if not selecting(policies, pod, rendered.namespace)
    ]
    for res in run.resources:
        if res.type in ("kubernetes:apps/v1:Deployment", "kubernetes:batch/v1:Job"):
            labels = res.inputs["spec"]["template"]["metadata"]["labels"]
            outsider = Pod(res.name, labels, {}, {}, "program")
            chosen = {
                p["metadata"]["name"]
                for p in selecting(policies, outsider, res.inputs["metadata"]["namespace"])
            }
            # The canary's pod has its own policy, and only that one.
            own = {canary_job.EGRESS_POLICY_NAME} if res.name == "airflow-canary" else set()
            if chosen != own:
                problems.append(f"{stack}: {res.type} {res.name} is selected by {chosen}")
    assert problems == []


@pytest.mark.parametrize("stack", STACKS)
def test_policy_selectors_match_the_charts_pod_labels(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """Each policy selects at least one rendered pod, and only pods of the components its
    purpose names (the chart's `component` labels)."""
    rendered = render_run(stack_runs[stack])
    purposes = {
        "dns": {p.component for p in rendered.pods()},
        "in-release": AIRFLOW_COMPONENTS,
        "metadata-db": AIRFLOW_COMPONENTS,
        "log-store": AIRFLOW_COMPONENTS,
        "https": AIRFLOW_COMPONENTS,
        "pgbouncer-rds": {"pgbouncer"},
        "kubernetes-api": {"scheduler", "worker", "api-server"},
        "git-ssh": {
            p.component
            for p in rendered.pods()
            if any(c.get("name") == "git-sync" for _, c in named_containers(p.spec))
        },
    }
    problems = []
    for policy in policies_of(stack):
        purpose = policy["metadata"]["name"].removeprefix(f"{npol.NAME_PREFIX}-")
        chosen = {
            p.component
            for p in rendered.pods()
            if selector_matches(policy["spec"]["podSelector"], p.labels)
        }
        if purpose == canary_job.EGRESS_POLICY_NAME:
            if chosen:
                problems.append(f"{stack}: the canary's policy selects chart pods {chosen}")
            continue
        if not chosen:
            problems.append(f"{stack}: {purpose} selects no rendered pod")
        if purpose not in purposes:
            problems.append(f"{stack}: policy {purpose} has no stated purpose in this test")
        elif not chosen <= purposes[purpose]:
            problems.append(f"{stack}: {purpose} selects {sorted(chosen - purposes[purpose])}")
    assert problems == []


@pytest.mark.parametrize("stack", STACKS)
def test_every_needed_destination_is_allowed(stack_runs: dict[str, Run], stack: str) -> None:
    """DNS, the metadata database (PgBouncer and RDS, or the in-cluster Postgres), the
    execution API and StatsD, the task-log store (S3/STS, or MinIO), the git remote and the
    Kubernetes API: each from every pod that needs it, on the port the chart's Services and
    the program's workloads really use."""
    run = stack_runs[stack]
    rendered = render_run(run)
    settings = stack_settings(stack)
    policies = policies_of(stack)
    wanted = needs(run, rendered, settings)
    missing = [
        f"{stack}: {pod.owner} -> {dest} ({why})"
        for pod, dest, why in wanted
        if not egress_allowed(policies, pod, rendered.namespace, dest)
    ]
    assert missing == []
    whys = {why for _, _, why in wanted}
    assert {"DNS", "db", "execution API", "metrics", "Kubernetes API"} <= whys
    assert ("RDS" in whys) is is_eks(run)
    assert ("git remote" in whys) is (settings.airflow.dags_source == "gitSync")


@pytest.mark.parametrize("stack", STACKS)
def test_what_no_pod_needs_stays_closed(stack_runs: dict[str, Run], stack: str) -> None:
    """A few connections nothing needs are refused: the instance metadata service (IRSA and the
    connection supply credentials), the database port outside the VPC, anything beyond DNS
    from StatsD, and the internet from PgBouncer."""
    run = stack_runs[stack]
    rendered = render_run(run)
    policies = policies_of(stack)
    refused: list[tuple[Pod, Peer]] = []
    for pod in rendered.pods():
        refused.append((pod, Peer(80, address=METADATA_SERVICE)))
        refused.append((pod, Peer(5432, address=S3_ADDRESS)))
        if pod.component in ("statsd", "pgbouncer"):
            refused.append((pod, Peer(443, address=S3_ADDRESS)))
    if is_eks(run):
        refused += [
            (pod, Peer(5432, address="10.255.0.1")) for pod in rendered.pods_of("pgbouncer")
        ]
    allowed = [
        f"{stack}: {pod.owner} -> {dest}"
        for pod, dest in refused
        if egress_allowed(policies, pod, rendered.namespace, dest)
    ]
    assert allowed == []


@pytest.mark.parametrize("stack", STACKS)
def test_the_canary_reaches_dns_and_the_api_server_and_nothing_else(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """The canary's pod (the program's Job) calls the REST API on the api-server's real pod
    port and resolves its Service name; the database, the log store, the metadata service
    and the internet stay closed to it."""
    run = stack_runs[stack]
    rendered = render_run(run)
    policies = policies_of(stack)
    namespace, labels = _program_pod(run, "kubernetes:batch/v1:Job", _canary_job_name(run))
    canary = Pod("Job/canary", labels, {}, {}, "program")
    api_port, _ = _service_port(rendered, "api-server", "api-server")
    kube_dns = {"k8s-app": "kube-dns"}
    needed = [
        Peer(53, "UDP", "kube-system", kube_dns),
        Peer(53, "TCP", "kube-system", kube_dns),
        Peer(api_port, "TCP", NAMESPACE, _pod_labels(rendered, "api-server")),
    ]
    closed = [
        Peer(80, address=METADATA_SERVICE),
        Peer(443, address=S3_ADDRESS),
        Peer(443, address=GIT_HOST_ADDRESS),
        Peer(api_port, "TCP", NAMESPACE, _pod_labels(rendered, "scheduler")),
        Peer(9000, "TCP", NAMESPACE, {"app.kubernetes.io/name": "minio"}),
    ]
    if is_eks(run):
        closed.append(Peer(6543, "TCP", NAMESPACE, _pod_labels(rendered, "pgbouncer")))
    assert namespace == rendered.namespace
    assert [str(d) for d in needed if not egress_allowed(policies, canary, namespace, d)] == []
    assert [str(d) for d in closed if egress_allowed(policies, canary, namespace, d)] == []


def _canary_job_name(run: Run) -> str:
    [job] = [r for r in run.of_type("kubernetes:batch/v1:Job") if r.name == "airflow-canary"]
    name: str = job.inputs["metadata"]["name"]
    return name


def test_an_ssh_repository_opens_port_22_for_git_sync_pods_only() -> None:
    settings = stack_settings("integration")
    ssh = settings.model_copy(
        update={
            "airflow": settings.airflow.model_copy(
                update={
                    "git_sync": settings.airflow.git_sync.model_copy(
                        update={"repo": "git@github.com:acme-data/airflow-platform.git"}
                    )
                }
            )
        }
    )
    policies = npol.egress_policies(ssh, NAMESPACE)
    (git,) = [p for p in policies if p["metadata"]["name"].endswith("-git-ssh")]
    assert git["spec"]["egress"][0]["ports"] == [{"protocol": "TCP", "port": 22}]
    assert shape_problems(git) == []
    https = npol.egress_policies(settings, NAMESPACE)
    assert not [p for p in https if p["metadata"]["name"].endswith("-git-ssh")]


@pytest.mark.parametrize("stack", STACKS)
def test_the_program_creates_exactly_these_policies(stack_runs: dict[str, Run], stack: str) -> None:
    """What the release namespace gets is what `egress_policies` says, name for name."""
    run = stack_runs[stack]
    recorded = {
        r.inputs["metadata"]["name"]: r.inputs
        for r in run.of_type("kubernetes:networking.k8s.io/v1:NetworkPolicy")
    }
    expected = {p["metadata"]["name"]: p for p in policies_of(stack)}
    assert set(recorded) == set(expected)
    for name, policy in expected.items():
        assert recorded[name]["spec"] == policy["spec"], name
        assert recorded[name]["metadata"]["namespace"] == "airflow"
