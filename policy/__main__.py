"""Entry point Pulumi runs for `--policy-pack policy`: builds the pack and serves it."""

import sys
from pathlib import Path

# Pulumi runs this directory as a script; make `policy` importable as a package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import PolicyPack

from policy.crossguard import policies

PolicyPack(
    "airflow-platform",
    policies=policies(),
    description="Security and operations gate for airflow-platform (EKS, RDS, S3, ECR, chart).",
)
