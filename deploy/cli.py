"""Every `pulumi` command on a stack, run the same way from any machine.

    python -m deploy check [STACK...]        offline: the CLI's config rules + the settings model
    python -m deploy init STACK               create an eks stack in the shared backend (once)
    python -m deploy preview|up|refresh|destroy STACK [pulumi flags]
    python -m deploy pulumi STACK ARGS...     any other pulumi command, e.g. `stack output`
    python -m deploy ui STACK                 URL, user and password of the Airflow UI
    python -m deploy rollback STACK [flags]   restore the newest pre-upgrade snapshot, pin the
                                              versions from before that upgrade, run the canary
    python -m deploy upgrade-drill STACK      rehearse upgrade -> failed canary -> rollback
    python -m deploy bootstrap --region R     the shared S3 backend and KMS key (once)

Before it runs Pulumi it checks the stack file offline, picks the stack's backend
and secrets provider (`deploy.backend`), checks the tools and credentials it needs,
and selects the stack. An eks stack is never created implicitly: a missing stack
is an error that says how to log in or bootstrap, so a machine pointed at the wrong
backend cannot build a second production. `preview` and `up` run the policy pack.
The local stack also gets its DAGs mounted into minikube and its image built in
minikube's Docker daemon, for the node's own architecture.

`rollback` reads the stack's outputs and state, prints what it will restore and pin, sets
that config (`deploy.rollback`) and runs `pulumi up` the way `up` does: the same policy pack
and the same confirmation prompt (on production, nothing is applied until the operator
answers it). If no update ran (the prompt was declined), the rollback config is removed
again. Every step is printed and appended to `.pulumi-state/audit/<stack>.jsonl` in the Slack
bot's audit format. `upgrade-drill` (never on production) is `deploy/drill.py`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from components.chart_values import AIRFLOW_VERSION
from components.registry import image_platform
from components.settings import Settings
from components.upgrades import PlatformVersions
from deploy.backend import Backend, BackendError, backend_for, ensure_local_state
from deploy.check import check_stack
from deploy.drill import AutomationDrillRunner, Drill, DrillError, DrillRunner, format_timings
from deploy.rollback import AuditTrail, RollbackError, audit_path, rollback_plan

PROJECT_DIR = Path(__file__).resolve().parent.parent
VERBS = ("preview", "up", "refresh", "destroy")
POLICY_VERBS = ("preview", "up")
"""The verbs that accept `--policy-pack` (the CLI has no policy run for refresh/destroy)."""
POLICY_PACK = "policy"
MOUNT_PID = "minikube-mount.pid"
MOUNT_LOG = "minikube-mount.log"
NODE_ARCH_PLATFORMS = {"amd64": "linux/amd64", "arm64": "linux/arm64"}


class DeployError(Exception):
    """Stops the command; the message says what is wrong and what to do."""


Runner = Callable[..., subprocess.CompletedProcess[str]]


@dataclass
class Context:
    """One command on one stack: its settings, backend and environment."""

    stack: str
    settings: Settings
    backend: Backend
    project_dir: Path = PROJECT_DIR
    env: dict[str, str] = field(default_factory=dict)
    run: Runner = subprocess.run

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = self.run(
            ["pulumi", *args],
            cwd=self.project_dir,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if check and proc.returncode != 0:
            raise DeployError(f"`pulumi {' '.join(args)}` failed:\n{proc.stderr.strip()}")
        return proc


def load(
    stack: str,
    project_dir: Path = PROJECT_DIR,
    environ: Mapping[str, str] | None = None,
    run: Runner = subprocess.run,
) -> Context:
    """Check the stack file offline and work out its backend; nothing runs yet."""
    result = check_stack(project_dir, stack)
    if not result.ok or result.settings is None:
        lines = "\n".join(f"  {p}" for p in result.problems)
        raise DeployError(f"{len(result.problems)} problem(s) in Pulumi.{stack}.yaml:\n{lines}")
    environ = dict(os.environ if environ is None else environ)
    try:
        backend = backend_for(project_dir, stack, result.settings.target.value, environ)
    except BackendError as err:
        raise DeployError(str(err)) from None
    return Context(stack, result.settings, backend, project_dir, {**environ, **backend.env()}, run)


def pulumi_argv(verb: str, stack: str, extra: Sequence[str], project_dir: Path) -> list[str]:
    """The pulumi command line for a verb: `preview` and `up` are gated by the policy pack."""
    argv = ["pulumi", verb, "--stack", stack, *extra]
    if verb in POLICY_VERBS:
        argv += ["--policy-pack", str(project_dir / POLICY_PACK)]
    return argv


def missing_stack_message(ctx: Context) -> str:
    return (
        f"stack '{ctx.stack}' does not exist in {ctx.backend.url}.\n"
        "  - If the team has deployed it before, this machine is looking at the wrong backend or"
        " AWS account: check `aws sts get-caller-identity` and state-backend.yaml.\n"
        f"  - If this is its very first deploy, create it once: make init STACK={ctx.stack}"
        " (README: First production deploy)."
    )


def select_stack(ctx: Context) -> None:
    """Select the stack; only the local stack is created when missing."""
    if ctx.backend.shared:
        if ctx.pulumi("stack", "select", ctx.stack, check=False).returncode != 0:
            raise DeployError(missing_stack_message(ctx))
        return
    ensure_local_state(ctx.backend)
    if ctx.pulumi("stack", "select", ctx.stack, check=False).returncode != 0:
        ctx.pulumi("stack", "init", ctx.stack, "--secrets-provider", ctx.backend.secrets_provider)


def init_stack(ctx: Context) -> str:
    """Create an eks stack in the shared backend, secrets under the KMS key."""
    if not ctx.backend.shared:
        select_stack(ctx)
        return f"{ctx.stack} uses the local file backend; it is created on first use."
    if ctx.pulumi("stack", "select", ctx.stack, check=False).returncode == 0:
        raise DeployError(f"stack '{ctx.stack}' already exists in {ctx.backend.url}; nothing to do")
    ctx.pulumi("stack", "init", ctx.stack, "--secrets-provider", ctx.backend.secrets_provider)
    return (
        f"created {ctx.stack} in {ctx.backend.url},"
        f" with secrets under {ctx.backend.secrets_provider}."
        f" Commit Pulumi.{ctx.stack}.yaml: the CLI wrote the stack's encrypted data key into it."
    )


def need(tool: str, how: str) -> None:
    if shutil.which(tool) is None:
        raise DeployError(f"{tool} is not installed: {how}")


def prerequisites(ctx: Context, verb: str) -> None:
    need("pulumi", "https://www.pulumi.com/docs/iac/download-install/")
    if ctx.settings.is_eks:
        need("aws", "install the AWS CLI; the kubeconfig runs `aws eks get-token`")
        who = ctx.run(
            ["aws", "sts", "get-caller-identity"],
            capture_output=True,
            text=True,
            env=ctx.env,
            check=False,
        )
        if who.returncode != 0:
            raise DeployError("no AWS credentials: `aws sso login` or set AWS_PROFILE")
        if verb == "up":
            need("docker", "the image is built here and pushed to ECR")
        return
    need("minikube", "https://minikube.sigs.k8s.io/docs/start/")
    need("kubectl", "https://kubernetes.io/docs/tasks/tools/")
    need("docker", "the image is built in minikube's Docker daemon with the docker CLI")
    if ctx.run(["minikube", "status"], capture_output=True, text=True, check=False).returncode:
        raise DeployError("minikube is not running: minikube start --cpus 4 --memory 8g")


def parse_docker_env(text: str) -> dict[str, str]:
    """`minikube docker-env` output (`export K="v"` or `K=v` lines) as a dict."""
    env: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, eq, value = line.removeprefix("export ").partition("=")
        if eq:
            env[key.strip()] = value.strip().strip('"')
    return env


def platform_problem(settings: Settings, node_arch: str, machine: str) -> str | None:
    """The image must run on minikube's node: compare the build platform with the node's."""
    wanted = NODE_ARCH_PLATFORMS.get(node_arch.strip())
    building = image_platform(settings, machine)
    if wanted is None:
        return f"minikube's node runs {node_arch!r}; images are built for amd64 or arm64 only"
    if wanted != building:
        return (
            f"minikube's node runs {wanted} but the image would be built for {building};"
            f" set airflow-platform:registry.platform: {wanted} in Pulumi.local.yaml"
        )
    return None


def prepare_minikube(ctx: Context, verb: str) -> None:
    """Docker pointed at minikube's daemon, the image platform checked, the DAGs mounted."""
    docker = ctx.run(
        ["minikube", "docker-env", "--shell", "bash"], capture_output=True, text=True, check=False
    )
    if docker.returncode != 0:
        raise DeployError(f"minikube docker-env failed: {docker.stderr.strip()}")
    ctx.env.update(parse_docker_env(docker.stdout))
    context = ctx.settings.cluster.kube_context
    arch = ctx.run(
        [
            "kubectl",
            "--context",
            context,
            "get",
            "nodes",
            "-o",
            "jsonpath={.items[0].status.nodeInfo.architecture}",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if arch.returncode == 0:
        problem = platform_problem(ctx.settings, arch.stdout, platform.machine())
        if problem:
            raise DeployError(problem)
    if verb == "up" and ctx.settings.airflow.dags_source == "hostPath":
        ensure_dags_mount(ctx)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def ensure_dags_mount(ctx: Context, wait_s: float = 30.0) -> None:
    """`minikube mount <checkout>/dags:<node path>`, started once and kept in the background."""
    state = ctx.project_dir / ".pulumi-state"
    state.mkdir(exist_ok=True)
    pid_file = state / MOUNT_PID
    node_path = ctx.settings.airflow.dags_host_path
    if pid_file.exists() and _alive(int(pid_file.read_text() or 0)):
        return
    source = ctx.project_dir / "dags"
    with open(state / MOUNT_LOG, "ab") as log:
        proc = subprocess.Popen(
            ["minikube", "mount", f"{source}:{node_path}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        probe = ctx.run(
            ["minikube", "ssh", "--", "test", "-d", node_path],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0:
            print(f"DAGs: {source} mounted at {node_path} on the minikube node (pid {proc.pid})")
            return
        if proc.poll() is not None:
            break
        time.sleep(1)
    raise DeployError(f"minikube mount did not come up; see {state / MOUNT_LOG}")


def stop_dags_mount(project_dir: Path = PROJECT_DIR) -> None:
    pid_file = project_dir / ".pulumi-state" / MOUNT_PID
    if pid_file.exists():
        pid = int(pid_file.read_text() or 0)
        if pid and _alive(pid):
            os.killpg(pid, signal.SIGTERM)
        pid_file.unlink()


def ui_lines(ctx: Context, outputs: Mapping[str, object]) -> list[str]:
    """What `make ui` prints: where the UI is, who to log in as, with what password."""
    lines = [f"Airflow UI of stack {ctx.stack}:"]
    url = outputs.get("ui_url")
    if url:
        lines.append(f"  URL:      {url}")
    else:
        steps = []
        if ctx.settings.is_eks:
            steps.append(
                f"aws eks update-kubeconfig --region {ctx.settings.region}"
                f" --name {outputs.get('cluster_name')}"
            )
        else:
            steps.append(f"kubectl config use-context {ctx.settings.cluster.kube_context}")
        steps.append(str(outputs.get("ui_command")))
        lines.append("  URL:      http://localhost:8080  after:  " + "  &&  ".join(steps))
    if outputs.get("admin_username"):
        lines.append(f"  user:     {outputs['admin_username']}")
        lines.append(f"  password: {outputs.get('admin_password')}")
    else:
        lines.append(
            "  login:    airflow.createAdminUser is off; sign in as your auth manager says"
        )
    return lines


def _json(ctx: Context, *args: str) -> object:
    text = ctx.pulumi(*args).stdout or ""
    try:
        return json.loads(text) if text.strip() else {}
    except json.JSONDecodeError:
        raise DeployError(f"`pulumi {' '.join(args)}` did not print JSON") from None


def last_update_version(ctx: Context) -> int:
    """The number of the stack's newest update (0: none yet), from `pulumi stack history`."""
    history = _json(ctx, "stack", "history", "--json", "--page-size", "1", "--stack", ctx.stack)
    if isinstance(history, list) and history and isinstance(history[0], dict):
        return int(history[0].get("version") or 0)
    return 0


def config_values(ctx: Context, keys: Sequence[str]) -> dict[str, str | None]:
    """The stack's current values of `keys` (None: not set)."""
    found = _json(ctx, "config", "--json", "--stack", ctx.stack)
    values: dict[str, str | None] = {}
    for key in keys:
        entry = found.get(key) if isinstance(found, dict) else None
        value = entry.get("value") if isinstance(entry, dict) else None
        values[key] = None if value is None else str(value)
    return values


def set_config(ctx: Context, values: Mapping[str, str | None]) -> None:
    for key, value in values.items():
        if value is None:
            ctx.pulumi("config", "rm", "--stack", ctx.stack, key, check=False)
        else:
            ctx.pulumi("config", "set", "--stack", ctx.stack, key, value)


def rollback(
    ctx: Context,
    extra: Sequence[str],
    call: Callable[..., int] = subprocess.call,
    say: Callable[[str], None] = print,
) -> int:
    """`make rollback STACK=x`: see the module's docstring."""
    if not ctx.settings.is_eks:
        raise DeployError(
            f"{ctx.stack} keeps its database in the cluster: there are no pre-upgrade RDS"
            " snapshots to roll back to (rollback is for eks stacks)"
        )
    prerequisites(ctx, "up")
    select_stack(ctx)
    trail = AuditTrail(audit_path(ctx.project_dir, ctx.stack), ctx.stack, "rollback", say=say)
    trail.start()
    started, result = time.monotonic(), "failed"
    try:
        outputs = _json(ctx, "stack", "output", "--json", "--stack", ctx.stack)
        state = _json(ctx, "stack", "export", "--stack", ctx.stack)
        trail.step("read", "the stack's outputs (upgrade_history, platform_versions) and state")
        try:
            plan = rollback_plan(
                outputs if isinstance(outputs, dict) else {},
                state if isinstance(state, dict) else None,
            )
        except RollbackError as err:
            result = "refused"
            trail.step("refused", str(err))
            raise DeployError(f"nothing to roll back: {err}") from None
        for line in plan.lines(ctx.stack):
            trail.step("plan", line.strip())
        before = last_update_version(ctx)
        previous = config_values(ctx, list(plan.config))
        set_config(ctx, plan.config)
        trail.step("config", ", ".join(f"{k}={v}" for k, v in plan.config.items()))
        snapshot = plan.target.record.snapshot
        argv = pulumi_argv(
            "up", ctx.stack, [*extra, "--message", f"rollback to {snapshot}"], ctx.project_dir
        )
        trail.step("up", "pulumi up: restore, pin, canary (confirm at its prompt, as for `up`)")
        code = call(argv, cwd=ctx.project_dir, env=ctx.env)
        if code == 0:
            result = "ok"
            trail.step("up", "succeeded: database restored, versions pinned, canary passed")
        elif last_update_version(ctx) == before:
            result = "abandoned"
            set_config(ctx, previous)
            trail.step("abandoned", "no update ran; the rollback config was removed again")
        else:
            trail.step(
                "up",
                f"failed (exit {code}); the rollback config stays set: fix the cause, then"
                f" `make rollback STACK={ctx.stack}` again",
            )
        return code
    finally:
        trail.finish(result, time.monotonic() - started)


def upgrade_drill(
    ctx: Context, runner: DrillRunner | None = None, say: Callable[[str], None] = print
) -> int:
    """`make upgrade-drill STACK=integration`: see deploy/drill.py."""
    if not ctx.settings.is_eks or ctx.settings.is_production:
        raise DeployError(
            "the upgrade drill runs on an eks stack other than production (STACK=integration)"
        )
    if runner is None:
        prerequisites(ctx, "up")
        select_stack(ctx)
        runner = AutomationDrillRunner(
            ctx.project_dir,
            ctx.stack,
            ctx.env,
            ctx.backend.secrets_provider,
            policy_pack=ctx.project_dir / POLICY_PACK,
            echo=say,
        )
    target = PlatformVersions(AIRFLOW_VERSION, ctx.settings.airflow.chart_version)
    trail = AuditTrail(audit_path(ctx.project_dir, ctx.stack), ctx.stack, "upgrade-drill", say=say)
    drill = Drill(ctx.stack, runner, target, audit=trail)
    try:
        steps = drill.run()
    except DrillError as err:
        say(format_timings(ctx.stack, err.steps))
        raise DeployError(f"upgrade drill stopped: {err}") from None
    say(format_timings(ctx.stack, steps))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    try:
        if command == "check":
            from deploy.check import main as check_main

            return check_main(rest)
        if command == "bootstrap":
            from deploy.bootstrap import main as bootstrap_main

            return bootstrap_main(rest)
        if command == "unmount":
            stop_dags_mount()
            return 0
        if not rest:
            raise DeployError(f"usage: python -m deploy {command} STACK ...")
        ctx = load(rest[0])
        extra = rest[1:]
        if command == "init":
            need("pulumi", "https://www.pulumi.com/docs/iac/download-install/")
            print(init_stack(ctx))
            return 0
        if command in VERBS:
            prerequisites(ctx, command)
            if not ctx.settings.is_eks:
                prepare_minikube(ctx, command)
            select_stack(ctx)
            argv_ = pulumi_argv(command, ctx.stack, extra, ctx.project_dir)
            code = subprocess.call(argv_, cwd=ctx.project_dir, env=ctx.env)
            if command == "destroy" and code == 0 and not ctx.settings.is_eks:
                stop_dags_mount(ctx.project_dir)
            return code
        if command == "rollback":
            return rollback(ctx, extra)
        if command == "upgrade-drill":
            return upgrade_drill(ctx)
        if command == "pulumi":
            need("pulumi", "https://www.pulumi.com/docs/iac/download-install/")
            select_stack(ctx)
            return subprocess.call(["pulumi", *extra], cwd=ctx.project_dir, env=ctx.env)
        if command == "ui":
            need("pulumi", "https://www.pulumi.com/docs/iac/download-install/")
            select_stack(ctx)
            out = ctx.pulumi("stack", "output", "--json", "--show-secrets")
            print("\n".join(ui_lines(ctx, json.loads(out.stdout or "{}"))))
            return 0
        raise DeployError(f"unknown command {command!r}; see python -m deploy --help")
    except DeployError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
