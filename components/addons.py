"""ClusterAddons: what the platform asks of the EKS cluster, in one place (eks stacks).

The add-ons themselves (node autoscaling, the EBS CSI driver, the load balancer controller)
are EKS Auto Mode's, run and versioned by AWS with the cluster: nothing here installs or
pins them, and none needs an IAM role of its own (Auto Mode works through the cluster
role's Compute/BlockStorage/LoadBalancing policies). This component creates what they
act on: the NodeClass (private subnets), the two node pools, the default StorageClass and
the ALB IngressClass
(`components/node_pools.py`). The Airflow release does not wait for any of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components import node_pools as np
from components.naming import PART_OF
from components.settings import Settings


@dataclass(frozen=True)
class ClusterAddonsArgs:
    settings: Settings
    node_role_name: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[list[str]]
    security_group_id: pulumi.Input[str]


class ClusterAddons(pulumi.ComponentResource):
    """Node pools, the default StorageClass and the ALB IngressClass on an Auto Mode cluster."""

    storage_class: str
    ingress_class: str

    def __init__(
        self, name: str, args: ClusterAddonsArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("airflow-platform:addons:ClusterAddons", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        node_class = pulumi.Output.all(
            args.node_role_name, args.private_subnet_ids, args.security_group_id
        ).apply(lambda a: np.node_class(a[0], list(a[1]), a[2]))
        k8s.apiextensions.CustomResource(
            f"{name}-node-class",
            api_version="eks.amazonaws.com/v1",
            kind="NodeClass",
            metadata={"name": np.NODE_CLASS, "labels": PART_OF},
            spec=node_class.apply(lambda m: m["spec"]),
            opts=child,
        )
        for pool in (np.platform_pool(s), np.task_pool(s)):
            _custom(f"{name}-{pool['metadata']['name']}", pool, child)
        sc = np.storage_class()
        k8s.storage.v1.StorageClass(
            f"{name}-{sc['metadata']['name']}",
            metadata=sc["metadata"],
            provisioner=sc["provisioner"],
            parameters=sc["parameters"],
            volume_binding_mode=sc["volumeBindingMode"],
            allow_volume_expansion=sc["allowVolumeExpansion"],
            reclaim_policy=sc["reclaimPolicy"],
            opts=child,
        )
        params, ingress_class = np.alb_ingress_class(s)
        _custom(f"{name}-alb-params", params, child)
        ingress_spec: Any = ingress_class["spec"]
        k8s.networking.v1.IngressClass(
            f"{name}-alb", metadata=ingress_class["metadata"], spec=ingress_spec, opts=child
        )
        self.storage_class = np.STORAGE_CLASS
        self.ingress_class = np.INGRESS_CLASS
        self.register_outputs(
            {"storage_class": self.storage_class, "ingress_class": self.ingress_class}
        )


def _custom(
    name: str, manifest: dict[str, Any], opts: pulumi.ResourceOptions
) -> k8s.apiextensions.CustomResource:
    """A custom resource (NodePool, IngressClassParams) from its manifest."""
    return k8s.apiextensions.CustomResource(
        name,
        api_version=manifest["apiVersion"],
        kind=manifest["kind"],
        metadata=manifest["metadata"],
        spec=manifest["spec"],
        opts=opts,
    )
