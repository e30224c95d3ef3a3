"""The stack's `secure:` config values, read as Pulumi secrets (never as plain strings)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pulumi

from components.settings import PROJECT, Settings


@dataclass(frozen=True)
class StackSecrets:
    """Secret config values as secret Outputs; absent ones are None."""

    git_username: pulumi.Output[str] | None = None
    git_token: pulumi.Output[str] | None = None
    git_ssh_key: pulumi.Output[str] | None = None
    admin_password: pulumi.Output[str] | None = None
    fernet_key: pulumi.Output[str] | None = None
    api_secret_key: pulumi.Output[str] | None = None
    jwt_secret: pulumi.Output[str] | None = None
    connections: pulumi.Output[dict[str, Any]] | None = None
    variables: pulumi.Output[dict[str, Any]] | None = None
    alerts_webhook_url: pulumi.Output[str] | None = None

    @classmethod
    def load(cls, settings: Settings) -> StackSecrets:
        config = pulumi.Config(PROJECT)

        def get(key: str) -> pulumi.Output[str] | None:
            return config.get_secret(key) if key in settings.secrets_set else None

        def get_map(key: str) -> pulumi.Output[dict[str, Any]] | None:
            value = get(key)
            return None if value is None else pulumi.Output.secret(value.apply(json.loads))

        return cls(
            git_username=get("gitSyncUsername"),
            git_token=get("gitSyncToken"),
            git_ssh_key=get("gitSyncSshKey"),
            admin_password=get("adminPassword"),
            fernet_key=get("fernetKey"),
            api_secret_key=get("apiSecretKey"),
            jwt_secret=get("jwtSecret"),
            connections=get_map("connections"),
            variables=get_map("variables"),
            alerts_webhook_url=get("alertsSlackWebhookUrl"),
        )
