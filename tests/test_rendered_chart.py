"""What the pinned chart really renders from each stack's values, checked against the target.

The values tests prove the program hands Helm schema-valid values; these render them with
Helm's own template engine (`tests/chart_render.py`) and check the manifests a real
`helm install` would apply: that every Secret a pod reads exists, every volume claim can be
provisioned on that stack's cluster, every Airflow container runs the image the program built,
the log-writing pods assume the task-log role, and the migration hook cannot deadlock.

Chart paths below are inside the pinned package, `airflow-<version>.tgz`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from tests.chart_render import (
    CHART_NAME,
    PINNED_SHA256,
    PINNED_VERSION,
    ChartPin,
    ChartUnavailableError,
    Pod,
    Rendered,
    download_chart,
    named_containers,
    pinned_chart,
    pod_template_of,
    read_version_file,
    render,
    render_run,
    resource_gaps,
    secret_refs,
    selector_matches,
    sha256_of,
    token_automounted,
    volume_claims,
    workload_replicas,
)
from tests.chart_support import (
    CHART_DIR,
    StorageClass,
    eks_ebs_csi_addon,
    is_eks,
    release,
    secrets_in_namespace,
    storage_classes,
    values_of,
)
from tests.harness import STACKS, Resource, Run

IRSA_ANNOTATION = "eks.amazonaws.com/role-arn"
HOOK_ANNOTATION = "helm.sh/hook"
MIGRATIONS_INIT = "wait-for-airflow-migrations"

AIRFLOW_CONTAINERS: dict[str, frozenset[str]] = {
    "scheduler": frozenset({"scheduler", MIGRATIONS_INIT, "scheduler-log-groomer"}),
    "dag-processor": frozenset({"dag-processor", MIGRATIONS_INIT, "dag-processor-log-groomer"}),
    "triggerer": frozenset({"triggerer", MIGRATIONS_INIT, "triggerer-log-groomer"}),
    "api-server": frozenset({"api-server", MIGRATIONS_INIT}),
    "webserver": frozenset({"webserver", MIGRATIONS_INIT}),
    "run-airflow-migrations": frozenset({"run-airflow-migrations"}),
    "create-user-job": frozenset({"create-user"}),
    "worker": frozenset(
        {
            "base",
            "worker",
            MIGRATIONS_INIT,
            "worker-log-groomer",
            "volume-permissions",
            "kerberos-init",
            "worker-kerberos",
        }
    ),
    "flower": frozenset({"flower"}),
    "airflow-cleanup-pods": frozenset({"airflow-cleanup-pods"}),
    "database-cleanup": frozenset({"database-cleanup"}),
}
"""Per chart `component` label, the containers that run Airflow (the chart's `airflow_image`,
`airflow_image_for_migrations` and `pod_template_image` helpers in templates/_helpers.yaml)."""

SIDECARS = frozenset({"git-sync", "git-sync-init"})
"""Containers in Airflow pods that run another image on purpose (`git_sync_image`)."""

OTHER_COMPONENTS = frozenset({"statsd", "pgbouncer", "redis", "otel-collector"})
"""Components whose pods run no Airflow at all (their own images)."""

LOG_WRITERS = ("scheduler", "triggerer", "dag-processor", "api-server", "worker")
"""Components that read or write task logs in the remote store (the `worker` pod included)."""


def _case(stack_runs: dict[str, Run], stack: str) -> tuple[Run, Rendered]:
    run = stack_runs[stack]
    return run, render_run(run)


def _fail_on(problems: list[str], what: str, summary: str = "") -> None:
    """Fail with every problem at once, one line each."""
    if problems:
        head = f"{len(problems)} {what}" + (f" ({summary})" if summary else "")
        pytest.fail(head + ":\n" + "\n".join(f"  - {p}" for p in problems), pytrace=False)


# --------------------------------------------------------------------------- the pin


def test_the_module_pin_agrees_with_the_version_file() -> None:
    """The constants used where `../shared` is absent pin the same package as VERSION."""
    entries = read_version_file()
    if entries is None:
        pytest.skip(f"no {CHART_DIR / 'VERSION'}: the module constants are the only pin")
    assert (entries.get("version"), entries.get("sha256")) == (PINNED_VERSION, PINNED_SHA256), (
        f"tests/chart_render.py pins {CHART_NAME} {PINNED_VERSION} sha256 {PINNED_SHA256}, "
        f"{CHART_DIR / 'VERSION'} pins {entries.get('version')} sha256 {entries.get('sha256')}: "
        "update PINNED_VERSION/PINNED_SHA256"
    )
    assert entries.get("package") in (None, f"{CHART_NAME}-{PINNED_VERSION}.tgz")
    assert pinned_chart() == ChartPin(PINNED_VERSION, PINNED_SHA256, str(CHART_DIR / "VERSION"))


def test_a_download_is_checked_against_the_pinned_digest(tmp_path: Path) -> None:
    """A fetched package is kept only with the pinned sha256; the next use reads the cache."""
    pin = ChartPin("1.0.0", sha256_of(b"the package"), "test")
    served = {"https://first/": b"tampered", "https://second/": b"the package"}
    calls: list[str] = []

    def fetch(url: str) -> bytes:
        calls.append(url)
        return served[url]

    path = download_chart(pin, tmp_path, urls=list(served), fetch=fetch)
    assert path == tmp_path / "airflow-1.0.0.tgz" and path.read_bytes() == b"the package"
    assert calls == ["https://first/", "https://second/"]
    assert download_chart(pin, tmp_path, urls=["https://never/"], fetch=fetch) == path
    assert calls == ["https://first/", "https://second/"]


def test_a_failed_download_is_an_error_naming_every_url(tmp_path: Path) -> None:
    """No network means a clear failure, never a silently skipped render."""
    pin = ChartPin(PINNED_VERSION, PINNED_SHA256, "test")

    def offline(url: str) -> bytes:
        raise OSError("network is unreachable")

    with pytest.raises(ChartUnavailableError) as err:
        download_chart(pin, tmp_path, fetch=offline)
    message = str(err.value)
    for url in pin.urls():
        assert f"{url}: OSError: network is unreachable" in message
    assert PINNED_SHA256 in message and not list(tmp_path.iterdir())
    assert pin.urls()[0].startswith("https://downloads.apache.org/airflow/helm-chart/")


# --------------------------------------------------------------------------- sanity


@pytest.mark.parametrize("stack", STACKS)
def test_the_chart_really_renders(stack_runs: dict[str, Run], stack: str) -> None:
    """Helm rendered the pinned chart with the Release's name and namespace."""
    run, rendered = _case(stack_runs, stack)
    rel = release(run).inputs
    assert (rendered.release_name, rendered.namespace) == (rel["name"], rel["namespace"])
    scheduler = rendered.get("Deployment", f"{rel['name']}-scheduler")
    assert scheduler["metadata"]["labels"]["chart"] == f"{CHART_NAME}-{pinned_chart().version}"
    worker = rendered.worker_pod_template()
    assert worker is not None, f"{stack}: no ConfigMap carries the worker pod template"
    config_map, pod = worker
    assert config_map["metadata"]["name"] == f"{rel['name']}-config"
    assert pod["spec"]["containers"][0]["name"] == "base"
    owners = [p.owner for p in rendered.pods()]
    assert f"ConfigMap/{rel['name']}-config[pod_template_file.yaml]" in owners


# --------------------------------------------------------------------------- a. Secrets


def _rendered_secret_keys(secret: dict[str, Any]) -> set[str]:
    return {*(secret.get("data") or {}), *(secret.get("stringData") or {})}


def _program_secret_keys(secret: Resource) -> set[str]:
    return {*(secret.inputs.get("data") or {}), *(secret.inputs.get("stringData") or {})}


@pytest.mark.parametrize("stack", STACKS)
def test_every_secret_a_pod_references_exists(stack_runs: dict[str, Run], stack: str) -> None:
    """Every Secret (and key) a pod reads exists in the release namespace, unless optional.

    A pod whose env `secretKeyRef`/`envFrom.secretRef` names a missing Secret or key never
    starts (CreateContainerConfigError), and a missing `secret` or `projected` volume source
    keeps it in ContainerCreating: Kubernetes docs, "Secrets" > "Using Secrets" and
    "Optional Secrets" (only `optional: true` tolerates absence). Image pull secrets are
    looked up in the pod's namespace ("Pull an Image from a Private Registry").
    The chart references Secrets by name from values (`data.metadataSecretName`,
    `fernetKeySecretName`, `secret[]`, ...: templates/_helpers.yaml `standard_airflow_environment`
    and `custom_airflow_environment`); the program creates those itself, beside the release.
    Checked for every workload and for the worker pod template (files/
    pod-template-file.kubernetes-helm-yaml via templates/configmaps/configmap.yaml).
    """
    run, rendered = _case(stack_runs, stack)
    ns = rendered.namespace
    chart_secrets = {
        s["metadata"]["name"]: _rendered_secret_keys(s) for s in rendered.of_kind("Secret")
    }
    program_secrets = {n: _program_secret_keys(r) for n, r in secrets_in_namespace(run, ns).items()}
    available = {**program_secrets, **chart_secrets}
    problems = []
    missing: set[str] = set()
    for pod in rendered.pods():
        for ref in secret_refs(pod.spec):
            if ref.optional:
                continue
            keys = available.get(ref.name)
            if keys is None:
                missing.add(ref.name)
                problems.append(
                    f"{stack}: {pod.owner} {ref.path}: Secret {ref.name!r} does not exist in "
                    f"namespace {ns!r} (chart renders {sorted(chart_secrets)}, program creates "
                    f"{sorted(program_secrets)})"
                )
            elif ref.key is not None and ref.key not in keys:
                problems.append(
                    f"{stack}: {pod.owner} {ref.path}: Secret {ref.name!r} has no key "
                    f"{ref.key!r} (keys: {sorted(keys)})"
                )
    summary = f"missing Secrets: {sorted(missing)}" if missing else ""
    _fail_on(problems, "Secret references that cannot resolve", summary)


# --------------------------------------------------------------------------- b. storage


def _program_claims(run: Run) -> list[tuple[str, Any]]:
    kinds = {
        "kubernetes:apps/v1:StatefulSet": "StatefulSet",
        "kubernetes:core/v1:PersistentVolumeClaim": "PersistentVolumeClaim",
    }
    found = []
    for type_, kind in kinds.items():
        for res in run.of_type(type_):
            manifest = {**res.inputs, "kind": kind}
            found += [(f"program {res.name} ({c.owner})", c) for c in volume_claims(manifest)]
    return found


def _describe(classes: dict[str, StorageClass]) -> str:
    if not classes:
        return "none"
    return "; ".join(
        f"{c.name} ({c.provisioner}, {'default' if c.default else 'not default'}, {c.origin}, "
        f"served by {c.provisioned_by or 'nothing on this cluster'})"
        for c in classes.values()
    )


@pytest.mark.parametrize("stack", STACKS)
def test_every_volume_claim_has_a_provisioner(stack_runs: dict[str, Run], stack: str) -> None:
    """Every PersistentVolumeClaim can bind on the stack's cluster, or its pod stays Pending.

    A claim without `storageClassName` uses the cluster's default StorageClass, and with no
    default it waits forever; a named class must exist and have a running provisioner
    (Kubernetes docs, "Persistent Volumes" > "Class" and "Dynamic Volume Provisioning").
    Targets, as `tests.chart_support.storage_classes` models them:
    - minikube: the `standard` class (default) of the `default-storageclass` addon, served by
      the `storage-provisioner` addon (`k8s.io/minikube-hostpath`); minikube docs,
      "Persistent Volumes" and `minikube addons list` (both addons on by default).
    - EKS: Amazon EKS User Guide, release notes for Kubernetes 1.30 ("Review release notes
      for Kubernetes versions on standard support"): clusters created on 1.30 or later no
      longer get the default annotation on the `gp2` StorageClass; "Use Kubernetes volume
      storage with Amazon EBS": EBS volumes need the Amazon EBS CSI driver, which EKS does not
      install unless asked (add-on `aws-ebs-csi-driver`); the in-tree `kubernetes.io/aws-ebs`
      plugin of `gp2` is migrated to that driver since 1.23.
    Claims come from the chart (e.g. the triggerer StatefulSet's `logs` volumeClaimTemplate,
    templates/triggerer/triggerer-deployment.yaml, `triggerer.persistence`) and from the
    program's own StatefulSets and PersistentVolumeClaims.
    """
    run, rendered = _case(stack_runs, stack)
    classes = storage_classes(run)
    target = "EKS" if is_eks(run) else "minikube"
    addon_note = (
        ""
        if not is_eks(run) or eks_ebs_csi_addon(run)
        else "; the program installs no EKS add-on aws-ebs-csi-driver"
    )
    claims = [(f"chart {c.owner}", c) for c in rendered.claims()] + _program_claims(run)
    problems = []
    for where, claim in claims:
        what = f"{stack}: {where} claim {claim.name!r} ({claim.size or 'no size'})"
        if claim.storage_class is None:
            defaults = [c for c in classes.values() if c.default]
            if not defaults:
                problems.append(
                    f"{what} sets no storageClassName, and the {target} cluster has no default "
                    f"StorageClass (classes: {_describe(classes)}){addon_note}: set "
                    "storageClassName to a class the program provisions, or disable that "
                    "persistence"
                )
                continue
            chosen = defaults[-1]
        elif claim.storage_class == "":
            problems.append(
                f"{what} sets storageClassName '' (no dynamic provisioning) and the program "
                "creates no PersistentVolume for it"
            )
            continue
        elif claim.storage_class not in classes:
            problems.append(
                f"{what} asks for StorageClass {claim.storage_class!r}, which the {target} "
                f"cluster does not have (classes: {_describe(classes)})"
            )
            continue
        else:
            chosen = classes[claim.storage_class]
        if chosen.provisioned_by is None:
            problems.append(
                f"{what} would use StorageClass {chosen.name!r} ({chosen.provisioner}), whose "
                f"provisioner nothing runs on the {target} cluster{addon_note}"
            )
    _fail_on(problems, "volume claims that would stay Pending")


# --------------------------------------------------------------------------- c. images


def platform_images(values: dict[str, Any]) -> set[str]:
    """The references the chart may render for `images.airflow` (the `airflow_image` helper)."""
    image = values["images"]["airflow"]
    repo, tag, digest = image["repository"], image.get("tag"), image.get("digest")
    if digest:
        return {f"{repo}@{digest}", f"{repo}:{tag}@{digest}"}
    return {f"{repo}:{tag}"}


def _required_components(values: dict[str, Any]) -> set[str]:
    required = {"scheduler", "triggerer", "api-server", "run-airflow-migrations", "worker"}
    if (values.get("dagProcessor") or {}).get("enabled"):
        required.add("dag-processor")
    if (values.get("createUserJob") or {}).get("enabled"):
        required.add("create-user-job")
    return required


@pytest.mark.parametrize("stack", STACKS)
def test_every_airflow_container_runs_the_platform_image(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """Every container running Airflow uses the image the program built and pushed.

    The image carries the DAGs' dependencies and providers (image/Dockerfile); a container on
    the stock `apache/airflow` image imports DAGs without them. In the chart, Airflow
    containers get `airflow_image`/`airflow_image_for_migrations` (images.airflow, with
    `images.useDefaultImageForMigration`) and the worker pod template's `base` container gets
    `pod_template_image` (images.pod_template, falling back to `defaultAirflowRepository`/
    `defaultAirflowTag`, i.e. the stock image): templates/_helpers.yaml and files/
    pod-template-file.kubernetes-helm-yaml. The KubernetesExecutor builds every task pod from
    that template (Airflow docs, "Kubernetes Executor" > "pod_template_file"); it swaps in
    `[kubernetes_executor] worker_container_repository:worker_container_tag` only while both
    are set (cncf.kubernetes provider, kube_config.py and pod_generator.py `construct_pod`),
    so the template itself must name the platform image.
    Airflow containers are identified by the pod's `component` label and the chart's container
    names for it; any other container in an Airflow pod must be a known sidecar (git-sync).
    """
    run, rendered = _case(stack_runs, stack)
    values = values_of(run)
    expected = platform_images(values)
    built = run.outputs.get("image")
    image = values["images"]["airflow"]
    problems = []
    if built not in expected and f"{image['repository']}:{image.get('tag')}" != built:
        problems.append(
            f"{stack}: values images.airflow is {image['repository']}:{image.get('tag')}, but "
            f"the program built {built} (stack output `image`)"
        )
    seen = set()
    for pod in rendered.pods():
        if pod.component in OTHER_COMPONENTS:
            continue
        allowed = AIRFLOW_CONTAINERS.get(pod.component)
        if allowed is None:
            problems.append(
                f"{stack}: {pod.owner} has component label {pod.component!r}, unknown to this "
                "test: classify it in AIRFLOW_CONTAINERS or OTHER_COMPONENTS"
            )
            continue
        seen.add(pod.component)
        for path, container in named_containers(pod.spec):
            name = container.get("name")
            if name in SIDECARS:
                continue
            if name not in allowed:
                problems.append(
                    f"{stack}: {pod.owner} {path}: container {name!r} in an Airflow pod is "
                    "neither a known Airflow container nor a known sidecar: classify it"
                )
            elif container.get("image") not in expected:
                problems.append(
                    f"{stack}: {pod.owner} {path}.image is {container.get('image')!r}, expected "
                    f"the platform image {' or '.join(sorted(expected))}"
                )
    missing = _required_components(values) - seen
    if missing:
        problems.append(f"{stack}: no rendered pod for Airflow component(s) {sorted(missing)}")
    _fail_on(problems, "Airflow containers off the platform image")


# --------------------------------------------------------------------------- d. IRSA


def _trusted_subjects(role: Resource) -> set[str]:
    policy = json.loads(role.inputs["assumeRolePolicy"])
    subjects: set[str] = set()
    for statement in policy.get("Statement", []):
        for condition in (statement.get("Condition") or {}).values():
            for key, value in condition.items():
                if key.endswith(":sub"):
                    subjects.update([value] if isinstance(value, str) else value)
    return subjects


def task_log_roles(run: Run) -> list[Resource]:
    """IAM roles whose trust policy names Kubernetes service accounts (IRSA roles)."""
    return [
        r
        for r in run.of_type("aws:iam/role:Role")
        if "system:serviceaccount:" in str(r.inputs.get("assumeRolePolicy", ""))
    ]


def _log_writer_pods(rendered: Rendered) -> tuple[list[Pod], list[str]]:
    pods, missing = [], []
    for component in LOG_WRITERS:
        found = rendered.pods_of(component)
        pods += found
        if not found:
            missing.append(component)
    return pods, missing


@pytest.mark.parametrize("stack", STACKS)
def test_log_writing_pods_assume_the_task_log_role(stack_runs: dict[str, Run], stack: str) -> None:
    """On EKS, each pod that writes task logs runs as a service account bound to the log role.

    IRSA: the EKS Pod Identity webhook injects web-identity credentials only into pods whose
    ServiceAccount carries `eks.amazonaws.com/role-arn`, and STS lets them assume the role only
    if its trust policy's `<issuer>:sub` condition names `system:serviceaccount:<ns>:<name>`
    (Amazon EKS User Guide, "IAM roles for service accounts" > "Assign IAM roles to Kubernetes
    service accounts" and "Configure a Kubernetes service account to assume an IAM role").
    A pod naming a ServiceAccount that does not exist is rejected at admission (Kubernetes
    docs, "Service Accounts" > "ServiceAccount admission controller").
    The chart names each pod's account from `<component>.serviceAccount`
    (templates/*/…-serviceaccount.yaml; the worker template: files/
    pod-template-file.kubernetes-helm-yaml `serviceAccountName`). On minikube there is no IRSA:
    no annotation may appear, as the S3-compatible store takes keys from the connection.
    """
    run, rendered = _case(stack_runs, stack)
    ns = rendered.namespace
    pods, missing = _log_writer_pods(rendered)
    problems = [f"{stack}: no rendered pod for log-writing component {c!r}" for c in missing]
    roles = task_log_roles(run)
    if not is_eks(run):
        problems += [
            f"{stack}: {where} carries {IRSA_ANNOTATION}={value!r} on minikube"
            for where, value in rendered.annotated(IRSA_ANNOTATION)
        ]
        problems += [f"{stack}: IRSA role {r.name} created on minikube" for r in roles]
        for pod in pods:
            account = pod.spec.get("serviceAccountName")
            if account and rendered.find("ServiceAccount", account) is None:
                problems.append(
                    f"{stack}: {pod.owner} runs as ServiceAccount {account!r}, not rendered"
                )
        _fail_on(problems, "IRSA problems")
        return
    assert len(roles) == 1, f"{stack}: expected one IRSA task-log role, found {roles}"
    role = roles[0]
    arn = role.outputs["arn"]
    trusted = _trusted_subjects(role)
    for pod in pods:
        account = pod.spec.get("serviceAccountName")
        if not account:
            problems.append(
                f"{stack}: {pod.owner} sets no serviceAccountName (runs as 'default', "
                f"which no IRSA role trusts)"
            )
            continue
        sa = rendered.find("ServiceAccount", account)
        if sa is None:
            problems.append(
                f"{stack}: {pod.owner} runs as ServiceAccount {account!r}, which the chart "
                "does not render"
            )
        else:
            value = ((sa["metadata"].get("annotations")) or {}).get(IRSA_ANNOTATION)
            if value != arn:
                problems.append(
                    f"{stack}: ServiceAccount/{account} (used by {pod.owner}) has "
                    f"{IRSA_ANNOTATION}={value!r}, expected {arn!r} (role {role.name})"
                )
        subject = f"system:serviceaccount:{ns}:{account}"
        if subject not in trusted:
            problems.append(
                f"{stack}: role {role.name} does not trust {subject} (used by {pod.owner}); "
                f"trusted: {sorted(trusted)}"
            )
    _fail_on(problems, "IRSA problems")


# --------------------------------------------------------------------------- e. hooks


def _hooks(obj: dict[str, Any]) -> set[str]:
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(HOOK_ANNOTATION, "")
    return {h.strip() for h in str(value).split(",") if h.strip()}


@pytest.mark.parametrize("stack", STACKS)
def test_the_migration_hook_cannot_deadlock(stack_runs: dict[str, Run], stack: str) -> None:
    """Migrations run as a post-install/upgrade hook, so Helm must not wait before hooks.

    The chart's migrate-database Job is a `post-install,post-upgrade` hook
    (templates/jobs/migrate-database-job.yaml, `migrateDatabaseJob.useHelmHooks`), while the
    scheduler, api-server, dag-processor and triggerer pods start with a
    `wait-for-airflow-migrations` init container (`airflow db check-migrations`) that blocks
    until migrations have run. With `--wait`, Helm runs post-install hooks only after every
    resource is ready (Helm docs, "Chart Hooks" > "The Lifecycle of a Hook": "if the --wait
    flag is set, the library will wait until all resources are in a ready state and will not
    run the post-install hook until they are ready"), so the pods wait for the hook and the
    hook for the pods until the timeout; the chart's own docs say so (docs/index.rst,
    "Installing the Helm Chart with Argo CD, Flux, Rancher or Terraform", note on `--wait`).
    pulumi-kubernetes' `helm.v3.Release` waits unless `skipAwait` is true, and `atomic`
    implies a wait ("`skipAwait` will be disabled automatically if atomic is used");
    `waitForJobs` waits for Jobs too (Release API docs).
    """
    run, rendered = _case(stack_runs, stack)
    rel = release(run).inputs
    name = rel["name"]
    problems = []
    job = rendered.find("Job", f"{name}-run-airflow-migrations")
    if job is None:
        problems.append(f"{stack}: no migrate-database Job {name}-run-airflow-migrations rendered")
    elif _hooks(job) != {"post-install", "post-upgrade"}:
        problems.append(
            f"{stack}: Job/{name}-run-airflow-migrations has {HOOK_ANNOTATION}="
            f"{sorted(_hooks(job))}, expected post-install,post-upgrade"
        )
    if rel.get("skipAwait") is not True:
        problems.append(f"{stack}: Release skipAwait is {rel.get('skipAwait')!r}, expected True")
    if rel.get("atomic"):
        problems.append(f"{stack}: Release atomic is {rel.get('atomic')!r}: it implies a wait")
    if rel.get("waitForJobs") is True:
        problems.append(f"{stack}: Release waitForJobs is True: Helm would wait for Jobs")
    for component in ("scheduler", "api-server"):
        deployment = rendered.get("Deployment", f"{name}-{component}")
        inits = [
            c.get("name")
            for c in deployment["spec"]["template"]["spec"].get("initContainers") or []
        ]
        if MIGRATIONS_INIT not in inits:
            problems.append(
                f"{stack}: Deployment/{name}-{component} has no {MIGRATIONS_INIT} init "
                f"container (init containers: {inits}); update this test's premise"
            )
    _fail_on(problems, "ways the release could deadlock on its hooks")


LONG_RUNNING = ("scheduler", "dag-processor", "triggerer", "api-server")


@pytest.mark.parametrize("stack", STACKS)
def test_pods_that_read_secrets_carry_the_checksum_that_rolls_them(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """Kubernetes rolls a Deployment when its pod template changes; the chart copies
    `airflowPodAnnotations` into every Airflow pod template and `pgbouncer.podAnnotations` into
    PgBouncer's (`templates/scheduler/scheduler-deployment.yaml`, `files/pod-template-file...`,
    `templates/pgbouncer/pgbouncer-deployment.yaml`). So a changed Secret, read only at process
    start, reaches the running pods."""
    from components.chart_values import CHECKSUM_ANNOTATION

    run = stack_runs[stack]
    rendered = render_run(run)
    values = values_of(run)
    expected = values["airflowPodAnnotations"][CHECKSUM_ANNOTATION]
    assert len(expected) == 64
    for component in (*LONG_RUNNING, "worker"):
        pods = rendered.pods_of(component)
        assert pods, f"{stack}: no {component} pod rendered"
        for pod in pods:
            assert pod.annotations.get(CHECKSUM_ANNOTATION) == expected, (stack, pod.owner)
    pgbouncer = rendered.pods_of("pgbouncer")
    assert bool(pgbouncer) is is_eks(run)
    for pod in pgbouncer:
        assert (
            pod.annotations.get(CHECKSUM_ANNOTATION)
            == values["pgbouncer"]["podAnnotations"][CHECKSUM_ANNOTATION]
        )


def test_the_local_stack_serves_this_checkouts_dags(stack_runs: dict[str, Run]) -> None:
    """`make up STACK=local` mounts `dags/` at the node path; every Airflow pod, task pods
    included, mounts that path where Airflow looks for DAGs (`dags_folder`)."""
    from components.settings import DEFAULT_DAGS_HOST_PATH

    rendered = render_run(stack_runs["local"])
    config = rendered.get("ConfigMap", "airflow-config")["data"]["airflow.cfg"]
    assert "dags_folder = /opt/airflow/dags\n" in config
    for component in (*LONG_RUNNING, "worker"):
        for pod in rendered.pods_of(component):
            volumes = {v["name"]: v for v in pod.spec.get("volumes", [])}
            assert volumes["dags-host"]["hostPath"]["path"] == DEFAULT_DAGS_HOST_PATH, pod.owner
            main = pod.spec["containers"][0]
            mounts = {m["mountPath"]: m for m in main.get("volumeMounts", [])}
            assert mounts["/opt/airflow/dags"]["name"] == "dags-host", pod.owner
    assert not any(c["name"] == "git-sync" for p in rendered.pods() for c in p.spec["containers"])


@pytest.mark.parametrize("stack", STACKS)
def test_every_airflow_pod_can_import_the_async_connect_args(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """`[database] sql_alchemy_connect_args_async` names `airflow_local_settings.<dict>`; Airflow
    puts `$AIRFLOW_HOME/config` on sys.path, where the chart mounts `airflowLocalSettings`
    (`templates/configmaps/configmap.yaml`, `_helpers.yaml` airflow_config_mount)."""
    from components import metadata_db as mdb

    rendered = render_run(stack_runs[stack])
    config = rendered.get("ConfigMap", "airflow-config")["data"]
    assert config["airflow_local_settings.py"].strip() == mdb.airflow_local_settings().strip()
    assert (
        "sql_alchemy_connect_args_async = " + mdb.ASYNC_CONNECT_ARGS_IMPORT_PATH
        in (config["airflow.cfg"])
    )
    for component in (*LONG_RUNNING, "worker", "run-airflow-migrations"):
        for pod in rendered.pods_of(component):
            main = pod.spec["containers"][0]
            paths = {m["mountPath"] for m in main.get("volumeMounts", [])}
            assert "/opt/airflow/config/airflow_local_settings.py" in paths, pod.owner


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_pgbouncer_finds_the_rds_ca_where_its_config_looks(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """PgBouncer with `server_tls_sslmode = verify-full` refuses RDS unless `server_tls_ca_file`
    holds the CA (PgBouncer docs, `server_tls_*`); the ConfigMap must exist and be mounted there."""
    from components import metadata_db as mdb

    run = stack_runs[stack]
    (pod,) = render_run(run).pods_of("pgbouncer")
    volumes = {v["name"]: v for v in pod.spec["volumes"]}
    pgbouncer = next(c for c in pod.spec["containers"] if c["name"] == "pgbouncer")
    mount = next(m for m in pgbouncer["volumeMounts"] if m["mountPath"] == mdb.RDS_CA_MOUNT_PATH)
    source = volumes[mount["name"]]["configMap"]
    created = {r.inputs["metadata"]["name"]: r for r in run.of_type("kubernetes:core/v1:ConfigMap")}
    assert mount["subPath"] in created[source["name"]].inputs["data"]
    ini = secrets_in_namespace(run, "airflow")["airflow-platform-pgbouncer-config"]
    assert (
        f"server_tls_ca_file = {mdb.RDS_CA_MOUNT_PATH}" in ini.inputs["stringData"]["pgbouncer.ini"]
    )


# --------------------------------------------------------------------------- f. hardening

REPLICATED_COMPONENTS = ("scheduler", "api-server", "triggerer", "dag-processor", "pgbouncer")
"""Components the production stack runs two or more of (`Sizes.replicas`)."""
RUNTIME_DEFAULT = {"type": "RuntimeDefault"}
GIT_SYNC_CONTAINERS = frozenset({"git-sync", "git-sync-init"})
TOKEN_USERS = frozenset({"scheduler", "worker", "api-server"})
"""Components whose pods call the Kubernetes API: the scheduler launches task pods, task pods run
KubernetesPodOperator (dags/platform_k8s_pod.py), the api-server reads running task pods' logs
(cncf.kubernetes KubernetesExecutor.get_task_log; templates/rbac/pod-log-reader-rolebinding.yaml
binds it to the pod-log-reader Role)."""

BEFORE: dict[str, dict[str, tuple[int, int]]] = {
    "local": {"memory limits": (9, 15), "PDBs": (0, 0)},
    "integration": {"memory limits": (9, 22), "PDBs": (0, 0)},
    "production": {"memory limits": (9, 22), "PDBs": (0, 5)},
}
"""Measured on commit 8967ed0, before the hardening values: containers with a memory limit / all
containers (workloads and the worker pod template), and PDBs / workloads with replicas > 1."""


def _multi_replica(rendered: Rendered) -> list[dict[str, Any]]:
    return [wl for wl in rendered.workloads() if (workload_replicas(wl) or 0) > 1]


def _pod_labels(workload: dict[str, Any]) -> dict[str, Any]:
    return dict((pod_template_of(workload).get("metadata") or {}).get("labels") or {})


def _figures(rendered: Rendered) -> dict[str, tuple[int, int]]:
    containers = [c for p in rendered.pods() for _, c in named_containers(p.spec)]
    limited = [
        c for c in containers if ((c.get("resources") or {}).get("limits") or {}).get("memory")
    ]
    multi = _multi_replica(rendered)
    covered = [
        wl
        for wl in multi
        if any(
            selector_matches(pdb["spec"].get("selector"), _pod_labels(wl))
            for pdb in rendered.of_kind("PodDisruptionBudget")
        )
    ]
    return {"memory limits": (len(limited), len(containers)), "PDBs": (len(covered), len(multi))}


def test_hardening_figures_before_and_after(stack_runs: dict[str, Run]) -> None:
    """Prints (with `-s`) the figures before and after the hardening values, per stack."""
    lines = []
    for stack in STACKS:
        after = _figures(render_run(stack_runs[stack]))
        for what, (done, total) in after.items():
            was = BEFORE[stack][what]
            lines.append(
                f"  {stack:<12} {what:<14} before {was[0]:>2}/{was[1]:<2}  after {done:>2}/{total}"
            )
            assert done == total, f"{stack}: {what} {done}/{total}"
    print("\nhardening (containers with a memory limit; PDBs per multi-replica workload):")
    print("\n".join(lines))


@pytest.mark.parametrize("stack", STACKS)
def test_every_multi_replica_workload_has_a_disruption_budget(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """Each Deployment running more than one pod is covered by a PodDisruptionBudget that
    selects exactly its pods and lets a drain evict one at a time.

    Kubernetes docs, "Specifying a Disruption Budget for your Application": a PDB limits
    voluntary disruptions (drains, upgrades) of the pods its selector matches; chart templates
    templates/<component>/<component>-poddisruptionbudget.yaml (`<section>.podDisruptionBudget`).
    Only production runs more than one replica; a budget for a single pod protects nothing,
    so elsewhere none is rendered.
    """
    rendered = render_run(stack_runs[stack])
    multi = _multi_replica(rendered)
    pdbs = rendered.of_kind("PodDisruptionBudget")
    problems = []
    if stack == "production":
        components = sorted(str(_pod_labels(wl).get("component")) for wl in multi)
        if components != sorted(REPLICATED_COMPONENTS):
            problems.append(f"{stack}: multi-replica components are {components}")
    for wl in multi:
        labels = _pod_labels(wl)
        matching = [p for p in pdbs if selector_matches(p["spec"].get("selector"), labels)]
        owner = f"{wl['kind']}/{wl['metadata']['name']}"
        if len(matching) != 1:
            problems.append(f"{stack}: {owner} is selected by {len(matching)} PDBs")
            continue
        spec = matching[0]["spec"]
        others = [
            p.owner
            for p in rendered.pods()
            if selector_matches(spec.get("selector"), p.labels) and p.labels != labels
        ]
        if others:
            problems.append(f"{stack}: the PDB of {owner} also selects {others}")
        allowed = spec.get("maxUnavailable")
        if allowed is None:
            allowed = (workload_replicas(wl) or 0) - int(spec.get("minAvailable", 0))
        if int(allowed) < 1:
            problems.append(f"{stack}: the PDB of {owner} blocks every eviction ({spec})")
    if len(pdbs) != len(multi):
        names = [p["metadata"]["name"] for p in pdbs]
        problems.append(f"{stack}: {len(pdbs)} PDBs ({names}) for {len(multi)} workloads")
    _fail_on(problems, "disruption-budget problems")


@pytest.mark.parametrize("stack", STACKS)
def test_multi_replica_deployments_spread_across_zones_and_nodes(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """Replicas of one component spread over zones (best effort) and nodes (required).

    Kubernetes docs, "Pod Topology Spread Constraints": `topologyKey` names the node label of
    the domain (`topology.kubernetes.io/zone`, `kubernetes.io/hostname`, well-known labels),
    and `labelSelector` picks the pods counted, so it must select this component's pods and no
    other's. Chart: `<section>.topologySpreadConstraints` in
    templates/<component>/<component>-deployment.yaml.
    """
    rendered = render_run(stack_runs[stack])
    problems = []
    for wl in _multi_replica(rendered):
        owner = f"{wl['kind']}/{wl['metadata']['name']}"
        labels = _pod_labels(wl)
        constraints = pod_template_of(wl)["spec"].get("topologySpreadConstraints") or []
        by_key = {c.get("topologyKey"): c for c in constraints}
        for key, when in (
            ("topology.kubernetes.io/zone", "ScheduleAnyway"),
            ("kubernetes.io/hostname", "DoNotSchedule"),
        ):
            c = by_key.get(key)
            if c is None:
                problems.append(f"{stack}: {owner} has no spread constraint on {key}")
                continue
            if c.get("whenUnsatisfiable") != when or c.get("maxSkew") != 1:
                problems.append(f"{stack}: {owner} {key}: {c}")
            if not selector_matches(c.get("labelSelector"), labels):
                problems.append(f"{stack}: {owner} {key}: selector does not select its own pods")
            strangers = [
                p.owner
                for p in rendered.pods()
                if p.labels.get("component") != labels.get("component")
                and selector_matches(c.get("labelSelector"), p.labels)
            ]
            if strangers:
                problems.append(f"{stack}: {owner} {key}: selector also counts {strangers}")
    if stack == "production" and not _multi_replica(rendered):
        problems.append("production renders no multi-replica workload")
    _fail_on(problems, "topology-spread problems")


@pytest.mark.parametrize("stack", STACKS)
def test_every_container_has_cpu_and_memory_requests_and_a_memory_limit(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """Every container and init container of every rendered pod, sidecars, hook Jobs and the
    worker pod template included, requests cpu and memory and is limited in memory.

    Kubernetes docs, "Resource Management for Pods and Containers": the scheduler places pods
    by their requests, and a container without a memory limit can use the node's memory up
    to eviction of its neighbours. Chart keys: `<section>.resources`, `dags.gitSync.resources`,
    `<section>.logGroomerSidecar.resources`, `pgbouncer.metricsExporterSidecar.resources`,
    `statsd.resources`, `migrateDatabaseJob.resources`, `createUserJob.resources`; the
    `wait-for-airflow-migrations` init containers take `<section>.resources`
    (templates/scheduler/scheduler-deployment.yaml and the other deployments).
    """
    rendered = render_run(stack_runs[stack])
    problems = [
        f"{stack}: {pod.owner} {path}: no {', '.join(gaps)}"
        for pod in rendered.pods()
        for path, container in named_containers(pod.spec)
        if (gaps := resource_gaps(container))
    ]
    _fail_on(problems, "containers without requests or a memory limit")


SECURITY_CONTEXT_KEYS = (
    ("securityContexts",),
    ("statsd", "securityContexts"),
    ("pgbouncer", "securityContexts"),
)


def _without_security_contexts(values: dict[str, Any]) -> dict[str, Any]:
    """The values without the pod security contexts they set: what the chart would render."""
    stripped = copy.deepcopy(values)
    for path in SECURITY_CONTEXT_KEYS:
        parent = stripped
        for key in path[:-1]:
            parent = parent.get(key) or {}
        parent.pop(path[-1], None)
    return stripped


@pytest.mark.parametrize("stack", STACKS)
def test_every_pod_runs_with_the_runtime_default_seccomp_profile(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """Every pod sets `seccompProfile: RuntimeDefault` and keeps the chart's own pod context.

    Kubernetes docs, "Restrict a Container's Syscalls with seccomp" and Pod Security Standards
    ("Restricted": seccomp must be RuntimeDefault or Localhost). The chart takes the first
    pod context set, without merging (templates/_helpers.yaml `airflowPodSecurityContext`:
    `<section>.securityContexts.pod`, then global `securityContexts.pod`, then `runAsUser: uid`
    and `fsGroup: gid`; `localPodSecurityContext` for statsd and pgbouncer), so the values
    must repeat its defaults: each pod's context must contain what the chart renders without
    them. No container may set its own, weaker profile.
    """
    run, rendered = _case(stack_runs, stack)
    plain = render(
        _without_security_contexts(values_of(run)), rendered.namespace, rendered.release_name
    )
    defaults = {p.owner: p.spec.get("securityContext") or {} for p in plain.pods()}
    problems = []
    for pod in rendered.pods():
        context = pod.spec.get("securityContext") or {}
        if context.get("seccompProfile") != RUNTIME_DEFAULT:
            problems.append(f"{stack}: {pod.owner} securityContext is {context}")
        lost = {k: v for k, v in defaults.get(pod.owner, {}).items() if context.get(k) != v}
        if lost:
            problems.append(f"{stack}: {pod.owner} lost the chart's default {lost}")
        for path, container in named_containers(pod.spec):
            profile = (container.get("securityContext") or {}).get("seccompProfile")
            if profile not in (None, RUNTIME_DEFAULT):
                problems.append(f"{stack}: {pod.owner} {path} seccompProfile {profile}")
    if set(defaults) != {p.owner for p in rendered.pods()}:
        problems.append(f"{stack}: the comparison render has other pods: {sorted(defaults)}")
    _fail_on(problems, "pods without the RuntimeDefault seccomp profile")


@pytest.mark.parametrize("stack", STACKS)
def test_git_sync_drops_all_capabilities_and_cannot_escalate(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """git-sync, as init container and as sidecar, runs without privilege escalation and with
    every capability dropped, as its chart user (65533).

    Kubernetes docs, Pod Security Standards ("Restricted": `allowPrivilegeEscalation: false`,
    `capabilities.drop: [ALL]`). Chart: templates/_helpers.yaml `git_sync_container`, whose
    context is `localContainerSecurityContext` of `dags.gitSync` (not the chart's
    drop-ALL default for Airflow containers).
    """
    run, rendered = _case(stack_runs, stack)
    values = values_of(run)
    problems = []
    seen = set()
    for pod in rendered.pods():
        for path, container in named_containers(pod.spec):
            if container.get("name") not in GIT_SYNC_CONTAINERS:
                continue
            seen.add(container["name"])
            context = container.get("securityContext") or {}
            if context.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{stack}: {pod.owner} {path} may escalate privileges")
            if "ALL" not in ((context.get("capabilities") or {}).get("drop") or []):
                problems.append(f"{stack}: {pod.owner} {path} keeps capabilities: {context}")
            if context.get("runAsUser") != 65533:
                problems.append(f"{stack}: {pod.owner} {path} runs as {context.get('runAsUser')}")
    if values["dags"]["gitSync"]["enabled"] and seen != GIT_SYNC_CONTAINERS:
        problems.append(f"{stack}: git-sync enabled, but only {sorted(seen)} rendered")
    _fail_on(problems, "git-sync containers with privileges")


@pytest.mark.parametrize("stack", STACKS)
def test_service_account_tokens_only_where_the_api_is_called(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """Only pods that call the Kubernetes API get a service-account token.

    Kubernetes docs, "Configure Service Accounts for Pods" > "Opt out of API credential
    automounting" (the pod's field wins over the ServiceAccount's) and "Good practices for
    Kubernetes Secrets". Chart: `<section>.serviceAccount.automountServiceAccountToken`
    (templates/*/…-serviceaccount.yaml). IRSA is unaffected: the EKS Pod Identity webhook
    projects its own `aws-iam-token` volume (Amazon EKS User Guide, IAM roles for service
    accounts), checked by test_log_writing_pods_assume_the_task_log_role.
    """
    rendered = render_run(stack_runs[stack])
    problems = []
    for pod in rendered.pods():
        expected = pod.component in TOKEN_USERS
        if token_automounted(rendered, pod) is not expected:
            problems.append(
                f"{stack}: {pod.owner} ({pod.component}) token mounted: "
                f"{token_automounted(rendered, pod)}, expected {expected}"
            )
    missing = TOKEN_USERS - {p.component for p in rendered.pods()}
    if missing:
        problems.append(f"{stack}: no rendered pod for {sorted(missing)}")
    _fail_on(problems, "service-account token problems")


@pytest.mark.parametrize("stack", STACKS)
def test_the_charts_network_policies_render_and_admit_what_the_platform_needs(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """The chart's ingress NetworkPolicies are on, and they still admit the traffic Airflow
    needs between its pods: task pods (and every Airflow pod) to the api-server's execution
    API, Airflow pods to PgBouncer.

    Kubernetes docs, "Network Policies": a pod selected by an Ingress policy accepts only what
    some policy allows. Chart: templates/*/…-networkpolicy.yaml (`networkPolicies.enabled`);
    templates/api-server/api-server-networkpolicy.yaml admits only
    `apiServer.networkPolicy.ingress.from`, nobody by default; the execution API URL is
    templates/configmaps/configmap.yaml `execution_api_server_url` (the api-server Service).
    """
    run, rendered = _case(stack_runs, stack)
    policies = {p["metadata"]["name"]: p for p in rendered.of_kind("NetworkPolicy")}
    expected = {
        f"{rendered.release_name}-{c}-policy" for c in ("api-server", "scheduler", "triggerer")
    } | {f"{rendered.release_name}-statsd-policy"}
    if is_eks(run):
        expected.add(f"{rendered.release_name}-pgbouncer-policy")
    problems = [
        f"{stack}: NetworkPolicy {n} not rendered" for n in sorted(expected - policies.keys())
    ]

    def admitted(target: dict[str, Any], source: Pod, port: int) -> bool:
        """Whether the chart's ingress policies let `source` reach a pod labelled `target`."""
        chosen = [
            p["spec"]
            for p in policies.values()
            if selector_matches(p["spec"].get("podSelector"), target)
        ]
        if not chosen:
            return True
        for spec in chosen:
            for rule in spec.get("ingress") or []:
                peers = rule.get("from") or []
                ports = [int(p["port"]) for p in rule.get("ports") or []]
                if ports and port not in ports:
                    continue
                if not peers or any(
                    "namespaceSelector" not in peer
                    and selector_matches(peer.get("podSelector"), source.labels)
                    for peer in peers
                ):
                    return True
        return False

    targets = {
        (c, port): rendered.pods_of(c)[0].labels
        for c, port in (("api-server", 8080), ("pgbouncer", 6543))
        if rendered.pods_of(c)
    }
    for pod in rendered.pods():
        if pod.component not in AIRFLOW_CONTAINERS:
            continue
        for (component, port), labels in targets.items():
            if not admitted(labels, pod, port):
                problems.append(f"{stack}: {pod.owner} cannot reach {component} on {port}")
    # The post-deploy canary (the program's Job) calls the api-server's REST API.
    [canary] = [r for r in run.of_type("kubernetes:batch/v1:Job") if r.name == "airflow-canary"]
    labels = canary.inputs["spec"]["template"]["metadata"]["labels"]
    canary_pod = Pod("Job/canary", labels, {}, {}, "program")
    if not admitted(targets[("api-server", 8080)], canary_pod, 8080):
        problems.append(f"{stack}: the canary cannot reach the api-server on 8080")
    _fail_on(problems, "NetworkPolicy problems")
