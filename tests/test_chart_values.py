"""The chart values every stack passes to Helm: schema-valid, secret-free, wired to what exists."""

from __future__ import annotations

import base64
import json
import re
from typing import Any
from urllib.parse import urlsplit

import pytest

from components import chart_values as cv
from components import metadata_db as mdb
from components.settings import RawConfig, parse_settings
from tests.chart_render import stack_settings
from tests.chart_support import (
    chart_app_version,
    chart_version,
    leaves,
    release,
    schema_errors,
    secrets_by_name,
    values_of,
)
from tests.harness import ROOT_DIR, STACKS, Run, fake_secret, run_stack

SECRET_VALUE_KEYS = {
    "fernetKey",
    "apiSecretKey",
    "jwtSecret",
    "webserverSecretKey",
    "sshKey",
    "password",
    "pass",
    "connection",
}


@pytest.mark.parametrize("stack", STACKS)
def test_values_validate_against_the_chart_schema(stack_runs: dict[str, Run], stack: str) -> None:
    values = values_of(stack_runs[stack])
    assert schema_errors(values) == []


def test_the_schema_check_rejects_unknown_and_mistyped_keys(stack_runs: dict[str, Run]) -> None:
    values = values_of(stack_runs["production"])
    assert schema_errors({**values, "executorr": "KubernetesExecutor"})
    assert schema_errors({**values, "dags": {"gitSync": {"enabled": "yes"}}})
    assert schema_errors({**values, "apiServer": {"service": {"typo": "ClusterIP"}}})


@pytest.mark.parametrize("stack", STACKS)
def test_release_installs_the_pinned_official_chart(stack_runs: dict[str, Run], stack: str) -> None:
    rel = release(stack_runs[stack]).inputs
    assert rel["chart"] == "airflow"
    assert rel["repositoryOpts"]["repo"] == "https://airflow.apache.org"
    assert rel["version"] == chart_version()
    assert rel["name"] == "airflow" and rel["namespace"] == "airflow"
    # hooks run migrations then user creation; no --wait before post-install hooks
    assert rel["skipAwait"] is True and rel["atomic"] is False
    assert rel["cleanupOnFail"] is True and rel["timeout"] == 900
    values = rel["values"]
    assert values["migrateDatabaseJob"]["enabled"] is True
    assert values["migrateDatabaseJob"]["useHelmHooks"] is True


def test_pinned_versions_agree() -> None:
    assert chart_app_version() == cv.AIRFLOW_VERSION
    settings = parse_settings(
        RawConfig(
            "local", {"target": "minikube", "airflow.gitSync.repo": "https://x/y.git"}, frozenset()
        )
    )
    assert settings.airflow.chart_version == chart_version()
    dockerfile = (ROOT_DIR / "image" / "Dockerfile").read_text()
    assert re.search(
        rf"^FROM apache/airflow:{re.escape(cv.AIRFLOW_VERSION)}-python3\.\d+", dockerfile, re.M
    )


@pytest.mark.parametrize("stack", STACKS)
def test_executor_image_and_database(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    values = values_of(run)
    assert values["executor"] == "KubernetesExecutor"
    assert values["postgresql"] == {"enabled": False}
    assert values["redis"] == {"enabled": False}
    image = run.outputs["image"]
    assert (
        f"{values['images']['airflow']['repository']}:{values['images']['airflow']['tag']}" == image
    )
    assert values["pgbouncer"]["enabled"] is (stack != "local")


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_git_sync_follows_settings(stack_runs: dict[str, Run], stack: str) -> None:
    gs = values_of(stack_runs[stack])["dags"]["gitSync"]
    branch = {"integration": "main", "production": "release"}[stack]
    assert gs["enabled"] is True
    assert gs["repo"] == "https://github.com/acme-data/airflow-platform.git"
    assert (gs["branch"], gs["ref"], gs["subPath"]) == (branch, branch, "dags")
    assert "credentialsSecret" not in gs and "sshKeySecret" not in gs and "sshKey" not in gs


@pytest.mark.parametrize("stack", STACKS)
def test_remote_logging_keys(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    logging = values_of(run)["config"]["logging"]
    bucket = f"airflow-platform-{stack}-task-logs"
    assert logging["remote_logging"] == "True"
    assert logging["remote_base_log_folder"] == f"s3://{bucket}/task-logs"
    assert logging["remote_log_conn_id"] == cv.LOGS_CONN_ID
    assert run.outputs["task_logs_bucket"] == bucket
    env = {e["envName"]: e for e in values_of(run)["secret"]}
    conn_env = cv.env_name("CONN", cv.LOGS_CONN_ID)
    assert env[conn_env]["secretName"] == cv.SECRETS.task_logs_connection
    conn = json.loads(
        secrets_by_name(run)[cv.SECRETS.task_logs_connection].inputs["stringData"][conn_env]
    )
    assert conn["conn_type"] == "aws"
    if stack == "local":
        assert conn["extra"]["endpoint_url"] == "http://minio.airflow.svc.cluster.local:9000"
        assert conn["login"] and conn["password"]
    else:
        assert conn == {"conn_type": "aws", "extra": {"region_name": "eu-west-1"}}


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_every_log_service_account_carries_the_role_the_trust_names(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    values = values_of(run)
    role = next(r for r in run.of_type("aws:iam/role:Role") if r.name == "airflow-task-logs")
    trust = json.loads(role.inputs["assumeRolePolicy"])
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    sub_key = next(k for k in condition if k.endswith(":sub"))
    subjects = set(condition[sub_key])
    annotated = set()
    for section in ("scheduler", "workers", "triggerer", "dagProcessor", "apiServer"):
        sa = values[section]["serviceAccount"]
        assert sa["create"] is True and sa["name"]
        assert sa["annotations"] == {cv.IRSA_ANNOTATION: role.outputs["arn"]}
        annotated.add(f"system:serviceaccount:airflow:{sa['name']}")
    assert subjects == annotated
    assert (
        trust["Statement"][0]["Principal"]["Federated"]
        == run.one("eks:index:Cluster").outputs["oidcProviderArn"]
    )
    assert sub_key == f"{run.one('eks:index:Cluster').outputs['oidcProviderUrl']}:sub"


TOKEN_MOUNTED = {"scheduler": True, "workers": True, "apiServer": True}
"""Log-writing sections whose pods call the Kubernetes API; the others get no token."""


def test_local_service_accounts_are_named_but_not_annotated(stack_runs: dict[str, Run]) -> None:
    values = values_of(stack_runs["local"])
    for section, name in cv.LOG_SERVICE_ACCOUNTS.items():
        assert values[section]["serviceAccount"] == {
            "create": True,
            "name": name,
            "annotations": {},
            "automountServiceAccountToken": TOKEN_MOUNTED.get(section, False),
        }


def _secret_name_refs(values: dict[str, Any]) -> set[str]:
    refs = {
        values["data"]["metadataSecretName"],
        values["fernetKeySecretName"],
        values["apiSecretKeySecretName"],
        values["jwtSecretName"],
    }
    refs |= {e["secretName"] for e in values["secret"]}
    gs = values["dags"]["gitSync"]
    refs |= {gs[k] for k in ("credentialsSecret", "sshKeySecret") if k in gs}
    if values["pgbouncer"]["enabled"]:
        refs |= {
            values["pgbouncer"]["configSecretName"],
            values["pgbouncer"]["metricsExporterSidecar"]["statsSecretName"],
        }
    for env in values["createUserJob"].get("env", []):
        if "valueFrom" in env:
            refs.add(env["valueFrom"]["secretKeyRef"]["name"])
    return refs


@pytest.mark.parametrize("stack", STACKS)
def test_secret_names_point_at_secrets_the_component_creates(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    values = values_of(run)
    created = secrets_by_name(run)
    refs = _secret_name_refs(values)
    assert refs <= created.keys(), refs - created.keys()
    keys = {
        values["fernetKeySecretName"]: "fernet-key",
        values["apiSecretKeySecretName"]: "api-secret-key",
        values["jwtSecretName"]: "jwt-secret",
        values["data"]["metadataSecretName"]: "connection",
    }
    for name, key in keys.items():
        assert key in created[name].inputs["stringData"], (name, key)
        assert created[name].has_secret_under("stringData")


@pytest.mark.parametrize("stack", STACKS)
def test_no_secret_values_in_the_values(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    values = values_of(run)
    for path, leaf in leaves(values).items():
        last = re.split(r"[.\[]", path)[-1]
        assert last not in SECRET_VALUE_KEYS or leaf in ({}, [], None), path
        assert "TESTSECRET" not in str(leaf), path
    secret_strings = {
        v
        for r in run.of_type("kubernetes:core/v1:Secret")
        for v in r.inputs.get("stringData", {}).values()
    }
    flat = json.dumps(values)
    assert not any(s in flat for s in secret_strings if len(s) >= 16)
    assert release(run).secret_paths() == []


def test_fernet_key_is_a_valid_fernet_key(stack_runs: dict[str, Run]) -> None:
    from cryptography.fernet import Fernet

    for stack in STACKS:
        secret = secrets_by_name(stack_runs[stack])[cv.SECRETS.fernet_key]
        key = secret.inputs["stringData"]["fernet-key"]
        assert len(base64.urlsafe_b64decode(key)) == 32
        token = Fernet(key.encode()).encrypt(b"conn-password")
        assert Fernet(key.encode()).decrypt(token) == b"conn-password"


@pytest.mark.parametrize("stack", ["integration", "production"])
def test_pgbouncer_config_is_consistent_with_the_metadata_secret(
    stack_runs: dict[str, Run], stack: str
) -> None:
    run = stack_runs[stack]
    values = values_of(run)
    created = secrets_by_name(run)
    metadata = created[values["data"]["metadataSecretName"]].inputs["stringData"]
    uri = urlsplit(metadata["connection"])
    async_uri = urlsplit(metadata[mdb.SECRET_KEYS.async_connection])
    assert uri.scheme == "postgresql+psycopg2" and async_uri.scheme == "postgresql+asyncpg"
    for u in (uri, async_uri):
        assert (u.hostname, u.port) == ("airflow-pgbouncer.airflow", mdb.PGBOUNCER_PORT)
        assert (u.username, u.password, u.path) == (uri.username, uri.password, uri.path)
    assert "sslmode" not in async_uri.query, "asyncpg takes ssl=, never sslmode"
    config = created[values["pgbouncer"]["configSecretName"]].inputs["stringData"]
    ini, users = config["pgbouncer.ini"], config["users.txt"]
    alias = uri.path.lstrip("/")
    rds = run.one("aws:rds/instance:Instance").outputs
    assert f"{alias} = host={rds['address']} dbname=airflow port=5432" in ini
    assert f"listen_port = {mdb.PGBOUNCER_PORT}" in ini
    assert "server_tls_sslmode = verify-full" in ini
    assert f"server_tls_ca_file = {mdb.RDS_CA_MOUNT_PATH}" in ini
    assert users.strip() == f'"{uri.username}" "{uri.password}"'
    assert uri.password == run.one("aws:rds/instance:Instance").inputs["password"]
    stats = urlsplit(
        created[values["pgbouncer"]["metricsExporterSidecar"]["statsSecretName"]].inputs[
            "stringData"
        ]["connection"]
    )
    assert (stats.username, stats.password, stats.port) == (
        uri.username,
        uri.password,
        mdb.PGBOUNCER_PORT,
    )
    (bundle,) = [
        c
        for c in run.of_type("kubernetes:core/v1:ConfigMap")
        if mdb.RDS_CA_CONFIGMAP_KEY in c.inputs.get("data", {})
    ]
    assert (
        bundle.inputs["metadata"]["name"]
        == values["pgbouncer"]["extraVolumes"][0]["configMap"]["name"]
    )
    assert bundle.inputs["data"][mdb.RDS_CA_CONFIGMAP_KEY] == mdb.rds_ca_bundle_pem()


@pytest.mark.parametrize("stack", STACKS)
def test_every_airflow_pod_gets_the_async_uri_and_its_connect_args(
    stack_runs: dict[str, Run], stack: str
) -> None:
    values = values_of(stack_runs[stack])
    assert mdb.async_connection_env(cv.SECRETS.metadata) in values["secret"]
    assert values["config"]["database"] == {
        "sql_alchemy_connect_args_async": mdb.ASYNC_CONNECT_ARGS_IMPORT_PATH
    }
    namespace: dict[str, object] = {}
    exec(values["airflowLocalSettings"], namespace)  # noqa: S102 (our own generated module)
    assert namespace[mdb.ASYNC_CONNECT_ARGS_NAME] == {"statement_cache_size": 0}


def test_local_metadata_goes_straight_to_the_in_cluster_postgres(
    stack_runs: dict[str, Run],
) -> None:
    run = stack_runs["local"]
    uri = urlsplit(secrets_by_name(run)[cv.SECRETS.metadata].inputs["stringData"]["connection"])
    assert (uri.hostname, uri.port, uri.path) == (
        "postgres.airflow-postgres.svc.cluster.local",
        5432,
        "/airflow",
    )
    assert uri.scheme == "postgresql+psycopg2", "the same decided drivers as on eks"
    async_uri = urlsplit(
        secrets_by_name(run)[cv.SECRETS.metadata].inputs["stringData"][
            mdb.SECRET_KEYS.async_connection
        ]
    )
    assert async_uri.scheme == "postgresql+asyncpg" and async_uri.hostname == uri.hostname
    maps = run.of_type("kubernetes:core/v1:ConfigMap")
    assert not [c for c in maps if mdb.RDS_CA_CONFIGMAP_KEY in c.inputs.get("data", {})], "no CA"


@pytest.mark.parametrize("stack", STACKS)
def test_ui_is_cluster_internal(stack_runs: dict[str, Run], stack: str) -> None:
    run = stack_runs[stack]
    values = values_of(run)
    assert values["apiServer"]["service"]["type"] == "ClusterIP"
    assert values["ingress"]["apiServer"]["enabled"] is False
    assert values["createUserJob"]["enabled"] is True, (
        "every stack offers a first login (see test_first_login_*)"
    )
    assert (
        run.outputs["ui_command"]
        == "kubectl --namespace airflow port-forward svc/airflow-api-server 8080:8080"
    )
    assert run.outputs["ui_url"] is None


def test_internal_ingress_and_url() -> None:
    run = run_stack(
        "production",
        set_values={
            "airflow.ingress.enabled": True,
            "airflow.ingress.host": "airflow.internal.example.com",
            "airflow.ingress.tlsSecretName": "airflow-tls",
        },
    )
    values = values_of(run)
    assert schema_errors(values) == []
    ing = values["ingress"]["apiServer"]
    assert ing["annotations"]["alb.ingress.kubernetes.io/scheme"] == "internal"
    assert ing["hosts"] == [
        {
            "name": "airflow.internal.example.com",
            "tls": {"enabled": True, "secretName": "airflow-tls"},
        }
    ]
    assert run.outputs["ui_url"] == "https://airflow.internal.example.com/"
    assert values["config"]["api"]["base_url"] == "https://airflow.internal.example.com/"


def test_admin_user_comes_from_secret_config() -> None:
    run = run_stack("local", set_secrets={"adminPassword": fake_secret("adminPassword")})
    values = values_of(run)
    assert schema_errors(values) == []
    job = values["createUserJob"]
    assert job["enabled"] is True and job["useHelmHooks"] is True
    ref = next(e for e in job["env"] if e["name"] == "ADMIN_PASSWORD")["valueFrom"]["secretKeyRef"]
    admin = secrets_by_name(run)[ref["name"]]
    assert admin.inputs["stringData"][ref["key"]] == fake_secret("adminPassword")
    assert admin.has_secret_under("stringData")
    assert "TESTSECRET" not in json.dumps(values)


@pytest.mark.parametrize(
    ("values_set", "secrets_set", "key", "secret_key"),
    [
        (
            {},
            {"gitSyncUsername": "ci-bot", "gitSyncToken": fake_secret("gitSyncToken")},
            "credentialsSecret",
            "GITSYNC_PASSWORD",
        ),
        (
            {
                "airflow.gitSync.repo": "git@github.com:acme-data/airflow-platform.git",
                "gitSyncKnownHosts": "github.com ssh-ed25519 AAAAC3Nza",
            },
            {"gitSyncSshKey": fake_secret("gitSyncSshKey")},
            "sshKeySecret",
            "gitSshKey",
        ),
    ],
    ids=["https-token", "ssh-key"],
)
def test_private_git_repo_credentials_by_secret_name(
    values_set: dict[str, Any], secrets_set: dict[str, str], key: str, secret_key: str
) -> None:
    run = run_stack("integration", set_values=values_set, set_secrets=secrets_set)
    values = values_of(run)
    assert schema_errors(values) == []
    gs = values["dags"]["gitSync"]
    secret = secrets_by_name(run)[gs[key]]
    assert secret.inputs["stringData"][secret_key].startswith("TESTSECRET-")
    if key == "sshKeySecret":
        assert gs["knownHosts"] == "github.com ssh-ed25519 AAAAC3Nza"
    assert "TESTSECRET" not in json.dumps(values)


REPLICATED_ONLY_DIFFERENCES = (
    r"(scheduler|triggerer|dagProcessor|apiServer|pgbouncer)\.topologySpreadConstraints.*",
)
"""Spread constraints exist only where a component runs more than one replica (production);
elsewhere the list is empty, so its leaves differ in shape. `test_hardening_follows_replicas`
holds them (and the disruption budgets) to the replica count, not to the stack's name."""

ALLOWED_DIFFERENCES = (
    r"images\.(airflow|pod_template)\.(repository|tag)",
    r"(airflowPodAnnotations|pgbouncer\.podAnnotations)\.airflow-platform/secrets-checksum",
    r"(scheduler|workers|triggerer|dagProcessor|apiServer)\.serviceAccount\.annotations.*",
    r"config\.logging\.remote_base_log_folder",
    r"(scheduler|triggerer|dagProcessor|apiServer|pgbouncer)\.replicas",
    r"(scheduler|workers|triggerer|dagProcessor|apiServer)\.resources\..*",
    r"(migrateDatabaseJob|createUserJob)\.resources\..*",
    r"(scheduler|triggerer|dagProcessor|apiServer|pgbouncer)\.podDisruptionBudget\.enabled",
    *REPLICATED_ONLY_DIFFERENCES,
    r"pgbouncer\.enabled",
    r"dags\.gitSync\.(branch|ref|period)",
)
LOCAL_PLACEMENT_DIFFERENCES = (
    r"nodeSelector.*",
    r"workers\.kubernetes\.(nodeSelector|tolerations|podAnnotations).*",
)
"""eks places Airflow's pods on the platform pool and task pods on the task pool; minikube has
one node."""
LOCAL_DAGS_DIFFERENCES = (
    r"dags\.gitSync\.(enabled|repo)",
    r"dags\.persistence\.enabled",
    r"volumes.*",
    r"volumeMounts.*",
)
"""The local stack serves this checkout's dags/ from a host mount instead of git-sync."""


def test_values_differ_between_stacks_only_in_addresses_sizes_and_names(
    stack_runs: dict[str, Run],
) -> None:
    flat = {stack: leaves(values_of(stack_runs[stack])) for stack in STACKS}
    base = flat["production"]

    for stack in ("local", "integration"):
        patterns = ALLOWED_DIFFERENCES + (
            LOCAL_DAGS_DIFFERENCES + LOCAL_PLACEMENT_DIFFERENCES if stack == "local" else ()
        )

        def allowed(key: str, patterns: tuple[str, ...] = patterns) -> bool:
            return any(re.fullmatch(p, key) for p in patterns)

        other = flat[stack]
        shape = {k for k in base.keys() ^ other.keys() if not allowed(k)}
        assert shape == set(), shape
        differing = sorted(k for k in base.keys() & other.keys() if base[k] != other[k])
        unexpected = [k for k in differing if not allowed(k)]
        assert unexpected == [], unexpected
        assert differing, "stacks should differ at least in addresses"


def test_values_key_counts(stack_runs: dict[str, Run]) -> None:
    counts = {stack: len(leaves(values_of(stack_runs[stack]))) for stack in STACKS}
    shared = {
        stack: sum(
            1
            for key in leaves(values_of(stack_runs[stack]))
            if not any(re.fullmatch(p, key) for p in REPLICATED_ONLY_DIFFERENCES)
        )
        for stack in STACKS
    }
    assert shared["integration"] == shared["production"]
    print(f"\nkeys set in chart values per stack: {counts} (without spread constraints: {shared})")


def test_git_sync_is_one_setting_away_on_the_local_stack() -> None:
    run = run_stack(
        "local",
        set_values={
            "airflow.dagsSource": "gitSync",
            "airflow.gitSync.repo": "https://github.com/acme-data/airflow-platform.git",
        },
    )
    values = values_of(run)
    assert schema_errors(values) == []
    gs = values["dags"]["gitSync"]
    assert gs["enabled"] is True and gs["repo"].endswith("airflow-platform.git")
    assert gs["period"] == "30s"
    assert "volumes" not in values and "volumeMounts" not in values


REPLICATED = ("scheduler", "apiServer", "triggerer", "dagProcessor", "pgbouncer")


@pytest.mark.parametrize("stack", STACKS)
def test_hardening_follows_replicas(stack_runs: dict[str, Run], stack: str) -> None:
    """Disruption budgets and spread constraints follow the replica count, not the stack name:
    on wherever a component runs two or more pods (production), off with one. Production runs
    two of every long-running component, PgBouncer included."""
    values = values_of(stack_runs[stack])
    for section in REPLICATED:
        replicas = values[section]["replicas"]
        assert values[section]["podDisruptionBudget"] == {
            "enabled": replicas > 1,
            "config": {"maxUnavailable": 1},
        }, section
        assert bool(values[section]["topologySpreadConstraints"]) is (replicas > 1), section
        if stack == "production":
            assert replicas >= 2, section


@pytest.mark.parametrize("stack", STACKS)
def test_every_resources_value_requests_cpu_and_memory_and_limits_memory(
    stack_runs: dict[str, Run], stack: str
) -> None:
    """Every `resources` the values set comes from `_sizes` and is complete (the rendered
    containers are checked in test_rendered_chart.py)."""
    found = {
        path: value
        for path, value in _walk(values_of(stack_runs[stack]))
        if path.endswith(".resources")
    }
    assert len(found) >= 12, sorted(found)
    for path, value in found.items():
        assert set(value) == {"requests", "limits"}, path
        assert set(value["requests"]) == {"cpu", "memory"}, path
        assert set(value["limits"]) == {"memory"}, path


def _walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if not isinstance(value, dict):
        return []
    out = [(path, value)] if path else []
    for key, item in value.items():
        out += _walk(item, f"{path}.{key}" if path else key)
    return out


def test_sizes_are_the_only_sizing() -> None:
    """The sidecars are the same everywhere; the Airflow containers grow with the stack."""
    settings = {stack: stack_settings(stack) for stack in STACKS}
    sizes = {stack: cv._sizes(s) for stack, s in settings.items()}
    for side in ("git_sync", "log_groomer", "pgbouncer", "pgbouncer_exporter", "statsd"):
        assert len({json.dumps(getattr(z, side), sort_keys=True) for z in sizes.values()}) == 1
    assert sizes["production"].replicas == 2 and sizes["local"].replicas == 1
