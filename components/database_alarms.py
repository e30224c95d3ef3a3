"""DatabaseAlarms: CloudWatch alarms on the metadata database's RDS instance, to an SNS topic.

Alarms: free storage below a share of the allocated storage, CPU, and connections, each on
the `AWS/RDS` metric of the instance Airflow uses (dimension `DBInstanceIdentifier`), with
the topic as alarm and OK action so a recovery is announced too.

No ReplicaLag alarm: this platform's Multi-AZ is a Multi-AZ DB *instance*, whose standby is
kept in step by synchronous storage-level replication, is not readable and publishes no
ReplicaLag (RDS User Guide, "Multi-AZ DB instance deployments"); CloudWatch's ReplicaLag is
reported for read replicas and for the readers of a Multi-AZ DB *cluster* (RDS User Guide,
"Amazon CloudWatch metrics for Amazon RDS"), neither of which the program creates.

Subscriptions: each of `database.alarmEmails` is an `email` subscription. AWS sends each
address a confirmation mail; the subscription stays "pending confirmation" and receives
nothing until its link is followed, and an unconfirmed one expires after three days (add
it again with the next `up`, by removing and re-adding the address).

Encryption: CloudWatch alarms cannot publish to a topic encrypted with the AWS managed key
`alias/aws/sns`, whose policy cannot be changed to let the `cloudwatch.amazonaws.com`
principal use it (Amazon SNS Developer Guide, "Enable compatibility between event sources
from AWS services and encrypted topics"). With `security.customerManagedKeys` the topic uses
a customer key whose policy lets CloudWatch use it for this stack's alarms only; otherwise
it is not encrypted at rest, which costs nothing in secrecy: a notification carries the
alarm's name, state and metric values, never data from the database.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.aws_catalog import partition_of
from components.iam import Document, account_root, key_policy
from components.keys import customer_key
from components.naming import resource_prefix, tags
from components.settings import Settings

NAMESPACE = "AWS/RDS"
DIMENSION = "DBInstanceIdentifier"
CLOUDWATCH = "cloudwatch.amazonaws.com"
GIB = 1024**3
TOPIC_OWNER_ACTIONS = [
    "SNS:GetTopicAttributes",
    "SNS:SetTopicAttributes",
    "SNS:AddPermission",
    "SNS:RemovePermission",
    "SNS:DeleteTopic",
    "SNS:Subscribe",
    "SNS:ListSubscriptionsByTopic",
    "SNS:Publish",
]
"""What the account may do on the topic: the actions of the policy SNS gives a new topic."""


@dataclass(frozen=True)
class AlarmSpec:
    """One CloudWatch metric alarm on the instance, in the terms of `PutMetricAlarm`."""

    key: str
    metric_name: str
    statistic: str
    comparison_operator: str
    threshold: float
    period: int
    evaluation_periods: int
    treat_missing_data: str
    description: str


def alarm_prefix(settings: Settings) -> str:
    """Every alarm's name starts with this: the key policy and topic policy name them by it."""
    return f"{resource_prefix(settings)}-database-"


def alarm_specs(settings: Settings) -> list[AlarmSpec]:
    """The alarms for the stack's settings (pure).

    Periods are 300 s, a multiple of 60 as `PutMetricAlarm` requires for standard
    resolution metrics; RDS publishes these every minute.
    """
    db = settings.database
    free_bytes = db.allocated_storage_gb * GIB * db.free_storage_alarm_percent / 100
    return [
        AlarmSpec(
            key="free-storage",
            metric_name="FreeStorageSpace",
            statistic="Minimum",
            comparison_operator="LessThanThreshold",
            threshold=float(int(free_bytes)),
            period=300,
            evaluation_periods=1,
            # An instance that stops reporting its storage is not serving Airflow either.
            treat_missing_data="breaching",
            description=(
                f"Free storage below {db.free_storage_alarm_percent}% of"
                f" {db.allocated_storage_gb} GiB: the metadata database stops when it is full"
            ),
        ),
        AlarmSpec(
            key="cpu",
            metric_name="CPUUtilization",
            statistic="Average",
            comparison_operator="GreaterThanThreshold",
            threshold=float(db.cpu_alarm_percent),
            period=300,
            evaluation_periods=3,
            # Gaps say nothing about load; keep the last state.
            treat_missing_data="missing",
            description=f"CPU above {db.cpu_alarm_percent}% for 15 minutes",
        ),
        AlarmSpec(
            key="connections",
            metric_name="DatabaseConnections",
            statistic="Maximum",
            comparison_operator="GreaterThanThreshold",
            threshold=float(db.connections_alarm_threshold),
            period=300,
            evaluation_periods=2,
            treat_missing_data="missing",
            description=(
                f"More than {db.connections_alarm_threshold} connections for 10 minutes:"
                " near max_connections, new Airflow sessions are refused"
            ),
        ),
    ]


def _alarm_source(partition: str, region: str, account_id: str, prefix: str) -> Document:
    """The condition that ties the CloudWatch principal to this stack's alarms."""
    alarms = f"arn:{partition}:cloudwatch:{region}:{account_id}:alarm:{prefix}*"
    return {
        "StringEquals": {"aws:SourceAccount": account_id},
        "ArnLike": {"aws:SourceArn": alarms},
    }


def alarm_topic_key_policy(partition: str, region: str, account_id: str, prefix: str) -> Document:
    """The topic's key: the account, and CloudWatch for this stack's alarms only.

    CloudWatch needs kms:Decrypt and kms:GenerateDataKey* on the key of an encrypted topic
    (Amazon SNS Developer Guide, "Enable compatibility between event sources from AWS
    services and encrypted topics"); `aws:SourceAccount` and `aws:SourceArn` limit the
    grant to alarms of this account whose name starts with `prefix`.
    """
    cloudwatch: Document = {
        "Sid": "CloudWatchAlarmsOfThisStack",
        "Effect": "Allow",
        "Principal": {"Service": CLOUDWATCH},
        "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
        "Resource": "*",
        "Condition": _alarm_source(partition, region, account_id, prefix),
    }
    return key_policy(partition, account_id, cloudwatch)


def alarm_topic_policy(
    topic_arn: str, partition: str, region: str, account_id: str, prefix: str
) -> Document:
    """Who may use the topic: the account manages it, CloudWatch publishes this stack's alarms."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountManagesTheTopic",
                "Effect": "Allow",
                "Principal": {"AWS": account_root(partition, account_id)},
                "Action": TOPIC_OWNER_ACTIONS,
                "Resource": topic_arn,
            },
            {
                "Sid": "CloudWatchAlarmsOfThisStack",
                "Effect": "Allow",
                "Principal": {"Service": CLOUDWATCH},
                "Action": "SNS:Publish",
                "Resource": topic_arn,
                "Condition": _alarm_source(partition, region, account_id, prefix),
            },
        ],
    }


@dataclass(frozen=True)
class DatabaseAlarmsArgs:
    settings: Settings
    instance_identifier: pulumi.Input[str]
    """The RDS instance to watch: `Database.instance_identifier`."""


class DatabaseAlarms(pulumi.ComponentResource):
    """CloudWatch alarms on the metadata database's RDS instance and the topic they notify."""

    topic_arn: pulumi.Output[str]
    alarm_names: Sequence[str]

    def __init__(
        self, name: str, args: DatabaseAlarmsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("airflow-platform:database:DatabaseAlarms", name, None, opts)
        s = args.settings
        if not s.is_eks:
            raise ValueError("database alarms watch an RDS instance: eks stacks only")
        child = pulumi.ResourceOptions(parent=self)
        partition, region, prefix = partition_of(s.region), s.region, alarm_prefix(s)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOptions(parent=self))

        key = None
        if s.security.customer_managed_keys:
            key = customer_key(
                f"{name}-topic",
                s,
                "database alarm notifications",
                lambda p, a: alarm_topic_key_policy(p, region, a, prefix),
                self,
            )
        topic = aws.sns.Topic(
            f"{name}-topic",
            name=f"{resource_prefix(s)}-database-alarms",
            display_name=f"{resource_prefix(s)} database",
            kms_master_key_id=key.arn if key else None,
            tags=tags(s, f"{name}-topic"),
            opts=child,
        )
        topic_policy = aws.sns.TopicPolicy(
            f"{name}-topic",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, account.account_id).apply(
                lambda v: json.dumps(alarm_topic_policy(v[0], partition, region, v[1], prefix))
            ),
            opts=child,
        )
        for email in s.database.alarm_emails:
            aws.sns.TopicSubscription(
                f"{name}-{email}",
                topic=topic.arn,
                protocol="email",
                endpoint=email,
                opts=child,
            )
        # An alarm that fires before the topic lets CloudWatch publish is lost: wait for it.
        after_policy = pulumi.ResourceOptions(parent=self, depends_on=[topic_policy])
        names = []
        for spec in alarm_specs(s):
            alarm_name = f"{prefix}{spec.key}"
            names.append(alarm_name)
            aws.cloudwatch.MetricAlarm(
                f"{name}-{spec.key}",
                name=alarm_name,
                alarm_description=spec.description,
                namespace=NAMESPACE,
                metric_name=spec.metric_name,
                dimensions={DIMENSION: args.instance_identifier},
                statistic=spec.statistic,
                comparison_operator=spec.comparison_operator,
                threshold=spec.threshold,
                period=spec.period,
                evaluation_periods=spec.evaluation_periods,
                treat_missing_data=spec.treat_missing_data,
                alarm_actions=[topic.arn],
                ok_actions=[topic.arn],
                tags=tags(s, f"{name}-{spec.key}"),
                opts=after_policy,
            )
        self.topic_arn = topic.arn
        self.alarm_names = tuple(names)
        self.register_outputs({"topic_arn": self.topic_arn})
