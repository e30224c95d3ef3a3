"""Where each stack keeps its state and how its secrets are encrypted.

- The local stack uses Pulumi's file backend in `./.pulumi-state` and a
  passphrase generated once beside it: one laptop, no account, nothing shared.
- eks stacks use the shared backend the bootstrap made: an S3 bucket (versioned,
  encrypted; the CLI locks every update of a stack with a lock object under
  `.pulumi/locks/`, pulumi/pulumi `pkg/backend/diy/lock.go`) and a KMS key for
  secrets (`awskms://`). Their location is committed in `state-backend.yaml`, so
  every machine (laptops, CI, the bot) finds the same state. A machine-local file
  backend is refused for them: a second machine would see no stack and build a
  second production beside the first.

`PULUMI_BACKEND_URL` still overrides, for someone who knows why.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deploy.bootstrap import BACKEND_FILE, BootstrapError, parse_backend_file

LOCAL_STATE_DIR = ".pulumi-state"
LOCAL_PASSPHRASE = "local.passphrase"  # noqa: S105 (a file name)


class BackendError(Exception):
    """The stack has no usable backend; the message says what to do."""


@dataclass(frozen=True)
class Backend:
    url: str
    secrets_provider: str
    """`passphrase` or `awskms://...`: what `stack init` is given."""
    shared: bool
    passphrase_file: Path | None = None

    def env(self) -> dict[str, str]:
        """The environment every `pulumi` command on the stack runs with."""
        env = {"PULUMI_BACKEND_URL": self.url, "PULUMI_SKIP_UPDATE_CHECK": "true"}
        if self.passphrase_file is not None:
            env["PULUMI_CONFIG_PASSPHRASE_FILE"] = str(self.passphrase_file)
        return env


def backend_for(
    project_dir: Path, stack: str, target: str, environ: Mapping[str, str] | None = None
) -> Backend:
    """The backend of `stack` (whose settings say `target`), or a BackendError."""
    environ = os.environ if environ is None else environ
    override = environ.get("PULUMI_BACKEND_URL", "").strip()
    if target == "minikube":
        state = project_dir / LOCAL_STATE_DIR
        url = override or state.resolve().as_uri()
        passphrase = None
        if "PULUMI_CONFIG_PASSPHRASE" not in environ and not environ.get(
            "PULUMI_CONFIG_PASSPHRASE_FILE"
        ):
            passphrase = state / LOCAL_PASSPHRASE
        return Backend(url, "passphrase", shared=False, passphrase_file=passphrase)
    if override:
        if override.startswith("file://"):
            raise BackendError(
                f"PULUMI_BACKEND_URL={override} keeps {stack}'s state on this machine only;"
                f" eks stacks use the shared backend in {BACKEND_FILE}"
            )
        provider = environ.get("PULUMI_SECRETS_PROVIDER", "").strip()
        if not provider.startswith("awskms://"):
            raise BackendError(
                "with PULUMI_BACKEND_URL set, also set PULUMI_SECRETS_PROVIDER to the"
                " awskms:// key of that backend"
            )
        return Backend(override, provider, shared=True)
    path = project_dir / BACKEND_FILE
    if not path.is_file():
        raise BackendError(
            f"{stack} is an eks stack and keeps its state in the shared S3 backend, but there is"
            f" no {BACKEND_FILE} yet. Create the bucket and KMS key once, with AWS credentials"
            f" of the target account: `make bootstrap REGION=<region>`, then commit"
            f" {BACKEND_FILE} (README: First production deploy)."
        )
    try:
        shared = parse_backend_file(path.read_text(), BACKEND_FILE)
    except BootstrapError as err:
        raise BackendError(str(err)) from None
    return Backend(shared.backend_url, shared.secrets_provider, shared=True)


def ensure_local_state(backend: Backend) -> None:
    """The file backend's folder and the local passphrase (generated once, owner-only)."""
    if backend.url.startswith("file://"):
        Path(backend.url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    if backend.passphrase_file is not None and not backend.passphrase_file.exists():
        backend.passphrase_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(backend.passphrase_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(os.urandom(32).hex())
