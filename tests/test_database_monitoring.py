"""The metadata database is observable on AWS: insights, OS metrics, logs, slow queries, alarms.

Each stack runs a program of just the Database and DatabaseAlarms components under the mock
engine; the values the program registers are checked against the rules of the real services
(botocore's service models, PostgreSQL's own parameter table, the AWS user guides named in
each docstring).
"""

from __future__ import annotations

import fnmatch
import inspect
import json
import re
import shutil
import subprocess
from typing import Any

import botocore.loaders
import pulumi
import pulumi_aws as aws
import pytest

from components.database import (
    AUTOVACUUM_LOG_MS,
    LOG_EXPORTS,
    Database,
    DatabaseArgs,
    instance_identifier,
    logging_parameters,
    monitoring_policy_arn,
    rds_log_group_name,
)
from components.database_alarms import (
    DatabaseAlarms,
    DatabaseAlarmsArgs,
    alarm_prefix,
    alarm_specs,
)
from components.settings import (
    DatabaseSettings,
    RawConfig,
    Settings,
    SettingsError,
    parse_settings,
)
from policy.rules import evaluate
from tests.harness import ACCOUNT, Resource, Run, run_stack, stack_config
from tests.policy.policy_support import to_res

EKS_STACKS = ("integration", "production")
INSTANCE = "aws:rds/instance:Instance"
LOG_GROUP = "aws:cloudwatch/logGroup:LogGroup"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
TOPIC = "aws:sns/topic:Topic"
KEY = "aws:kms/key:Key"
GIB = 1024**3
PREFIX = "airflow-platform:"


def database_program() -> None:
    """The Database (and on eks its alarms), wired the way `__main__.py` wires them."""
    from components.settings import load_settings

    settings = load_settings()
    opts = None
    if settings.is_eks:
        provider = aws.Provider("aws", region=settings.region)
        opts = pulumi.ResourceOptions(providers={"aws": provider})
    database = Database(
        "database",
        DatabaseArgs(
            settings,
            vpc_id="vpc-0example",
            subnet_ids=["subnet-0a", "subnet-0b"],
            allowed_security_group_id="sg-0eksclustersg0001",
        ),
        opts,
    )
    pulumi.export("db_host", database.host)
    if database.instance_identifier is not None:
        assert database.instance_arn is not None
        alarms = DatabaseAlarms(
            "database-alarms",
            DatabaseAlarmsArgs(settings, instance_identifier=database.instance_identifier),
            opts,
        )
        pulumi.export("db_instance_identifier", database.instance_identifier)
        pulumi.export("db_instance_arn", database.instance_arn)
        pulumi.export("alarm_topic_arn", alarms.topic_arn)


def run_database(stack: str, **values: Any) -> Run:
    return run_stack(stack, set_values=values or None, program=database_program)


@pytest.fixture(scope="module")
def runs() -> dict[str, Run]:
    return {stack: run_database(stack) for stack in ("local", *EKS_STACKS)}


def named(run: Run, type_: str, name: str) -> Resource:
    [found] = [r for r in run.of_type(type_) if r.name == name]
    return found


def doc(raw: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(raw)
    return parsed


def settings_of(stack: str, **values: Any) -> Settings:
    """The stack file's settings, with `values` (keys without the project prefix) changed."""
    config, secret = stack_config(stack)
    config.update({f"{PREFIX}{k}": v for k, v in values.items()})
    raw = RawConfig(
        stack=stack,
        values={k.removeprefix(PREFIX): v for k, v in config.items() if k.startswith(PREFIX)},
        secret_keys=frozenset(k.removeprefix(PREFIX) for k in secret),
    )
    return parse_settings(raw)


def _doc_text(shape: dict[str, Any]) -> str:
    return re.sub(r"<[^>]+>", " ", str(shape.get("documentation", "")))


@pytest.fixture(scope="module")
def rds_model() -> dict[str, Any]:
    model: dict[str, Any] = botocore.loaders.Loader().load_service_model("rds", "service-2")
    return model


@pytest.fixture(scope="module")
def cloudwatch_model() -> dict[str, Any]:
    model: dict[str, Any] = botocore.loaders.Loader().load_service_model("cloudwatch", "service-2")
    return model


# --- Performance Insights, Enhanced Monitoring, log exports ----------------------------------


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_instance_has_insights_enhanced_monitoring_and_log_exports(
    runs: dict[str, Run], stack: str
) -> None:
    """Enhanced Monitoring needs a role trusted by `monitoring.rds.amazonaws.com` with the AWS
    managed policy AmazonRDSEnhancedMonitoringRole (RDS User Guide, "Setting up and enabling
    Enhanced Monitoring"); a non-zero MonitoringInterval requires MonitoringRoleArn (botocore
    RDS model, CreateDBInstance)."""
    run = runs[stack]
    db = run.one(INSTANCE).inputs
    assert db["performanceInsightsEnabled"] is True
    assert db["performanceInsightsRetentionPeriod"] == 7
    assert db["databaseInsightsMode"] == "standard"
    assert db["monitoringInterval"] == 60
    assert db["enabledCloudwatchLogsExports"] == ["postgresql", "upgrade"]
    role = named(run, "aws:iam/role:Role", "database-monitoring")
    assert db["monitoringRoleArn"] == role.outputs["arn"]
    [trust] = doc(role.inputs["assumeRolePolicy"])["Statement"]
    assert trust == {
        "Effect": "Allow",
        "Principal": {"Service": "monitoring.rds.amazonaws.com"},
        "Action": "sts:AssumeRole",
    }
    [attachment] = run.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    assert attachment.inputs["role"] == role.outputs["name"]
    assert attachment.inputs["policyArn"] == (
        "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
    )


@pytest.mark.parametrize(
    ("region", "partition"),
    [("eu-west-1", "aws"), ("cn-north-1", "aws-cn"), ("us-gov-west-1", "aws-us-gov")],
)
def test_the_managed_policy_arn_follows_the_partition(region: str, partition: str) -> None:
    """AWS managed policies live in each partition under `arn:<partition>:iam::aws:policy/`."""
    assert monitoring_policy_arn(region) == (
        f"arn:{partition}:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"
    )


def test_monitoring_off_means_no_role() -> None:
    run = run_database("integration", **{"database.monitoringIntervalSeconds": 0})
    db = run.one(INSTANCE).inputs
    assert db["monitoringInterval"] == 0
    assert "monitoringRoleArn" not in db
    assert run.of_type("aws:iam/role:Role") == []


def test_performance_insights_off_sends_no_retention() -> None:
    """The provider requires performance_insights_enabled with a retention period."""
    run = run_database("integration", **{"database.performanceInsights": False})
    db = run.one(INSTANCE).inputs
    assert db["performanceInsightsEnabled"] is False
    assert "performanceInsightsRetentionPeriod" not in db
    assert db["databaseInsightsMode"] == "standard"


def test_the_values_sent_to_rds_are_ones_its_api_accepts(rds_model: dict[str, Any]) -> None:
    """botocore's RDS model, CreateDBInstance: MonitoringInterval "Valid Values: 0 | 1 | 5 | 10
    | 15 | 30 | 60"; PerformanceInsightsRetentionPeriod 7, month * 31 (months 1-23) or 731;
    EnableCloudwatchLogsExports for RDS for PostgreSQL; the DatabaseInsightsMode enum."""
    members = rds_model["shapes"]["CreateDBInstanceMessage"]["members"]
    interval = re.search(r"Valid Values:\s*([\d |]+)", _doc_text(members["MonitoringInterval"]))
    assert interval is not None
    allowed = {int(v) for v in interval.group(1).split("|")}
    assert set(DatabaseSettings.monitoring_interval_choices()) == allowed

    pi_doc = " ".join(_doc_text(members["PerformanceInsightsRetentionPeriod"]).split())
    months = re.search(r"month \* 31, where month is a number of months from (\d+)-(\d+)", pi_doc)
    assert months is not None
    assert re.search(r"Valid Values: 7 month", pi_doc) and re.search(r"\) 731 Default", pi_doc)
    first, last = int(months.group(1)), int(months.group(2))
    expected = {7, 731, *(31 * m for m in range(first, last + 1))}
    assert set(DatabaseSettings.performance_insights_retention_choices()) == expected

    exports_doc = _doc_text(members["EnableCloudwatchLogsExports"])
    exports = re.search(r"RDS for PostgreSQL -\s+([\w|\s-]+?)\s\s", exports_doc)
    assert exports is not None
    assert set(LOG_EXPORTS) <= {v.strip() for v in exports.group(1).split("|")}
    assert "standard" in rds_model["shapes"]["DatabaseInsightsMode"]["enum"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("monitoringIntervalSeconds", 45),
        ("performanceInsightsRetentionDays", 94),
        ("logRetentionDays", 45),
        ("slowQueryMs", -2),
        ("alarmEmails", ["ops@example.com", "not-an-address"]),
        ("alarmEmails", ["ops@example.com", "ops@example.com"]),
        ("cpuAlarmPercent", 120),
        ("freeStorageAlarmPercent", 0),
        ("connectionsAlarmThreshold", 0),
        ("restoredFrom", "pre--upgrade"),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(key: str, value: Any) -> None:
    with pytest.raises(SettingsError) as err:
        settings_of("integration", **{f"database.{key}": value})
    assert [k for k, _ in err.value.problems] == [f"database.{key}"]
    assert f"Pulumi.integration.yaml: airflow-platform:database.{key}: " in str(err.value)


def test_the_refusal_suggests_the_nearest_retention() -> None:
    with pytest.raises(SettingsError, match="the nearest is 60"):
        settings_of("integration", **{"database.logRetentionDays": 50})


# --- log groups -------------------------------------------------------------------------------


def test_log_retention_choices_are_cloudwatch_logs_values() -> None:
    """CloudWatch Logs, PutRetentionPolicy: retentionInDays is one of the values listed in
    botocore's logs model (shape `Days`); anything else is refused by the API."""
    logs = botocore.loaders.Loader().load_service_model("logs", "service-2")
    listed = re.search(r"Possible values are: ([\d, and]+)\.", _doc_text(logs["shapes"]["Days"]))
    assert listed is not None
    values = {int(v) for v in re.findall(r"\d+", listed.group(1))}
    assert set(DatabaseSettings.log_retention_choices()) == values


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_log_groups_are_the_ones_rds_writes_to(runs: dict[str, Run], stack: str) -> None:
    """RDS User Guide, "Publishing PostgreSQL logs to Amazon CloudWatch Logs": RDS publishes
    into `/aws/rds/instance/<DB instance identifier>/postgresql` (and `/upgrade`), creating
    the group without retention if it is missing. The program's groups carry exactly those
    names, and the instance waits for them so RDS never creates its own."""
    run = runs[stack]
    instance = run.one(INSTANCE)
    identifier = instance.inputs["identifier"]
    assert identifier == f"airflow-platform-{stack}-metadata"
    groups = {g.inputs["name"]: g for g in run.of_type(LOG_GROUP)}
    expected = {f"/aws/rds/instance/{identifier}/{t}" for t in ("postgresql", "upgrade")}
    assert set(groups) == expected
    for group in groups.values():
        assert group.inputs["retentionInDays"] == 30
        assert group.urn in instance.dependencies
    assert re.fullmatch(r"[a-z][a-z0-9-]{0,62}", identifier) and "--" not in identifier


def test_log_groups_use_the_customer_key_and_the_key_names_them() -> None:
    """CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS": the key
    policy lets `logs.<region>.amazonaws.com` use the key, and its
    `kms:EncryptionContext:aws:logs:arn` condition must name the groups it encrypts."""
    run = run_database(
        "integration",
        **{"security.customerManagedKeys": True, "database.logRetentionDays": 365},
    )
    key = named(run, KEY, "database-logs")
    groups = run.of_type(LOG_GROUP)
    assert {g.inputs["kmsKeyId"] for g in groups} == {key.outputs["arn"]}
    assert {g.inputs["retentionInDays"] for g in groups} == {365}
    [_, logs] = doc(key.inputs["policy"])["Statement"]
    assert logs["Principal"] == {"Service": "logs.eu-west-1.amazonaws.com"}
    named_arns = logs["Condition"]["ArnEquals"]["kms:EncryptionContext:aws:logs:arn"]
    assert sorted(named_arns) == sorted(
        f"arn:aws:logs:eu-west-1:{ACCOUNT}:log-group:{g.inputs['name']}" for g in groups
    )


def test_integration_log_groups_use_the_service_key(runs: dict[str, Run]) -> None:
    run = runs["integration"]
    assert all("kmsKeyId" not in g.inputs for g in run.of_type(LOG_GROUP))
    assert run.of_type(KEY) == []


def _takes_tags(type_: str) -> bool:
    """Whether the provider's resource of this type has a `tags` argument at all."""
    module, _, name = type_.split(":")[1].partition("/")
    cls = getattr(getattr(aws, module), name.split(":")[0][0].upper() + name.split(":")[0][1:])
    return "tags" in inspect.signature(cls._internal_init).parameters


def test_the_records_pass_the_policy_pack(runs: dict[str, Run]) -> None:
    """The CrossGuard pack's mandatory rules (key policies with conditions, tags, RDS
    encryption/TLS, production log groups on customer keys) hold for these resources. The
    tag rule exempts what the provider cannot tag (no `tags` argument): the topic policy."""
    for stack in EKS_STACKS:
        resources = runs[stack].resources
        mandatory = [
            v for v in evaluate([to_res(r) for r in resources]) if v.level.value == "mandatory"
        ]
        assert mandatory == []
        assert any(r.type == KEY for r in resources) or stack == "integration"
        untagged = {
            r.type for r in resources if r.type.startswith("aws:") and not _takes_tags(r.type)
        }
        assert "aws:sns/topicPolicy:TopicPolicy" in untagged


# --- slow queries -----------------------------------------------------------------------------


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_parameter_group_logs_slow_statements_and_keeps_tls(
    runs: dict[str, Run], stack: str
) -> None:
    params = runs[stack].one("aws:rds/parameterGroup:ParameterGroup").inputs["parameters"]
    values = {p["name"]: (p["value"], p.get("applyMethod")) for p in params}
    assert values["rds.force_ssl"][0] == "1"
    assert values["log_min_duration_statement"] == ("1000", "immediate")
    assert values["log_lock_waits"] == ("1", "immediate")
    assert values["log_autovacuum_min_duration"] == (str(AUTOVACUUM_LOG_MS), "immediate")


def test_slow_query_setting_reaches_the_parameter_group_and_can_turn_it_off() -> None:
    run = run_database("integration", **{"database.slowQueryMs": -1})
    params = run.one("aws:rds/parameterGroup:ParameterGroup").inputs["parameters"]
    assert {
        "name": "log_min_duration_statement",
        "value": "-1",
        "applyMethod": "immediate",
    } in params


@pytest.fixture(scope="module")
def postgres_config() -> dict[str, list[str]]:
    """PostgreSQL's own parameter table: `postgres --describe-config` (name, context, group,
    type, default, min, max, ...), from the server binary installed here."""
    binary = shutil.which("postgres")
    if binary is None:
        pytest.skip("the PostgreSQL server binary is not installed")
    out = subprocess.run(
        [binary, "--describe-config"], capture_output=True, text=True, timeout=30, check=True
    ).stdout
    return {line.split("\t")[0]: line.split("\t") for line in out.splitlines() if "\t" in line}


@pytest.mark.parametrize("slow_ms", [-1, 0, 1000])
def test_logging_parameters_are_dynamic_and_in_range(
    postgres_config: dict[str, list[str]], slow_ms: int
) -> None:
    """PostgreSQL documentation, "pg_settings": a `postmaster` parameter needs a restart; RDS
    calls those static and accepts only `pending-reboot` for them (RDS User Guide, "Working
    with DB parameter groups"). The three logging parameters are not, so `immediate` is
    valid, and their values are within PostgreSQL's min/max."""
    for param in logging_parameters(slow_ms):
        name, context, _, kind, *rest = postgres_config[param["name"]]
        assert context != "postmaster", name
        assert param["apply_method"] == "immediate"
        if kind == "INTEGER":
            low, high = int(rest[1]), int(rest[2])
            assert low <= int(param["value"]) <= high, name
        else:
            assert kind == "BOOLEAN" and param["value"] in {"0", "1"}


def test_local_postgres_logs_slow_statements_too(runs: dict[str, Run]) -> None:
    run = runs["local"]
    assert not [r for r in run.resources if r.type.startswith("aws:")]
    [sts] = run.of_type("kubernetes:apps/v1:StatefulSet")
    [container] = sts.inputs["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["-c", "log_min_duration_statement=1000"]
    assert "db_instance_identifier" not in run.outputs


# --- alarms -----------------------------------------------------------------------------------


def alarms_of(run: Run) -> dict[str, Resource]:
    return {a.inputs["metricName"]: a for a in run.of_type(ALARM)}


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_alarms_watch_the_instance_and_notify_the_topic(runs: dict[str, Run], stack: str) -> None:
    run = runs[stack]
    instance = run.one(INSTANCE)
    topic = run.one(TOPIC)
    alarms = alarms_of(run)
    assert set(alarms) == {"FreeStorageSpace", "CPUUtilization", "DatabaseConnections"}
    for alarm in alarms.values():
        a = alarm.inputs
        assert a["namespace"] == "AWS/RDS"
        assert a["dimensions"] == {"DBInstanceIdentifier": instance.outputs["identifier"]}
        assert a["alarmActions"] == [topic.outputs["arn"]]
        assert a["okActions"] == [topic.outputs["arn"]]
        assert a["name"].startswith(f"airflow-platform-{stack}-database-")
    assert run.outputs["alarm_topic_arn"] == topic.outputs["arn"]


@pytest.mark.parametrize(("stack", "storage_gb"), [("integration", 20), ("production", 50)])
def test_default_thresholds_follow_the_settings(
    runs: dict[str, Run], stack: str, storage_gb: int
) -> None:
    alarms = alarms_of(runs[stack])
    free = alarms["FreeStorageSpace"].inputs
    assert free["threshold"] == storage_gb * GIB // 10
    assert free["comparisonOperator"] == "LessThanThreshold"
    assert alarms["CPUUtilization"].inputs["threshold"] == 80
    assert alarms["DatabaseConnections"].inputs["threshold"] == 100


def test_thresholds_computed_from_changed_settings() -> None:
    run = run_database(
        "integration",
        **{
            "database.allocatedStorageGb": 200,
            "database.freeStorageAlarmPercent": 15,
            "database.cpuAlarmPercent": 65,
            "database.connectionsAlarmThreshold": 160,
        },
    )
    alarms = alarms_of(run)
    assert alarms["FreeStorageSpace"].inputs["threshold"] == 200 * GIB * 15 // 100
    assert alarms["CPUUtilization"].inputs["threshold"] == 65
    assert alarms["DatabaseConnections"].inputs["threshold"] == 160


def test_no_replica_lag_alarm_on_a_multi_az_instance(runs: dict[str, Run]) -> None:
    """A Multi-AZ DB instance's standby is not readable and reports no ReplicaLag (RDS User
    Guide, "Multi-AZ DB instance deployments"; ReplicaLag is for read replicas and Multi-AZ DB
    clusters, "Amazon CloudWatch metrics for Amazon RDS"). Production is Multi-AZ, as an
    instance, not a cluster: an alarm on ReplicaLag would sit in INSUFFICIENT_DATA forever."""
    run = runs["production"]
    assert run.one(INSTANCE).inputs["multiAz"] is True
    assert run.of_type("aws:rds/cluster:Cluster") == []
    assert "ReplicaLag" not in alarms_of(run)


def test_alarms_are_valid_put_metric_alarm_requests(
    runs: dict[str, Run], cloudwatch_model: dict[str, Any]
) -> None:
    """botocore's CloudWatch model, PutMetricAlarm: ComparisonOperator and Statistic enums,
    TreatMissingData "Valid Values: breaching | notBreaching | ignore | missing", Period 10,
    20, 30 or a multiple of 60, names of 1-255 characters."""
    shapes = cloudwatch_model["shapes"]
    members = shapes["PutMetricAlarmInput"]["members"]
    missing = re.search(r"Valid Values: ([\w| ]+?)\s\s", _doc_text(members["TreatMissingData"]))
    assert missing is not None
    treat = {v.strip() for v in missing.group(1).split("|")}
    checked = 0
    for run in (runs["integration"], runs["production"]):
        for alarm in run.of_type(ALARM):
            a = alarm.inputs
            assert a["comparisonOperator"] in shapes["ComparisonOperator"]["enum"]
            assert a["statistic"] in shapes["Statistic"]["enum"]
            assert a["treatMissingData"] in treat
            assert a["period"] in (10, 20, 30) or a["period"] % 60 == 0
            assert a["evaluationPeriods"] >= 1
            assert 1 <= len(a["name"]) <= shapes["AlarmName"]["max"]
            assert len(a["alarmActions"]) <= shapes["ResourceList"]["max"]
            checked += 1
    assert checked == 6


def test_alarm_specs_cover_each_alarm_once(runs: dict[str, Run]) -> None:
    specs = alarm_specs(settings_of("production"))
    assert len({s.key for s in specs}) == len(specs) == len(runs["production"].of_type(ALARM))


# --- the topic --------------------------------------------------------------------------------


def _statement(policy: dict[str, Any], sid: str) -> dict[str, Any]:
    [found] = [s for s in policy["Statement"] if s.get("Sid") == sid]
    statement: dict[str, Any] = found
    return statement


def _alarm_arn(alarm: Resource) -> str:
    return f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:{alarm.inputs['name']}"


@pytest.mark.parametrize("stack", EKS_STACKS)
def test_cloudwatch_may_publish_exactly_this_stacks_alarms(
    runs: dict[str, Run], stack: str
) -> None:
    run = runs[stack]
    topic = run.one(TOPIC)
    policy = doc(run.one("aws:sns/topicPolicy:TopicPolicy").inputs["policy"])
    publish = _statement(policy, "CloudWatchAlarmsOfThisStack")
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert publish["Action"] == "SNS:Publish"
    assert publish["Resource"] == topic.outputs["arn"]
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": ACCOUNT}
    pattern = publish["Condition"]["ArnLike"]["aws:SourceArn"]
    for alarm in run.of_type(ALARM):
        assert fnmatch.fnmatchcase(_alarm_arn(alarm), pattern)
    other = "integration" if stack == "production" else "production"
    assert not fnmatch.fnmatchcase(
        f"arn:aws:cloudwatch:eu-west-1:{ACCOUNT}:alarm:airflow-platform-{other}-database-cpu",
        pattern,
    )


def test_production_topic_uses_a_customer_key_cloudwatch_may_use(runs: dict[str, Run]) -> None:
    """Amazon SNS Developer Guide, "Enable compatibility between event sources from AWS
    services and encrypted topics": CloudWatch alarms cannot publish to a topic encrypted with
    the AWS managed key alias/aws/sns; a customer key must let cloudwatch.amazonaws.com use
    kms:Decrypt and kms:GenerateDataKey*."""
    run = runs["production"]
    key = named(run, KEY, "database-alarms-topic")
    topic = run.one(TOPIC)
    assert topic.inputs["kmsMasterKeyId"] == key.outputs["arn"]
    grant = _statement(doc(key.inputs["policy"]), "CloudWatchAlarmsOfThisStack")
    assert grant["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert grant["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    pattern = grant["Condition"]["ArnLike"]["aws:SourceArn"]
    assert all(fnmatch.fnmatchcase(_alarm_arn(a), pattern) for a in run.of_type(ALARM))


def test_integration_topic_is_not_on_the_unusable_aws_managed_key(runs: dict[str, Run]) -> None:
    topic = runs["integration"].one(TOPIC)
    assert "kmsMasterKeyId" not in topic.inputs


def test_alarms_wait_for_the_topic_policy(runs: dict[str, Run]) -> None:
    run = runs["production"]
    policy = run.one("aws:sns/topicPolicy:TopicPolicy")
    assert all(policy.urn in a.dependencies for a in run.of_type(ALARM))


def test_each_alarm_email_gets_a_subscription() -> None:
    emails = ["dba@example.com", "oncall@example.org"]
    run = run_database("production", **{"database.alarmEmails": emails})
    subs = run.of_type("aws:sns/topicSubscription:TopicSubscription")
    topic = run.one(TOPIC)
    assert sorted(s.inputs["endpoint"] for s in subs) == emails
    assert {(s.inputs["protocol"], s.inputs["topic"]) for s in subs} == {
        ("email", topic.outputs["arn"])
    }


def test_no_subscription_by_default(runs: dict[str, Run]) -> None:
    assert runs["integration"].of_type("aws:sns/topicSubscription:TopicSubscription") == []


def test_alarm_prefix_is_the_names_prefix(runs: dict[str, Run]) -> None:
    settings = settings_of("integration")
    assert {a.inputs["name"] for a in runs["integration"].of_type(ALARM)} == {
        f"{alarm_prefix(settings)}{spec.key}" for spec in alarm_specs(settings)
    }
    assert instance_identifier(settings) == "airflow-platform-integration-metadata"
    assert rds_log_group_name("x", "postgresql") == "/aws/rds/instance/x/postgresql"


def test_local_stack_has_no_database_monitoring(runs: dict[str, Run]) -> None:
    run = runs["local"]
    types = {r.type for r in run.resources}
    assert not {INSTANCE, LOG_GROUP, ALARM, TOPIC} & types
    assert "database-alarms" not in {r.name for r in run.resources}
