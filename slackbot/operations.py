"""The subcommands the bot understands and the Pulumi operations behind them."""

from __future__ import annotations

from enum import StrEnum


class Operation(StrEnum):
    """A subcommand that targets one stack."""

    PREVIEW = "preview"
    UP = "up"
    REFRESH = "refresh"
    DESTROY = "destroy"
    STATUS = "status"

    @property
    def changes_stack(self) -> bool:
        """True for operations that write to the stack's state."""
        return self in (Operation.UP, Operation.REFRESH, Operation.DESTROY)


STACK_OPERATIONS: tuple[Operation, ...] = tuple(Operation)
