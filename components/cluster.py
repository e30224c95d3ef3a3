"""Cluster: EKS with an OIDC provider and a managed node group, or an existing minikube."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components.iam import service_assume_role_policy
from components.naming import resource_prefix, tags
from components.settings import Settings

CONTROL_PLANE_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
NODE_POLICIES = {
    "worker": "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "cni": "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "ecr": "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
}
NODE_ASSUME = json.dumps(service_assume_role_policy("ec2.amazonaws.com"))


@dataclass(frozen=True)
class ClusterArgs:
    settings: Settings
    vpc_id: pulumi.Input[str] | None = None
    private_subnet_ids: pulumi.Input[list[str]] | None = None
    public_subnet_ids: pulumi.Input[list[str]] | None = None


class Cluster(pulumi.ComponentResource):
    """The Kubernetes cluster Airflow runs on, and a provider for it."""

    provider: k8s.Provider
    name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str] | None
    oidc_provider_arn: pulumi.Output[str] | None
    oidc_provider_url: pulumi.Output[str] | None
    node_security_group_id: pulumi.Output[str] | None

    def __init__(
        self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("airflow-platform:cluster:Cluster", name, None, opts)
        s = args.settings
        if s.is_eks:
            self._eks(name, args)
        else:
            self.name = pulumi.Output.from_input(s.cluster.kube_context)
            self.kubeconfig = None
            self.oidc_provider_arn = None
            self.oidc_provider_url = None
            self.node_security_group_id = None
            self.provider = k8s.Provider(
                f"{name}-k8s",
                context=s.cluster.kube_context,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs(
            {
                "name": self.name,
                "kubeconfig": self.kubeconfig,
                "oidc_provider_arn": self.oidc_provider_arn,
                "oidc_provider_url": self.oidc_provider_url,
                "node_security_group_id": self.node_security_group_id,
            }
        )

    def _eks(self, name: str, args: ClusterArgs) -> None:
        s = args.settings
        c = s.cluster
        if args.vpc_id is None or args.private_subnet_ids is None or args.public_subnet_ids is None:
            raise ValueError("an EKS cluster needs vpc_id and the subnet ids")
        child = pulumi.ResourceOptions(parent=self)
        key = aws.kms.Key(
            f"{name}-secrets",
            description=f"{resource_prefix(s)}: EKS secrets envelope encryption",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=tags(s, f"{name}-secrets"),
            opts=child,
        )
        node_role = aws.iam.Role(
            f"{name}-nodes",
            assume_role_policy=NODE_ASSUME,
            tags=tags(s, f"{name}-nodes"),
            opts=child,
        )
        attachments = [
            aws.iam.RolePolicyAttachment(
                f"{name}-nodes-{short}", role=node_role.name, policy_arn=arn, opts=child
            )
            for short, arn in NODE_POLICIES.items()
        ]
        cluster_name = resource_prefix(s)
        cluster = eks.Cluster(
            f"{name}-eks",
            name=cluster_name,
            version=c.version,
            vpc_id=args.vpc_id,
            private_subnet_ids=args.private_subnet_ids,
            public_subnet_ids=args.public_subnet_ids,
            node_associate_public_ip_address=False,
            skip_default_node_group=True,
            skip_default_security_groups=True,
            create_oidc_provider=True,
            authentication_mode=eks.AuthenticationMode.API,
            endpoint_private_access=True,
            endpoint_public_access=c.endpoint_public_access,
            public_access_cidrs=[str(n) for n in c.public_access_cidrs] or None,
            enabled_cluster_log_types=CONTROL_PLANE_LOG_TYPES,
            encryption_config_key_arn=key.arn,
            tags=tags(s, cluster_name),
            opts=child,
        )
        eks.ManagedNodeGroup(
            f"{name}-nodes",
            cluster=cluster,
            node_role=node_role,
            subnet_ids=args.private_subnet_ids,
            instance_types=c.instance_types,
            capacity_type="SPOT" if c.spot else "ON_DEMAND",
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                desired_size=c.desired_nodes, min_size=c.min_nodes, max_size=c.max_nodes
            ),
            tags=tags(s, f"{name}-nodes"),
            opts=pulumi.ResourceOptions(parent=self, depends_on=attachments),
        )
        self.name = pulumi.Output.from_input(cluster_name)
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig_json)
        self.oidc_provider_arn = cluster.oidc_provider_arn
        self.oidc_provider_url = cluster.oidc_provider_url
        # With skipDefaultSecurityGroups this is the EKS-created cluster security
        # group, which managed nodes (and so Airflow's pods) carry.
        self.node_security_group_id = cluster.node_security_group_id
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self),
        )
