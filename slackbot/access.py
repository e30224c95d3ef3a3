"""Who may run what, where, and which operations need a second person's approval.

The access file is YAML; its path comes from `SLACKBOT_ACCESS_FILE`. Every decision here is a
plain function of the loaded file so that it can be tested directly.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from slackbot.operations import Operation

WILDCARD = "*"
PROTECTED_STACK = "production"
"""The stack whose `up`/`rollback`/`destroy` need approval and whose `destroy` is off unless
configured."""
APPROVABLE = frozenset({Operation.UP, Operation.REFRESH, Operation.DESTROY, Operation.ROLLBACK})

UserId = Annotated[str, StringConstraints(pattern=r"^(\*|[UW][A-Z0-9]{2,})$")]
ChannelId = Annotated[str, StringConstraints(pattern=r"^(\*|[CGD][A-Z0-9]{2,})$")]
ApproverId = Annotated[str, StringConstraints(pattern=r"^[UW][A-Z0-9]{2,}$")]


class AccessError(Exception):
    """The access file is missing, unreadable or invalid; the message lists every problem."""


class AccessRule(BaseModel):
    """Users (ids) in channels (ids) may run these subcommands. `*` matches anyone/anywhere."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: list[UserId] = Field(min_length=1)
    channels: list[ChannelId] = Field(min_length=1)
    commands: list[Operation] = Field(min_length=1)

    def matches(self, user: str, channel: str, operation: Operation) -> bool:
        """True when this rule lets `user` run `operation` from `channel`.

        `up` implies `rollback`: a rollback is an `up` of the release before the last upgrade.
        """
        granted = operation in self.commands or (
            operation is Operation.ROLLBACK and Operation.UP in self.commands
        )
        return _listed(user, self.users) and _listed(channel, self.channels) and granted


class StackAccess(BaseModel):
    """The rules of one stack."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[AccessRule] = Field(default_factory=list)
    approvers: list[ApproverId] = Field(
        default_factory=list, description="Users who may approve a protected operation."
    )
    require_approval: list[Operation] | None = Field(
        default=None,
        description="Defaults to [up, rollback, destroy] on production, [] elsewhere; "
        "`rollback` always needs approval where `up` does.",
    )
    destroy_enabled: bool | None = Field(
        default=None, description="Defaults to false on production, true elsewhere."
    )
    branch_deploys: bool = Field(
        default=False,
        description="`up`/`preview` with `branch=<name>` may deploy a branch's DAGs "
        "(never on production, whatever this says).",
    )
    channel: ChannelId | None = Field(
        default=None, description="Where scheduled reports (drift) about the stack go."
    )
    drift_check: bool = Field(default=True, description="Include the stack in drift checks.")


class AccessConfig(BaseModel):
    """The whole access file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    approval_window_minutes: float = Field(default=30, gt=0, le=24 * 60)
    drift_interval_hours: float = Field(
        default=24, ge=0, le=24 * 31, description="How often to check for drift; 0: never."
    )
    stacks: dict[str, StackAccess] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _approvals_are_possible(self) -> AccessConfig:
        problems: list[str] = []
        for name in self.stacks:
            needed = self.operations_needing_approval(name)
            invalid = needed - APPROVABLE
            if invalid:
                listed = ", ".join(sorted(op.value for op in invalid))
                problems.append(f"stacks.{name}.require_approval: cannot include {listed}")
            if needed and not self.stacks[name].approvers:
                problems.append(f"stacks.{name}.approvers: approval is required but none listed")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def approval_window_seconds(self) -> float:
        return self.approval_window_minutes * 60

    def operations_needing_approval(self, stack: str) -> set[Operation]:
        """The operations on `stack` that run only after another person approves them.

        A rollback deploys as much as an `up` does, so it follows the same rule.
        """
        rules = self.stacks.get(stack)
        if rules is not None and rules.require_approval is not None:
            needed = set(rules.require_approval)
        elif stack == PROTECTED_STACK:
            needed = {Operation.UP, Operation.DESTROY}
        else:
            needed = set()
        if Operation.UP in needed:
            needed.add(Operation.ROLLBACK)
        return needed

    def destroy_enabled(self, stack: str) -> bool:
        rules = self.stacks.get(stack)
        if rules is not None and rules.destroy_enabled is not None:
            return rules.destroy_enabled
        return stack != PROTECTED_STACK


@dataclass(frozen=True)
class Decision:
    """An answer to "may this happen?" with the reason shown to the user when it may not."""

    allowed: bool
    reason: str = ""


def authorise(
    config: AccessConfig, user: str, channel: str, stack: str, operation: Operation
) -> Decision:
    """May `user` run `operation` on `stack` from `channel`?"""
    if operation is Operation.DESTROY and not config.destroy_enabled(stack):
        return Decision(False, f"`destroy` is disabled for `{stack}`.")
    rules = config.stacks.get(stack)
    if rules is None or not any(rule.matches(user, channel, operation) for rule in rules.allow):
        return Decision(False, f"You may not run `{operation}` on `{stack}` from this channel.")
    return Decision(True)


def branch_deploys_allowed(config: AccessConfig, stack: str) -> bool:
    """Branch deploys need `branch_deploys: true`; production never allows them."""
    if stack == PROTECTED_STACK:
        return False
    rules = config.stacks.get(stack)
    return rules is not None and rules.branch_deploys


def may_cancel(config: AccessConfig, user: str, requester: str, stack: str) -> bool:
    """The requester of an operation or an approver of its stack may cancel it."""
    rules = config.stacks.get(stack)
    return user == requester or (rules is not None and user in rules.approvers)


def report_channel(config: AccessConfig, stack: str) -> str | None:
    """The stack's channel: `channel`, else the first channel named in its rules."""
    rules = config.stacks.get(stack)
    if rules is None:
        return None
    if rules.channel is not None and rules.channel != WILDCARD:
        return rules.channel
    for rule in rules.allow:
        for channel in rule.channels:
            if channel != WILDCARD:
                return channel
    return None


def needs_approval(config: AccessConfig, stack: str, operation: Operation) -> bool:
    return operation in config.operations_needing_approval(stack)


def may_approve(
    config: AccessConfig,
    approver: str,
    requester: str,
    stack: str,
    requested_at: float,
    now: float,
) -> Decision:
    """May `approver` approve `requester`'s operation on `stack` at time `now`?"""
    if approver == requester:
        return Decision(False, "You cannot approve your own request.")
    rules = config.stacks.get(stack)
    if rules is None or approver not in rules.approvers:
        return Decision(False, f"You are not an approver for `{stack}`.")
    if now - requested_at > config.approval_window_seconds:
        return Decision(False, "This approval request has expired; ask for a new preview.")
    return Decision(True)


def load_access_config(path: Path) -> AccessConfig:
    """Read and validate the access file, raising one `AccessError` listing every problem."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise AccessError(f"{path}: cannot read the access file ({error.strerror})") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise AccessError(f"{path}: not valid YAML{where}") from None
    try:
        return AccessConfig.model_validate(raw if raw is not None else {})
    except ValidationError as error:
        problems = [
            f"{path}: {'.'.join(str(part) for part in item['loc']) or '(top level)'}: {item['msg']}"
            for item in error.errors(include_input=False, include_url=False)
        ]
        raise AccessError("\n".join(problems)) from None


def _listed(value: str, allowed: Iterable[str]) -> bool:
    entries = set(allowed)
    return value in entries or WILDCARD in entries
