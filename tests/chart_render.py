"""Render the pinned Airflow chart offline with Helm's own engine, and query the manifests.

`render(values, namespace)` runs Helm v4's template engine (helm-python-sdk, no cluster, no
helm binary) on the pinned chart package and parses every rendered document. The package is
`<CHART_DIR>/airflow-<version>.tgz`, checked against the sha256 pinned in `<CHART_DIR>/VERSION`;
without `../shared` it is downloaded from the Apache chart repository, checked against the
same digest (kept here as `PINNED_SHA256`) and cached under `.pytest_cache/d/airflow-chart`.

`render_run(run)` renders exactly what a mock-engine run hands to its Helm Release (values,
release name, namespace), once per `Run` object, so a session's three stack runs render
three times in all.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import helm_python as helm
import yaml

from components.settings import RawConfig, Settings, parse_settings
from tests.chart_support import CHART_DIR, release, values_of
from tests.harness import PROJECT, ROOT_DIR, Run, stack_config

CHART_NAME = "airflow"
PINNED_VERSION = "1.22.0"
PINNED_SHA256 = "1f7d1dfe3d58e2c54899950aba907a43625a18c8b6fb3c54760c21592129a5b6"
"""The chart package's pin, for where `CHART_DIR/VERSION` is absent (tests check they agree)."""

CHART_URLS = (
    "https://downloads.apache.org/airflow/helm-chart/{version}/airflow-{version}.tgz",
    "https://archive.apache.org/dist/airflow/helm-chart/{version}/airflow-{version}.tgz",
)
"""The Apache chart repository's package, then its archive (older releases move there)."""

VERSION_FILE = CHART_DIR / "VERSION"
DOWNLOAD_TIMEOUT_SECONDS = 60.0
POD_TEMPLATE_KEY = "pod_template_file.yaml"
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob")

Manifest = dict[str, Any]
Fetch = Callable[[str], bytes]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class ChartUnavailableError(RuntimeError):
    """The pinned chart package could not be found or fetched with the pinned digest."""


# --------------------------------------------------------------------------- the pin


@dataclass(frozen=True)
class ChartPin:
    version: str
    sha256: str
    source: str
    """Where the pin was read: the VERSION file, or this module's constants."""

    @property
    def package(self) -> str:
        return f"{CHART_NAME}-{self.version}.tgz"

    def urls(self) -> list[str]:
        return [u.format(version=self.version) for u in CHART_URLS]


def read_version_file(path: Path = VERSION_FILE) -> dict[str, str] | None:
    """`key: value` lines of a chart VERSION file, or None when there is none."""
    if not path.is_file():
        return None
    entries: dict[str, str] = {}
    for line in path.read_text().splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            entries[key.strip()] = value.strip()
    return entries


def pinned_chart(path: Path = VERSION_FILE) -> ChartPin:
    """The pin from `CHART_DIR/VERSION` when present, else the module's constant copy."""
    entries = read_version_file(path)
    if entries is None:
        return ChartPin(PINNED_VERSION, PINNED_SHA256, "tests/chart_render.py constants")
    missing = [k for k in ("version", "sha256") if not entries.get(k)]
    if missing:
        raise ChartUnavailableError(f"{path} has no {' or '.join(missing)}")
    return ChartPin(entries["version"], entries["sha256"].lower(), str(path))


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- the package


def default_cache_dir() -> Path:
    """pytest's cache directory for this project (`cache.mkdir` layout), else a temp dir."""
    for candidate in (
        ROOT_DIR / ".pytest_cache" / "d" / "airflow-chart",
        Path(tempfile.gettempdir()) / "airflow-platform-chart",
    ):
        try:
            candidate.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(candidate, os.W_OK):
            return candidate
    raise ChartUnavailableError("no writable cache directory for the chart package")


def fetch_https(url: str) -> bytes:
    if urllib.parse.urlsplit(url).scheme != "https":
        raise ValueError(f"refusing to fetch the chart over a non-https URL: {url}")
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:  # noqa: S310
        data: bytes = response.read()
    return data


def download_chart(
    pin: ChartPin,
    dest_dir: Path,
    *,
    urls: Sequence[str] | None = None,
    fetch: Fetch = fetch_https,
) -> Path:
    """The pinned package in `dest_dir`, fetched unless a copy with the right digest is there.

    Every URL is tried in turn; a body with another digest counts as a failure. When all fail
    the error names each URL and why, so a missing network is never mistaken for a pass.
    """
    target = dest_dir / pin.package
    if target.is_file() and sha256_of(target.read_bytes()) == pin.sha256:
        return target
    failures: list[str] = []
    for url in urls if urls is not None else pin.urls():
        try:
            data = fetch(url)
        except (OSError, ValueError) as exc:  # URLError and timeouts are OSErrors
            failures.append(f"  {url}: {type(exc).__name__}: {exc}")
            continue
        digest = sha256_of(data)
        if digest != pin.sha256:
            failures.append(f"  {url}: sha256 {digest}, expected {pin.sha256}")
            continue
        dest_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dest_dir, prefix=f".{pin.package}.")
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, target)
        return target
    raise ChartUnavailableError(
        f"cannot get the pinned chart {pin.package} (sha256 {pin.sha256}, pin from "
        f"{pin.source}): {CHART_DIR / pin.package} is absent and every download failed:\n"
        + "\n".join(failures)
        + f"\nPut the package at {CHART_DIR / pin.package} or allow access to the URLs above."
    )


def chart_archive(cache_dir: Path | None = None, *, fetch: Fetch = fetch_https) -> Path:
    """The verified package: the shared copy when present, else a cached download."""
    pin = pinned_chart()
    shared = CHART_DIR / pin.package
    if shared.is_file():
        digest = sha256_of(shared.read_bytes())
        if digest != pin.sha256:
            raise ChartUnavailableError(
                f"{shared} has sha256 {digest}, but {pin.source} pins {pin.sha256}"
            )
        return shared
    return download_chart(pin, cache_dir or default_cache_dir(), fetch=fetch)


_LOADED: list[helm.Chart | ChartUnavailableError] = []


def load_chart() -> helm.Chart:
    """The pinned chart, loaded once per process; a failure is remembered, not retried."""
    if not _LOADED:
        try:
            _LOADED.append(_load_pinned_chart())
        except ChartUnavailableError as exc:
            _LOADED.append(exc)
    loaded = _LOADED[0]
    if isinstance(loaded, ChartUnavailableError):
        raise loaded
    return loaded


def _load_pinned_chart() -> helm.Chart:
    pin = pinned_chart()
    chart = helm.Chart.load(chart_archive())
    if chart.name != CHART_NAME or chart.version != pin.version:
        raise ChartUnavailableError(
            f"the package holds chart {chart.name} {chart.version}, pinned {CHART_NAME} "
            f"{pin.version}"
        )
    return chart


# --------------------------------------------------------------------------- queries


class Pod(NamedTuple):
    """A pod spec the chart renders: a workload's template, or the worker pod template."""

    owner: str
    """`Kind/name`, or `ConfigMap/<name>[pod_template_file.yaml]` for the worker template."""
    labels: dict[str, Any]
    annotations: dict[str, Any]
    spec: dict[str, Any]
    source: str
    """The chart template path the pod comes from."""

    @property
    def component(self) -> str:
        """The chart's `component` label (scheduler, worker, run-airflow-migrations, ...)."""
        return str(self.labels.get("component", ""))


class Claim(NamedTuple):
    """A PersistentVolumeClaim, standalone or a StatefulSet's volumeClaimTemplate."""

    owner: str
    name: str
    storage_class: str | None
    """`spec.storageClassName`; None when the claim leaves it to the default class."""
    size: str | None


class SecretRef(NamedTuple):
    """One reference from a pod spec to a Secret."""

    name: str
    path: str
    key: str | None
    optional: bool


def containers(pod_spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Init containers, then containers."""
    return [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]


def named_containers(pod_spec: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """`(path, container)`, the path as `initContainers[name]` / `containers[name]`."""
    return [
        (f"{section}[{c.get('name', i)}]", c)
        for section in ("initContainers", "containers")
        for i, c in enumerate(pod_spec.get(section) or [])
    ]


def pod_spec_of(workload: Mapping[str, Any]) -> dict[str, Any]:
    template = pod_template_of(workload)
    spec: dict[str, Any] = template.get("spec") or {}
    return spec


def pod_template_of(workload: Mapping[str, Any]) -> dict[str, Any]:
    spec = workload.get("spec") or {}
    if workload.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template: dict[str, Any] = spec.get("template") or {}
    return template


def volume_claims(manifest: Mapping[str, Any]) -> list[Claim]:
    """The claims a PersistentVolumeClaim or a StatefulSet asks for (same shape everywhere)."""
    kind = manifest.get("kind")
    meta = manifest.get("metadata") or {}
    owner = f"{kind}/{meta.get('name')}"
    if kind == "PersistentVolumeClaim":
        templates: list[Mapping[str, Any]] = [manifest]
    elif kind == "StatefulSet":
        templates = (manifest.get("spec") or {}).get("volumeClaimTemplates") or []
    else:
        return []
    claims = []
    for tpl in templates:
        spec = tpl.get("spec") or {}
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
        claims.append(
            Claim(
                owner=owner,
                name=str((tpl.get("metadata") or {}).get("name")),
                storage_class=spec.get("storageClassName"),
                size=None if size is None else str(size),
            )
        )
    return claims


def secret_refs(pod_spec: Mapping[str, Any]) -> list[SecretRef]:
    """Every Secret a pod spec names: env, envFrom, volumes, projected volumes, pull secrets."""
    refs: list[SecretRef] = []
    for cpath, c in named_containers(pod_spec):
        for env in c.get("env") or []:
            ref = (env.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                refs.append(
                    SecretRef(
                        str(ref.get("name")),
                        f"{cpath}.env[{env.get('name')}].valueFrom.secretKeyRef",
                        ref.get("key"),
                        bool(ref.get("optional")),
                    )
                )
        for i, src in enumerate(c.get("envFrom") or []):
            ref = src.get("secretRef")
            if ref:
                refs.append(
                    SecretRef(
                        str(ref.get("name")),
                        f"{cpath}.envFrom[{i}].secretRef",
                        None,
                        bool(ref.get("optional")),
                    )
                )
    for vol in pod_spec.get("volumes") or []:
        vpath = f"volumes[{vol.get('name')}]"
        secret = vol.get("secret")
        if secret:
            optional = bool(secret.get("optional"))
            name = str(secret.get("secretName"))
            items = secret.get("items") or []
            refs += [
                SecretRef(name, f"{vpath}.secret.items[{it.get('key')}]", it.get("key"), optional)
                for it in items
            ] or [SecretRef(name, f"{vpath}.secret", None, optional)]
        for j, source in enumerate((vol.get("projected") or {}).get("sources") or []):
            secret = source.get("secret")
            if secret:
                optional = bool(secret.get("optional"))
                name = str(secret.get("name"))
                spath = f"{vpath}.projected.sources[{j}].secret"
                items = secret.get("items") or []
                refs += [
                    SecretRef(name, f"{spath}.items[{it.get('key')}]", it.get("key"), optional)
                    for it in items
                ] or [SecretRef(name, spath, None, optional)]
    for i, pull in enumerate(pod_spec.get("imagePullSecrets") or []):
        refs.append(SecretRef(str(pull.get("name")), f"imagePullSecrets[{i}]", None, False))
    return refs


@dataclass
class Rendered:
    """The parsed manifests of one render, with queries in the style of the chart's tests."""

    release_name: str
    namespace: str
    documents: list[tuple[str, Manifest]]
    """`(template path, object)` for every non-empty document, in template order."""
    _pods: list[Pod] | None = field(default=None, repr=False)

    @property
    def objects(self) -> list[Manifest]:
        return [doc for _, doc in self.documents]

    def of_kind(self, kind: str) -> list[Manifest]:
        return [doc for _, doc in self.documents if doc.get("kind") == kind]

    def find(self, kind: str, name: str) -> Manifest | None:
        for doc in self.of_kind(kind):
            if (doc.get("metadata") or {}).get("name") == name:
                return doc
        return None

    def get(self, kind: str, name: str) -> Manifest:
        doc = self.find(kind, name)
        if doc is None:
            have = sorted(str((d.get("metadata") or {}).get("name")) for d in self.of_kind(kind))
            raise KeyError(f"no {kind} named {name!r} rendered; {kind} objects: {have}")
        return doc

    def source(self, obj: Manifest) -> str:
        """The chart template that rendered `obj`."""
        for path, doc in self.documents:
            if doc is obj:
                return path
        raise KeyError("object not from this render")

    def workloads(self) -> list[Manifest]:
        """Deployments, StatefulSets, DaemonSets, Jobs and CronJobs."""
        return [doc for _, doc in self.documents if doc.get("kind") in WORKLOAD_KINDS]

    def worker_pod_template(self) -> tuple[Manifest, Manifest] | None:
        """`(ConfigMap, Pod)`: the KubernetesExecutor's pod template shipped in the config map."""
        for cm in self.of_kind("ConfigMap"):
            text = (cm.get("data") or {}).get(POD_TEMPLATE_KEY)
            if text is None:
                continue
            pods = [
                d
                for d in yaml.load_all(text, Loader=_Loader)
                if isinstance(d, dict) and d.get("kind") == "Pod"
            ]
            if len(pods) != 1:
                raise ValueError(f"{POD_TEMPLATE_KEY} holds {len(pods)} Pod documents")
            return cm, pods[0]
        return None

    def pods(self) -> list[Pod]:
        """Every pod spec: each workload's template, and the worker pod template."""
        if self._pods is None:
            found = []
            for wl in self.workloads():
                tpl = pod_template_of(wl)
                meta = tpl.get("metadata") or {}
                found.append(
                    Pod(
                        owner=f"{wl['kind']}/{wl['metadata']['name']}",
                        labels=dict(meta.get("labels") or {}),
                        annotations=dict(meta.get("annotations") or {}),
                        spec=tpl.get("spec") or {},
                        source=self.source(wl),
                    )
                )
            worker = self.worker_pod_template()
            if worker is not None:
                cm, pod = worker
                meta = pod.get("metadata") or {}
                found.append(
                    Pod(
                        owner=f"ConfigMap/{cm['metadata']['name']}[{POD_TEMPLATE_KEY}]",
                        labels=dict(meta.get("labels") or {}),
                        annotations=dict(meta.get("annotations") or {}),
                        spec=pod.get("spec") or {},
                        source=self.source(cm),
                    )
                )
            self._pods = found
        return self._pods

    def pod_specs(self) -> list[tuple[str, dict[str, Any]]]:
        """`(owner, pod spec)` for every pod, the worker pod template included."""
        return [(p.owner, p.spec) for p in self.pods()]

    def pods_of(self, component: str) -> list[Pod]:
        """Pods whose `component` label is `component`."""
        return [p for p in self.pods() if p.component == component]

    containers = staticmethod(containers)
    named_containers = staticmethod(named_containers)

    def claims(self) -> list[Claim]:
        """PersistentVolumeClaims and StatefulSet volumeClaimTemplates."""
        return [c for doc in self.objects for c in volume_claims(doc)]

    def annotated(self, annotation: str) -> Iterator[tuple[str, str]]:
        """`(where, value)` for every object or pod template carrying `annotation`."""
        for _, doc in self.documents:
            where = f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"
            value = ((doc.get("metadata") or {}).get("annotations") or {}).get(annotation)
            if value is not None:
                yield where, str(value)
        for pod in self.pods():
            if annotation in pod.annotations:
                yield f"{pod.owner} pod template", str(pod.annotations[annotation])


# --------------------------------------------------------------------------- rendering


def parse_manifests(manifests: Mapping[str, str]) -> list[tuple[str, Manifest]]:
    """`(template path, object)` for every non-empty YAML document; NOTES.txt is skipped."""
    documents: list[tuple[str, Manifest]] = []
    for path in sorted(manifests):
        if path.rsplit("/", 1)[-1] == "NOTES.txt":
            continue
        text = manifests[path]
        if not text.strip():
            continue
        for doc in yaml.load_all(text, Loader=_Loader):
            if doc is None:
                continue
            if not isinstance(doc, dict):
                raise ValueError(f"{path} rendered a {type(doc).__name__}, not an object")
            documents.append((path, doc))
    return documents


def render(values: Mapping[str, Any], namespace: str, release_name: str = "airflow") -> Rendered:
    """The pinned chart rendered as `helm install` would (IsInstall, revision 1), parsed."""
    manifests = load_chart().render(
        dict(values), name=release_name, namespace=namespace, is_install=True
    )
    return Rendered(release_name, namespace, parse_manifests(manifests))


_RUN_RENDERS: dict[int, tuple[Run, Rendered]] = {}


def render_run(run: Run) -> Rendered:
    """What the run's Helm Release installs: its values, release name and namespace.

    Cached per `Run` object (held, so its id is not reused): the session's stack runs are
    rendered once each however many tests ask.
    """
    hit = _RUN_RENDERS.get(id(run))
    if hit is not None and hit[0] is run:
        return hit[1]
    inputs = release(run).inputs
    rendered = render(values_of(run), str(inputs["namespace"]), str(inputs["name"]))
    _RUN_RENDERS[id(run)] = (run, rendered)
    return rendered


# --------------------------------------------------------------------------- selectors


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, Any]) -> bool:
    """Whether a LabelSelector selects an object with `labels` (Kubernetes docs, "Labels and
    Selectors"): every `matchLabels` pair and every `matchExpressions` requirement (In, NotIn,
    Exists, DoesNotExist) must hold; an empty selector selects everything, None nothing."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if key not in labels or str(labels[key]) != str(value):
            return False
    for req in selector.get("matchExpressions") or []:
        key, op = req["key"], req["operator"]
        values = {str(v) for v in req.get("values") or []}
        present = key in labels
        if op == "In" and not (present and str(labels[key]) in values):
            return False
        if op == "NotIn" and present and str(labels[key]) in values:
            return False
        if op == "Exists" and not present:
            return False
        if op == "DoesNotExist" and present:
            return False
        if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
            raise ValueError(f"unknown selector operator {op!r}")
    return True


def workload_replicas(workload: Mapping[str, Any]) -> int | None:
    """`spec.replicas` of a Deployment or StatefulSet (1 when unset); None for other kinds."""
    if workload.get("kind") not in ("Deployment", "StatefulSet"):
        return None
    replicas = (workload.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def token_automounted(rendered: Rendered, pod: Pod) -> bool:
    """Whether Kubernetes mounts the pod's service-account token: the pod's own
    `automountServiceAccountToken` wins, else its ServiceAccount's, else true (Kubernetes
    docs, "Configure Service Accounts for Pods" > "Opt out of API credential automounting")."""
    if "automountServiceAccountToken" in pod.spec:
        return bool(pod.spec["automountServiceAccountToken"])
    account = rendered.find("ServiceAccount", str(pod.spec.get("serviceAccountName") or "default"))
    if account is not None and "automountServiceAccountToken" in account:
        return bool(account["automountServiceAccountToken"])
    return True


def resource_gaps(container: Mapping[str, Any]) -> list[str]:
    """Which of cpu request, memory request and memory limit a container lacks."""
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    gaps = [f"requests.{r}" for r in ("cpu", "memory") if not requests.get(r)]
    if not limits.get("memory"):
        gaps.append("limits.memory")
    return gaps


def stack_settings(stack: str) -> Settings:
    """The settings the program parses for a stack file, as `run_stack` hands it the config
    (`tests.harness.stack_config`: declared defaults, site values, test secrets)."""
    config, secret = stack_config(stack)
    prefix = f"{PROJECT}:"
    values = {
        k[len(prefix) :]: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()
    }
    return parse_settings(RawConfig(stack, values, frozenset(k[len(prefix) :] for k in secret)))
