"""Network: the VPC the EKS cluster, the database and the NAT gateways live in."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from components.iam import flow_logs_key_policy, service_assume_role_policy
from components.keys import customer_key
from components.naming import resource_prefix, tags
from components.settings import Settings

FLOW_LOG_ASSUME = json.dumps(service_assume_role_policy("vpc-flow-logs.amazonaws.com"))


def subnet_cidrs(cidr: ipaddress.IPv4Network, az_count: int) -> tuple[list[str], list[str]]:
    """Public and private subnet CIDRs: the VPC cut in 16, publics first, privates from 8."""
    blocks = list(cidr.subnets(prefixlen_diff=4))
    public = [str(b) for b in blocks[:az_count]]
    private = [str(b) for b in blocks[8 : 8 + az_count]]
    return public, private


def flow_log_group_name(settings: Settings) -> str:
    """A fixed name, so the key policy can name the log group before it exists."""
    return f"/aws/vpc-flow-logs/{resource_prefix(settings)}"


def flow_log_policy(log_group_arn: str) -> str:
    """What the flow-log role may do: write to its own log group only."""
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Action": [
                        "logs:CreateLogStream",
                        "logs:PutLogEvents",
                        "logs:DescribeLogStreams",
                    ],
                    "Resource": [log_group_arn, f"{log_group_arn}:*"],
                }
            ],
        }
    )


@dataclass(frozen=True)
class NetworkArgs:
    settings: Settings


class Network(pulumi.ComponentResource):
    """VPC over 2-3 AZs: public and private subnets, NAT, flow logs, closed default SG."""

    def __init__(
        self, name: str, args: NetworkArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("airflow-platform:network:Network", name, None, opts)
        s = args.settings
        net = s.network
        child = pulumi.ResourceOptions(parent=self)

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=str(net.cidr),
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags=tags(s, f"{name}-vpc"),
            opts=child,
        )
        aws.ec2.DefaultSecurityGroup(
            f"{name}-default-sg",
            vpc_id=vpc.id,
            ingress=[],
            egress=[],
            tags=tags(s, f"{name}-default-sg"),
            opts=child,
        )

        zones = aws.get_availability_zones_output(
            state="available", opts=pulumi.InvokeOptions(parent=self)
        )
        public_cidrs, private_cidrs = subnet_cidrs(net.cidr, net.az_count)

        igw = aws.ec2.InternetGateway(
            f"{name}-igw", vpc_id=vpc.id, tags=tags(s, f"{name}-igw"), opts=child
        )
        public_rt = aws.ec2.RouteTable(
            f"{name}-public-rt",
            vpc_id=vpc.id,
            routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", gateway_id=igw.id)],
            tags=tags(s, f"{name}-public-rt"),
            opts=child,
        )

        public_ids: list[pulumi.Output[str]] = []
        private_ids: list[pulumi.Output[str]] = []
        nats: list[aws.ec2.NatGateway] = []
        for i in range(net.az_count):
            az = zones.names[i]
            public = aws.ec2.Subnet(
                f"{name}-public-{i}",
                vpc_id=vpc.id,
                cidr_block=public_cidrs[i],
                availability_zone=az,
                map_public_ip_on_launch=False,
                tags={**tags(s, f"{name}-public-{i}"), "kubernetes.io/role/elb": "1"},
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{i}", subnet_id=public.id, route_table_id=public_rt.id, opts=child
            )
            public_ids.append(public.id)
            if i == 0 or net.nat_per_az:
                eip = aws.ec2.Eip(
                    f"{name}-nat-{i}", domain="vpc", tags=tags(s, f"{name}-nat-{i}"), opts=child
                )
                nats.append(
                    aws.ec2.NatGateway(
                        f"{name}-nat-{i}",
                        allocation_id=eip.id,
                        subnet_id=public.id,
                        tags=tags(s, f"{name}-nat-{i}"),
                        opts=pulumi.ResourceOptions(parent=self, depends_on=[igw]),
                    )
                )
            nat = nats[i] if net.nat_per_az else nats[0]
            private = aws.ec2.Subnet(
                f"{name}-private-{i}",
                vpc_id=vpc.id,
                cidr_block=private_cidrs[i],
                availability_zone=az,
                tags={**tags(s, f"{name}-private-{i}"), "kubernetes.io/role/internal-elb": "1"},
                opts=child,
            )
            private_rt = aws.ec2.RouteTable(
                f"{name}-private-rt-{i}",
                vpc_id=vpc.id,
                routes=[aws.ec2.RouteTableRouteArgs(cidr_block="0.0.0.0/0", nat_gateway_id=nat.id)],
                tags=tags(s, f"{name}-private-rt-{i}"),
                opts=child,
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{i}",
                subnet_id=private.id,
                route_table_id=private_rt.id,
                opts=child,
            )
            private_ids.append(private.id)

        log_group_name = flow_log_group_name(s)
        log_group = aws.cloudwatch.LogGroup(
            f"{name}-flow-logs",
            name=log_group_name,
            retention_in_days=net.flow_logs_retention_days,
            kms_key_id=self._flow_log_key(name, s, log_group_name),
            tags=tags(s, f"{name}-flow-logs"),
            opts=child,
        )
        role = aws.iam.Role(
            f"{name}-flow-logs",
            assume_role_policy=FLOW_LOG_ASSUME,
            tags=tags(s, f"{name}-flow-logs"),
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-flow-logs",
            role=role.id,
            policy=log_group.arn.apply(flow_log_policy),
            opts=child,
        )
        aws.ec2.FlowLog(
            f"{name}-flow-logs",
            vpc_id=vpc.id,
            traffic_type="ALL",
            log_destination_type="cloud-watch-logs",
            log_destination=log_group.arn,
            iam_role_arn=role.arn,
            tags=tags(s, f"{name}-flow-logs"),
            opts=child,
        )

        self.vpc_id: pulumi.Output[str] = vpc.id
        self.public_subnet_ids = pulumi.Output.all(*public_ids)
        self.private_subnet_ids = pulumi.Output.all(*private_ids)
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "public_subnet_ids": self.public_subnet_ids,
                "private_subnet_ids": self.private_subnet_ids,
            }
        )

    def _flow_log_key(
        self, name: str, s: Settings, log_group_name: str
    ) -> pulumi.Output[str] | None:
        """The flow-log group's customer-managed key, or None for CloudWatch's own encryption.

        The key policy names the log group, which must exist only after the key: CloudWatch
        Logs checks the key policy when the group is created with the key (CloudWatch Logs
        User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS").
        """
        if not s.security.customer_managed_keys:
            return None
        key = customer_key(
            f"{name}-flow-logs",
            s,
            "VPC flow log group",
            lambda partition, account: flow_logs_key_policy(
                partition, s.region, account, log_group_name
            ),
            self,
        )
        return key.arn
