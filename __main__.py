"""airflow-platform: load the stack's settings, build the components, export outputs."""

from pathlib import Path

import pulumi
import pulumi_aws as aws

from components.cluster import Cluster, ClusterArgs
from components.database import Database, DatabaseArgs
from components.network import Network, NetworkArgs
from components.registry import Registry, RegistryArgs
from components.settings import load_settings

settings = load_settings()  # raises on a bad stack file before anything is registered
opts = None
network = None
if settings.is_eks:
    aws_provider = aws.Provider("aws", region=settings.region)
    opts = pulumi.ResourceOptions(providers={"aws": aws_provider})
    network = Network("network", NetworkArgs(settings), opts)

registry = Registry("registry", RegistryArgs(settings, Path(__file__).parent / "image"), opts)
cluster = Cluster(
    "cluster",
    ClusterArgs(
        settings,
        vpc_id=network.vpc_id if network else None,
        private_subnet_ids=network.private_subnet_ids if network else None,
        public_subnet_ids=network.public_subnet_ids if network else None,
    ),
    opts,
)
database = Database(
    "database",
    DatabaseArgs(
        settings,
        vpc_id=network.vpc_id if network else None,
        subnet_ids=network.private_subnet_ids if network else None,
        allowed_security_group_id=cluster.node_security_group_id,
    ),
    pulumi.ResourceOptions.merge(
        opts, pulumi.ResourceOptions(providers={"kubernetes": cluster.provider})
    ),
)

# Seam: the Airflow release (chart, secrets, log store) plugs in here.

pulumi.export("cluster_name", cluster.name)
pulumi.export("kubeconfig", cluster.kubeconfig)
pulumi.export("db_host", database.host)
pulumi.export("image", registry.image_ref)
