"""Pure helpers: image tag from content, subnet layout, lifecycle and flow-log policies."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

from components.naming import content_tag
from components.network import flow_log_policy, subnet_cidrs
from components.registry import lifecycle_policy


def test_content_tag_is_stable_and_follows_content(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / "requirements.txt").write_text("a==1\n")
    first = content_tag(tmp_path)
    assert content_tag(tmp_path) == first
    (tmp_path / "requirements.txt").write_text("a==2\n")
    second = content_tag(tmp_path)
    assert second != first
    (tmp_path / "requirements.txt").write_text("a==1\n")
    assert content_tag(tmp_path) == first
    (tmp_path / "requirements.txt").rename(tmp_path / "reqs.txt")
    assert content_tag(tmp_path) != first


def test_subnets_do_not_overlap() -> None:
    vpc = ipaddress.IPv4Network("10.20.0.0/16")
    public, private = subnet_cidrs(vpc, 3)
    nets = [ipaddress.IPv4Network(c) for c in public + private]
    assert len(nets) == 6
    assert all(n.subnet_of(vpc) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])


def test_lifecycle_keeps_the_last_n_images() -> None:
    rule = json.loads(lifecycle_policy(7))["rules"][0]
    assert rule["selection"]["countType"] == "imageCountMoreThan"
    assert rule["selection"]["countNumber"] == 7
    assert rule["action"]["type"] == "expire"


def test_flow_log_role_writes_only_its_log_group() -> None:
    arn = "arn:aws:logs:eu-west-1:123456789012:log-group:flow"
    statement = json.loads(flow_log_policy(arn))["Statement"][0]
    assert statement["Resource"] == [arn, f"{arn}:*"]
    assert "*" not in json.dumps(statement["Action"])
