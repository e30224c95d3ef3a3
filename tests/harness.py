"""Run `__main__.py` for a stack file under Pulumi's mock engine and record everything.

`run_stack("production")` reads `Pulumi.production.yaml`, replaces `secure:`
values with test secrets, runs the program with `preview=False` (so outputs are
known and assertions on them really run) and returns a `Run`: every registered
resource with its type, name, inputs, parent and dependencies, plus the stack
outputs. Mocks answer the invokes the program makes with realistic shapes and
raise on any invoke they do not know, so a new look-up cannot go unnoticed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import runpy
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from google.protobuf import struct_pb2
from pulumi.runtime import mocks as pmocks
from pulumi.runtime import rpc
from pulumi.runtime.settings import ROOT
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from deploy.project_config import load_yaml_file, merged_config

ROOT_DIR = Path(__file__).resolve().parents[1]
PROJECT = "airflow-platform"
ACCOUNT = "123456789012"
SECRET_SIG = rpc._special_secret_sig
SIG_KEY = rpc._special_sig_key
RESOURCE_SIG = rpc._special_resource_sig
OIDC_ID = "EXAMPLED539D4633E53DE1B71EXAMPLE"
ORGANIZATION = "organization"
"""The organization the DIY backend (file, S3) always reports (pulumi/pulumi
`pkg/backend/diy/store.go`: "diy organization MUST always be \"organization\"")."""


def go_duration_seconds(text: str) -> float:
    """A Go duration ("2h", "90m", "1h30m", "720s"), as the engine parses customTimeouts."""
    units = {"h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+(?:\.\d+)?)([hms])", text)
    assert parts and "".join(n + u for n, u in parts) == text, text
    return sum(float(n) * units[u] for n, u in parts)


def fake_secret(key: str) -> str:
    """The stand-in for a `secure:` value: unique, recognisable, and never expected in plaintext."""
    return f"TESTSECRET-{key}-{hashlib.sha256(key.encode()).hexdigest()[:12]}"


@dataclass
class Resource:
    type: str
    name: str
    urn: str
    inputs: dict[str, Any]
    raw_inputs: dict[str, Any]
    parent: str
    dependencies: list[str]
    property_dependencies: dict[str, list[str]]
    protect: bool
    custom: bool
    outputs: dict[str, Any] = field(default_factory=dict)
    ignore_changes: list[str] = field(default_factory=list)
    retain_on_delete: bool = False
    read: bool = False
    """Read (a StackReference, a `.get`), not registered: the engine never changes it."""
    custom_timeouts: dict[str, str] = field(default_factory=dict)
    """The `customTimeouts` option as the engine receives it: the ones set, by operation."""

    def secret_paths(self) -> list[str]:
        """Input paths the engine received marked secret."""
        return list(_secret_paths(self.raw_inputs, ""))

    def has_secret_under(self, prefix: str) -> bool:
        """Whether the engine received the input at `prefix` (or part of it) as a secret."""
        return any(
            p == prefix or p.startswith((f"{prefix}.", f"{prefix}[")) for p in self.secret_paths()
        )


@dataclass
class Run:
    stack: str
    resources: list[Resource]
    outputs: dict[str, Any]
    secret_outputs: set[str]
    invokes: list[str]
    logs: list[tuple[str, str]] = field(default_factory=list)
    """What the program logged through `pulumi.log` (what `pulumi preview` shows): (level, text)."""

    def messages(self, level: str) -> list[str]:
        return [text for lvl, text in self.logs if lvl == level]

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def one(self, type_: str) -> Resource:
        found = self.of_type(type_)
        assert len(found) == 1, f"expected one {type_}, found {[r.name for r in found]}"
        return found[0]

    def children(self, parent: Resource) -> list[Resource]:
        return [r for r in self.resources if r.parent == parent.urn]

    def type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.resources:
            counts[r.type] = counts.get(r.type, 0) + 1
        return counts

    def depends_on(self, res: Resource, target: Resource) -> bool:
        """Whether `res` waits for `target`, directly or through other resources' dependencies.

        A resource waits for everything in its dependency list and, through them,
        for what they wait for; a component's dependency stands for its children.
        """
        seen: set[str] = set()
        todo = list(_all_deps(res))
        while todo:
            urn = todo.pop()
            if urn in seen:
                continue
            seen.add(urn)
            if urn == target.urn:
                return True
            dep = next((r for r in self.resources if r.urn == urn), None)
            if dep is None:
                continue
            todo += _all_deps(dep)
            if not dep.custom:
                todo += [c.urn for c in self.children(dep)]
        return False


def _all_deps(res: Resource) -> list[str]:
    deps = list(res.dependencies)
    for urns in res.property_dependencies.values():
        deps += urns
    return deps


def _secret_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, Mapping):
        if value.get(SIG_KEY) == SECRET_SIG:
            yield path or "<root>"
            return
        for k, v in value.items():
            yield from _secret_paths(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _secret_paths(v, f"{path}[{i}]")


def unwrap(value: Any) -> Any:
    """Inputs with secret markers replaced by their values."""
    if isinstance(value, Mapping):
        if value.get(SIG_KEY) == SECRET_SIG:
            return unwrap(value.get("value"))
        return {k: unwrap(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


class PlatformMocks(pmocks.Mocks):
    """Answers resource creation and invokes the way AWS/Kubernetes would, deterministically."""

    def __init__(
        self,
        region: str,
        stack_outputs: Mapping[str, Mapping[str, Any]] | None = None,
        own_stack: str = "",
    ) -> None:
        self.region = region
        self.invokes: list[str] = []
        self.stack_outputs = dict(stack_outputs or {})
        """Outputs of stacks a StackReference may read, by fully qualified name."""
        self.own_stack = own_stack

    def _stack_reference(self, name: str) -> dict[str, Any]:
        """What the engine's builtin provider reads for a StackReference.

        The outputs of the named stack's last checkpoint, and which of them are secret
        (pulumi/pulumi `pkg/resource/deploy/builtins.go`, `readStackReference`). The stack
        being updated exists, so it reads as no outputs until seeded (a first deploy); any
        other unknown stack is an error there too ("unknown stack").
        """
        if name in self.stack_outputs:
            outputs = dict(self.stack_outputs[name])
        elif name == self.own_stack:
            outputs = {}
        else:
            raise ValueError(f"unknown stack {name!r}")
        secret = sorted(
            k for k, v in outputs.items() if isinstance(v, Mapping) and v.get(SIG_KEY) == SECRET_SIG
        )
        return {"name": name, "outputs": outputs, "secretOutputNames": secret}

    def call(self, args: pmocks.MockCallArgs) -> dict[str, Any]:  # type: ignore[override]
        self.invokes.append(args.token)
        r = self.region
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            zones = [f"{r}{z}" for z in "abc"]
            return {
                "id": r,
                "names": zones,
                "zoneIds": [f"euw1-az{i + 1}" for i in range(3)],
                "state": "available",
                "groupNames": [r],
            }
        if args.token == "aws:ecr/getAuthorizationToken:getAuthorizationToken":
            return {
                "id": r,
                "userName": "AWS",
                "password": fake_secret("ecr-password"),
                "authorizationToken": fake_secret("ecr-token"),
                "proxyEndpoint": f"https://{ACCOUNT}.dkr.ecr.{r}.amazonaws.com",
                "expiresAt": "2030-01-01T00:00:00Z",
            }
        if args.token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {
                "accountId": ACCOUNT,
                "arn": f"arn:aws:iam::{ACCOUNT}:user/ci",
                "userId": "AIDAEXAMPLE",
                "id": ACCOUNT,
            }
        if args.token == "aws:index/getPartition:getPartition":
            return {"partition": "aws", "dnsSuffix": "amazonaws.com", "id": "aws"}
        raise NotImplementedError(f"the mocks do not answer invoke {args.token}")

    def new_resource(self, args: pmocks.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        inputs = unwrap(args.inputs)
        name, t, r = args.name, args.typ, self.region
        if t == "pulumi:pulumi:StackReference":
            target = str(inputs.get("name") or args.resource_id)
            return target, self._stack_reference(target)
        outputs: dict[str, Any] = dict(inputs)
        rid = f"{name}-id"
        if t.startswith("aws:"):
            service = t.split(":")[1].split("/")[0]
            outputs.setdefault("arn", f"arn:aws:{service}:{r}:{ACCOUNT}:{name}")
        if t == "aws:ec2/vpc:Vpc":
            rid = f"vpc-{_hex(name)}"
        elif t == "aws:ec2/subnet:Subnet":
            rid = f"subnet-{_hex(name)}"
        elif t == "aws:ec2/securityGroup:SecurityGroup":
            rid = f"sg-{_hex(name)}"
        elif t == "aws:iam/role:Role":
            outputs["arn"] = f"arn:aws:iam::{ACCOUNT}:role/{name}"
            outputs["name"] = name
            rid = name
        elif t == "aws:rds/instance:Instance":
            host = f"{name}.c0abcdexample.{r}.rds.amazonaws.com"
            outputs.update(address=host, port=5432, endpoint=f"{host}:5432")
        elif t in ("aws:rds/subnetGroup:SubnetGroup", "aws:rds/parameterGroup:ParameterGroup"):
            outputs["name"] = name
        elif t == "aws:ecr/repository:Repository":
            repo = inputs.get("name", name)
            outputs.update(
                repositoryUrl=f"{ACCOUNT}.dkr.ecr.{r}.amazonaws.com/{repo}",
                registryId=ACCOUNT,
                name=repo,
            )
        elif t == "aws:s3/bucketV2:BucketV2" or t == "aws:s3/bucket:Bucket":
            bucket = inputs.get("bucket", name)
            rid = bucket
            outputs.update(bucket=bucket, arn=f"arn:aws:s3:::{bucket}")
        elif t == "random:index/randomPassword:RandomPassword":
            outputs["result"] = fake_secret(f"random-{name}")
        elif t == "random:index/randomBytes:RandomBytes":
            raw = hashlib.sha256(name.encode()).digest()[: int(inputs.get("length", 32))]
            import base64

            outputs.update(base64=base64.b64encode(raw).decode(), hex=raw.hex())
        elif t == "eks:index:Cluster":
            outputs.update(
                kubeconfigJson=json.dumps(
                    {
                        "apiVersion": "v1",
                        "kind": "Config",
                        "clusters": [{"name": name, "cluster": {"server": "https://EXAMPLE.eks"}}],
                        "users": [{"name": "aws", "user": {"token": fake_secret("kube-token")}}],
                    }
                ),
                oidcProviderArn=f"arn:aws:iam::{ACCOUNT}:oidc-provider/oidc.eks.{r}.amazonaws.com/id/{OIDC_ID}",
                oidcProviderUrl=f"oidc.eks.{r}.amazonaws.com/id/{OIDC_ID}",
                oidcIssuer=f"oidc.eks.{r}.amazonaws.com/id/{OIDC_ID}",
                nodeSecurityGroupId="sg-0eksclustersg0001",
                clusterSecurityGroupId="sg-0eksclustersg0001",
                autoModeNodeRoleName=f"{name}-nodeRole-1a2b3c4",
            )
        elif t == "docker:index/image:Image":
            image = str(inputs.get("imageName", name))
            digest = hashlib.sha256(image.encode()).hexdigest()
            outputs["repoDigest"] = f"{image.rpartition(':')[0]}@sha256:{digest}"
        elif t.startswith("kubernetes:") and t != "kubernetes:helm.sh/v3:Release":
            meta = dict(outputs.get("metadata") or {})
            meta.setdefault("name", name)
            outputs["metadata"] = meta
        elif t == "kubernetes:helm.sh/v3:Release":
            outputs["status"] = {"status": "deployed", "namespace": inputs.get("namespace")}
        return rid, outputs


def _hex(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()[:17]


class RecordingMonitor(pmocks.MockMonitor):
    """The mock monitor, also keeping what the engine would see of each registration."""

    def __init__(self, mocks: PlatformMocks) -> None:
        super().__init__(mocks)
        self.recorded: list[Resource] = []

    def RegisterResource(self, request: Any) -> Any:
        # Resource references (e.g. a node group's `cluster`) are recorded as their URN:
        # rehydrating them inside the monitor's worker thread would bind another event loop.
        plain = type(request)()
        plain.CopyFrom(request)
        _refs_to_urns(plain.object)
        request = plain
        response = super().RegisterResource(request)
        if request.type == "pulumi:pulumi:Stack":
            return response
        self._record(
            request,
            response.urn,
            request.object,
            response.object,
            property_dependencies={
                k: list(v.urns) for k, v in request.propertyDependencies.items()
            },
            protect=bool(request.protect),
            custom=bool(request.custom),
            ignore_changes=list(request.ignoreChanges),
            retain_on_delete=bool(request.retainOnDelete),
            custom_timeouts={
                k: v
                for k in ("create", "update", "delete")
                if (v := getattr(request.customTimeouts, k))
            },
        )
        return response

    def ReadResource(self, request: Any) -> Any:
        response = super().ReadResource(request)
        self._record(
            request,
            response.urn,
            request.properties,
            response.properties,
            property_dependencies={},
            protect=False,
            custom=True,
            read=True,
        )
        return response

    def _record(self, request: Any, urn: str, sent: Any, got: Any, **options: Any) -> None:
        raw = rpc.deserialize_properties(sent, keep_unknowns=True)
        self.recorded.append(
            Resource(
                type=request.type,
                name=request.name,
                urn=urn,
                inputs=unwrap(raw),
                raw_inputs=raw,
                parent=request.parent,
                dependencies=list(request.dependencies),
                outputs=unwrap(rpc.deserialize_properties(got)),
                **options,
            )
        )


def _refs_to_urns(value: Any) -> None:
    """Replace resource-reference structs inside a protobuf Struct/ListValue by their URN."""
    items = (
        value.fields.items() if isinstance(value, struct_pb2.Struct) else enumerate(value.values)
    )
    for _key, item in list(items):
        kind = item.WhichOneof("kind")
        if kind == "struct_value":
            fields = item.struct_value.fields
            if SIG_KEY in fields and fields[SIG_KEY].string_value == RESOURCE_SIG:
                item.string_value = fields["urn"].string_value
            else:
                _refs_to_urns(item.struct_value)
        elif kind == "list_value":
            _refs_to_urns(item.list_value)


SITE_VALUES: dict[str, Any] = {
    f"{PROJECT}:cluster.publicAccessCidrs": ["84.17.32.0/24", "18.196.77.0/28"],
    f"{PROJECT}:cluster.adminArns": [
        f"arn:aws:iam::{ACCOUNT}:role/ci-deployer",
        f"arn:aws:iam::{ACCOUNT}:role/slack-bot",
    ],
    f"{PROJECT}:cluster.namespaceAdminArns": [f"arn:aws:iam::{ACCOUNT}:role/data-engineers"],
}
"""What a team adds to the committed eks stack files before its first deploy (see the README):
where `pulumi up` runs from and who may use the cluster. The committed files leave them out on
purpose, and `make check` says so."""

SITE_SECRETS: tuple[str, ...] = (f"{PROJECT}:alertsSlackWebhookUrl",)
"""Secrets a team sets on its eks stacks before the first deploy (`pulumi config set --secret`):
production refuses to deploy without somewhere to send its pages."""


def stack_config(stack: str, *, site: bool = True) -> tuple[dict[str, Any], set[str]]:
    """The config the CLI hands the program for a stack file, `secure:` values as test secrets.

    Declared defaults from `Pulumi.yaml` are merged in the way the CLI does it
    (`deploy.project_config.merged_config`); eks stacks get `SITE_VALUES` unless `site=False`.
    """
    project = load_yaml_file(ROOT_DIR / "Pulumi.yaml")
    doc = load_yaml_file(ROOT_DIR / f"Pulumi.{stack}.yaml") or {}
    if site and (doc.get("config") or {}).get(f"{PROJECT}:target") == "eks":
        doc = {**doc, "config": {**SITE_VALUES, **doc["config"]}}
    config: dict[str, Any] = {}
    secret: set[str] = set()
    for key, value in merged_config(project, doc).items():
        if value.secure:
            config[key] = fake_secret(key.split(":", 1)[1])
            secret.add(key)
        else:
            config[key] = value.as_program_value()
    if site and (doc.get("config") or {}).get(f"{PROJECT}:target") == "eks":
        for key in SITE_SECRETS:
            config.setdefault(key, fake_secret(key.split(":", 1)[1]))
            secret.add(key)
    return config, secret


def _as_config_string(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value)


def run_stack(
    stack: str,
    *,
    set_values: Mapping[str, Any] | None = None,
    set_secrets: Mapping[str, Any] | None = None,
    remove: tuple[str, ...] = (),
    previous_outputs: Mapping[str, Any] | None = None,
    program: Callable[[], None] | None = None,
) -> Run:
    """Run the program for `Pulumi.<stack>.yaml` (optionally changed) under the mocks.

    Keys in `set_values`/`set_secrets`/`remove` are without the project prefix.
    `previous_outputs` are the stack's outputs from its last update, as a StackReference to
    the stack itself reads them (unset: a stack that has none yet). `program` replaces
    `__main__.py` (a test that builds one component).
    """
    error, run = try_stack(
        stack,
        set_values=set_values,
        set_secrets=set_secrets,
        remove=remove,
        previous_outputs=previous_outputs,
        program=program,
    )
    if error is not None:
        raise error
    return run


def _ensure_event_loop() -> None:
    """The mock engine runs on the thread's current loop; `asyncio.run` elsewhere unsets it."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def try_stack(
    stack: str,
    *,
    set_values: Mapping[str, Any] | None = None,
    set_secrets: Mapping[str, Any] | None = None,
    remove: tuple[str, ...] = (),
    previous_outputs: Mapping[str, Any] | None = None,
    program: Callable[[], None] | None = None,
) -> tuple[BaseException | None, Run]:
    """Like `run_stack`, but returns the program's exception with what was registered anyway."""
    config, secret = stack_config(stack)
    for key in remove:
        config.pop(f"{PROJECT}:{key}", None)
    for key, value in (set_values or {}).items():
        config[f"{PROJECT}:{key}"] = value
    for key, value in (set_secrets or {}).items():
        config[f"{PROJECT}:{key}"] = value
        secret.add(f"{PROJECT}:{key}")
    region = str(config.get(f"{PROJECT}:aws.region", "eu-west-1"))

    own = f"{ORGANIZATION}/{PROJECT}/{stack}"
    seeded = {own: previous_outputs} if previous_outputs is not None else {}
    mocks = PlatformMocks(region, seeded, own_stack=own)
    monitor = RecordingMonitor(mocks)
    log_handler = _LogRecorder()
    logger = logging.getLogger(f"{__name__}.engine")
    logger.handlers = [log_handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    ROOT.set(None)
    pulumi.runtime.set_all_config(
        {k: _as_config_string(v) for k, v in config.items()}, sorted(secret)
    )
    pulumi.runtime.set_mocks(
        mocks,
        project=PROJECT,
        stack=stack,
        preview=False,
        monitor=monitor,
        logger=logger,
        organization=ORGANIZATION,
    )

    root_str = str(ROOT_DIR)
    added = root_str not in sys.path
    if added:
        sys.path.insert(0, root_str)
    outputs: dict[str, Any] = {}
    secret_outputs: set[str] = set()
    error: BaseException | None = None
    try:

        def main_program() -> None:
            runpy.run_path(str(ROOT_DIR / "__main__.py"))

        _ensure_event_loop()
        _sync_await(run_pulumi_func(program or main_program))
        root = pulumi.runtime.settings.get_root_resource()
        for name, value in (getattr(root, "outputs", None) or {}).items():
            out = pulumi.Output.from_input(value)
            outputs[name] = _sync_await(out.future())
            if _sync_await(out.is_secret()):
                secret_outputs.add(name)
    except Exception as exc:  # handed to the caller
        error = exc
    finally:
        if added:
            sys.path.remove(root_str)
    run = Run(stack, monitor.recorded, outputs, secret_outputs, mocks.invokes, log_handler.logs)
    return error, run


class _LogRecorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.logs: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.logs.append((record.levelname.lower(), record.getMessage()))


STACKS = ("local", "integration", "production")
