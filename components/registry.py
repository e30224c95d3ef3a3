"""Registry: where the Airflow image lives, and the build of `image/`."""

from __future__ import annotations

import json
import platform as platform_module
from dataclasses import dataclass, field
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from components.iam import ecr_key_policy
from components.keys import customer_key
from components.naming import content_tag, resource_prefix, tags
from components.settings import Settings

LOCAL_REPOSITORY = "airflow-platform/airflow"
BUILD_CONTEXT = "image"
"""The build context, relative to the project directory."""


def lifecycle_policy(keep: int) -> str:
    """ECR lifecycle: keep the newest `keep` images, expire the rest."""
    return json.dumps(
        {
            "rules": [
                {
                    "rulePriority": 1,
                    "description": f"keep the last {keep} images",
                    "selection": {
                        "tagStatus": "any",
                        "countType": "imageCountMoreThan",
                        "countNumber": keep,
                    },
                    "action": {"type": "expire"},
                }
            ]
        }
    )


MACHINE_PLATFORMS = {
    "x86_64": "linux/amd64",
    "amd64": "linux/amd64",
    "arm64": "linux/arm64",
    "aarch64": "linux/arm64",
}
"""`platform.machine()` names -> the image platform that runs natively there."""


def image_platform(settings: Settings, machine: str) -> str:
    """The platform to build for: the setting, else amd64 on eks (x86 nodes), else the
    deploying machine's own architecture, which is minikube's node's (an arm64 laptop runs
    an arm64 minikube)."""
    if settings.registry.platform:
        return settings.registry.platform
    if settings.is_eks:
        return "linux/amd64"
    try:
        return MACHINE_PLATFORMS[machine.lower()]
    except KeyError:
        raise ValueError(
            f"cannot tell the image platform for machine type {machine!r};"
            " set airflow-platform:registry.platform (linux/amd64 or linux/arm64)"
        ) from None


def pinned_ref(image_name: str, repo_digest: str) -> str:
    """`repo:tag@sha256:...`: the pushed image, readable by tag and pinned by digest."""
    _, at, digest = repo_digest.partition("@")
    if not at or not digest.startswith("sha256:"):
        raise ValueError(f"{repo_digest!r} is not a pushed image's repo digest")
    return f"{image_name}@{digest}"


@dataclass(frozen=True)
class RegistryArgs:
    settings: Settings
    project_dir: Path
    """The project root: the build context is `image/` below it."""
    machine: str = field(default_factory=platform_module.machine)
    """The deploying machine's architecture (`platform.machine()`)."""


class Registry(pulumi.ComponentResource):
    """ECR + pushed image on EKS; an image in minikube's Docker daemon locally.

    `image_ref` is an output of the build itself, so whatever reads it waits for
    the build (and on eks the push) to succeed.
    """

    tag: str
    image_ref: pulumi.Output[str]

    def __init__(
        self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("airflow-platform:registry:Registry", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        self.tag = content_tag(args.project_dir / BUILD_CONTEXT)
        # Paths relative to the project (Pulumi runs the program and its providers there):
        # the same inputs from any checkout, so another machine never rebuilds an unchanged
        # image (pulumi-docker diffs the context and dockerfile paths).
        build = docker.DockerBuildArgs(
            context=BUILD_CONTEXT,
            dockerfile=f"{BUILD_CONTEXT}/Dockerfile",
            platform=image_platform(s, args.machine),
        )
        if s.is_eks:
            repo = aws.ecr.Repository(
                f"{name}-repo",
                name=f"{resource_prefix(s)}/airflow",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                image_tag_mutability="IMMUTABLE" if s.registry.immutable_tags else "MUTABLE",
                encryption_configurations=[self._encryption(name, s)],
                force_delete=not s.is_production,
                tags=tags(s, f"{name}-repo"),
                opts=child,
            )
            aws.ecr.LifecyclePolicy(
                f"{name}-lifecycle",
                repository=repo.name,
                policy=lifecycle_policy(s.registry.keep_images),
                opts=child,
            )
            token = aws.ecr.get_authorization_token_output(
                registry_id=repo.registry_id, opts=pulumi.InvokeOptions(parent=self)
            )
            image = docker.Image(
                f"{name}-image",
                build=build,
                image_name=pulumi.Output.concat(repo.repository_url, ":", self.tag),
                registry=docker.RegistryArgs(
                    server=repo.repository_url,
                    username=token.user_name,
                    password=pulumi.Output.secret(token.password),
                ),
                opts=child,
            )
            self.image_ref = pulumi.Output.all(image.image_name, image.repo_digest).apply(
                lambda a: pinned_ref(a[0], a[1])
            )
        else:
            image = docker.Image(
                f"{name}-image",
                build=build,
                image_name=f"{LOCAL_REPOSITORY}:{self.tag}",
                skip_push=True,
                opts=child,
            )
            # Not pushed, so no registry digest: the built image's name, known once it built.
            self.image_ref = image.image_name
        self.register_outputs({"tag": self.tag, "image_ref": self.image_ref})

    def _encryption(self, name: str, s: Settings) -> aws.ecr.RepositoryEncryptionConfigurationArgs:
        """AES256 (S3-managed), or KMS with a customer-managed key of the repository's own.

        ECR fixes a repository's encryption when it is created (Amazon ECR User Guide,
        "Encryption at rest"): changing it replaces the repository.
        """
        if not s.security.customer_managed_keys:
            return aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")
        key = customer_key(f"{name}-ecr", s, "ECR repository images", ecr_key_policy, self)
        return aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="KMS", kms_key=key.arn)
