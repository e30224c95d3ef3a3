"""The post-deploy canary's report in a failed deploy, and the message the bot posts about it.

Every `up` runs a canary Job that triggers the platform's smoke DAG; when it fails, `up` fails
and the error text carries the canary's report line (`airflow-platform canary: {json}`).
`canary.report` owns that format: `parse_report(text)` finds the line in any text (the
CLI's output, an error diagnostic) and `describe(report)` says what happened (DAG run state,
run id, failed tasks, log excerpt).
The text is posted through the poster, which masks every known secret in it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from canary.report import describe, parse_report
from slackbot.text import escape

MAX_DESCRIPTION = 2000
"""Characters of the canary's description posted (a Slack section holds 3,000)."""


@dataclass(frozen=True)
class CanaryFailure:
    """What the canary reported about a failed deploy."""

    description: str
    outcome: str
    """`failed`, `timeout` or `error` (`canary.report.OUTCOMES`)."""
    state: str | None = None
    """The smoke DAG run's last state (`failed`, `running`, ...), when the report has one."""
    run_id: str | None = None


def find_canary_failure(texts: Iterable[str]) -> CanaryFailure | None:
    """The canary's report in the first of `texts` that carries one, unless it says success."""
    for text in texts:
        report = parse_report(text) if text else None
        if report is None:
            continue
        if report.ok:
            return None
        return CanaryFailure(
            description=describe(report),
            outcome=report.outcome,
            state=report.state,
            run_id=report.run_id,
        )
    return None


def render_canary_failure(operation: str, stack: str, failure: CanaryFailure) -> str:
    """The post under a failed `up`/`rollback`: what the canary saw and the way back."""
    state = escape(failure.state or "unknown", 40)
    if failure.outcome == "timeout":
        verdict = f"The smoke DAG run did not finish in time (last state `{state}`)."
    elif failure.outcome == "error":
        verdict = "The canary could not run the smoke DAG."
    else:
        verdict = f"The smoke DAG run ended `{state}`."
    description = escape(failure.description, MAX_DESCRIPTION).replace("```", "` ` `")
    return (
        f":rotating_light: *The post-deploy canary failed* after `{operation} {stack}`. "
        f"{verdict}\n```{description}```\n"
        f"*Roll back* runs `rollback {stack}`: an `up` of the release before the last upgrade. "
        "It follows the usual access and approval rules."
    )
