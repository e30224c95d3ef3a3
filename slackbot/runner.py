"""Running Pulumi operations on the project's stacks through the Automation API.

`StackRunner` is the small interface the bot depends on; `PulumiStackRunner` is the real one:
a `LocalWorkspace` over the project directory (its `Pulumi.yaml` and `Pulumi.<stack>.yaml`),
`select_stack`, then preview/up/refresh/destroy with engine events streamed to a callback,
colour off and secrets never shown. A rollback is an `up` after the keys `deploy.rollback`
computes from the stack's outputs and state have been set on the stack.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from pulumi import automation as auto

from components.settings import PROJECT
from deploy.backend import Backend, BackendError, backend_for, ensure_local_state
from deploy.project_config import ConfigFileError, load_yaml_file
from deploy.rollback import RollbackError, rollback_config
from slackbot.operations import Operation
from slackbot.text import strip_colors

logger = logging.getLogger(__name__)

EventSink = Callable[[auto.EngineEvent], None]

POLICY_PACK_FILE = Path("policy") / "PulumiPolicy.yaml"
_FINGERPRINT_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "tests"})


@dataclass(frozen=True)
class StackOutput:
    """One stack output; the value of a secret output is never kept here."""

    name: str
    value: Any
    secret: bool


@dataclass(frozen=True)
class RunRequest:
    """What to run. `preview_of` says which operation a PREVIEW previews."""

    stack: str
    operation: Operation
    preview_of: Operation = Operation.UP
    save_plan: Path | None = None
    use_plan: Path | None = None
    clear_pending_creates: bool = False
    message: str | None = None
    refresh: bool = False
    """Refresh the state from the cloud before previewing (a drift check)."""


@dataclass(frozen=True)
class RunResult:
    """What the engine reported once an operation finished without error."""

    changes: Mapping[str, int]
    outputs: tuple[StackOutput, ...] = ()
    secret_values: frozenset[str] = field(default=frozenset(), repr=False)


@dataclass(frozen=True)
class UpdateRecord:
    """The stack's most recent operation as recorded by the backend."""

    kind: str
    result: str
    started: datetime
    ended: datetime | None
    version: int | None
    message: str
    author: str | None
    changes: Mapping[str, int]


@dataclass(frozen=True)
class StackStatus:
    stack: str
    last_update: UpdateRecord | None
    outputs: tuple[StackOutput, ...]
    secret_values: frozenset[str] = field(default=frozenset(), repr=False)


@dataclass(frozen=True)
class ConfigEntry:
    """One stack config value; secret values are decrypted and must never be shown."""

    value: str = field(repr=False)
    secret: bool


class RunnerError(Exception):
    """An operation could not run or failed. The message is written by us and safe to show."""


class StackBusyError(RunnerError):
    """The backend holds a lock on the stack: another update (perhaps from a laptop) is running."""


class StackMissingError(RunnerError):
    """The stack does not exist in the backend."""


class OperationFailedError(RunnerError):
    """The engine ran and reported failure; `detail` is the CLI's first error line, if any.

    `output` is the CLI's whole output (colours removed). It is never shown as it is: the bot
    only looks in it for reports it knows (the post-deploy canary's), and masks what it posts.
    """

    def __init__(self, message: str, detail: str | None = None, output: str = "") -> None:
        super().__init__(message)
        self.detail = detail
        self.output = output


class NothingToRollBackError(RunnerError):
    """The stack's outputs record no upgrade to roll back; the message says why."""


class StackRunner(Protocol):
    """What the bot needs from Pulumi."""

    @property
    def supports_plans(self) -> bool:
        """True when `up` can be constrained to a plan saved by an earlier preview."""
        ...

    def run(self, request: RunRequest, on_event: EventSink) -> RunResult: ...

    def status(self, stack: str) -> StackStatus: ...

    def fingerprint(self, stack: str) -> str:
        """A value that changes whenever the stack's state or the program changes."""
        ...

    def config(self, stack: str) -> Mapping[str, ConfigEntry]:
        """The stack's config by full key (`project:key`), secrets decrypted."""
        ...

    def set_config(self, stack: str, values: Mapping[str, str | None]) -> None:
        """Set plain config values on the stack; None removes the key."""
        ...

    def rollback_config(self, stack: str) -> dict[str, str]:
        """The config keys that make the next `up` roll the stack back to its last release.

        Raises `NothingToRollBackError` when the stack's outputs record no upgrade.
        """
        ...

    def cancel(self, stack: str) -> None:
        """Ask the backend to cancel the operation running on the stack."""
        ...


def stack_target(project_dir: Path, stack: str) -> str:
    """`minikube` or `eks`, as the stack file says (files without a target count as local)."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.is_file():
        return "minikube"
    try:
        config = (load_yaml_file(path) or {}).get("config") or {}
    except ConfigFileError as err:
        raise RunnerError(str(err)) from None
    return str(config.get(f"{PROJECT}:target", "minikube"))


def sdk_supports_plans() -> bool:
    """The installed SDK can save a plan on preview and apply it on up."""
    return "plan" in inspect.signature(auto.Stack.preview).parameters and (
        "plan" in inspect.signature(auto.Stack.up).parameters
    )


class PulumiStackRunner:
    """`StackRunner` backed by the Pulumi CLI through `pulumi.automation`."""

    def __init__(
        self,
        project_dir: Path,
        backend_url: str | None = None,
        secrets_provider: str = "passphrase",
        fingerprint_ignores: tuple[Path, ...] = (),
    ) -> None:
        self._project_dir = project_dir.resolve()
        self._backend_url = backend_url
        """An explicit backend for every stack; None: each stack's own (`deploy.backend`)."""
        self._secrets_provider = secrets_provider
        self._fingerprint_ignores = tuple(path.resolve() for path in fingerprint_ignores)
        self._supports_plans = sdk_supports_plans()

    @property
    def supports_plans(self) -> bool:
        return self._supports_plans

    @property
    def policy_pack(self) -> Path | None:
        """The repository's policy pack directory, when it has one."""
        marker = self._project_dir / POLICY_PACK_FILE
        return marker.parent if marker.is_file() else None

    def run(self, request: RunRequest, on_event: EventSink) -> RunResult:
        with _translated_errors(request.stack):
            stack = self._select(request.stack)
            if request.operation is Operation.PREVIEW:
                return self._preview(stack, request, on_event)
            if request.operation.deploys:
                up = stack.up(
                    on_event=on_event,
                    color="never",
                    show_secrets=False,
                    policy_packs=self._policy_packs(),
                    plan=str(request.use_plan) if request.use_plan else None,
                    message=request.message,
                )
                outputs, secrets = _convert_outputs(up.outputs)
                return RunResult(_changes(up.summary.resource_changes), outputs, secrets)
            if request.operation is Operation.REFRESH:
                refreshed = stack.refresh(
                    on_event=on_event,
                    color="never",
                    show_secrets=False,
                    clear_pending_creates=request.clear_pending_creates or None,
                    message=request.message,
                )
                return RunResult(_changes(refreshed.summary.resource_changes))
            if request.operation is Operation.DESTROY:
                destroyed = stack.destroy(
                    on_event=on_event,
                    color="never",
                    show_secrets=False,
                    message=request.message,
                )
                return RunResult(_changes(destroyed.summary.resource_changes))
        raise ValueError(f"not a runnable operation: {request.operation}")

    def status(self, stack_name: str) -> StackStatus:
        with _translated_errors(stack_name):
            stack = self._select(stack_name)
            summary = stack.info(show_secrets=False)
            outputs, secrets = _convert_outputs(stack.outputs())
        record = None
        if summary is not None:
            record = UpdateRecord(
                kind=summary.kind,
                result=summary.result,
                started=summary.start_time,
                ended=summary.end_time,
                version=summary.version,
                message=summary.message,
                author=summary.environment.get("git.author"),
                changes=_changes(summary.resource_changes),
            )
        return StackStatus(stack_name, record, outputs, secrets)

    def fingerprint(self, stack_name: str) -> str:
        with _translated_errors(stack_name):
            summary = self._select(stack_name).info(show_secrets=False)
        digest = hashlib.sha256()
        if summary is not None:
            digest.update(f"{summary.version}|{summary.kind}|{summary.result}|".encode())
        for path in self._program_files():
            relative = path.relative_to(self._project_dir)
            try:
                content = path.read_bytes()
            except OSError as error:
                raise RunnerError(
                    f"Cannot read `{relative}` in the bot's checkout "
                    f"({error.strerror or type(error).__name__})."
                ) from None
            digest.update(str(relative).encode() + b"\0")
            digest.update(hashlib.sha256(content).digest())
        return digest.hexdigest()

    def config(self, stack_name: str) -> dict[str, ConfigEntry]:
        with _translated_errors(stack_name):
            values = self._select(stack_name).get_all_config()
        return {
            key: ConfigEntry(_config_text(item.value), bool(item.secret))
            for key, item in values.items()
        }

    def set_config(self, stack_name: str, values: Mapping[str, str | None]) -> None:
        setting = {
            key: auto.ConfigValue(value, secret=False)
            for key, value in values.items()
            if value is not None
        }
        removing = [key for key, value in values.items() if value is None]
        with _translated_errors(stack_name):
            stack = self._select(stack_name)
            if setting:
                stack.set_all_config(setting)
            if removing:
                stack.remove_all_config(removing)

    def rollback_config(self, stack_name: str) -> dict[str, str]:
        with _translated_errors(stack_name):
            stack = self._select(stack_name)
            outputs = stack.outputs()
            exported = stack.export_stack()
        state = {"version": exported.version, "deployment": exported.deployment or {}}
        return rollback_settings(plain_outputs(outputs), state)

    def cancel(self, stack_name: str) -> None:
        with _translated_errors(stack_name):
            self._select(stack_name).cancel()

    def _select(self, stack_name: str) -> auto.Stack:
        env_vars, secrets_provider = self._backend_env(stack_name)
        options = auto.LocalWorkspaceOptions(
            work_dir=str(self._project_dir),
            env_vars=env_vars,
            secrets_provider=secrets_provider,
        )
        return auto.select_stack(stack_name, work_dir=str(self._project_dir), opts=options)

    def _backend_env(self, stack_name: str) -> tuple[dict[str, str], str]:
        """The backend the stack lives in: the same one `make` uses on any machine.

        eks stacks use the shared S3 backend named in `state-backend.yaml`, the local
        stack the project's file backend; `select_stack` never creates a stack.
        """
        if self._backend_url is not None:
            backend = Backend(self._backend_url, self._secrets_provider, shared=False)
        else:
            try:
                backend = backend_for(
                    self._project_dir, stack_name, stack_target(self._project_dir, stack_name)
                )
            except BackendError as err:
                raise RunnerError(f"`{stack_name}` has no usable state backend: {err}") from None
        ensure_local_state(backend)
        return backend.env(), backend.secrets_provider

    def _preview(self, stack: auto.Stack, request: RunRequest, on_event: EventSink) -> RunResult:
        if request.preview_of is Operation.DESTROY:
            result = stack.preview_destroy(on_event=on_event, color="never", show_secrets=False)
        elif request.preview_of is Operation.REFRESH:
            result = stack.preview_refresh(
                on_event=on_event,
                color="never",
                show_secrets=False,
                clear_pending_creates=request.clear_pending_creates or None,
            )
        else:
            result = stack.preview(
                on_event=on_event,
                color="never",
                policy_packs=self._policy_packs(),
                plan=str(request.save_plan) if request.save_plan else None,
                refresh=True if request.refresh else None,
            )
        return RunResult(_changes(result.change_summary))

    def _policy_packs(self) -> list[str] | None:
        pack = self.policy_pack
        return [str(pack)] if pack is not None else None

    def _program_files(self) -> list[Path]:
        files: list[Path] = []
        for root, dirs, names in os.walk(self._project_dir):
            dirs[:] = sorted(
                name
                for name in dirs
                if not name.startswith(".")
                and name not in _FINGERPRINT_SKIPPED_DIRS
                and (Path(root) / name).resolve() not in self._fingerprint_ignores
            )
            for name in sorted(names):
                path = Path(root) / name
                if name.startswith(".") or path.resolve() in self._fingerprint_ignores:
                    continue
                files.append(path)
        return files


@contextmanager
def _translated_errors(stack: str) -> Iterator[None]:
    """Turn Automation API exceptions into `RunnerError`s whose text is ours, not the CLI's."""
    try:
        yield
    except auto.ConcurrentUpdateError:
        raise StackBusyError(
            f"`{stack}` is locked by another update (perhaps someone deploying from a laptop)."
        ) from None
    except auto.StackNotFoundError:
        raise StackMissingError(f"Stack `{stack}` does not exist in the backend.") from None
    except auto.CommandError as error:
        logger.warning("pulumi command failed on stack %s (%s)", stack, type(error).__name__)
        text = str(error)
        raise OperationFailedError(
            f"The Pulumi operation on `{stack}` failed.",
            _first_cli_error(text),
            output=strip_colors(text),
        ) from None
    except FileNotFoundError:
        raise RunnerError("The Pulumi CLI is not installed on the bot's host.") from None
    except auto.InvalidVersionError:
        raise RunnerError("The installed Pulumi CLI is too old for this bot.") from None


def rollback_settings(
    outputs: Mapping[str, Any], state: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """The config keys that roll the stack back (`deploy.rollback.rollback_config`).

    `state` (`pulumi stack export`) also knows the snapshot of an upgrade whose update failed
    before it wrote its outputs: a deploy stopped by its canary. A `RollbackError` becomes
    `NothingToRollBackError` with the same, program-written message.
    """
    try:
        config = rollback_config(outputs, state)
    except RollbackError as error:
        raise NothingToRollBackError(str(error)) from None
    return {str(key): str(value) for key, value in config.items()}


def plain_outputs(outputs: Mapping[str, auto.OutputValue]) -> dict[str, Any]:
    """The stack's outputs without the secret ones (rollback config is written in plain text)."""
    return {name: output.value for name, output in outputs.items() if not output.secret}


def _first_cli_error(text: str) -> str | None:
    for line in strip_colors(text).splitlines():
        stripped = line.strip()
        if stripped.lower().startswith("error:"):
            return stripped
    return None


def _config_text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _changes(changes: Mapping[Any, int] | None) -> dict[str, int]:
    if not changes:
        return {}
    return {str(getattr(op, "value", op)): int(count) for op, count in changes.items()}


def _convert_outputs(
    outputs: Mapping[str, auto.OutputValue],
) -> tuple[tuple[StackOutput, ...], frozenset[str]]:
    """Drop the values of secret outputs, remembering them only so they can be masked."""
    converted: list[StackOutput] = []
    secrets: set[str] = set()
    for name in sorted(outputs):
        output = outputs[name]
        if output.secret:
            secrets.update(_string_leaves(output.value))
            converted.append(StackOutput(name, None, True))
        else:
            converted.append(StackOutput(name, output.value, False))
    return tuple(converted), frozenset(secrets)


def _string_leaves(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _string_leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _string_leaves(item)
    elif value is not None:
        yield str(value)
