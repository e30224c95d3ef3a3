"""Registry: where the Airflow image lives, and the build of `image/`."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_aws as aws
import pulumi_docker as docker

from components.naming import content_tag, resource_prefix, tags
from components.settings import Settings

LOCAL_REPOSITORY = "airflow-platform/airflow"


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


@dataclass(frozen=True)
class RegistryArgs:
    settings: Settings
    context: Path
    """The build context (the project's `image/`)."""


class Registry(pulumi.ComponentResource):
    """ECR + pushed image on EKS; an image in minikube's Docker daemon locally."""

    repository: pulumi.Output[str]
    tag: str
    image_ref: pulumi.Output[str]

    def __init__(
        self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("airflow-platform:registry:Registry", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        self.tag = content_tag(args.context)
        build = docker.DockerBuildArgs(
            context=str(args.context),
            dockerfile=str(args.context / "Dockerfile"),
            platform="linux/amd64",
        )
        if s.is_eks:
            repo = aws.ecr.Repository(
                f"{name}-repo",
                name=f"{resource_prefix(s)}/airflow",
                image_scanning_configuration=aws.ecr.RepositoryImageScanningConfigurationArgs(
                    scan_on_push=True
                ),
                image_tag_mutability="IMMUTABLE" if s.registry.immutable_tags else "MUTABLE",
                encryption_configurations=[
                    aws.ecr.RepositoryEncryptionConfigurationArgs(encryption_type="AES256")
                ],
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
            self.repository = repo.repository_url
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
        else:
            self.repository = pulumi.Output.from_input(LOCAL_REPOSITORY)
            image = docker.Image(
                f"{name}-image",
                build=build,
                image_name=f"{LOCAL_REPOSITORY}:{self.tag}",
                skip_push=True,
                opts=child,
            )
        self.image_ref = image.image_name
        self.register_outputs(
            {"repository": self.repository, "tag": self.tag, "image_ref": self.image_ref}
        )
