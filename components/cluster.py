"""Cluster: EKS in Auto Mode with an OIDC provider, or an existing minikube.

EKS Auto Mode runs the compute, block storage and load balancing of the cluster: AWS's
managed Karpenter launches and consolidates nodes for pending pods, its EBS CSI driver
provisions volumes, its load balancer controller makes ALBs. What the platform asks of
them (node pools, the default StorageClass, the ALB IngressClass) lives in
`components/addons.py`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws
import pulumi_eks as eks
import pulumi_kubernetes as k8s

from components.aws_catalog import partition_of
from components.iam import eks_secrets_key_policy
from components.keys import customer_key
from components.naming import resource_prefix, tags
from components.settings import Settings

CONTROL_PLANE_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]
AUTO_MODE_BUILT_IN_POOLS = ["system"]
"""Auto Mode's own pool for cluster-critical add-ons; it also makes the `default` NodeClass
the platform's pools use. The built-in general-purpose pool is replaced by the platform's."""
API_PORT = 443


@dataclass(frozen=True)
class AccessGrant:
    """One EKS access entry: a principal and the access policy it gets, where."""

    principal_arn: str
    policy_arn: str
    namespaces: tuple[str, ...] = ()
    """Empty: the whole cluster."""


def access_grants(settings: Settings) -> dict[str, AccessGrant]:
    """Who may use the cluster besides its creator, keyed by a stable name per principal.

    Under `authenticationMode: API` only the identity that created the cluster is
    admin; everyone else (CI, the bot, operators) needs an access entry, or gets
    401 (Amazon EKS user guide, "Grant IAM users access to Kubernetes with EKS
    access entries"). Cluster admins get AmazonEKSClusterAdminPolicy on the
    cluster; namespace admins get AmazonEKSAdminPolicy in the Airflow namespace.
    """
    policies = f"arn:{partition_of(settings.region)}:eks::aws:cluster-access-policy"
    c = settings.cluster
    grants = {
        arn: AccessGrant(arn, f"{policies}/AmazonEKSClusterAdminPolicy") for arn in c.admin_arns
    }
    grants.update(
        {
            arn: AccessGrant(arn, f"{policies}/AmazonEKSAdminPolicy", (settings.airflow.namespace,))
            for arn in c.namespace_admin_arns
        }
    )
    keyed: dict[str, AccessGrant] = {}
    for arn, grant in grants.items():
        key = _principal_key(arn)
        if key in keyed:  # e.g. role/a-b and role/a/b
            key = f"{key}-{hashlib.sha256(arn.encode()).hexdigest()[:8]}"
        keyed[key] = grant
    return keyed


def _principal_key(arn: str) -> str:
    """`role-ci-deployer` from `arn:aws:iam::123456789012:role/ci-deployer` (paths included)."""
    kind, _, path = arn.split(":", 5)[5].partition("/")
    return f"{kind}-{path.replace('/', '-')}"


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
    node_role_name: pulumi.Output[str] | None
    """The IAM role Auto Mode's nodes run as (eks)."""

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
            self.node_role_name = None
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
        # An explicit key policy (the account; EKS uses the key through the grant the
        # cluster's creator makes): see `iam.eks_secrets_key_policy`.
        key = customer_key(
            f"{name}-secrets", s, "EKS secrets envelope encryption", eks_secrets_key_policy, self
        )
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
            # Auto Mode: nodes, EBS volumes and load balancers run by EKS (pulumi-eks makes the
            # cluster and node roles with the Compute/BlockStorage/LoadBalancing/Networking
            # policies and the nodes' access entry).
            auto_mode=eks.AutoModeOptionsArgs(
                enabled=True,
                compute_config=eks.ClusterComputeConfigArgs(node_pools=AUTO_MODE_BUILT_IN_POOLS),
            ),
            create_oidc_provider=True,
            authentication_mode=eks.AuthenticationMode.API,
            access_entries={
                key: eks.AccessEntryArgs(
                    principal_arn=g.principal_arn,
                    access_policies={
                        "access": eks.AccessPolicyAssociationArgs(
                            policy_arn=g.policy_arn,
                            access_scope=aws.eks.AccessPolicyAssociationAccessScopeArgs(
                                type="namespace" if g.namespaces else "cluster",
                                namespaces=list(g.namespaces) or None,
                            ),
                        )
                    },
                )
                for key, g in access_grants(s).items()
            }
            or None,
            endpoint_private_access=True,
            endpoint_public_access=c.endpoint_public_access,
            public_access_cidrs=[str(n) for n in c.public_access_cidrs] or None,
            enabled_cluster_log_types=CONTROL_PLANE_LOG_TYPES,
            encryption_config_key_arn=key.arn,
            tags=tags(s, cluster_name),
            opts=child,
        )
        # A private-only endpoint is reached through the cluster security group: open 443
        # to the networks that deploy (VPN, in-VPC runners), and nothing else.
        for i, cidr in enumerate(c.private_access_cidrs):
            aws.vpc.SecurityGroupIngressRule(
                f"{name}-api-from-{i}",
                security_group_id=cluster.cluster_security_group_id,
                cidr_ipv4=str(cidr),
                ip_protocol="tcp",
                from_port=API_PORT,
                to_port=API_PORT,
                description=f"Kubernetes API from {cidr} (cluster.privateAccessCidrs)",
                tags=tags(s, f"{name}-api-from-{i}"),
                opts=child,
            )
        self.name = pulumi.Output.from_input(cluster_name)
        self.kubeconfig = pulumi.Output.secret(cluster.kubeconfig_json)
        self.oidc_provider_arn = cluster.oidc_provider_arn
        self.oidc_provider_url = cluster.oidc_provider_url
        # With skipDefaultSecurityGroups this is the EKS-created cluster security group,
        # which Auto Mode's nodes (and so Airflow's pods) carry through the default NodeClass.
        self.node_security_group_id = cluster.node_security_group_id
        self.node_role_name = cluster.auto_mode_node_role_name
        self.provider = k8s.Provider(
            f"{name}-k8s",
            kubeconfig=self.kubeconfig,
            opts=pulumi.ResourceOptions(parent=self),
        )
