"""The CI side of a deploy: previews that are posted, and updates held to a reviewed plan.

    python -m deploy.ci preview STACK [--save-plan FILE] [--comment FILE]
    python -m deploy.ci apply STACK --plan FILE

Both run `python -m deploy` (what `make preview` / `make up` run: the stack's shared
backend, the policy pack), show its output as it comes, and add a summary to the job's
page (`$GITHUB_STEP_SUMMARY`).

`apply` runs `up --plan FILE`: Pulumi refuses any step the saved preview did not contain
("violates plan"). Then the plan no longer applies (the stack or the cloud changed since it
was made, or pulumi/pulumi#13765's spurious violations with component providers such as
pulumi-eks): the run says so, runs a fresh preview so the reviewer sees what changed, and
fails with EXIT_STALE_PLAN. Nothing is updated beyond what the plan allowed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

EXIT_STALE_PLAN = 3
PLAN_VIOLATION = re.compile(r"violates plan|no plan for resource", re.IGNORECASE)
"""What Pulumi prints when an update leaves its plan (pulumi/pulumi
`pkg/resource/deploy`: "resource <urn> violates plan: ...")."""
NON_INTERACTIVE = ("--non-interactive", "--color", "never")
SUMMARY_LIMIT = 60_000
"""Characters of output kept in a summary or comment (GitHub caps comments at 65,536)."""
COMMENT_MARKER = "<!-- pulumi-preview:{stack} -->"


@dataclass(frozen=True)
class Result:
    code: int
    output: str


Runner = Callable[[Sequence[str]], Result]


def tee(argv: Sequence[str]) -> Result:
    """Run `argv`, echoing its combined output as it comes, and keep it."""
    lines: list[str] = []
    with subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
    return Result(proc.returncode, "".join(lines))


def deploy_argv(verb: str, stack: str, *flags: str) -> list[str]:
    return [sys.executable, "-m", "deploy", verb, stack, *flags, *NON_INTERACTIVE]


def preview_argv(stack: str, save_plan: str | None = None) -> list[str]:
    flags = ["--diff"]
    if save_plan:
        flags += ["--save-plan", save_plan]
    return deploy_argv("preview", stack, *flags)


def up_argv(stack: str, plan: str) -> list[str]:
    """`up` held to `plan`; no second preview, no prompt."""
    return deploy_argv("up", stack, "--plan", plan, "--yes", "--skip-preview")


def is_plan_violation(output: str) -> bool:
    return PLAN_VIOLATION.search(output) is not None


def _clip(text: str) -> str:
    if len(text) <= SUMMARY_LIMIT:
        return text
    return "… (cut; the job log has all of it)\n" + text[-SUMMARY_LIMIT:]


def _block(title: str, output: str, *, open_: bool = False) -> str:
    fence = "````"
    return (
        f"<details{' open' if open_ else ''}><summary>{title}</summary>\n\n"
        f"{fence}text\n{_clip(output).rstrip()}\n{fence}\n</details>\n"
    )


def preview_markdown(stack: str, result: Result, sha: str = "") -> str:
    """The summary of a preview: a PR comment (found again by its marker) and step summary."""
    status = "succeeded" if result.code == 0 else f"**failed** (exit {result.code})"
    at = f" at `{sha[:12]}`" if sha else ""
    return (
        f"{COMMENT_MARKER.format(stack=stack)}\n"
        f"### `pulumi preview` of **{stack}**{at}: {status}\n\n"
        + _block("output", result.output, open_=result.code != 0)
    )


def stale_plan_message(stack: str, plan: str) -> str:
    return (
        f"The update of {stack} stopped: it no longer matches the reviewed plan ({plan}). The"
        " stack or the cloud changed since the plan was made, or Pulumi reported a spurious"
        " violation (pulumi/pulumi#13765, component providers such as pulumi-eks). Nothing"
        " outside the plan was changed. A fresh preview follows: review it, then re-run the"
        " workflow to make and approve a new plan (README: Deploying from CI)."
    )


def _summarize(markdown: str, environ: Mapping[str, str]) -> None:
    path = environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as summary:
            summary.write(markdown + "\n")


def preview(
    stack: str,
    *,
    save_plan: str | None = None,
    comment: Path | None = None,
    run: Runner = tee,
    environ: Mapping[str, str] = os.environ,
) -> int:
    result = run(preview_argv(stack, save_plan))
    markdown = preview_markdown(stack, result, environ.get("GITHUB_SHA", ""))
    _summarize(markdown, environ)
    if comment is not None:
        comment.write_text(markdown, encoding="utf-8")
    if result.code == 0 and save_plan and not Path(save_plan).is_file():
        print(f"::error::preview of {stack} succeeded but wrote no plan to {save_plan}")
        return 1
    return result.code


def apply(
    stack: str,
    plan: str,
    *,
    run: Runner = tee,
    environ: Mapping[str, str] = os.environ,
) -> int:
    """`up --plan`; on a plan violation, a clear failure and a fresh preview."""
    if not Path(plan).is_file():
        print(f"::error::no plan file {plan}: the update runs only with the previewed plan")
        return 1
    result = run(up_argv(stack, plan))
    if result.code == 0:
        _summarize(f"### `pulumi up` of **{stack}** with the reviewed plan: done\n", environ)
        return 0
    if not is_plan_violation(result.output):
        _summarize(
            f"### `pulumi up` of **{stack}**: **failed** (exit {result.code})\n\n"
            + _block("output", result.output, open_=True),
            environ,
        )
        return result.code
    message = stale_plan_message(stack, plan)
    print(f"::error title=Plan no longer applies::{message}")
    fresh = run(preview_argv(stack))
    _summarize(
        f"### `pulumi up` of **{stack}**: the reviewed plan no longer applies\n\n{message}\n\n"
        + _block("the update's output", result.output)
        + _block("fresh preview", fresh.output, open_=True),
        environ,
    )
    return EXIT_STALE_PLAN


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.ci", description=__doc__.split("\n")[0])
    verbs = parser.add_subparsers(dest="verb", required=True)
    p = verbs.add_parser("preview", help="preview a stack; optionally save the plan")
    p.add_argument("stack")
    p.add_argument("--save-plan", metavar="FILE")
    p.add_argument("--comment", type=Path, metavar="FILE", help="write the PR comment here")
    a = verbs.add_parser("apply", help="update a stack, held to a saved plan")
    a.add_argument("stack")
    a.add_argument("--plan", required=True, metavar="FILE")
    args = parser.parse_args(argv)
    if args.verb == "preview":
        return preview(args.stack, save_plan=args.save_plan, comment=args.comment)
    return apply(args.stack, args.plan)


if __name__ == "__main__":
    raise SystemExit(main())
