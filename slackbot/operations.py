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
    ROLLBACK = "rollback"
    """An `up` with the stack's config set to the release before the last upgrade."""

    @property
    def changes_stack(self) -> bool:
        """True for operations that write to the stack's state."""
        return self in (Operation.UP, Operation.REFRESH, Operation.DESTROY, Operation.ROLLBACK)

    @property
    def deploys(self) -> bool:
        """True for operations that run `pulumi up` (and with it the post-deploy canary)."""
        return self in (Operation.UP, Operation.ROLLBACK)


STACK_OPERATIONS: tuple[Operation, ...] = tuple(Operation)
