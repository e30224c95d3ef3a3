"""Parsing the text of `/airflow <subcommand> <stack>` into a typed command."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from slackbot.operations import Operation
from slackbot.text import escape


@dataclass(frozen=True)
class HelpRequest:
    """`help`, an empty command, or a command that could not be understood."""

    problem: str | None = None


@dataclass(frozen=True)
class StackCommand:
    """A subcommand aimed at one known stack; `branch` only with `preview` and `up`."""

    operation: Operation
    stack: str
    branch: str | None = None


@dataclass(frozen=True)
class CancelCommand:
    """`cancel <stack>`: stop the operation running on the stack."""

    stack: str


@dataclass(frozen=True)
class DriftCommand:
    """`drift <stack>`: a refresh-preview that reports what changed outside Pulumi."""

    stack: str


Command = HelpRequest | StackCommand | CancelCommand | DriftCommand

BRANCH_OPERATIONS = (Operation.PREVIEW, Operation.UP)
_CONTROL = ("cancel", "drift")


def parse_command(text: str, stacks: Sequence[str]) -> Command:
    """Turn the slash command's text into a command, explaining anything it cannot accept."""
    words = text.split()
    if not words or words[0].lower() == "help":
        return HelpRequest()
    name = words[0].lower()
    available = _stack_list(stacks)
    if name in _CONTROL:
        if len(words) != 2:
            return HelpRequest(problem=f"`{name}` takes exactly one stack: {available}.")
        if words[1] not in stacks:
            return _unknown_stack(words[1], available)
        return CancelCommand(words[1]) if name == "cancel" else DriftCommand(words[1])
    try:
        operation = Operation(name)
    except ValueError:
        return HelpRequest(problem=f"Unknown subcommand `{escape(words[0], 40)}`.")
    if len(words) < 2:
        return HelpRequest(problem=f"`{operation}` needs a stack: {available}.")
    branch: str | None = None
    options = words[2:]
    if len(options) == 1 and options[0].startswith("branch="):
        if operation not in BRANCH_OPERATIONS:
            return HelpRequest(problem=f"`branch=` goes with `preview` and `up`, not `{name}`.")
        branch = options[0].removeprefix("branch=")
        if not branch:
            return HelpRequest(problem="`branch=` needs a branch name.")
    elif options:
        return HelpRequest(problem=f"`{operation}` takes exactly one stack: {available}.")
    stack = words[1]
    if stack not in stacks:
        return _unknown_stack(stack, available)
    return StackCommand(operation=operation, stack=stack, branch=branch)


def _unknown_stack(stack: str, available: str) -> HelpRequest:
    return HelpRequest(problem=f"Unknown stack `{escape(stack, 40)}`. Stacks: {available}.")


def help_text(command: str, stacks: Sequence[str]) -> str:
    """The reply to `help`: every subcommand and every stack."""
    lines = [
        f"*Usage:* `{command} <subcommand> <stack>`",
        "• `preview <stack>`: show what an update would change",
        "• `up <stack>`: apply the program to the stack",
        "• `preview|up <stack> branch=<name>`: deploy a branch's DAGs "
        "(stacks that allow it; `branch=main` returns to the default)",
        "• `refresh <stack>`: reconcile the stack's state with the cloud",
        "• `destroy <stack>`: delete every resource of the stack",
        "• `rollback <stack>`: deploy the release before the last upgrade again "
        "(approvals as for `up`)",
        "• `status <stack>`: last update, firing alerts, resource counts, outputs and DAG branch",
        "• `cancel <stack>`: stop the running operation (its requester or an approver)",
        "• `drift <stack>`: check whether the cloud has drifted from the stack's state",
        "• `help`: this message",
        f"*Stacks:* {_stack_list(stacks)}",
    ]
    return "\n".join(lines)


def _stack_list(stacks: Sequence[str]) -> str:
    return ", ".join(f"`{name}`" for name in stacks) if stacks else "(none found)"
