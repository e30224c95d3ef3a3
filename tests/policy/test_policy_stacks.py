"""Every rule over what each stack file registers: the gate production must pass."""

from __future__ import annotations

import importlib
import inspect

import pytest

from policy.rules import RULES_BY_NAME, UNTAGGABLE, Level
from tests.policy.policy_support import mandatory, recorded, show, violations

LOCAL_ADVISORIES = {
    "metadata-db-managed": "Postgres runs as a StatefulSet in minikube, no managed backups",
    "metadata-db-tls": "the in-cluster Postgres serves without TLS (sslmode disabled)",
    "task-logs-in-s3": "task logs go to MinIO in the cluster, not real S3",
    "image-in-scanned-registry": "the image is built into minikube's Docker daemon, not pushed",
    "chart-pgbouncer": "PgBouncer may be off on one laptop",
}
"""What the local stack legitimately does differently; each is an advisory rule."""


@pytest.mark.parametrize("stack", ["production", "integration"])
def test_production_grade_stacks_have_no_mandatory_violations(stack: str) -> None:
    found = mandatory(violations(stack))
    assert not found, show(found)


def test_local_shows_only_the_documented_advisories() -> None:
    found = violations("local")
    assert all(v.level is Level.ADVISORY for v in found), show(found)
    assert {v.rule for v in found} <= set(LOCAL_ADVISORIES), show(found)
    # what the local stack registers today must trip its advisories
    assert {"metadata-db-managed", "metadata-db-tls", "image-in-scanned-registry"} <= {
        v.rule for v in found
    }, show(found)


def test_documented_local_advisories_are_advisory_rules() -> None:
    for name in LOCAL_ADVISORIES:
        assert RULES_BY_NAME[name].level is Level.ADVISORY, name


@pytest.mark.parametrize("stack", ["local", "integration", "production"])
def test_every_message_names_its_resource(stack: str) -> None:
    names = {r.name for r in recorded(stack)}
    for v in violations(stack):
        assert v.resource in names
        assert v.message.startswith(v.resource), v.message


def test_the_tag_rule_exempts_only_what_cannot_be_tagged() -> None:
    """Each exempt type is one the provider gives no `tags` argument (AWS cannot tag it), so
    the exemption hides no resource that could carry the tags."""
    taggable = []
    for type_ in sorted(UNTAGGABLE):
        module, _, name = type_.split(":")[1].partition("/")
        cls_name = name[0].upper() + name[1:]
        cls = getattr(importlib.import_module(f"pulumi_aws.{module}"), cls_name)
        if "tags" in inspect.signature(cls._internal_init).parameters:
            taggable.append(type_)
    assert taggable == []
