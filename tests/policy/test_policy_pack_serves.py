"""The pack as Pulumi runs it: `python policy/` in its own process, spoken to over gRPC."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from policy.rules import RULES, Level

POLICY_DIR = Path(__file__).resolve().parents[2] / "policy"
MANDATORY = analyzer_pb2.EnforcementLevel.Value("MANDATORY")
ADVISORY = analyzer_pb2.EnforcementLevel.Value("ADVISORY")


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    proc = subprocess.Popen(
        [sys.executable, str(POLICY_DIR)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd="/",
    )
    try:
        assert proc.stdout is not None
        port = proc.stdout.readline().decode().strip()
        assert port.isdigit(), proc.stderr.read().decode() if proc.stderr else port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield analyzer_pb2_grpc.AnalyzerStub(channel)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_the_pack_lists_every_rule_with_its_level(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == "airflow-platform"
    levels = {p.name: p.enforcementLevel for p in info.policies}
    assert levels == {r.name: MANDATORY if r.level is Level.MANDATORY else ADVISORY for r in RULES}


def test_a_public_database_is_a_mandatory_violation(
    analyzer: analyzer_pb2_grpc.AnalyzerStub,
) -> None:
    props = struct_pb2.Struct()
    props.update({"publiclyAccessible": True, "storageEncrypted": True, "backupRetentionPeriod": 7})
    urn = "urn:pulumi:production::airflow-platform::aws:rds/instance:Instance::db"
    request = analyzer_pb2.AnalyzeRequest(
        type="aws:rds/instance:Instance", properties=props, urn=urn, name="db"
    )
    found = analyzer.Analyze(request, timeout=30).diagnostics
    assert [(d.policyName, d.enforcementLevel) for d in found] == [("rds-not-public", MANDATORY)]
    assert "db (aws:rds/instance:Instance)" in found[0].message


def test_stack_rules_report_the_resource_urn(analyzer: analyzer_pb2_grpc.AnalyzerStub) -> None:
    urn = "urn:pulumi:production::airflow-platform::aws:ec2/vpc:Vpc::vpc"
    tags = {"project": "airflow-platform", "environment": "production", "owner": "data-platform"}
    props = struct_pb2.Struct()
    props.update({"tags": tags})
    vpc = analyzer_pb2.AnalyzerResource(
        type="aws:ec2/vpc:Vpc", properties=props, urn=urn, name="vpc"
    )
    found = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[vpc]), timeout=30)
    assert {(d.policyName, d.urn) for d in found.diagnostics} == {
        ("vpc-flow-logs", urn),
        ("vpc-default-sg-closed", urn),
    }
