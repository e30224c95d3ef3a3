"""The GitHub Actions workflows in .github/workflows, read as YAML, against the deploy rules.

Each rule is a function that returns the problems it finds in a set of workflows. The real
workflows must have none; a copy broken on purpose (`BREAKS`) must have some, so every rule
is shown to be able to fail. actionlint (make lint) checks the syntax and the expressions;
these rules check what the pipeline is allowed to do.

GitHub reads `on:` as a key; PyYAML (YAML 1.1) reads it as the boolean True, which
`triggers` accepts as well.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
PROJECT = "airflow-platform"

Workflows = dict[str, dict[Any, Any]]

APPLY_RE = re.compile(
    r"\bmake\s+(?:[A-Z_]+=\S+\s+)*(?P<verb>up|destroy|refresh)\b"
    r"|-m\s+deploy\s+(?P<dverb>up|destroy|refresh)\b"
    r"|-m\s+deploy\.ci\s+(?P<civerb>apply)\b"
    r"|\bpulumi\s+(?P<pverb>up|destroy|refresh)\b"
)
"""A run line that changes a stack (`preview --refresh` does not: it matches none)."""
STACK_RE = re.compile(
    r"\bSTACK=(?P<a>[\w-]+)|-m\s+deploy(?:\.ci)?\s+(?:up|destroy|refresh|apply)\s+(?P<b>[\w-]+)"
)
PLAN_FLAG_RE = re.compile(r"(?<![\w-])--plan(?:\s|=)")


def load_workflows(folder: Path = WORKFLOWS) -> Workflows:
    return {
        path.name: yaml.safe_load(path.read_text())
        for path in sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    }


def eks_stacks() -> set[str]:
    stacks = set()
    for path in ROOT.glob("Pulumi.*.yaml"):
        config = (yaml.safe_load(path.read_text()) or {}).get("config", {})
        if config.get(f"{PROJECT}:target") == "eks":
            stacks.add(path.name.removeprefix("Pulumi.").removesuffix(".yaml"))
    return stacks


def triggers(workflow: dict[Any, Any]) -> dict[str, Any]:
    """The workflow's events, whether PyYAML read the key as "on" or as True."""
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on or {})


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job.get("steps", []))


def runs(job: dict[str, Any]) -> list[str]:
    return [str(step["run"]) for step in steps(job) if "run" in step]


def uses(step: dict[str, Any], action: str) -> bool:
    return str(step.get("uses", "")).split("@")[0] == action


def called(workflows: Workflows, job: dict[str, Any]) -> dict[str, Any] | None:
    """The workflow a job calls with `uses: ./.github/workflows/X.yml`, if any."""
    target = str(job.get("uses", ""))
    if target.startswith("./.github/workflows/"):
        return workflows.get(Path(target).name)
    return None


def all_jobs(workflows: Workflows) -> Iterator[tuple[str, str, dict[str, Any], dict[str, Any]]]:
    for name, workflow in workflows.items():
        for job_id, job in (workflow.get("jobs") or {}).items():
            yield name, job_id, workflow, job


def jobs_run_by(workflows: Workflows, workflow: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """A workflow's jobs, with the jobs of the workflows it calls."""
    for job in (workflow.get("jobs") or {}).values():
        yield job
        inner = called(workflows, job)
        if inner is not None and inner is not workflow:
            yield from jobs_run_by(workflows, inner)


def applies(job: dict[str, Any]) -> bool:
    if any(APPLY_RE.search(line) for line in runs(job)):
        return True
    return any(
        uses(step, "pulumi/actions")
        and str((step.get("with") or {}).get("command", "")) in ("up", "destroy", "refresh")
        for step in steps(job)
    )


def applied_stacks(job: dict[str, Any]) -> set[str | None]:
    """The stacks a job's applying lines name; None for a line that names none."""
    found: set[str | None] = set()
    for line in runs(job):
        for command in line.splitlines():
            if APPLY_RE.search(command):
                match = STACK_RE.search(command)
                found.add((match.group("a") or match.group("b")) if match else None)
    return found


def permissions(workflow: dict[str, Any], job: dict[str, Any]) -> Any:
    return job["permissions"] if "permissions" in job else workflow.get("permissions")


def configures_aws(job: dict[str, Any]) -> bool:
    return any(uses(step, "aws-actions/configure-aws-credentials") for step in steps(job))


def environment_name(job: dict[str, Any]) -> str | None:
    env = job.get("environment")
    if isinstance(env, dict):
        return str(env.get("name"))
    return None if env is None else str(env)


def matrix_stacks(job: dict[str, Any]) -> set[str]:
    return set((job.get("strategy") or {}).get("matrix", {}).get("stack", []))


# --- the rules ---------------------------------------------------------------------------


def nothing_applies_on_pull_requests(workflows: Workflows) -> list[str]:
    problems = []
    for name, workflow in workflows.items():
        events = triggers(workflow)
        if "pull_request_target" in events:
            problems.append(f"{name}: pull_request_target runs fork code with this repo's rights")
        if "pull_request" not in events:
            continue
        for job in jobs_run_by(workflows, workflow):
            if applies(job):
                problems.append(f"{name}: a job applies a stack on pull_request: {runs(job)}")
    return problems


def production_only_in_environment_with_plan(workflows: Workflows) -> list[str]:
    problems = []
    production_updates = 0
    for name, job_id, workflow, job in all_jobs(workflows):
        if not applies(job):
            continue
        stacks = applied_stacks(job) | matrix_stacks(job)
        if "production" not in stacks and None not in stacks:
            continue
        production_updates += 1
        where = f"{name}/{job_id}"
        if environment_name(job) != "production":
            problems.append(f"{where}: updates production outside environment: production")
        events = set(triggers(workflow))
        if events & {"pull_request", "pull_request_target", "schedule"}:
            problems.append(f"{where}: updates production on {sorted(events)}")
        for line in runs(job):
            for command in line.splitlines():
                if APPLY_RE.search(command) and not PLAN_FLAG_RE.search(command):
                    problems.append(f"{where}: `{command.strip()}` is not held to a --plan")
        planners = [
            workflow["jobs"][n] for n in _as_list(job.get("needs")) if n in workflow["jobs"]
        ]
        if not any("--save-plan" in line for planner in planners for line in runs(planner)):
            problems.append(f"{where}: needs no job that saves the plan with --save-plan")
        saved = {
            (s.get("with") or {}).get("name")
            for planner in planners
            for s in steps(planner)
            if uses(s, "actions/upload-artifact")
        }
        fetched = {
            (s.get("with") or {}).get("name")
            for s in steps(job)
            if uses(s, "actions/download-artifact")
        }
        if not saved & fetched:
            problems.append(f"{where}: does not download the plan its planning job uploaded")
    if production_updates == 0:
        problems.append("no workflow updates production")
    return problems


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def id_token_only_with_aws_credentials(workflows: Workflows) -> list[str]:
    problems = []
    for name, workflow in workflows.items():
        top = workflow.get("permissions")
        if top == "write-all" or (isinstance(top, dict) and top.get("id-token") == "write"):
            problems.append(f"{name}: id-token granted to the whole workflow")
    for name, job_id, workflow, job in all_jobs(workflows):
        perms = permissions(workflow, job)
        has_token = perms == "write-all" or (
            isinstance(perms, dict) and perms.get("id-token") == "write"
        )
        aws = configures_aws(job)
        if aws and not has_token:
            problems.append(f"{name}/{job_id}: configures AWS credentials without id-token: write")
        if has_token and not aws:
            problems.append(f"{name}/{job_id}: id-token: write but no AWS credentials")
        if any("make test" in line for line in runs(job)) and (aws or has_token):
            problems.append(f"{name}/{job_id}: make test gets cloud credentials")
    return problems


def credentials_by_oidc_only(workflows: Workflows, texts: dict[str, str]) -> list[str]:
    problems = [
        f"{name}: mentions {key}"
        for name, text in texts.items()
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "aws-access-key-id")
        if key in text
    ]
    for name, job_id, _, job in all_jobs(workflows):
        for step in steps(job):
            if uses(step, "aws-actions/configure-aws-credentials"):
                role = str((step.get("with") or {}).get("role-to-assume", ""))
                if not re.fullmatch(r"\$\{\{\s*vars\.AWS_\w+_ROLE_ARN\s*\}\}", role):
                    problems.append(f"{name}/{job_id}: role-to-assume {role!r} is not a variable")
    return problems


def one_update_per_stack_at_a_time(workflows: Workflows) -> list[str]:
    problems = []
    for name, job_id, _, job in all_jobs(workflows):
        if not applies(job):
            continue
        stacks = applied_stacks(job)
        if None in stacks or len(stacks) != 1:
            problems.append(f"{name}/{job_id}: cannot tell which one stack it updates: {stacks}")
            continue
        (stack,) = stacks
        group = job.get("concurrency")
        if not isinstance(group, dict) or group.get("group") != f"pulumi-{stack}":
            problems.append(f"{name}/{job_id}: updates {stack} outside concurrency pulumi-{stack}")
        elif group.get("cancel-in-progress") is not False:
            problems.append(f"{name}/{job_id}: an update of {stack} could be cancelled midway")
    return problems


def caches_keyed_on_the_lock(workflows: Workflows) -> list[str]:
    problems = []
    for name, job_id, _, job in all_jobs(workflows):
        if "steps" not in job:
            continue
        setups = [s for s in steps(job) if uses(s, "actions/setup-python")]
        if any("make" in line for line in runs(job)) and not setups:
            problems.append(f"{name}/{job_id}: runs make without actions/setup-python")
        for setup in setups:
            options = setup.get("with") or {}
            if options.get("cache") != "pip" or options.get("cache-dependency-path") != (
                "requirements.lock"
            ):
                problems.append(f"{name}/{job_id}: pip cache not keyed on requirements.lock")
        if any(uses(s, "pulumi/actions") for s in steps(job)):
            caches = [
                s
                for s in steps(job)
                if uses(s, "actions/cache")
                and "~/.pulumi/plugins" in str((s.get("with") or {}).get("path", ""))
            ]
            if not caches:
                problems.append(f"{name}/{job_id}: Pulumi plugins are not cached")
    return problems


def drift_is_checked_on_schedule(workflows: Workflows) -> list[str]:
    covered: set[str] = set()
    for _, _, workflow, job in all_jobs(workflows):
        if "schedule" not in triggers(workflow) or applies(job):
            continue
        for line in runs(job):
            if "preview" in line and "--refresh" in line and "--expect-no-changes" in line:
                covered |= matrix_stacks(job) | set(re.findall(r"\bSTACK=([\w-]+)", line))
    missing = eks_stacks() - covered
    return [f"no scheduled refresh-preview with --expect-no-changes of {sorted(missing)}"] * bool(
        missing
    )


def pull_requests_preview_every_eks_stack(workflows: Workflows) -> list[str]:
    problems = []
    covered: set[str] = set()
    for name, job_id, workflow, job in all_jobs(workflows):
        if "pull_request" not in triggers(workflow):
            continue
        if not any(re.search(r"\bpreview\b", line) for line in runs(job)):
            continue
        covered |= matrix_stacks(job)
        perms = permissions(workflow, job)
        if not isinstance(perms, dict) or perms.get("pull-requests") != "write":
            problems.append(f"{name}/{job_id}: cannot comment on the pull request")
        if not any(uses(s, "actions/github-script") for s in steps(job)) and not any(
            "gh pr comment" in line for line in runs(job)
        ):
            problems.append(f"{name}/{job_id}: the preview is not posted on the pull request")
        if "github.event.pull_request.head.repo.full_name == github.repository" not in str(
            job.get("if", "")
        ):
            problems.append(f"{name}/{job_id}: also runs for forks' pull requests")
        if "test" not in _as_list(job.get("needs")):
            problems.append(f"{name}/{job_id}: previews before make test passed")
    missing = eks_stacks() - covered
    if missing:
        problems.append(f"pull requests do not preview {sorted(missing)}")
    return problems


def actions_pinned(workflows: Workflows) -> list[str]:
    problems = []
    for name, job_id, _, job in all_jobs(workflows):
        for step in steps(job):
            ref = str(step.get("uses", ""))
            if ref and not ref.startswith("./"):
                version = ref.partition("@")[2]
                if not re.fullmatch(r"v\d+(\.\d+){0,2}|[0-9a-f]{40}", version):
                    problems.append(f"{name}/{job_id}: {ref} is not pinned to a version")
    return problems


def pulumi_cli_matches_sdk(workflows: Workflows) -> list[str]:
    lock = (ROOT / "requirements.lock").read_text()
    match = re.search(r"^pulumi==(\S+)$", lock, re.MULTILINE)
    assert match, "requirements.lock pins no pulumi"
    problems = []
    for name, job_id, _, job in all_jobs(workflows):
        for step in steps(job):
            if uses(step, "pulumi/actions"):
                version = str((step.get("with") or {}).get("pulumi-version", ""))
                if version != match.group(1):
                    problems.append(f"{name}/{job_id}: Pulumi CLI {version!r} != SDK {match[1]}")
    return problems


RULES: dict[str, Callable[[Workflows], list[str]]] = {
    "nothing_applies_on_pull_requests": nothing_applies_on_pull_requests,
    "production_only_in_environment_with_plan": production_only_in_environment_with_plan,
    "id_token_only_with_aws_credentials": id_token_only_with_aws_credentials,
    "one_update_per_stack_at_a_time": one_update_per_stack_at_a_time,
    "caches_keyed_on_the_lock": caches_keyed_on_the_lock,
    "drift_is_checked_on_schedule": drift_is_checked_on_schedule,
    "pull_requests_preview_every_eks_stack": pull_requests_preview_every_eks_stack,
    "actions_pinned": actions_pinned,
    "pulumi_cli_matches_sdk": pulumi_cli_matches_sdk,
}


# --- the real workflows ------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflows() -> Workflows:
    found = load_workflows()
    assert found, f"no workflows in {WORKFLOWS}"
    return found


def test_the_eks_stacks_are_the_ones_the_pipeline_knows():
    assert eks_stacks() == {"integration", "production"}


def test_on_is_read_whichever_way_yaml_spells_it(workflows: Workflows):
    """PyYAML turns `on:` into True; every workflow still has its triggers."""
    for name, workflow in workflows.items():
        assert True in workflow or "on" in workflow, name
        assert triggers(workflow), name
    assert triggers({True: {"push": None}}) == {"push": None}
    assert triggers({"on": ["push", "pull_request"]}) == {"push": None, "pull_request": None}


@pytest.mark.parametrize("rule", list(RULES))
def test_rule_holds(workflows: Workflows, rule: str):
    assert RULES[rule](workflows) == []


def test_no_static_aws_keys(workflows: Workflows):
    texts = {path.name: path.read_text() for path in WORKFLOWS.glob("*.y*ml")}
    assert credentials_by_oidc_only(workflows, texts) == []


def test_the_four_flows_exist(workflows: Workflows):
    events = {name: set(triggers(w)) for name, w in workflows.items()}
    assert {"pull_request"} in events.values()
    pushes = [triggers(w)["push"] for w in workflows.values() if "push" in triggers(w)]
    assert {"branches": ["main"]} in pushes
    assert any("tags" in p for p in pushes)
    assert any("schedule" in e for e in events.values())


def test_integration_is_deployed_on_merge_without_prompt(workflows: Workflows):
    (job,) = [
        job for _, _, workflow, job in all_jobs(workflows) if applied_stacks(job) == {"integration"}
    ]
    (command,) = [line for line in runs(job) if APPLY_RE.search(line)]
    assert "--yes" in command and "--skip-preview" in command and "--non-interactive" in command


# --- each rule can fail ------------------------------------------------------------------


def _job(w: Workflows, name: str, job_id: str) -> dict[str, Any]:
    job: dict[str, Any] = w[name]["jobs"][job_id]
    return job


def _step(w: Workflows, name: str, job_id: str, action: str) -> dict[str, Any]:
    return next(s for s in steps(_job(w, name, job_id)) if uses(s, action))


def _add_run(w: Workflows, name: str, job_id: str, line: str) -> None:
    _job(w, name, job_id)["steps"].append({"run": line})


BREAKS: dict[str, tuple[str, Callable[[Workflows], object]]] = {
    "up on a pull request": (
        "nothing_applies_on_pull_requests",
        lambda w: _add_run(w, "pull-request.yml", "preview", "make up STACK=integration"),
    ),
    "refresh in the called test workflow": (
        "nothing_applies_on_pull_requests",
        lambda w: _add_run(w, "test.yml", "make-test", "make refresh STACK=integration"),
    ),
    "pull_request_target": (
        "nothing_applies_on_pull_requests",
        lambda w: w["drift.yml"][True].update({"pull_request_target": None}),
    ),
    "production outside its environment": (
        "production_only_in_environment_with_plan",
        lambda w: _job(w, "production.yml", "deploy").pop("environment"),
    ),
    "production up without --plan": (
        "production_only_in_environment_with_plan",
        lambda w: _add_run(w, "production.yml", "deploy", "make up STACK=production ARGS=--yes"),
    ),
    "production up on main": (
        "production_only_in_environment_with_plan",
        lambda w: _add_run(w, "integration.yml", "up-integration", "make up STACK=production"),
    ),
    "plan not downloaded": (
        "production_only_in_environment_with_plan",
        lambda w: _step(w, "production.yml", "deploy", "actions/download-artifact")["with"].update(
            name="other"
        ),
    ),
    "id-token for make test": (
        "id_token_only_with_aws_credentials",
        lambda w: w["test.yml"].update(permissions={"contents": "read", "id-token": "write"}),
    ),
    "AWS credentials without id-token": (
        "id_token_only_with_aws_credentials",
        lambda w: _job(w, "drift.yml", "drift")["permissions"].pop("id-token"),
    ),
    "no concurrency group": (
        "one_update_per_stack_at_a_time",
        lambda w: _job(w, "integration.yml", "up-integration").pop("concurrency"),
    ),
    "deploy cancelled in progress": (
        "one_update_per_stack_at_a_time",
        lambda w: _job(w, "production.yml", "deploy")["concurrency"].update(
            {"cancel-in-progress": True}
        ),
    ),
    "group of another stack": (
        "one_update_per_stack_at_a_time",
        lambda w: _job(w, "integration.yml", "up-integration")["concurrency"].update(
            group="pulumi-production"
        ),
    ),
    "pip cache keyed on requirements.txt": (
        "caches_keyed_on_the_lock",
        lambda w: _step(w, "test.yml", "make-test", "actions/setup-python")["with"].update(
            {"cache-dependency-path": "requirements.txt"}
        ),
    ),
    "no plugin cache": (
        "caches_keyed_on_the_lock",
        lambda w: _job(w, "drift.yml", "drift").update(
            steps=[s for s in steps(_job(w, "drift.yml", "drift")) if not uses(s, "actions/cache")]
        ),
    ),
    "drift not scheduled": (
        "drift_is_checked_on_schedule",
        lambda w: w["drift.yml"][True].pop("schedule"),
    ),
    "drift without --expect-no-changes": (
        "drift_is_checked_on_schedule",
        lambda w: [
            s.update(run=s["run"].replace("--expect-no-changes", ""))
            for s in steps(_job(w, "drift.yml", "drift"))
            if "run" in s
        ],
    ),
    "previews for forks": (
        "pull_requests_preview_every_eks_stack",
        lambda w: _job(w, "pull-request.yml", "preview").pop("if"),
    ),
    "production not previewed": (
        "pull_requests_preview_every_eks_stack",
        lambda w: _job(w, "pull-request.yml", "preview")["strategy"]["matrix"].update(
            stack=["integration"]
        ),
    ),
    "action on a branch": (
        "actions_pinned",
        lambda w: _step(w, "test.yml", "make-test", "actions/checkout").update(
            uses="actions/checkout@main"
        ),
    ),
    "another Pulumi CLI": (
        "pulumi_cli_matches_sdk",
        lambda w: _step(w, "drift.yml", "drift", "pulumi/actions")["with"].update(
            {"pulumi-version": "latest"}
        ),
    ),
}


def test_every_rule_has_a_break():
    assert {rule for rule, _ in BREAKS.values()} == set(RULES)


@pytest.mark.parametrize("case", list(BREAKS))
def test_a_broken_workflow_is_caught(workflows: Workflows, case: str):
    rule, damage = BREAKS[case]
    broken = copy.deepcopy(workflows)
    damage(broken)
    assert RULES[rule](broken), f"{rule} did not notice: {case}"


def test_static_keys_are_caught(workflows: Workflows):
    texts = {"x.yml": "env:\n  AWS_ACCESS_KEY_ID: ${{ secrets.KEY }}\n"}
    assert credentials_by_oidc_only(workflows, texts)
    broken = copy.deepcopy(workflows)
    _step(broken, "drift.yml", "drift", "aws-actions/configure-aws-credentials")["with"][
        "role-to-assume"
    ] = "arn:aws:iam::123456789012:role/x"
    assert credentials_by_oidc_only(broken, {})
