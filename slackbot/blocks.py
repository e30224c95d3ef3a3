"""Block Kit layouts with buttons: approval requests, the offer to refresh after a crash,
drift reports and the offer to roll back after a failed post-deploy canary."""

from __future__ import annotations

from typing import Any

ACTION_APPROVE = "airflow_approve"
ACTION_CANCEL = "airflow_cancel"
ACTION_REFRESH = "airflow_refresh"
ACTION_DRIFT_REFRESH = "airflow_drift_refresh"
ACTION_DRIFT_UP = "airflow_drift_up"
ACTION_ROLLBACK = "airflow_rollback"

Blocks = list[dict[str, Any]]


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text[:2900]}}


def _button(action_id: str, label: str, value: str, style: str | None = None) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": label},
        "value": value,
    }
    if style is not None:
        button["style"] = style
    return button


def approval_blocks(text: str, approval_id: str) -> Blocks:
    return [
        _section(text),
        {
            "type": "actions",
            "block_id": "airflow_approval",
            "elements": [
                _button(ACTION_APPROVE, "Approve", approval_id, "primary"),
                _button(ACTION_CANCEL, "Cancel", approval_id, "danger"),
            ],
        },
    ]


def refresh_offer_blocks(text: str, stack: str) -> Blocks:
    return [
        _section(text),
        {
            "type": "actions",
            "block_id": "airflow_recovery",
            "elements": [_button(ACTION_REFRESH, f"Refresh {stack}", stack, "primary")],
        },
    ]


def drift_blocks(text: str, stack: str) -> Blocks:
    """A drift report: refresh (accept the cloud's state) or up (restore the program's)."""
    return [
        _section(text),
        {
            "type": "actions",
            "block_id": "airflow_drift",
            "elements": [
                _button(ACTION_DRIFT_REFRESH, f"Refresh {stack}", stack),
                _button(ACTION_DRIFT_UP, f"Up {stack}", stack, "primary"),
            ],
        },
    ]


def rollback_offer_blocks(text: str, stack: str) -> Blocks:
    """A failed canary: roll the stack back (a `rollback <stack>` request, approvals as usual)."""
    return [
        _section(text),
        {
            "type": "actions",
            "block_id": "airflow_rollback",
            "elements": [_button(ACTION_ROLLBACK, f"Roll back {stack}", stack, "danger")],
        },
    ]


def plain_blocks(text: str) -> Blocks:
    """Replaces a message's buttons once they have been used."""
    return [_section(text)]
