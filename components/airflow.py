"""AirflowRelease: namespace, Secrets, task-log store access and the official chart."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from canary import job as canary_job
from components import chart_values as cv
from components import iam, network_policies
from components import metadata_db as mdb
from components import node_pools as np
from components.aws_catalog import partition_of
from components.keys import customer_key
from components.naming import PART_OF, tags
from components.settings import Settings
from components.stack_secrets import StackSecrets

MINIO_IMAGE = "minio/minio:RELEASE.2025-04-22T22-12-26Z"
MINIO_CLIENT_IMAGE = "minio/mc:RELEASE.2025-04-16T18-13-26Z"
MINIO_REGION = "us-east-1"

Consumer = Literal["airflow", "pgbouncer"]
"""Which pods read a Secret at start (and so must roll when it changes)."""


def job_metadata(manifest: pulumi.Output[dict[str, Any]]) -> dict[str, pulumi.Output[Any]]:
    """A computed manifest's `metadata` as a map of computed fields, not one computed value.

    While the image is not built yet (a preview), the manifest is unknown. pulumi-kubernetes
    treats an object as named only when `metadata` is a map whose `name` is set or computed
    (provider/pkg/metadata/naming.go, `IsNamed`); a wholly unknown `metadata` would be
    auto-named in the preview, and an update held to that preview would not match.
    """

    def field_of(key: str) -> pulumi.Output[Any]:
        return manifest.apply(lambda m: m["metadata"][key])

    return {key: field_of(key) for key in ("name", "namespace", "labels", "annotations")}


def secrets_checksum(key: str, secrets: list[Any]) -> str:
    """HMAC-SHA256 over Secrets' names and data, in a stable order."""
    canonical = json.dumps(sorted(json.dumps(x, sort_keys=True) for x in secrets))
    return hmac.new(key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AirflowReleaseArgs:
    settings: Settings
    secrets: StackSecrets
    image: pulumi.Input[str]
    """The built image reference, an output of the build (so the release waits for it)."""
    db_host: pulumi.Input[str]
    db_port: pulumi.Input[int]
    db_name: pulumi.Input[str]
    db_user: pulumi.Input[str]
    db_password: pulumi.Input[str]
    db_sslmode: str
    oidc_provider_arn: pulumi.Input[str] | None = None
    oidc_provider_url: pulumi.Input[str] | None = None
    wait_for: Sequence[pulumi.Resource] = ()
    """What the chart's upgrade must wait for besides what it reads: the pre-upgrade snapshot."""


class AirflowRelease(pulumi.ComponentResource):
    """Airflow on the cluster: the chart with KubernetesExecutor, git-sync and S3 task logs."""

    namespace: pulumi.Output[str]
    logs_bucket: pulumi.Output[str]
    logs_role_arn: pulumi.Output[str] | None
    ui_command: pulumi.Output[str]
    ui_url: str | None
    admin_username: str | None
    admin_password: pulumi.Output[str] | None
    canary_job: pulumi.Output[str] | None
    """The name of this deploy's canary Job (None with upgrades.canary off)."""

    def __init__(
        self, name: str, args: AirflowReleaseArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("airflow-platform:airflow:AirflowRelease", name, None, opts)
        s = args.settings
        self._name = name
        self._child = pulumi.ResourceOptions(parent=self)
        self._read_by: dict[Consumer, list[pulumi.Output[Any]]] = {"airflow": [], "pgbouncer": []}
        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={
                "name": s.airflow.namespace,
                "labels": PART_OF,
            },
            opts=self._child,
        )
        self.namespace = ns.metadata.name
        created: list[pulumi.Output[str]] = []
        created += self._core_secrets(args)
        created += self._database_secrets(args)
        created += self._git_secret(args)
        created += self._connections_secret(args)

        release_deps: list[pulumi.Resource] = []
        if s.is_eks:
            bucket_name, role_arn = self._s3_log_store(args)
            logs_connection = pulumi.Output.from_input(
                json.dumps(cv.task_logs_connection(s.region))
            )
        else:
            bucket_name, logs_connection, bucket_job = self._in_cluster_log_store(args)
            role_arn = None
            # Tasks write logs from their first run: the bucket must exist before Airflow starts.
            release_deps.append(bucket_job)
        created.append(
            self._secret(
                "task-logs-connection",
                cv.SECRETS.task_logs_connection,
                {cv.env_name("CONN", cv.LOGS_CONN_ID): logs_connection},
                read_by="airflow",
            )
        )
        self.logs_bucket = bucket_name
        self.logs_role_arn = role_arn

        extra_env = tuple(
            [cv.env_name("CONN", c) for c in s.connection_ids]
            + [cv.env_name("VAR", v) for v in s.variable_keys]
        )
        checksum_key = random.RandomPassword(
            f"{name}-checksum-key", length=32, special=False, opts=self._child
        ).result
        values = pulumi.Output.all(
            image=args.image,
            bucket=bucket_name,
            role=role_arn,
            secrets=pulumi.Output.all(*created),
            airflow_sum=self._checksum(checksum_key, "airflow"),
            pgbouncer_sum=self._checksum(checksum_key, "pgbouncer"),
        ).apply(
            lambda r: cv.chart_values(
                cv.ChartInputs(
                    settings=s,
                    image_ref=r["image"],
                    logs_bucket=r["bucket"],
                    logs_role_arn=r["role"],
                    extra_secret_env=extra_env,
                    secrets_checksum=r["airflow_sum"],
                    pgbouncer_checksum=r["pgbouncer_sum"],
                )
            )
        )
        # Helm runs the chart's hooks: database migrations (post-install/post-upgrade,
        # weight 1), then user creation (weight 2), on install and on every upgrade, and
        # fails the release when one fails. `atomic` is left off on purpose: it implies
        # --wait, and the chart's pods wait for migrations that only run after the wait.
        chart = k8s.helm.v3.Release(
            f"{name}-chart",
            name=cv.RELEASE_NAME,
            chart=cv.CHART_NAME,
            version=s.rollback.chart_version or s.airflow.chart_version,
            repository_opts=k8s.helm.v3.RepositoryOptsArgs(repo=cv.CHART_REPOSITORY),
            namespace=self.namespace,
            values=values,
            skip_await=True,
            atomic=False,
            cleanup_on_fail=True,
            timeout=s.airflow.helm_timeout_seconds,
            max_history=10,
            # The migrations run in this release's hooks: they wait for the pre-upgrade snapshot.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*release_deps, *args.wait_for]),
        )
        # Egress policies beside the chart's ingress ones: what the platform's pods may reach.
        # Independent of the release (the chart's pods only need them once they run).
        for policy in network_policies.egress_policies(s, s.airflow.namespace):
            meta = policy["metadata"]
            np_metadata: Any = {**meta, "namespace": self.namespace}
            np_spec: Any = policy["spec"]
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{meta['name'].removeprefix('airflow-platform-')}",
                metadata=np_metadata,
                spec=np_spec,
                opts=self._child,
            )
        self.canary_job = self._canary(args, chart, values)
        self.ui_command = self.namespace.apply(cv.port_forward_command)
        self.ui_url = cv.ui_url(s)
        self.register_outputs(
            {
                "namespace": self.namespace,
                "logs_bucket": self.logs_bucket,
                "logs_role_arn": self.logs_role_arn,
                "ui_command": self.ui_command,
                "ui_url": self.ui_url,
                "admin_username": self.admin_username,
                "admin_password": self.admin_password,
                "canary_job": self.canary_job,
            }
        )

    def _canary(
        self,
        args: AirflowReleaseArgs,
        chart: k8s.helm.v3.Release,
        values: pulumi.Output[dict[str, Any]],
    ) -> pulumi.Output[str] | None:
        """The post-deploy canary: a Job, created after the release, that `up` waits for.

        pulumi-kubernetes awaits a Job until it completes and fails the update when the Job
        fails, with the failed container's termination message (the canary's report: run
        state, failed tasks, log excerpt) in the error (provider/pkg/await/job.go collects
        the pod checker's messages; checker/pod/check.go `containerTerminatedError` formats
        `[<reason>] <message>`). The Job's name follows what was deployed (chart values,
        image, canary script and settings), so every deploy that changes any of them runs
        the canary again, and an unchanged one leaves the finished Job alone.
        """
        s = args.settings
        u = s.upgrades
        if not u.canary:
            return None
        script = k8s.core.v1.ConfigMap(
            f"{self._name}-canary-script",
            metadata={
                "name": canary_job.CONFIG_MAP_NAME,
                "namespace": self.namespace,
                "labels": PART_OF,
            },
            data=canary_job.canary_config_map_data(),
            opts=self._child,
        )
        namespace = s.airflow.namespace
        api_url = f"http://{cv.RELEASE_NAME}-api-server.{namespace}.svc:{cv.API_SERVER_PORT}"

        def manifest(parts: list[Any]) -> dict[str, Any]:
            chart_values, image, config_map = parts
            suffix = canary_job.name_suffix(
                json.dumps(chart_values, sort_keys=True),
                str(image),
                canary_job.canary_script_digest(),
                u.model_dump_json(),
            )
            return canary_job.canary_job_manifest(
                namespace=namespace,
                image=str(image),
                api_url=api_url,
                credentials_secret_name=cv.SECRETS.admin_user,
                config_map_name=str(config_map),
                name_suffix=suffix,
                dag_id=u.canary_dag_id,
                timeout_seconds=u.canary_timeout_seconds,
                force_failure=u.canary_force_failure,
                node_selector=dict(np.PLATFORM_SELECTOR) if s.is_eks else None,
            )

        full = pulumi.Output.all(values, args.image, script.metadata.name).apply(manifest)
        metadata: Any = job_metadata(full)
        job_spec: Any = full.apply(lambda m: m["spec"])
        # The update's own limit sits above the Job's deadline, so the Job's report, not a
        # provider timeout, ends a slow canary.
        limit = u.canary_timeout_seconds + canary_job.DEADLINE_MARGIN_SECONDS + 120
        job = k8s.batch.v1.Job(
            f"{self._name}-canary",
            metadata=metadata,
            spec=job_spec,
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[chart],
                custom_timeouts=pulumi.CustomTimeouts(create=f"{limit}s", update=f"{limit}s"),
            ),
        )
        return job.metadata.name

    def _checksum(self, key: pulumi.Output[str], consumer: Consumer) -> pulumi.Output[str]:
        """A keyed digest of what `consumer` reads from Secrets, safe to show in values.

        Keyed (HMAC with a generated key kept as a secret in state), so a digest of a
        short user-chosen secret cannot be brute-forced from the chart values.
        """
        digest = pulumi.Output.all(key, *self._read_by[consumer]).apply(
            lambda parts: secrets_checksum(parts[0], parts[1:])
        )
        return pulumi.Output.unsecret(digest)

    def _secret(
        self,
        short: str,
        secret_name: str,
        data: dict[str, pulumi.Input[str]],
        read_by: Consumer | None = None,
    ) -> pulumi.Output[str]:
        """An Opaque Secret in the release namespace; returns its name (an Output).

        `read_by` names the pods that read it at start, so their checksum follows it.
        """
        if read_by is not None:
            self._read_by[read_by].append(pulumi.Output.all(secret_name, pulumi.Output.all(**data)))
        secret = k8s.core.v1.Secret(
            f"{self._name}-{short}",
            metadata={
                "name": secret_name,
                "namespace": self.namespace,
                "labels": PART_OF,
            },
            type="Opaque",
            string_data={k: pulumi.Output.secret(v) for k, v in data.items()},
            opts=self._child,
        )
        return secret.metadata.name

    def _generated(
        self, short: str, given: pulumi.Output[str] | None, length: int
    ) -> pulumi.Output[str]:
        if given is not None:
            return given
        return random.RandomPassword(
            f"{self._name}-{short}", length=length, special=False, opts=self._child
        ).result

    def _core_secrets(self, args: AirflowReleaseArgs) -> list[pulumi.Output[str]]:
        sec = args.secrets
        if sec.fernet_key is not None:
            fernet = sec.fernet_key
        else:
            raw = random.RandomBytes(f"{self._name}-fernet-key", length=32, opts=self._child)
            fernet = raw.base64.apply(lambda b: b.replace("+", "-").replace("/", "_"))
        names = [
            self._secret(
                "fernet-key", cv.SECRETS.fernet_key, {"fernet-key": fernet}, read_by="airflow"
            ),
            self._secret(
                "api-secret-key",
                cv.SECRETS.api_secret_key,
                {"api-secret-key": self._generated("api-secret-key", sec.api_secret_key, 64)},
                read_by="airflow",
            ),
            self._secret(
                "jwt-secret",
                cv.SECRETS.jwt_secret,
                {"jwt-secret": self._generated("jwt-secret", sec.jwt_secret, 64)},
                read_by="airflow",
            ),
        ]
        self.admin_username = None
        self.admin_password = None
        if args.settings.airflow.create_admin_user:
            # The first login: the adminPassword secret, or a generated one; both leave the
            # program only as a secret (the Secret and the `admin_password` stack output).
            password: pulumi.Output[str] = pulumi.Output.secret(
                self._generated("admin-password", sec.admin_password, 24)
            )
            # The username beside it: the post-deploy canary logs in with both.
            names.append(
                self._secret(
                    "admin-user",
                    cv.SECRETS.admin_user,
                    {"username": args.settings.airflow.admin_username, "password": password},
                )
            )
            self.admin_username = args.settings.airflow.admin_username
            self.admin_password = password
        return names

    def _database_secrets(self, args: AirflowReleaseArgs) -> list[pulumi.Output[str]]:
        """The metadata Secret (sync and async URIs, one decided driver each); on eks through
        PgBouncer, whose config matches them and verifies the RDS certificate."""
        s = args.settings
        db = pulumi.Output.all(
            host=args.db_host,
            port=args.db_port,
            name=args.db_name,
            user=args.db_user,
            password=args.db_password,
            namespace=self.namespace,
        )
        if not s.is_eks:
            # Straight to the in-cluster Postgres.
            tls = mdb.TlsMode(args.db_sslmode)
            metadata: dict[str, pulumi.Input[str]] = {
                mdb.SECRET_KEYS.connection: db.apply(
                    lambda d: mdb.sync_uri(
                        d["user"], d["password"], d["host"], d["port"], d["name"], tls
                    )
                ),
                mdb.SECRET_KEYS.async_connection: db.apply(
                    lambda d: mdb.async_uri(
                        d["user"], d["password"], d["host"], d["port"], d["name"], tls
                    )
                ),
            }
            return [self._secret("metadata", cv.SECRETS.metadata, metadata, read_by="airflow")]
        # Airflow -> PgBouncer stays inside the cluster (no TLS); PgBouncer -> RDS verifies.
        alias = mdb.pgbouncer_metadata_alias(cv.RELEASE_NAME)

        def through_pgbouncer(uri: Callable[..., str]) -> pulumi.Output[str]:
            return db.apply(
                lambda d: uri(
                    d["user"],
                    d["password"],
                    mdb.pgbouncer_host(d["namespace"], cv.RELEASE_NAME),
                    mdb.PGBOUNCER_PORT,
                    alias,
                    mdb.TlsMode.DISABLE,
                )
            )

        ini = db.apply(
            lambda d: mdb.pgbouncer_ini(d["host"], d["port"], d["name"], d["user"], 20, alias)
        )
        users = db.apply(lambda d: mdb.pgbouncer_users(d["user"], d["password"]))
        stats = db.apply(lambda d: mdb.stats_uri(d["user"], d["password"]))
        bundle = mdb.rds_ca_bundle_pem()
        k8s.core.v1.ConfigMap(
            f"{self._name}-rds-ca",
            metadata={"name": cv.SECRETS.rds_ca, "namespace": self.namespace, "labels": PART_OF},
            data={mdb.RDS_CA_CONFIGMAP_KEY: bundle},
            opts=self._child,
        )
        # PgBouncer reads the bundle at start: a refreshed bundle rolls it too.
        self._read_by["pgbouncer"].append(
            pulumi.Output.from_input(hashlib.sha256(bundle.encode()).hexdigest())
        )
        return [
            self._secret(
                "metadata",
                cv.SECRETS.metadata,
                {
                    mdb.SECRET_KEYS.connection: through_pgbouncer(mdb.sync_uri),
                    mdb.SECRET_KEYS.async_connection: through_pgbouncer(mdb.async_uri),
                },
                read_by="airflow",
            ),
            self._secret(
                "pgbouncer-config",
                cv.SECRETS.pgbouncer_config,
                {mdb.PGBOUNCER_SECRET_KEYS.ini: ini, mdb.PGBOUNCER_SECRET_KEYS.users: users},
                read_by="pgbouncer",
            ),
            self._secret(
                "pgbouncer-stats",
                cv.SECRETS.pgbouncer_stats,
                {mdb.STATS_SECRET_KEY: stats},
                read_by="pgbouncer",
            ),
        ]

    def _git_secret(self, args: AirflowReleaseArgs) -> list[pulumi.Output[str]]:
        sec = args.secrets
        if sec.git_username is not None and sec.git_token is not None:
            data: dict[str, pulumi.Input[str]] = {
                "GITSYNC_USERNAME": sec.git_username,
                "GITSYNC_PASSWORD": sec.git_token,
                "GIT_SYNC_USERNAME": sec.git_username,
                "GIT_SYNC_PASSWORD": sec.git_token,
            }
            return [
                self._secret("git-credentials", cv.SECRETS.git_credentials, data, read_by="airflow")
            ]
        if sec.git_ssh_key is not None:
            return [
                self._secret(
                    "git-ssh-key",
                    cv.SECRETS.git_ssh_key,
                    {"gitSshKey": sec.git_ssh_key},
                    read_by="airflow",
                )
            ]
        return []

    def _connections_secret(self, args: AirflowReleaseArgs) -> list[pulumi.Output[str]]:
        """Connections and variables from the stack's secret config, as AIRFLOW_CONN_/VAR_ env."""
        s, sec = args.settings, args.secrets
        data: dict[str, pulumi.Input[str]] = {}
        if sec.connections is not None:
            for conn_id in s.connection_ids:
                data[cv.env_name("CONN", conn_id)] = _entry(sec.connections, conn_id)
        if sec.variables is not None:
            for key in s.variable_keys:
                data[cv.env_name("VAR", key)] = _entry(sec.variables, key)
        if not data:
            return []
        return [
            self._secret(
                "connections-variables",
                cv.SECRETS.connections_variables,
                data,
                read_by="airflow",
            )
        ]

    def _s3_log_store(
        self, args: AirflowReleaseArgs
    ) -> tuple[pulumi.Output[str], pulumi.Output[str]]:
        """The task-log bucket and the IRSA role every log-writing service account assumes."""
        s = args.settings
        logs = s.airflow.logs
        name = self._name
        if args.oidc_provider_arn is None or args.oidc_provider_url is None:
            raise ValueError("S3 task logs on eks need the cluster's OIDC provider")
        bucket = aws.s3.Bucket(
            f"{name}-logs",
            bucket=s.logs_bucket,
            force_destroy=not s.is_production,
            tags=tags(s, f"{name}-logs"),
            opts=self._child,
        )
        self._block_public_access(f"{name}-logs", bucket)
        key_arn = self._task_log_key(s)
        self._bucket_encryption(f"{name}-logs", bucket, key_arn)
        if logs.versioning:
            aws.s3.BucketVersioning(
                f"{name}-logs",
                bucket=bucket.id,
                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                    status="Enabled"
                ),
                opts=self._child,
            )
        prefix = logs.prefix.strip("/")
        rule = aws.s3.BucketLifecycleConfigurationRuleArgs(
            id="expire-task-logs",
            status="Enabled",
            filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(
                prefix=f"{prefix}/" if prefix else ""
            ),
            expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                days=logs.retention_days
            ),
            noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                noncurrent_days=30
            ),
            abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                days_after_initiation=7
            ),
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-logs", bucket=bucket.id, rules=[rule], opts=self._child
        )
        aws.s3.BucketPolicy(
            f"{name}-logs",
            bucket=bucket.id,
            policy=bucket.bucket.apply(lambda b: json.dumps(iam.tls_only_bucket_policy(b))),
            opts=self._child,
        )
        if logs.access_logging:
            self._access_logging(s, bucket)
        trust = pulumi.Output.all(
            args.oidc_provider_arn, args.oidc_provider_url, self.namespace
        ).apply(
            lambda a: json.dumps(
                iam.irsa_trust_policy(a[0], a[1], a[2], list(cv.LOG_SERVICE_ACCOUNTS.values()))
            )
        )
        role = aws.iam.Role(
            f"{name}-task-logs",
            assume_role_policy=trust,
            description="Airflow task logs in S3 (IRSA)",
            tags=tags(s, f"{name}-task-logs"),
            opts=self._child,
        )
        aws.iam.RolePolicy(
            f"{name}-task-logs",
            role=role.id,
            policy=pulumi.Output.all(bucket.bucket, key_arn).apply(
                lambda a: json.dumps(iam.task_logs_policy(a[0], logs.prefix, a[1], s.region))
            ),
            opts=self._child,
        )
        return bucket.bucket, role.arn

    def _task_log_key(self, s: Settings) -> pulumi.Output[str] | None:
        """The task-log bucket's customer-managed key, or None for SSE-S3."""
        if not s.security.customer_managed_keys:
            return None
        key = customer_key(
            f"{self._name}-logs", s, "task-log bucket", iam.task_logs_key_policy, self
        )
        return key.arn

    def _block_public_access(self, name: str, bucket: aws.s3.Bucket) -> None:
        """All four public-access blocks on."""
        aws.s3.BucketPublicAccessBlock(
            name,
            bucket=bucket.id,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=self._child,
        )

    def _bucket_encryption(
        self, name: str, bucket: aws.s3.Bucket, key_arn: pulumi.Output[str] | None
    ) -> None:
        """Default encryption: SSE-KMS with `key_arn` and an S3 Bucket Key, else SSE-S3."""
        default_args = (
            aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs
        )
        by_default = default_args(
            sse_algorithm="aws:kms" if key_arn is not None else "AES256",
            kms_master_key_id=key_arn,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            name,
            bucket=bucket.id,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=by_default,
                    bucket_key_enabled=True,
                )
            ],
            opts=self._child,
        )

    def _access_logging(self, s: Settings, source: aws.s3.Bucket) -> None:
        """S3 server access logs of `source`, delivered to a bucket of their own.

        Amazon S3 User Guide, "Logging requests with server access logging": the target is
        another bucket in the same region and account, granted to `logging.s3.amazonaws.com`
        by its bucket policy, and encrypted with SSE-S3 (S3 does not deliver server access
        logs to a target whose default encryption is SSE-KMS).
        """
        name = f"{self._name}-access-logs"
        logs = s.airflow.logs
        target_name = iam.access_log_bucket_name(s.logs_bucket)
        prefix = f"{s.logs_bucket}/"
        partition = partition_of(s.region)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self))
        target = aws.s3.Bucket(
            name,
            bucket=target_name,
            force_destroy=not s.is_production,
            tags=tags(s, name),
            opts=self._child,
        )
        self._block_public_access(name, target)
        self._bucket_encryption(name, target, None)
        if logs.versioning:
            aws.s3.BucketVersioning(
                name,
                bucket=target.id,
                versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(
                    status="Enabled"
                ),
                opts=self._child,
            )
        aws.s3.BucketLifecycleConfiguration(
            name,
            bucket=target.id,
            rules=[
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-access-logs",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=prefix),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=logs.retention_days
                    ),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=30
                    ),
                )
            ],
            opts=self._child,
        )
        policy = aws.s3.BucketPolicy(
            name,
            bucket=target.id,
            policy=pulumi.Output.all(target.bucket, source.bucket, account.account_id).apply(
                lambda a: json.dumps(
                    iam.access_log_bucket_policy(a[0], prefix, a[1], partition, a[2])
                )
            ),
            opts=self._child,
        )
        # The target's name, once its policy lets S3 deliver there (a data dependency on both).
        target_bucket = pulumi.Output.all(target.bucket, policy.id).apply(lambda a: str(a[0]))
        aws.s3.BucketLogging(
            f"{self._name}-logs",
            bucket=source.id,
            target_bucket=target_bucket,
            target_prefix=prefix,
            opts=self._child,
        )

    def _in_cluster_log_store(
        self, args: AirflowReleaseArgs
    ) -> tuple[pulumi.Output[str], pulumi.Output[str], pulumi.Resource]:
        """MinIO in the release namespace, its bucket created on deploy (minikube)."""
        s = args.settings
        name = self._name
        labels = {
            "app.kubernetes.io/name": "minio",
            **PART_OF,
        }
        user = random.RandomPassword(
            f"{name}-minio-user", length=20, special=False, opts=self._child
        )
        password = random.RandomPassword(
            f"{name}-minio-password", length=40, special=False, opts=self._child
        )
        credentials = k8s.core.v1.Secret(
            f"{name}-minio",
            metadata={"name": "minio-root", "namespace": self.namespace, "labels": labels},
            type="Opaque",
            string_data={"MINIO_ROOT_USER": user.result, "MINIO_ROOT_PASSWORD": password.result},
            opts=self._child,
        )
        env_from = [{"secretRef": {"name": credentials.metadata.name}}]
        claim_spec: Any = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "5Gi"}},
        }
        claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-minio",
            metadata={"name": "minio-data", "namespace": self.namespace, "labels": labels},
            spec=claim_spec,
            opts=self._child,
        )
        deployment_spec: Any = {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "minio",
                            "image": MINIO_IMAGE,
                            "args": ["server", "/data"],
                            "envFrom": env_from,
                            "ports": [{"containerPort": 9000, "name": "s3"}],
                            "readinessProbe": {
                                "httpGet": {"path": "/minio/health/ready", "port": 9000},
                                "periodSeconds": 5,
                            },
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "256Mi"},
                                "limits": {"memory": "512Mi"},
                            },
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [
                        {
                            "name": "data",
                            "persistentVolumeClaim": {"claimName": claim.metadata.name},
                        }
                    ],
                },
            },
        }
        k8s.apps.v1.Deployment(
            f"{name}-minio",
            metadata={"name": "minio", "namespace": self.namespace, "labels": labels},
            spec=deployment_spec,
            opts=self._child,
        )
        service_spec: Any = {
            "type": "ClusterIP",
            "selector": labels,
            "ports": [{"name": "s3", "port": 9000, "targetPort": 9000}],
        }
        service = k8s.core.v1.Service(
            f"{name}-minio",
            metadata={"name": "minio", "namespace": self.namespace, "labels": labels},
            spec=service_spec,
            opts=self._child,
        )
        endpoint = pulumi.Output.concat(
            "http://", service.metadata.name, ".", self.namespace, ".svc.cluster.local:9000"
        )
        bucket = s.logs_bucket
        script = (
            'until mc alias set store "$ENDPOINT" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD";'
            " do sleep 2; done"
            f" && mc mb --ignore-existing store/{bucket}"
            f" && (mc ilm rule add --expire-days {s.airflow.logs.retention_days} store/{bucket}"
            ' || echo "lifecycle rule not set: task logs are kept")'
        )
        job_spec: Any = {
            "backoffLimit": 6,
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "restartPolicy": "OnFailure",
                    "containers": [
                        {
                            "name": "create-bucket",
                            "image": MINIO_CLIENT_IMAGE,
                            "command": ["/bin/sh", "-c", script],
                            "envFrom": env_from,
                            "env": [{"name": "ENDPOINT", "value": endpoint}],
                        }
                    ],
                },
            },
        }
        job = k8s.batch.v1.Job(
            f"{name}-minio-bucket",
            metadata={"name": "minio-create-bucket", "namespace": self.namespace, "labels": labels},
            spec=job_spec,
            opts=self._child,
        )
        connection = pulumi.Output.all(user.result, password.result, endpoint).apply(
            lambda a: json.dumps(
                {
                    **cv.task_logs_connection(MINIO_REGION, a[2]),
                    "login": a[0],
                    "password": a[1],
                }
            )
        )
        return pulumi.Output.from_input(bucket), pulumi.Output.secret(connection), job


def _entry(entries: pulumi.Output[dict[str, Any]], name: str) -> pulumi.Output[str]:
    """One connection or variable of the secret map, as the env value Airflow reads."""
    return entries.apply(lambda e: _as_env_value(e[name]))


def _as_env_value(value: Any) -> str:
    """Connections as URI or JSON; variables as text (objects and lists as JSON)."""
    return value if isinstance(value, str) else json.dumps(value)
