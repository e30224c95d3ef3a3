"""The policy pack's rules, as plain functions over a neutral resource record.

Nothing here imports Pulumi: `Res` carries a resource's type token, logical name,
URN, its properties under the engine's camelCase names, and (for cross-resource
checks) the URNs each property depends on. `policy/__main__.py` adapts CrossGuard's
arguments to `Res`; the tests build `Res` from the mock engine's record.

A resource rule is `(res) -> list[str]`; a stack rule is
`(resources) -> list[tuple[Res, str]]` and names the resource at fault. Every
message starts with the resource's name and type. Rules that only make sense for
production apply to resources tagged `environment: production`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

UNKNOWN = "<unknown during preview>"
"""What a property holds when the engine cannot know it yet (computed during preview)."""


@dataclass(frozen=True)
class Res:
    """One resource as a policy sees it."""

    type: str
    name: str
    urn: str
    props: Mapping[str, Any]
    deps: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.type})"


class Level(Enum):
    MANDATORY = "mandatory"
    ADVISORY = "advisory"


ResourceCheck = Callable[[Res], list[str]]
StackCheck = Callable[[Sequence[Res]], list[tuple[Res, str]]]


@dataclass(frozen=True)
class Violation:
    rule: str
    level: Level
    resource: str
    urn: str
    message: str


@dataclass(frozen=True)
class Rule:
    """A named check with its enforcement level and the reason for that level."""

    name: str
    description: str
    level: Level
    why_level: str
    resource_check: ResourceCheck | None = None
    stack_check: StackCheck | None = None

    def __post_init__(self) -> None:
        if (self.resource_check is None) == (self.stack_check is None):
            raise ValueError(f"rule {self.name}: give exactly one of resource_check, stack_check")

    def run(self, resources: Sequence[Res]) -> list[Violation]:
        found: list[tuple[Res, str]] = []
        if self.resource_check is not None:
            for res in resources:
                found += [(res, msg) for msg in self.resource_check(res)]
        elif self.stack_check is not None:
            found = self.stack_check(resources)
        return [Violation(self.name, self.level, r.name, r.urn, msg) for r, msg in found]


# --- helpers -------------------------------------------------------------------------------


def known(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and value == UNKNOWN)


def get(value: Any, path: str) -> Any:
    """`value["a"]["b"]` for `path="a.b"`, or None where a level is missing."""
    for key in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def tags(res: Res) -> Mapping[str, Any]:
    value = res.props.get("tags")
    return value if isinstance(value, Mapping) else {}


def is_production(res: Res) -> bool:
    return tags(res).get("environment") == "production"


def made_by_eks_component(res: Res) -> bool:
    """Children pulumi-eks registers itself (their URN's type chain passes through eks:index:*)."""
    parts = res.urn.split("::")
    chain = parts[2] if len(parts) >= 4 else ""
    return any(t.startswith("eks:index:") for t in chain.split("$")[:-1])


def refers_to(res: Res, prop: str, target: Res) -> bool:
    """Whether `res.props[prop]` points at `target` (by dependency, or by a known identifier)."""
    if target.urn in res.deps.get(prop, ()):
        return True
    value = res.props.get(prop)
    if not known(value) or not isinstance(value, str):
        return False
    ids = {target.name}
    for key in ("id", "bucket", "name", "arn"):
        v = target.props.get(key)
        if known(v) and isinstance(v, str):
            ids.add(v)
    return value in ids


def of_type(resources: Sequence[Res], *types: str) -> list[Res]:
    return [r for r in resources if r.type in types]


def json_doc(value: Any) -> Any:
    """A policy document given as a JSON string or a mapping; UNKNOWN if not known yet."""
    if not known(value):
        return UNKNOWN
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def statements(doc: Any) -> list[Mapping[str, Any]]:
    if not isinstance(doc, Mapping):
        return []
    return [s for s in as_list(doc.get("Statement")) if isinstance(s, Mapping)]


def is_open_cidr(cidr: Any) -> bool:
    if not isinstance(cidr, str) or not known(cidr):
        return False
    try:
        return ipaddress.ip_network(cidr, strict=False).prefixlen == 0
    except ValueError:
        return False


# --- EKS -----------------------------------------------------------------------------------

EKS_CLUSTERS = ("eks:index:Cluster", "aws:eks/cluster:Cluster")
NODE_GROUPS = ("eks:index:ManagedNodeGroup", "aws:eks/nodeGroup:NodeGroup")
CONTROL_PLANE_LOG_TYPES = ("api", "audit", "authenticator", "controllerManager", "scheduler")


def _eks_endpoint(res: Res) -> tuple[Any, Any]:
    if res.type == "eks:index:Cluster":
        return res.props.get("endpointPublicAccess"), res.props.get("publicAccessCidrs")
    vpc = res.props.get("vpcConfig") or {}
    return get(vpc, "endpointPublicAccess"), get(vpc, "publicAccessCidrs")


def eks_endpoint_restricted(res: Res) -> list[str]:
    if res.type not in EKS_CLUSTERS:
        return []
    public, cidrs = _eks_endpoint(res)
    if public is False or cidrs == UNKNOWN:
        return []
    listed = [c for c in as_list(cidrs) if known(c)]
    if not listed:
        return [
            f"{res.label}: public API endpoint without a publicAccessCidrs allow-list "
            "(EKS then allows 0.0.0.0/0); set endpointPublicAccess false or list the CIDRs"
        ]
    open_ = [c for c in listed if is_open_cidr(c)]
    if open_:
        return [f"{res.label}: public API endpoint open to {', '.join(open_)}"]
    return []


def eks_secrets_encrypted(res: Res) -> list[str]:
    if res.type == "eks:index:Cluster":
        key = res.props.get("encryptionConfigKeyArn")
        if key is None or key == "":
            return [
                f"{res.label}: no encryptionConfigKeyArn; Kubernetes Secrets are not KMS-encrypted"
            ]
        return []
    if res.type == "aws:eks/cluster:Cluster":
        for cfg in as_list(res.props.get("encryptionConfig")):
            if "secrets" in as_list(get(cfg, "resources")) and get(cfg, "provider.keyArn"):
                return []
        return [f"{res.label}: no encryptionConfig for 'secrets' with a KMS key"]
    return []


def eks_control_plane_logs(res: Res) -> list[str]:
    if res.type not in EKS_CLUSTERS:
        return []
    enabled = res.props.get("enabledClusterLogTypes")
    if enabled == UNKNOWN:
        return []
    missing = [t for t in CONTROL_PLANE_LOG_TYPES if t not in as_list(enabled)]
    if missing:
        return [f"{res.label}: control-plane log types off: {', '.join(missing)}"]
    return []


def _port_range_has(rule: Mapping[str, Any], port: int, proto_key: str) -> bool:
    proto = str(rule.get(proto_key, "")).lower()
    if proto in ("-1", "all"):
        return True
    if proto not in ("tcp", "6"):
        return False
    lo, hi = rule.get("fromPort"), rule.get("toPort")
    if not isinstance(lo, int | float) or not isinstance(hi, int | float):
        return False
    return lo <= port <= hi


def _ingress_rules(res: Res) -> list[tuple[Mapping[str, Any], str, list[Any]]]:
    """(rule, protocol key, source CIDRs) for each ingress rule a resource declares."""
    p = res.props
    if res.type == "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule":
        return [(p, "ipProtocol", [p.get("cidrIpv4"), p.get("cidrIpv6")])]
    if res.type == "aws:ec2/securityGroupRule:SecurityGroupRule" and p.get("type") == "ingress":
        return [(p, "protocol", as_list(p.get("cidrBlocks")) + as_list(p.get("ipv6CidrBlocks")))]
    if res.type == "aws:ec2/securityGroup:SecurityGroup":
        return [
            (i, "protocol", as_list(i.get("cidrBlocks")) + as_list(i.get("ipv6CidrBlocks")))
            for i in as_list(p.get("ingress"))
            if isinstance(i, Mapping)
        ]
    return []


def nodes_on_demand(res: Res) -> list[str]:
    """Production nodes are on-demand: spot capacity can be reclaimed with two minutes' notice
    (Amazon EC2 User Guide, "Spot Instance interruptions"; Amazon EKS User Guide, "Managed
    node groups", capacity types)."""
    if res.type not in NODE_GROUPS or not is_production(res):
        return []
    capacity = res.props.get("capacityType")
    if known(capacity) and str(capacity).upper() == "SPOT":
        return [f"{res.label}: production node group on SPOT capacity"]
    return []


def nodes_no_ssh_from_anywhere(res: Res) -> list[str]:
    if res.type in NODE_GROUPS:
        remote = res.props.get("remoteAccess")
        if isinstance(remote, Mapping) and not as_list(remote.get("sourceSecurityGroupIds")):
            return [
                f"{res.label}: remoteAccess without sourceSecurityGroupIds opens SSH (22) "
                "to 0.0.0.0/0 on every node"
            ]
        return []
    out: list[str] = []
    for rule, proto_key, cidrs in _ingress_rules(res):
        open_ = [c for c in cidrs if is_open_cidr(c)]
        if open_ and _port_range_has(rule, 22, proto_key):
            out.append(f"{res.label}: ingress allows SSH (22) from {', '.join(open_)}")
    return out


# --- RDS -----------------------------------------------------------------------------------

RDS = "aws:rds/instance:Instance"
RDS_PARAMETER_GROUP = "aws:rds/parameterGroup:ParameterGroup"
TLS_PARAMETERS = {"postgres": "rds.force_ssl", "mysql": "require_secure_transport"}


def rds_storage_encrypted(res: Res) -> list[str]:
    if res.type == RDS and res.props.get("storageEncrypted") is not True:
        return [f"{res.label}: storageEncrypted is not true"]
    return []


def rds_not_public(res: Res) -> list[str]:
    if res.type == RDS and res.props.get("publiclyAccessible") is True:
        return [f"{res.label}: publiclyAccessible is true"]
    return []


def rds_deletion_protection(res: Res) -> list[str]:
    if res.type == RDS and is_production(res) and res.props.get("deletionProtection") is not True:
        return [f"{res.label}: production database without deletionProtection"]
    return []


def rds_final_snapshot(res: Res) -> list[str]:
    if res.type != RDS or not is_production(res):
        return []
    if res.props.get("skipFinalSnapshot") is True:
        return [f"{res.label}: production database with skipFinalSnapshot true"]
    if not res.props.get("finalSnapshotIdentifier"):
        return [f"{res.label}: production database without a finalSnapshotIdentifier"]
    return []


def rds_backup_retention(res: Res) -> list[str]:
    if res.type != RDS:
        return []
    days = res.props.get("backupRetentionPeriod")
    if days == UNKNOWN:
        return []
    if not isinstance(days, int | float) or days < 7:
        return [f"{res.label}: backupRetentionPeriod {days} is below 7 days"]
    return []


def rds_multi_az(res: Res) -> list[str]:
    if res.type == RDS and is_production(res) and res.props.get("multiAz") is not True:
        return [f"{res.label}: production database is not multi-AZ"]
    return []


def rds_tls_enforced(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    out: list[tuple[Res, str]] = []
    groups = of_type(resources, RDS_PARAMETER_GROUP)
    for db in of_type(resources, RDS):
        engine = str(db.props.get("engine", ""))
        param = next((v for k, v in TLS_PARAMETERS.items() if engine.startswith(k)), None)
        if param is None:
            continue
        mine = [g for g in groups if refers_to(db, "parameterGroupName", g)]
        if not mine:
            out.append((db, f"{db.label}: no parameter group of this stack sets {param}=1"))
        for g in mine:
            values = {
                str(get(p, "name")): str(get(p, "value"))
                for p in as_list(g.props.get("parameters"))
                if isinstance(p, Mapping)
            }
            if values.get(param) not in ("1", "true", "ON"):
                out.append((g, f"{g.label}: used by {db.name} but does not set {param}=1"))
    return out


# --- S3 ------------------------------------------------------------------------------------

BUCKETS = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
PUBLIC_ACCESS_BLOCK = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
SSE_CONFIGS = (
    "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
    "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2",
)
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
LIFECYCLE_CONFIGS = (
    "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
    "aws:s3/bucketLifecycleConfigurationV2:BucketLifecycleConfigurationV2",
)
VERSIONINGS = (
    "aws:s3/bucketVersioning:BucketVersioning",
    "aws:s3/bucketVersioningV2:BucketVersioningV2",
)
PAB_FLAGS = ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets")
SSE_ALGORITHMS = ("AES256", "aws:kms", "aws:kms:dsse")


def _for_bucket(resources: Sequence[Res], types: tuple[str, ...], bucket: Res) -> list[Res]:
    return [r for r in resources if r.type in types and refers_to(r, "bucket", bucket)]


def s3_public_access_block(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    out: list[tuple[Res, str]] = []
    for b in of_type(resources, *BUCKETS):
        blocks = _for_bucket(resources, (PUBLIC_ACCESS_BLOCK,), b)
        if not blocks:
            out.append((b, f"{b.label}: no BucketPublicAccessBlock"))
        for pab in blocks:
            off = [f for f in PAB_FLAGS if pab.props.get(f) is not True]
            if off:
                out.append((pab, f"{pab.label}: for bucket {b.name}, not true: {', '.join(off)}"))
    return out


def _sse_ok(rules: Any) -> bool:
    return any(
        get(r, "applyServerSideEncryptionByDefault.sseAlgorithm") in SSE_ALGORITHMS
        for r in as_list(rules)
    )


def s3_encryption(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    out: list[tuple[Res, str]] = []
    for b in of_type(resources, *BUCKETS):
        if _sse_ok(get(b.props, "serverSideEncryptionConfiguration.rule")):
            continue
        configs = _for_bucket(resources, SSE_CONFIGS, b)
        if not configs:
            out.append((b, f"{b.label}: no server-side encryption configuration"))
        for c in configs:
            if not _sse_ok(c.props.get("rules")):
                out.append((c, f"{c.label}: for bucket {b.name}, no default sseAlgorithm set"))
    return out


def _denies_insecure_transport(stmt: Mapping[str, Any]) -> bool:
    if stmt.get("Effect") != "Deny":
        return False
    principal = stmt.get("Principal")
    if principal != "*" and get(principal, "AWS") not in ("*", ["*"]):
        return False
    if not {"s3:*", "*"} & set(map(str, as_list(stmt.get("Action")))):
        return False
    secure = get(stmt.get("Condition"), "Bool.aws:SecureTransport")
    return str(secure).lower() == "false"


def s3_tls_only_policy(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    out: list[tuple[Res, str]] = []
    for b in of_type(resources, *BUCKETS):
        policies = _for_bucket(resources, (BUCKET_POLICY,), b)
        if not policies:
            out.append((b, f"{b.label}: no bucket policy denying requests without TLS"))
        for pol in policies:
            doc = json_doc(pol.props.get("policy"))
            if doc == UNKNOWN:
                continue
            if not any(_denies_insecure_transport(s) for s in statements(doc)):
                out.append(
                    (pol, f"{pol.label}: for bucket {b.name}, no Deny on aws:SecureTransport false")
                )
    return out


def _lifecycle_ok(cfg: Res) -> bool:
    for rule in as_list(cfg.props.get("rules")):
        if get(rule, "status") != "Enabled":
            continue
        if get(rule, "expiration") or get(rule, "noncurrentVersionExpiration"):
            return True
    return False


def s3_lifecycle(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    out: list[tuple[Res, str]] = []
    for b in of_type(resources, *BUCKETS):
        configs = _for_bucket(resources, LIFECYCLE_CONFIGS, b)
        if not configs:
            out.append((b, f"{b.label}: no lifecycle configuration (objects kept forever)"))
        for c in configs:
            if not _lifecycle_ok(c):
                out.append((c, f"{c.label}: for bucket {b.name}, no Enabled rule that expires"))
    return out


def s3_versioning(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    out: list[tuple[Res, str]] = []
    for b in of_type(resources, *BUCKETS):
        if not is_production(b) or get(b.props, "versioning.enabled") is True:
            continue
        configs = _for_bucket(resources, VERSIONINGS, b)
        if not configs:
            out.append((b, f"{b.label}: production bucket without versioning"))
        for c in configs:
            if get(c.props, "versioningConfiguration.status") != "Enabled":
                out.append((c, f"{c.label}: for production bucket {b.name}, status not Enabled"))
    return out


BUCKET_LOGGINGS = (
    "aws:s3/bucketLogging:BucketLogging",
    "aws:s3/bucketLoggingV2:BucketLoggingV2",
)
KMS_SSE = ("aws:kms", "aws:kms:dsse")


def customer_managed(key: Any) -> bool:
    """Whether a key reference names a customer-managed key (UNKNOWN: cannot tell, so yes).

    AWS-managed keys are reached through the reserved `alias/aws/<service>` aliases (AWS KMS
    Developer Guide, "AWS managed keys"); an empty reference means the service's default.
    """
    if key == UNKNOWN:
        return True
    return isinstance(key, str) and bool(key) and "alias/aws/" not in key


def access_log_targets(resources: Sequence[Res]) -> list[Res]:
    """Buckets that receive another bucket's server access logs."""
    loggings = of_type(resources, *BUCKET_LOGGINGS)
    return [
        b
        for b in of_type(resources, *BUCKETS)
        if any(refers_to(lg, "targetBucket", b) for lg in loggings)
    ]


def _sse_rules(resources: Sequence[Res], bucket: Res) -> list[tuple[Res, list[Any]]]:
    """(resource, rules) for each default-encryption setting of `bucket`."""
    found: list[tuple[Res, list[Any]]] = []
    inline = get(bucket.props, "serverSideEncryptionConfiguration.rule")
    if inline:
        found.append((bucket, as_list(inline)))
    found += [
        (c, as_list(c.props.get("rules"))) for c in _for_bucket(resources, SSE_CONFIGS, bucket)
    ]
    return found


def _kms_rule(rule: Any) -> bool:
    by_default = get(rule, "applyServerSideEncryptionByDefault")
    return get(by_default, "sseAlgorithm") in KMS_SSE and customer_managed(
        get(by_default, "kmsMasterKeyId")
    )


def s3_cmk_encrypted(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    """Production buckets default to SSE-KMS with a customer-managed key (Amazon S3 User Guide,
    "Using server-side encryption with AWS KMS keys (SSE-KMS)"). Access-log targets are
    exempt: S3 delivers server access logs only to SSE-S3 buckets. A bucket with no default
    encryption at all is `s3-encryption`'s to report."""
    out: list[tuple[Res, str]] = []
    targets = {t.urn for t in access_log_targets(resources)}
    for b in of_type(resources, *BUCKETS):
        if not is_production(b) or b.urn in targets:
            continue
        for holder, rules in _sse_rules(resources, b):
            if _sse_ok(rules) and not any(_kms_rule(r) for r in rules):
                out.append(
                    (
                        holder,
                        f"{holder.label}: production bucket {b.name} is not encrypted with a"
                        " customer-managed KMS key (SSE-KMS with kmsMasterKeyId)",
                    )
                )
    return out


def s3_access_logging(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    """Production buckets log requests with S3 server access logging into another bucket, whose
    default encryption is SSE-S3 (Amazon S3 User Guide, "Logging requests with server access
    logging": a target encrypted with SSE-KMS receives no logs, and a bucket logging into
    itself logs its own log deliveries)."""
    out: list[tuple[Res, str]] = []
    loggings = of_type(resources, *BUCKET_LOGGINGS)
    targets = access_log_targets(resources)
    target_urns = {t.urn for t in targets}
    for b in of_type(resources, *BUCKETS):
        mine = [lg for lg in loggings if refers_to(lg, "bucket", b)]
        for lg in mine:
            if refers_to(lg, "targetBucket", b):
                out.append((lg, f"{lg.label}: bucket {b.name} delivers access logs into itself"))
        inline = as_list(b.props.get("loggings")) + as_list(b.props.get("logging"))
        if is_production(b) and b.urn not in target_urns and not mine and not inline:
            out.append((b, f"{b.label}: production bucket without server access logging"))
    for t in targets:
        for holder, rules in _sse_rules(resources, t):
            if any(
                get(r, "applyServerSideEncryptionByDefault.sseAlgorithm") in KMS_SSE for r in rules
            ):
                out.append(
                    (
                        holder,
                        f"{holder.label}: bucket {t.name} receives server access logs but"
                        " defaults to SSE-KMS; S3 delivers them only to SSE-S3 (AES256) buckets",
                    )
                )
    return out


# --- KMS and CloudWatch Logs ---------------------------------------------------------------

KMS_KEY = "aws:kms/key:Key"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ACCOUNT_ROOT = re.compile(r"^(arn:aws[a-z-]*:iam::\d{12}:root|\d{12})$")


def _principal_values(stmt: Mapping[str, Any], kind: str) -> list[str]:
    principal = stmt.get("Principal")
    if principal == "*":
        return ["*"] if kind == "AWS" else []
    return [str(p) for p in as_list(get(principal, kind))]


def _manages_key(stmt: Mapping[str, Any]) -> bool:
    if stmt.get("Effect") != "Allow" or "Condition" in stmt:
        return False
    if not any(ACCOUNT_ROOT.match(p) for p in _principal_values(stmt, "AWS")):
        return False
    return bool({"kms:*", "kms:PutKeyPolicy"} & set(map(str, as_list(stmt.get("Action")))))


def kms_key_policy(res: Res) -> list[str]:
    """Every KMS key has an explicit key policy that keeps it manageable and opens it to no
    one unconditionally.

    AWS KMS Developer Guide, "Key policies in AWS KMS" and "Default key policy": the
    statement for the account (its root) keeps the key from becoming unmanageable and lets
    IAM policies grant its use; a service principal gets the key only under conditions
    that tie it to this account's resources (e.g. CloudWatch Logs with
    `kms:EncryptionContext:aws:logs:arn`).
    """
    if res.type != KMS_KEY:
        return []
    raw = res.props.get("policy")
    if raw == UNKNOWN:
        return []
    if not raw:
        return [
            f"{res.label}: no explicit key policy (AWS applies a default the program does not"
            " state)"
        ]
    doc = json_doc(raw)
    if not isinstance(doc, Mapping):
        return [f"{res.label}: key policy is not valid JSON"]
    out: list[str] = []
    stmts = statements(doc)
    if not any(_manages_key(st) for st in stmts):
        out.append(
            f"{res.label}: no unconditional statement for the account root (kms:* or"
            " kms:PutKeyPolicy); the key can become unmanageable"
        )
    for st in stmts:
        if st.get("Effect") != "Allow" or st.get("Condition"):
            continue
        if "*" in _principal_values(st, "AWS"):
            out.append(f"{res.label}: key policy allows any principal without a condition")
        for service in _principal_values(st, "Service"):
            out.append(f"{res.label}: key policy allows {service} without a condition")
    return out


def logs_cmk_encrypted(res: Res) -> list[str]:
    """Production log groups are encrypted with a customer-managed key (CloudWatch Logs User
    Guide, "Encrypt log data in CloudWatch Logs using AWS Key Management Service")."""
    if res.type != LOG_GROUP or not is_production(res) or made_by_eks_component(res):
        return []
    if not customer_managed(res.props.get("kmsKeyId")):
        return [f"{res.label}: production log group without a customer-managed kmsKeyId"]
    return []


# --- ECR -----------------------------------------------------------------------------------

ECR_REPO = "aws:ecr/repository:Repository"
ECR_LIFECYCLE = "aws:ecr/lifecyclePolicy:LifecyclePolicy"


def ecr_scan_on_push(res: Res) -> list[str]:
    if res.type == ECR_REPO and get(res.props, "imageScanningConfiguration.scanOnPush") is not True:
        return [f"{res.label}: imageScanningConfiguration.scanOnPush is not true"]
    return []


def ecr_immutable_tags(res: Res) -> list[str]:
    if res.type != ECR_REPO or not is_production(res):
        return []
    if not str(res.props.get("imageTagMutability", "MUTABLE")).startswith("IMMUTABLE"):
        return [f"{res.label}: production repository with mutable tags"]
    return []


def ecr_cmk_encrypted(res: Res) -> list[str]:
    """Production repositories are encrypted with a customer-managed KMS key (Amazon ECR User
    Guide, "Encryption at rest": encryptionType KMS with a kmsKey; without one ECR uses the
    AWS managed key aws/ecr)."""
    if res.type != ECR_REPO or not is_production(res):
        return []
    configs = [c for c in as_list(res.props.get("encryptionConfigurations")) if c]
    if any(
        str(get(c, "encryptionType")).startswith("KMS") and customer_managed(get(c, "kmsKey"))
        for c in configs
    ):
        return []
    return [f"{res.label}: production repository not encrypted with a customer-managed KMS key"]


def ecr_lifecycle_policy(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    out: list[tuple[Res, str]] = []
    for repo in of_type(resources, ECR_REPO):
        policies = [
            p for p in of_type(resources, ECR_LIFECYCLE) if refers_to(p, "repository", repo)
        ]
        if not policies:
            out.append((repo, f"{repo.label}: no lifecycle policy (images accumulate)"))
        for p in policies:
            doc = json_doc(p.props.get("policy"))
            if doc != UNKNOWN and not as_list(get(doc, "rules")):
                out.append((p, f"{p.label}: for repository {repo.name}, policy has no rules"))
    return out


# --- VPC -----------------------------------------------------------------------------------

VPC = "aws:ec2/vpc:Vpc"
FLOW_LOG = "aws:ec2/flowLog:FlowLog"
DEFAULT_SG = "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup"


def vpc_flow_logs(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    out: list[tuple[Res, str]] = []
    for vpc in of_type(resources, VPC):
        logs = [f for f in of_type(resources, FLOW_LOG) if refers_to(f, "vpcId", vpc)]
        if not logs:
            out.append((vpc, f"{vpc.label}: no flow log"))
        for f in logs:
            if f.props.get("trafficType") != "ALL":
                out.append(
                    (f, f"{f.label}: for {vpc.name}, trafficType {f.props.get('trafficType')}")
                )
    return out


def vpc_default_sg_closed(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    out: list[tuple[Res, str]] = []
    sgs = of_type(resources, DEFAULT_SG)
    for vpc in of_type(resources, VPC):
        if not any(refers_to(sg, "vpcId", vpc) for sg in sgs):
            out.append(
                (vpc, f"{vpc.label}: default security group not managed (AWS leaves it open)")
            )
    for sg in sgs:
        rules = [k for k in ("ingress", "egress") if as_list(sg.props.get(k))]
        if rules:
            out.append((sg, f"{sg.label}: default security group has {' and '.join(rules)} rules"))
    return out


# --- IAM -----------------------------------------------------------------------------------

POLICY_DOCUMENTS = {
    "aws:iam/rolePolicy:RolePolicy": "policy",
    "aws:iam/policy:Policy": "policy",
    "aws:iam/userPolicy:UserPolicy": "policy",
    "aws:iam/groupPolicy:GroupPolicy": "policy",
    BUCKET_POLICY: "policy",
}
SERVICE_WIDE = re.compile(r"^[A-Za-z0-9-]+:\*$")


def _wildcards(doc: Any) -> list[str]:
    found: list[str] = []
    for s in statements(doc):
        if s.get("Effect", "Allow") != "Allow":
            continue
        for key in ("NotAction", "NotResource"):
            if key in s:
                found.append(f"{key} in an Allow statement")
        for action in map(str, as_list(s.get("Action"))):
            if action == "*" or SERVICE_WIDE.match(action):
                found.append(f"Action {action!r}")
        for resource in map(str, as_list(s.get("Resource"))):
            if resource == "*":
                found.append("Resource '*'")
    return found


def iam_no_wildcards(res: Res) -> list[str]:
    if made_by_eks_component(res):
        return []
    docs: list[Any] = []
    if res.type in POLICY_DOCUMENTS:
        docs.append(res.props.get(POLICY_DOCUMENTS[res.type]))
    elif res.type == "aws:iam/role:Role":
        docs += [get(p, "policy") for p in as_list(res.props.get("inlinePolicies"))]
    out: list[str] = []
    for raw in docs:
        doc = json_doc(raw)
        if doc == UNKNOWN:
            continue
        if doc is None:
            out.append(f"{res.label}: policy document is not valid JSON")
            continue
        out += [f"{res.label}: wildcard grant: {w}" for w in _wildcards(doc)]
    return out


SERVICE_ACCOUNT_SUB = re.compile(r"^system:serviceaccount:[a-z0-9-]+:[a-z0-9-.]+$")


def _irsa_problems(stmt: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    cond = stmt.get("Condition")
    equals = get(cond, "StringEquals") or {}
    subs = [v for k, v in equals.items() if str(k).endswith(":sub")]
    auds = [v for k, v in equals.items() if str(k).endswith(":aud")]
    if isinstance(cond, Mapping):
        for op, body in cond.items():
            if op != "StringEquals" and any(str(k).endswith(":sub") for k in (body or {})):
                problems.append(f"{op} on :sub (only StringEquals pins the service accounts)")
    if not subs:
        problems.append("no StringEquals on <oidc>:sub")
    for value in subs:
        for sa in as_list(value):
            if known(sa) and not SERVICE_ACCOUNT_SUB.match(str(sa)):
                problems.append(f"sub {sa!r} is not one exact service account")
    if not auds or any(as_list(a) != ["sts.amazonaws.com"] for a in auds):
        problems.append("aud is not pinned to sts.amazonaws.com")
    return problems


def irsa_trust_exact(res: Res) -> list[str]:
    if res.type != "aws:iam/role:Role" or made_by_eks_component(res):
        return []
    doc = json_doc(res.props.get("assumeRolePolicy"))
    out: list[str] = []
    for s in statements(doc):
        principal = s.get("Principal")
        if principal == "*" or get(principal, "AWS") in ("*", ["*"]):
            out.append(f"{res.label}: trust policy allows any principal")
            continue
        if "sts:AssumeRoleWithWebIdentity" not in as_list(s.get("Action")):
            continue
        out += [f"{res.label}: IRSA trust: {p}" for p in _irsa_problems(s)]
    return out


# --- Kubernetes and the chart --------------------------------------------------------------

RELEASES = ("kubernetes:helm.sh/v3:Release", "kubernetes:helm.sh/v4:Chart")
SERVICE = "kubernetes:core/v1:Service"
WORKLOADS = ("kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:Deployment")
INTERNAL_LB_ANNOTATIONS = {
    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
    "service.beta.kubernetes.io/aws-load-balancer-internal": "true",
}
INTERNAL_INGRESS_ANNOTATIONS = {"alb.ingress.kubernetes.io/scheme": "internal"}
UI_SERVICES = ("apiServer", "webserver")
UI_INGRESSES = ("apiServer", "web")
SECRET_VALUE_PATHS = (
    "fernetKey",
    "webserverSecretKey",
    "apiSecretKey",
    "jwtSecret",
    "data.metadataConnection.pass",
    "data.resultBackendConnection.pass",
    "data.brokerUrl",
    "redis.password",
    "registry.connection.pass",
    "elasticsearch.connection.pass",
    "opensearch.connection.pass",
    "webserver.defaultUser.password",
    "config.core.fernet_key",
    "config.webserver.secret_key",
    "config.api.secret_key",
    "config.api_auth.jwt_secret",
    "config.database.sql_alchemy_conn",
    "config.celery.result_backend",
    "config.celery.broker_url",
)
SECRET_ENV_NAME = re.compile(r"(PASSWORD|SECRET|TOKEN|_KEY|CREDENTIALS)$", re.IGNORECASE)
CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def airflow_values(res: Res) -> Mapping[str, Any] | None:
    """The values of an Airflow chart release, or None for anything else."""
    if res.type not in RELEASES or "airflow" not in str(res.props.get("chart", "")):
        return None
    values = res.props.get("values")
    return values if isinstance(values, Mapping) else {}


def _internal(annotations: Any, wanted: Mapping[str, str]) -> bool:
    if not isinstance(annotations, Mapping):
        return False
    return any(str(annotations.get(k, "")).lower() == v for k, v in wanted.items())


def ui_not_public(res: Res) -> list[str]:
    out: list[str] = []
    if res.type == SERVICE:
        spec_type = get(res.props, "spec.type")
        if spec_type == "LoadBalancer" and not _internal(
            get(res.props, "metadata.annotations"), INTERNAL_LB_ANNOTATIONS
        ):
            out.append(f"{res.label}: Service of type LoadBalancer without an internal scheme")
        return out
    values = airflow_values(res)
    if values is None:
        return out
    for svc in UI_SERVICES:
        if get(values, f"{svc}.service.type") == "LoadBalancer" and not _internal(
            get(values, f"{svc}.service.annotations"), INTERNAL_LB_ANNOTATIONS
        ):
            out.append(f"{res.label}: values.{svc}.service is a public LoadBalancer")
    for ing in UI_INGRESSES:
        if get(values, f"ingress.{ing}.enabled") is True and not (
            _internal(get(values, f"ingress.{ing}.annotations"), INTERNAL_INGRESS_ANNOTATIONS)
            or "internal" in str(get(values, f"ingress.{ing}.ingressClassName") or "")
        ):
            out.append(f"{res.label}: values.ingress.{ing} is enabled but not internal")
    return out


def production_stack(resources: Sequence[Res]) -> bool:
    """A stack is production when its AWS resources are tagged so (releases carry no tags)."""
    return any(is_production(r) for r in resources)


NODE_POOLS = ("kubernetes:karpenter.sh/v1:NodePool",)


def _pool_capacity_types(pool: Res) -> list[str] | None:
    for req in as_list(get(pool.props, "spec.template.spec.requirements")):
        if isinstance(req, Mapping) and req.get("key") == "karpenter.sh/capacity-type":
            values = req.get("values")
            return [str(v) for v in as_list(values)] if known(values) else None
    return ["spot", "on-demand"]  # no requirement: Karpenter may launch either


def node_pools_on_demand(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    """Production node pools launch on-demand capacity only: spot can be reclaimed with two
    minutes' notice (Amazon EC2 User Guide, "Spot Instance interruptions"; Karpenter docs,
    "NodePools", `karpenter.sh/capacity-type`, which allows both when unset)."""
    if not production_stack(resources):
        return []
    out = []
    for pool in resources:
        if pool.type in NODE_POOLS:
            types = _pool_capacity_types(pool)
            if types is not None and "spot" in types:
                out.append((pool, f"{pool.label}: production node pool allows spot capacity"))
    return out


def node_pools_capped(res: Res) -> list[str]:
    """Every node pool has a CPU limit: without one the scaler keeps launching nodes for any
    pending pod, whatever it costs (Karpenter docs, "NodePools", `spec.limits`)."""
    if res.type not in NODE_POOLS:
        return []
    cpu = get(res.props, "spec.limits.cpu")
    if cpu is None or (known(cpu) and not cpu):
        return [f"{res.label}: node pool without spec.limits.cpu"]
    return []


PDB_COMPONENTS = ("scheduler", "apiServer", "triggerer", "dagProcessor", "pgbouncer")
OFF_BY_DEFAULT = frozenset({"pgbouncer"})
"""Chart components that run only when `<component>.enabled` is true (chart 1.22 defaults)."""


def _component_on(values: Mapping[str, Any], component: str) -> bool:
    enabled = get(values, f"{component}.enabled")
    if component in OFF_BY_DEFAULT:
        return enabled is True
    return enabled is not False


def chart_pdbs(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    """On production, every component the chart runs with more than one replica has a
    PodDisruptionBudget (Kubernetes docs, "Specifying a Disruption Budget for your
    Application"; the chart leaves `<component>.podDisruptionBudget.enabled` off), so a node
    drain or upgrade never takes all replicas at once."""
    if not production_stack(resources):
        return []
    out: list[tuple[Res, str]] = []
    for rel in resources:
        values = airflow_values(rel)
        if values is None:
            continue
        for component in PDB_COMPONENTS:
            replicas = get(values, f"{component}.replicas")
            if not _component_on(values, component) or not isinstance(replicas, int | float):
                continue
            if replicas > 1 and get(values, f"{component}.podDisruptionBudget.enabled") is not True:
                out.append(
                    (
                        rel,
                        f"{rel.label}: values.{component} runs {int(replicas)} replicas without"
                        " podDisruptionBudget.enabled",
                    )
                )
    return out


AWS_LOAD_BALANCERS = (
    "aws:lb/loadBalancer:LoadBalancer",
    "aws:alb/loadBalancer:LoadBalancer",
    "aws:elb/loadBalancer:LoadBalancer",
)
INGRESS = "kubernetes:networking.k8s.io/v1:Ingress"
ALB_SCHEME = "alb.ingress.kubernetes.io/scheme"


def _enabled_ingresses(values: Mapping[str, Any]) -> list[tuple[str, Any]]:
    ingress = values.get("ingress")
    if not isinstance(ingress, Mapping):
        return []
    found = [
        (name, spec)
        for name, spec in ingress.items()
        if isinstance(spec, Mapping) and spec.get("enabled") is True
    ]
    if ingress.get("enabled") is True and "web" not in dict(found):
        found.append(("web", ingress.get("web") or {}))  # the chart's deprecated global switch
    return found


def no_internet_facing_lb(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    """On production, no load balancer faces the internet: every ingress of the chart and
    every Ingress object says `alb.ingress.kubernetes.io/scheme: internal`, and every AWS load
    balancer is `internal` (AWS Load Balancer Controller docs, "Ingress annotations": scheme;
    Elastic Load Balancing User Guide, "Load balancer scheme"). Production's settings refuse
    a public ingress; this gate holds whatever the settings say."""
    if not production_stack(resources):
        return []
    out: list[tuple[Res, str]] = []
    for res in resources:
        if res.type in AWS_LOAD_BALANCERS and res.props.get("internal") is not True:
            if res.props.get("internal") != UNKNOWN:
                out.append((res, f"{res.label}: load balancer is not internal"))
        elif res.type == INGRESS:
            annotations = get(res.props, "metadata.annotations")
            if not _internal(annotations, INTERNAL_INGRESS_ANNOTATIONS):
                out.append((res, f"{res.label}: Ingress without {ALB_SCHEME}: internal"))
        values = airflow_values(res)
        if values is None:
            continue
        for name, spec in _enabled_ingresses(values):
            if not _internal(get(spec, "annotations"), INTERNAL_INGRESS_ANNOTATIONS):
                out.append(
                    (
                        res,
                        f"{res.label}: values.ingress.{name} is enabled without"
                        f" {ALB_SCHEME}: internal",
                    )
                )
    return out


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for k, v in value.items():
            yield from _strings(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings(v, f"{path}[{i}]")


def chart_values_no_secrets(res: Res) -> list[str]:
    values = airflow_values(res)
    if values is None:
        return []
    found = [p for p in SECRET_VALUE_PATHS if get(values, p) not in (None, "")]
    for env in as_list(values.get("env")):
        name = str(get(env, "name") or "")
        if SECRET_ENV_NAME.search(name) and get(env, "value"):
            found.append(f"env {name}")
    for i, extra in enumerate(as_list(values.get("extraSecrets"))):
        if isinstance(extra, Mapping) and any(k in extra for k in ("data", "stringData")):
            found.append(f"extraSecrets[{i}] data")
    if isinstance(values.get("extraSecrets"), Mapping):
        for name, spec in values["extraSecrets"].items():
            if isinstance(spec, Mapping) and any(k in spec for k in ("data", "stringData")):
                found.append(f"extraSecrets.{name} data")
    found += [
        f"{p} (credentials in a URL)" for p, s in _strings(values) if CREDENTIALS_IN_URL.search(s)
    ]
    return [f"{res.label}: chart values carry a secret value: {f}" for f in found]


def chart_bundled_postgres_off(res: Res) -> list[str]:
    values = airflow_values(res)
    if values is not None and get(values, "postgresql.enabled") is not False:
        return [f"{res.label}: values.postgresql.enabled is not false (chart default: on)"]
    return []


def chart_pgbouncer(res: Res) -> list[str]:
    values = airflow_values(res)
    if values is not None and get(values, "pgbouncer.enabled") is not True:
        return [f"{res.label}: PgBouncer is off; every Airflow process opens its own connections"]
    return []


def _containers(res: Res) -> list[Mapping[str, Any]]:
    if res.type not in WORKLOADS:
        return []
    spec = get(res.props, "spec.template.spec") or {}
    return [
        c
        for key in ("initContainers", "containers")
        for c in as_list(get(spec, key))
        if isinstance(c, Mapping)
    ]


POSTGRES_IMAGE = re.compile(r"(^|/)postgres(ql)?(:|@|$)")


def _postgres_containers(res: Res) -> list[Mapping[str, Any]]:
    return [c for c in _containers(res) if POSTGRES_IMAGE.search(str(c.get("image", "")))]


def metadata_db_managed(res: Res) -> list[str]:
    if _postgres_containers(res):
        return [
            f"{res.label}: metadata database runs in the cluster "
            "(no managed backups, multi-AZ or encryption at rest)"
        ]
    return []


def metadata_db_tls(res: Res) -> list[str]:
    out: list[str] = []
    for c in _postgres_containers(res):
        words = [str(w) for w in as_list(c.get("command")) + as_list(c.get("args"))]
        if not any(re.search(r"\bssl\s*=\s*on\b", w) for w in words):
            out.append(f"{res.label}: in-cluster Postgres {c.get('name')} serves without TLS")
    return out


def task_logs_in_s3(res: Res) -> list[str]:
    images = [str(c.get("image", "")) for c in _containers(res)]
    minio_chart = res.type in RELEASES and "minio" in str(res.props.get("chart", ""))
    if minio_chart or any(re.search(r"(^|/)minio(:|@|$)", i) for i in images):
        return [
            f"{res.label}: task logs go to an in-cluster S3-compatible store "
            "(no versioning, retention or durability of real S3)"
        ]
    return []


def image_in_scanned_registry(res: Res) -> list[str]:
    if res.type == "docker:index/image:Image" and res.props.get("skipPush") is True:
        return [f"{res.label}: image is not pushed to a registry that scans it on push"]
    return []


# --- stack-level: tags ---------------------------------------------------------------------

REQUIRED_TAGS = ("project", "environment", "owner")
UNTAGGABLE = frozenset(
    {
        "aws:iam/rolePolicy:RolePolicy",
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        "aws:iam/policyAttachment:PolicyAttachment",
        "aws:iam/userPolicy:UserPolicy",
        "aws:iam/groupPolicy:GroupPolicy",
        "aws:ec2/routeTableAssociation:RouteTableAssociation",
        "aws:ec2/mainRouteTableAssociation:MainRouteTableAssociation",
        "aws:ec2/route:Route",
        "aws:ec2/securityGroupRule:SecurityGroupRule",
        "aws:ecr/lifecyclePolicy:LifecyclePolicy",
        "aws:ecr/repositoryPolicy:RepositoryPolicy",
        "aws:kms/alias:Alias",
        "aws:eks/accessPolicyAssociation:AccessPolicyAssociation",
        "aws:sns/topicPolicy:TopicPolicy",
        "aws:sns/topicSubscription:TopicSubscription",
        PUBLIC_ACCESS_BLOCK,
        BUCKET_POLICY,
        "aws:s3/bucketOwnershipControls:BucketOwnershipControls",
        *BUCKET_LOGGINGS,
        *SSE_CONFIGS,
        *LIFECYCLE_CONFIGS,
        *VERSIONINGS,
    }
)
TAGGED_COMPONENTS = ("eks:index:Cluster", "eks:index:ManagedNodeGroup")


def _must_be_tagged(res: Res) -> bool:
    if res.type in TAGGED_COMPONENTS:
        return True
    return (
        res.type.startswith("aws:")
        and res.type not in UNTAGGABLE
        and not made_by_eks_component(res)
    )


def aws_tags(resources: Sequence[Res]) -> list[tuple[Res, str]]:
    out: list[tuple[Res, str]] = []
    tagged = [r for r in resources if _must_be_tagged(r)]
    common: dict[str, Any] = {}
    for key in REQUIRED_TAGS:
        seen = [tags(r).get(key) for r in tagged if known(tags(r).get(key))]
        if seen:
            common[key] = max(set(seen), key=seen.count)
    for r in tagged:
        t = tags(r)
        missing = [k for k in REQUIRED_TAGS if not t.get(k)]
        if missing:
            out.append((r, f"{r.label}: missing tags {', '.join(missing)}"))
        odd = [
            f"{k}={t.get(k)!r} (stack: {common[k]!r})"
            for k in REQUIRED_TAGS
            if t.get(k) and known(t.get(k)) and k in common and t.get(k) != common[k]
        ]
        if odd:
            out.append((r, f"{r.label}: tags differ from the rest of the stack: {', '.join(odd)}"))
    return out


# --- the registry --------------------------------------------------------------------------

M, A = Level.MANDATORY, Level.ADVISORY
ANY_STACK = "holds on every stack that has such a resource"
PRODUCTION_ONLY = "applies only to resources tagged environment=production, mandatory there"
PRODUCTION_STACK = (
    "applies only to stacks whose resources are tagged environment=production, mandatory there"
)
LOCAL_DIFFERS = "local (minikube) legitimately differs; production-grade stacks should not"

RULES: tuple[Rule, ...] = (
    Rule("eks-endpoint-restricted",
         "The EKS API endpoint is private, or public only to an allow-list (never 0.0.0.0/0).",
         M, ANY_STACK, resource_check=eks_endpoint_restricted),
    Rule("eks-secrets-encrypted",
         "EKS envelope-encrypts Kubernetes Secrets with a KMS key.",
         M, ANY_STACK, resource_check=eks_secrets_encrypted),
    Rule("eks-control-plane-logs",
         "All five EKS control-plane log types are on, for audit and incident response.",
         M, ANY_STACK, resource_check=eks_control_plane_logs),
    Rule("node-pools-on-demand",
         "Production node pools launch on-demand capacity only.",
         M, PRODUCTION_ONLY, stack_check=node_pools_on_demand),
    Rule("node-pools-capped",
         "Every node pool has a CPU limit, so the autoscaler's spend is bounded.",
         M, ANY_STACK, resource_check=node_pools_capped),
    Rule("nodes-on-demand",
         "Production nodes run on on-demand capacity, never spot.",
         M, PRODUCTION_ONLY, resource_check=nodes_on_demand),
    Rule("nodes-no-ssh-from-anywhere",
         "No SSH to nodes from anywhere: no open remoteAccess, no port 22 from 0.0.0.0/0.",
         M, ANY_STACK, resource_check=nodes_no_ssh_from_anywhere),
    Rule("rds-storage-encrypted",
         "The metadata database's storage and snapshots are encrypted at rest.",
         M, ANY_STACK, resource_check=rds_storage_encrypted),
    Rule("rds-not-public",
         "The metadata database has no public endpoint.",
         M, ANY_STACK, resource_check=rds_not_public),
    Rule("rds-deletion-protection",
         "Production's metadata database cannot be deleted by one mistaken operation.",
         M, PRODUCTION_ONLY, resource_check=rds_deletion_protection),
    Rule("rds-final-snapshot",
         "Deleting production's metadata database leaves a named final snapshot.",
         M, PRODUCTION_ONLY, resource_check=rds_final_snapshot),
    Rule("rds-backup-retention",
         "Automated backups are kept at least 7 days, so a bad week can be rolled back.",
         M, ANY_STACK, resource_check=rds_backup_retention),
    Rule("rds-multi-az",
         "Production's metadata database survives the loss of an availability zone.",
         M, PRODUCTION_ONLY, resource_check=rds_multi_az),
    Rule("rds-tls-enforced",
         "The database's parameter group refuses connections without TLS (rds.force_ssl=1).",
         M, ANY_STACK, stack_check=rds_tls_enforced),
    Rule("s3-public-access-block",
         "Every bucket has a public access block with all four flags on.",
         M, ANY_STACK, stack_check=s3_public_access_block),
    Rule("s3-encryption",
         "Every bucket has default server-side encryption configured.",
         M, ANY_STACK, stack_check=s3_encryption),
    Rule("s3-tls-only",
         "Every bucket's policy denies requests made without TLS (aws:SecureTransport false).",
         M, ANY_STACK, stack_check=s3_tls_only_policy),
    Rule("s3-cmk-encrypted",
         "Production buckets default to SSE-KMS with a customer-managed key "
         "(access-log targets excepted: they must be SSE-S3).",
         M, PRODUCTION_ONLY, stack_check=s3_cmk_encrypted),
    Rule("s3-access-logging",
         "Production buckets have S3 server access logging into another, SSE-S3 bucket.",
         M, PRODUCTION_ONLY + "; a log target's SSE-S3 is checked wherever logging is on",
         stack_check=s3_access_logging),
    Rule("s3-lifecycle",
         "Every bucket expires objects by a lifecycle rule, so task logs do not grow forever.",
         M, ANY_STACK, stack_check=s3_lifecycle),
    Rule("s3-versioning",
         "Production buckets are versioned, so overwritten or deleted logs can be recovered.",
         M, PRODUCTION_ONLY, stack_check=s3_versioning),
    Rule("ecr-scan-on-push",
         "Images are scanned for known vulnerabilities when pushed.",
         M, ANY_STACK, resource_check=ecr_scan_on_push),
    Rule("ecr-immutable-tags",
         "Production image tags cannot be overwritten, so a tag always means one image.",
         M, PRODUCTION_ONLY, resource_check=ecr_immutable_tags),
    Rule("ecr-cmk-encrypted",
         "Production repositories are encrypted with a customer-managed KMS key.",
         M, PRODUCTION_ONLY, resource_check=ecr_cmk_encrypted),
    Rule("ecr-lifecycle-policy",
         "Every repository has a lifecycle policy that expires old images.",
         M, ANY_STACK, stack_check=ecr_lifecycle_policy),
    Rule("vpc-flow-logs",
         "Every VPC records flow logs of ALL traffic.",
         M, ANY_STACK, stack_check=vpc_flow_logs),
    Rule("kms-key-policy",
         "Every KMS key has an explicit policy: the account root keeps it manageable, "
         "and nothing is allowed to any principal or service without a condition.",
         M, ANY_STACK, resource_check=kms_key_policy),
    Rule("logs-cmk-encrypted",
         "Production log groups (the VPC flow logs) are encrypted with a customer-managed key.",
         M, PRODUCTION_ONLY, resource_check=logs_cmk_encrypted),
    Rule("vpc-default-sg-closed",
         "Every VPC's default security group is managed and has no rules.",
         M, ANY_STACK, stack_check=vpc_default_sg_closed),
    Rule("iam-no-wildcards",
         "Policies the program writes grant no '*' or service-wide action and no '*' resource.",
         M, ANY_STACK, resource_check=iam_no_wildcards),
    Rule("irsa-trust-exact",
         "IRSA roles trust only exact service accounts (StringEquals on sub) and the STS audience.",
         M, ANY_STACK, resource_check=irsa_trust_exact),
    Rule("airflow-ui-not-public",
         "The Airflow UI is never behind a public load balancer; LB/ingress must be internal.",
         M, ANY_STACK, resource_check=ui_not_public),
    Rule("no-internet-facing-lb",
         "On production, every load balancer and ingress is internal "
         "(alb.ingress.kubernetes.io/scheme: internal).",
         M, PRODUCTION_STACK, stack_check=no_internet_facing_lb),
    Rule("chart-pdbs",
         "On production, every chart component with more than one replica has a "
         "PodDisruptionBudget.",
         M, PRODUCTION_STACK, stack_check=chart_pdbs),
    Rule("chart-values-no-secrets",
         "Chart values name Kubernetes Secrets only; no secret value is stored in the release.",
         M, ANY_STACK, resource_check=chart_values_no_secrets),
    Rule("chart-bundled-postgres-off",
         "The chart's bundled Postgres is off; the metadata database is provisioned separately.",
         M, ANY_STACK, resource_check=chart_bundled_postgres_off),
    Rule("aws-tags",
         "Every taggable AWS resource carries the project, environment and owner tags, "
         "with the stack's values.",
         M, ANY_STACK, stack_check=aws_tags),
    Rule("chart-pgbouncer",
         "PgBouncer pools metadata-database connections.",
         A, LOCAL_DIFFERS + " (one laptop's few connections need no pool)",
         resource_check=chart_pgbouncer),
    Rule("metadata-db-managed",
         "The metadata database is a managed service with backups, not a Pod in the cluster.",
         A, LOCAL_DIFFERS + " (minikube runs Postgres as a StatefulSet)",
         resource_check=metadata_db_managed),
    Rule("metadata-db-tls",
         "An in-cluster Postgres serves TLS.",
         A, LOCAL_DIFFERS + " (the local Postgres runs with sslmode disabled)",
         resource_check=metadata_db_tls),
    Rule("task-logs-in-s3",
         "Task logs go to real S3 (versioned, retained), not an in-cluster S3-compatible store.",
         A, LOCAL_DIFFERS + " (minikube keeps logs in MinIO)",
         resource_check=task_logs_in_s3),
    Rule("image-in-scanned-registry",
         "The Airflow image is pushed to a registry that scans it.",
         A, LOCAL_DIFFERS + " (minikube builds into its own Docker daemon)",
         resource_check=image_in_scanned_registry),
)  # fmt: skip

RULES_BY_NAME: Mapping[str, Rule] = {r.name: r for r in RULES}


def evaluate(resources: Sequence[Res], rules: Sequence[Rule] = RULES) -> list[Violation]:
    """Every violation of every rule over one stack's resources."""
    return [v for rule in rules for v in rule.run(resources)]
