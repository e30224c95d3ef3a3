"""How many concurrent task pods a stack's task pool can hold: plain arithmetic, no AWS calls.

EC2 sizes follow a naming rule: `large` has 2 vCPUs, `xlarge` 4, `<N>xlarge` 4·N; burstable
`t` types have 2 vCPUs up to `large`; other `medium` sizes have 1. Memory per vCPU follows the
family letter (c 2 GiB, m and t 4, r 8, x 16). The kubelet reserves CPU and memory by EKS's
formula (AMI bootstrap: 6 % of the first core, 1 % of the second, 0.5 % of the next two,
0.25 % of the rest; 255 MiB plus 11 MiB per pod, plus the 100 MiB hard-eviction threshold).
A task pod is the worker pod template's `base` container; its init container asks for less.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

GIB_PER_VCPU = {"c": 2.0, "m": 4.0, "t": 4.0, "r": 8.0, "x": 16.0}
MAX_PODS = 110
"""The kubelet's default pod cap; EKS Auto Mode nodes use prefix delegation, so IPs don't bind."""
_FAMILY = re.compile(r"^(?P<letter>[a-z])(?P<rest>[a-z]*\d[a-z0-9-]*)$")
_QUANTITY = re.compile(r"^(?P<n>\d+(?:\.\d+)?)(?P<unit>m|Mi|Gi)?$")


def vcpus(instance_type: str) -> int:
    """vCPUs of an EC2 instance type, by its size name."""
    family, _, size = instance_type.partition(".")
    if family.startswith("t") and size in ("nano", "micro", "small", "medium", "large"):
        return 2
    if size == "medium":
        return 1
    if size == "large":
        return 2
    if size == "xlarge":
        return 4
    sized = re.fullmatch(r"(\d+)xlarge", size)
    if sized:
        return 4 * int(sized.group(1))
    raise ValueError(f"{instance_type!r}: no vCPU count for size {size!r}")


def memory_gib(instance_type: str) -> float:
    """Memory of an EC2 instance type, by family letter and vCPUs."""
    family, _, size = instance_type.partition(".")
    match = _FAMILY.match(family)
    if not match or match.group("letter") not in GIB_PER_VCPU:
        raise ValueError(f"{instance_type!r}: no memory rule for family {family!r}")
    if family.startswith("t") and size in ("nano", "micro", "small", "medium"):
        return {"nano": 0.5, "micro": 1.0, "small": 2.0, "medium": 4.0}[size]
    return vcpus(instance_type) * GIB_PER_VCPU[match.group("letter")]


def millicores(quantity: str) -> int:
    found = _QUANTITY.match(quantity)
    if not found or found.group("unit") not in (None, "m"):
        raise ValueError(f"{quantity!r} is not a CPU quantity")
    n = float(found.group("n"))
    return int(n) if found.group("unit") == "m" else int(n * 1000)


def mebibytes(quantity: str) -> int:
    found = _QUANTITY.match(quantity)
    if not found or found.group("unit") not in ("Mi", "Gi"):
        raise ValueError(f"{quantity!r} is not a memory quantity in Mi or Gi")
    n = float(found.group("n"))
    return int(n * 1024) if found.group("unit") == "Gi" else int(n)


def reserved_millicores(cores: int) -> int:
    """The kubelet's CPU reservation on an EKS node of `cores` vCPUs."""
    tiers = [(1, 60.0), (1, 10.0), (2, 5.0)]
    total, left = 0.0, cores
    for count, per_core in tiers:
        used = min(count, left)
        total += used * per_core
        left -= used
    return int(total + left * 2.5)


def allocatable(instance_type: str) -> tuple[int, int]:
    """(millicores, MiB) a node of this type offers pods."""
    cores = vcpus(instance_type)
    memory = int(memory_gib(instance_type) * 1024) - (255 + 11 * MAX_PODS) - 100
    return cores * 1000 - reserved_millicores(cores), memory


def tasks_per_node(instance_type: str, cpu: str, memory: str) -> int:
    cpu_m, mem_mi = allocatable(instance_type)
    return min(cpu_m // millicores(cpu), mem_mi // mebibytes(memory), MAX_PODS)


@dataclass(frozen=True)
class PoolCapacity:
    instance_type: str
    """The configured type that yields the fewest tasks under the limit (the worst case)."""
    nodes: int
    per_node: int

    @property
    def tasks(self) -> int:
        return self.nodes * self.per_node


def task_pool_capacity(
    instance_types: Sequence[str], cpu_limit: int, cpu: str, memory: str
) -> PoolCapacity:
    """Concurrent task pods the pool holds when the scaler fills it to its vCPU limit with the
    least favourable of the allowed instance types."""
    options = [
        PoolCapacity(t, cpu_limit // vcpus(t), tasks_per_node(t, cpu, memory))
        for t in instance_types
    ]
    return min(options, key=lambda p: p.tasks)
