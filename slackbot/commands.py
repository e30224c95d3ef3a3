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
    """A subcommand aimed at one known stack."""

    operation: Operation
    stack: str


Command = HelpRequest | StackCommand


def parse_command(text: str, stacks: Sequence[str]) -> Command:
    """Turn the slash command's text into a command, explaining anything it cannot accept."""
    words = text.split()
    if not words or words[0].lower() == "help":
        return HelpRequest()
    name = words[0].lower()
    try:
        operation = Operation(name)
    except ValueError:
        return HelpRequest(problem=f"Unknown subcommand `{escape(words[0], 40)}`.")
    available = _stack_list(stacks)
    if len(words) < 2:
        return HelpRequest(problem=f"`{operation}` needs a stack: {available}.")
    if len(words) > 2:
        return HelpRequest(problem=f"`{operation}` takes exactly one stack: {available}.")
    stack = words[1]
    if stack not in stacks:
        return HelpRequest(problem=f"Unknown stack `{escape(stack, 40)}`. Stacks: {available}.")
    return StackCommand(operation=operation, stack=stack)


def help_text(command: str, stacks: Sequence[str]) -> str:
    """The reply to `help`: every subcommand and every stack."""
    lines = [
        f"*Usage:* `{command} <subcommand> <stack>`",
        "• `preview <stack>`: show what an update would change",
        "• `up <stack>`: apply the program to the stack",
        "• `refresh <stack>`: reconcile the stack's state with the cloud",
        "• `destroy <stack>`: delete every resource of the stack",
        "• `status <stack>`: last update, resource counts and outputs",
        "• `help`: this message",
        f"*Stacks:* {_stack_list(stacks)}",
    ]
    return "\n".join(lines)


def _stack_list(stacks: Sequence[str]) -> str:
    return ", ".join(f"`{name}`" for name in stacks) if stacks else "(none found)"
