"""Node capacity as Karpenter sees it: each EC2 instance type's allocatable cpu and memory, the
instance types a NodePool's requirements allow, and whether a pod's requests fit one of them.

The instance-type table is the one moto ships (``moto/ec2/resources/instance_types.json``: the
``DescribeInstanceTypes`` answer, with vCPUs, memory and ENI limits) and moto's per-region
offerings. Allocatable is computed as Karpenter's AWS provider computes it for an AL2023 node:

* capacity: ``cpu`` = default vCPUs; ``memory`` = ``SizeInMiB`` (minus 64 MiB on arm64, the
  Graviton CMA reserve) minus ``ceil(SizeInMiB * vmMemoryOverheadPercent)`` MiB;
* max pods = ENI-limited pods: ``ENIs(default card) * (IPv4 per ENI - 1) + 2``;
* kube-reserved memory = ``11 MiB * max pods + 255 MiB``; kube-reserved cpu = 6% of the first
  core, 1% of the second, 0.5% of cores 3-4, 0.25% of the rest;
* eviction threshold (memory.available) = 100 MiB;
* allocatable = capacity - kube-reserved - eviction threshold (no system-reserved by default).

ref: https://github.com/aws/karpenter-provider-aws/blob/v1.14.1/pkg/providers/instancetype/types.go
     (memory, ENILimitedPods, kubeReservedResources, evictionThreshold, computeRequirements)
ref: https://karpenter.sh/docs/concepts/scheduling/#well-known-labels (instance-category, ...)
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MIB = 2**20
GIB = 2**30

DEFAULT_VM_MEMORY_OVERHEAD_PERCENT = 0.075
"""Karpenter's ``settings.vmMemoryOverheadPercent`` default (a fraction, not a percent)."""

EVICTION_THRESHOLD_MIB = 100
"""Karpenter's default hard eviction threshold for ``memory.available``."""

# (start millicores, end millicores, fraction reserved) - kubeReservedResources.
_KUBE_RESERVED_CPU_TIERS = (
    (0, 1000, 0.06),
    (1000, 2000, 0.01),
    (2000, 4000, 0.005),
    (4000, 1 << 31, 0.0025),
)

# computeRequirements: category = leading letters, generation = the digits after them.
_INSTANCE_TYPE_SCHEME = re.compile(r"(^[a-z]+)(\-[0-9]+tb)?([0-9]+).*\.")

# kubernetes.io/arch values for EC2's architecture names (v1.AWSToKubeArchitectures).
_KUBE_ARCH = {"x86_64": "amd64", "arm64": "arm64"}


@dataclass(frozen=True)
class Resources:
    """A pod's or a node's cpu (millicores) and memory (bytes)."""

    cpu_millis: int
    memory_bytes: int

    @property
    def cores(self) -> float:
        return self.cpu_millis / 1000

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GIB

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_millis + other.cpu_millis, self.memory_bytes + other.memory_bytes)

    def fits_in(self, other: Resources) -> bool:
        return self.cpu_millis <= other.cpu_millis and self.memory_bytes <= other.memory_bytes

    def __str__(self) -> str:
        return f"{self.cores:g} cores x {self.memory_gib:.2f} GiB"


@dataclass(frozen=True)
class InstanceCapacity:
    """One instance type with the labels Karpenter gives it and its allocatable resources."""

    instance_type: str
    category: str
    family: str
    generation: int
    size: str
    architecture: str  # kubernetes.io/arch: amd64 or arm64
    capacity_types: frozenset[str]  # karpenter.sh/capacity-type values it is sold as
    vcpus: int
    memory_mib: int
    max_pods: int
    allocatable: Resources


@dataclass(frozen=True)
class InstanceRequirements:
    """What a NodePool allows: each field is an ``In`` requirement (empty = any value)."""

    categories: Sequence[str] = ()
    families: Sequence[str] = ()
    sizes: Sequence[str] = ()
    generation_min: int = 1
    architectures: Sequence[str] = ("amd64",)
    capacity_types: Sequence[str] = ("on-demand",)


# --------------------------------------------------------------------------- the table


def _moto_resource(relative: str) -> Any:
    """A JSON resource of the installed moto package (``<relative>.gz`` or ``<relative>``), read
    without importing moto (its import alone takes over a second). ModuleNotFoundError naming
    the extra to install when moto is absent."""
    import gzip
    import importlib.util
    import json
    from pathlib import Path

    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the instance-type table comes from moto: install dask-platform[infra]"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    compressed = path.with_name(path.name + ".gz")
    if compressed.is_file():
        return json.loads(gzip.decompress(compressed.read_bytes()))
    return json.loads(path.read_text()) if path.is_file() else None


@functools.cache
def instance_type_table() -> Mapping[str, Mapping[str, Any]]:
    """moto's ``DescribeInstanceTypes`` table (``moto/ec2/resources/instance_types.json``):
    ``{instance type: InstanceTypeInfo}``."""
    table: dict[str, Mapping[str, Any]] = _moto_resource("ec2/resources/instance_types.json")
    return table


@functools.cache
def offered_in(region: str) -> frozenset[str]:
    """The instance types moto's offerings list for ``region`` (empty for an unknown region)."""
    offerings = _moto_resource(f"ec2/resources/instance_type_offerings/region/{region}.json")
    return frozenset(o["InstanceType"] for o in offerings or [])


def eni_limited_pods(info: Mapping[str, Any], reserved_enis: int = 0) -> int:
    """``ENIs of the default network card * (IPv4 addresses per ENI - 1) + 2`` (0 without ENIs)."""
    network = info["NetworkInfo"]
    cards = network.get("NetworkCards") or []
    index = network.get("DefaultNetworkCardIndex", 0)
    enis = (
        cards[index]["MaximumNetworkInterfaces"] if cards else network["MaximumNetworkInterfaces"]
    )
    usable = max(enis - reserved_enis, 0)
    if usable == 0:
        return 0
    return int(usable * (network["Ipv4AddressesPerInterface"] - 1) + 2)


def kube_reserved(vcpus: int, max_pods: int) -> Resources:
    """kube-reserved cpu (tiered by cores) and memory (``11 MiB * pods + 255 MiB``)."""
    millis = vcpus * 1000
    reserved = 0
    for start, end, fraction in _KUBE_RESERVED_CPU_TIERS:
        if millis >= start:
            span = (min(millis, end) - start) if millis < end else end - start
            reserved += int(span * fraction)
    return Resources(reserved, (11 * max_pods + 255) * MIB)


def node_memory_mib(info: Mapping[str, Any], vm_memory_overhead_percent: float) -> int:
    """Memory capacity Karpenter assumes: the advertised size less the VM overhead."""
    size = int(info["MemoryInfo"]["SizeInMiB"])
    architectures = info.get("ProcessorInfo", {}).get("SupportedArchitectures") or []
    if architectures and architectures[0] == "arm64":
        size -= 64
    return size - math.ceil(size * vm_memory_overhead_percent)


def instance_capacity(
    instance_type: str,
    vm_memory_overhead_percent: float = DEFAULT_VM_MEMORY_OVERHEAD_PERCENT,
    reserved_enis: int = 0,
) -> InstanceCapacity:
    """An instance type's labels and allocatable resources. KeyError for an unknown type."""
    table = instance_type_table()
    if instance_type not in table:
        raise KeyError(f"unknown EC2 instance type {instance_type!r}")
    info = table[instance_type]
    vcpus = int(info["VCpuInfo"]["DefaultVCpus"])
    pods = eni_limited_pods(info, reserved_enis)
    memory_mib = node_memory_mib(info, vm_memory_overhead_percent)
    reserved = kube_reserved(vcpus, pods)
    allocatable = Resources(
        vcpus * 1000 - reserved.cpu_millis,
        (memory_mib - EVICTION_THRESHOLD_MIB) * MIB - reserved.memory_bytes,
    )
    family, _, size = instance_type.partition(".")
    parts = _INSTANCE_TYPE_SCHEME.match(instance_type)
    architectures = info.get("ProcessorInfo", {}).get("SupportedArchitectures") or []
    return InstanceCapacity(
        instance_type=instance_type,
        category=parts.group(1) if parts else "",
        family=family,
        generation=int(parts.group(3)) if parts else 0,
        size=size,
        architecture=next((_KUBE_ARCH[a] for a in architectures if a in _KUBE_ARCH), ""),
        capacity_types=frozenset(
            c for c in info.get("SupportedUsageClasses", []) if c in ("spot", "on-demand")
        ),
        vcpus=vcpus,
        memory_mib=int(info["MemoryInfo"]["SizeInMiB"]),
        max_pods=pods,
        allocatable=allocatable,
    )


def allowed_instance_types(
    requirements: InstanceRequirements,
    region: str | None = None,
    vm_memory_overhead_percent: float = DEFAULT_VM_MEMORY_OVERHEAD_PERCENT,
) -> list[InstanceCapacity]:
    """Every instance type the requirements allow (offered in ``region`` when given), sorted by
    allocatable cpu then memory. A type must be sold as at least one allowed capacity type."""
    offered = offered_in(region) if region else None
    out = []
    for name in sorted(instance_type_table()):
        if offered is not None and name not in offered:
            continue
        it = instance_capacity(name, vm_memory_overhead_percent)
        if (
            (not requirements.categories or it.category in requirements.categories)
            and (not requirements.families or it.family in requirements.families)
            and (not requirements.sizes or it.size in requirements.sizes)
            and it.generation >= requirements.generation_min
            and (not requirements.architectures or it.architecture in requirements.architectures)
            and it.capacity_types.intersection(requirements.capacity_types)
            and it.max_pods > 0
        ):
            out.append(it)
    return sorted(out, key=lambda i: (i.allocatable.cpu_millis, i.allocatable.memory_bytes))


def fitting(
    requests: Resources, instance_types: Iterable[InstanceCapacity], overhead: Resources
) -> list[InstanceCapacity]:
    """The instance types on which a pod requesting ``requests`` fits beside the per-node
    ``overhead`` (the DaemonSets every node runs, which Karpenter adds to each new node)."""
    return [it for it in instance_types if (requests + overhead).fits_in(it.allocatable)]


def largest_allocatable(instance_types: Iterable[InstanceCapacity]) -> Resources:
    """The largest allocatable cpu and the largest allocatable memory (possibly of two types)."""
    types = list(instance_types)
    return Resources(
        max((i.allocatable.cpu_millis for i in types), default=0),
        max((i.allocatable.memory_bytes for i in types), default=0),
    )


# --------------------------------------------------------------------------- quantities

_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[mkMGTPE])?$")
_FACTORS: dict[str | None, float] = {
    None: 1,
    "m": 1e-3,
    **{s: 1000 ** (i + 1) for i, s in enumerate("kMGTPE")},
    **{f"{s}i": 1024 ** (i + 1) for i, s in enumerate("KMGTPE")},
}


def parse_quantity(value: str | float | int) -> float:
    """A Kubernetes quantity ("500m", "1G", "2Gi", 1.5) as a number (cores or bytes).
    ValueError names the value. ref: https://kubernetes.io/docs/reference/kubernetes-api/common-definitions/quantity/
    """
    if isinstance(value, int | float):
        return float(value)
    match = _QUANTITY.match(str(value).strip())
    if not match:
        raise ValueError(f"{value!r} is not a Kubernetes quantity (e.g. 500m, 1G, 2Gi)")
    return float(match.group(1)) * _FACTORS[match.group(2)]


def pod_requests(cores: float | str, memory: float | str) -> Resources:
    """Requests of a pod from a cpu quantity (cores) and a memory quantity (bytes)."""
    return Resources(round(parse_quantity(cores) * 1000), math.ceil(parse_quantity(memory)))


# --------------------------------------------------------------------------- a stack's pools


def requirements_of(pool: Any) -> InstanceRequirements:
    """The requirements of a ``dask_platform.config.models.NodePoolCapacity``."""
    return InstanceRequirements(
        categories=tuple(pool.instance_categories),
        families=tuple(pool.instance_families),
        sizes=tuple(pool.instance_sizes),
        generation_min=pool.instance_generation_min,
        architectures=tuple(pool.architectures),
        capacity_types=tuple(pool.capacity_types),
    )


def daemonset_overhead(capacity: Any) -> Resources:
    """Per-node DaemonSet requests of a ``dask_platform.config.models.Capacity``."""
    return Resources(
        round(capacity.daemonset_cpu * 1000), math.ceil(capacity.daemonset_memory_gib * GIB)
    )


def pool_instance_types(capacity: Any, pool: str, region: str | None) -> list[InstanceCapacity]:
    """The instance types NodePool ``pool`` ("workers" or "schedulers") of a
    ``dask_platform.config.models.Capacity`` allows in ``region``."""
    return allowed_instance_types(
        requirements_of(getattr(capacity, pool)), region, capacity.vm_memory_overhead_percent
    )


def worker_requests(cores: float, memory_gib: float) -> Resources:
    """A Dask worker pod's requests for the gateway options ``worker_cores`` and
    ``worker_memory`` (GiB): the options handler requests exactly these (bytes = GiB * 2**30)."""
    return Resources(round(cores * 1000), int(memory_gib * GIB))


def scheduler_requests(values: Mapping[str, Any]) -> Resources:
    """A scheduler pod's requests from the dask-gateway chart values
    (``gateway.backend.scheduler.cores.request``, ``.memory.request``; KeyError if unset)."""
    scheduler = values["gateway"]["backend"]["scheduler"]
    return pod_requests(scheduler["cores"]["request"], scheduler["memory"]["request"])


@dataclass(frozen=True)
class OptionFit:
    """One worker option set (min/default/max of worker cores x memory) and where it fits."""

    option_set: str  # "min", "default", "max"
    requests: Resources
    fits: list[InstanceCapacity]


def worker_option_fits(gateway: Any, capacity: Any, region: str | None) -> list[OptionFit]:
    """For the min, default and max of ``gateway.worker_cores`` x ``gateway.worker_memory_gib``:
    the worker NodePool's instance types a worker pod fits on (beside the DaemonSets)."""
    types = pool_instance_types(capacity, "workers", region)
    overhead = daemonset_overhead(capacity)
    out = []
    for option_set in ("min", "default", "max"):
        requests = worker_requests(
            getattr(gateway.worker_cores, option_set),
            getattr(gateway.worker_memory_gib, option_set),
        )
        out.append(OptionFit(option_set, requests, fitting(requests, types, overhead)))
    return out


def _named(types: Sequence[InstanceCapacity], shown: int = 6) -> str:
    largest = sorted(types, key=lambda i: (-i.allocatable.cpu_millis, -i.allocatable.memory_bytes))
    names = ", ".join(i.instance_type for i in largest[:shown])
    return names + (f" and {len(types) - shown} more" if len(types) > shown else "")


def _largest(types: Sequence[InstanceCapacity], overhead: Resources) -> str:
    largest = largest_allocatable(types)
    return (
        f"the largest allocatable is {largest.cores:g} cores and {largest.memory_gib:.2f} GiB "
        f"per node, of which DaemonSets take {overhead.cores:g} cores and "
        f"{overhead.memory_gib:.2f} GiB"
    )


def fit_problems(
    gateway: Any, capacity: Any, region: str | None, scheduler: Resources | None
) -> list[str]:
    """Stack-config problems (key path first) when the largest worker the gateway allows, or
    the scheduler, fits no instance type its NodePool allows; each names the option, the
    instance types and the largest allocatable cores/memory. ``gateway`` and ``capacity`` are
    ``dask_platform.config.models.Gateway`` and ``dask_platform.config.models.Capacity``."""
    problems = []
    overhead = daemonset_overhead(capacity)
    where = f" offered in {region}" if region else ""
    for pool in ("workers", "schedulers"):
        if not pool_instance_types(capacity, pool, region):
            problems.append(
                f"capacity.{pool}: the requirements (categories, families, sizes, architectures, "
                f"capacity types) allow no EC2 instance type{where}"
            )
    workers = pool_instance_types(capacity, "workers", region)
    if workers:
        cores, memory = gateway.worker_cores, gateway.worker_memory_gib
        checks = (
            ("gateway.worker_cores.max", worker_requests(cores.max, memory.min)),
            ("gateway.worker_memory_gib.max", worker_requests(cores.min, memory.max)),
        )
        alone = [(path, req) for path, req in checks if not fitting(req, workers, overhead)]
        both = worker_requests(cores.max, memory.max)
        if alone or not fitting(both, workers, overhead):
            paths = [p for p, _ in alone] or [
                "gateway.worker_cores.max",
                "gateway.worker_memory_gib.max",
            ]
            problems.append(
                f"{' and '.join(paths)}: a worker of {cores.max:g} cores and {memory.max:g} GiB "
                f"fits no instance type the capacity.workers NodePool allows "
                f"({_named(workers)}); {_largest(workers, overhead)}. Lower the option's max or "
                "allow larger instance types"
            )
    schedulers = pool_instance_types(capacity, "schedulers", region)
    if scheduler is not None and schedulers and not fitting(scheduler, schedulers, overhead):
        problems.append(
            f"capacity.schedulers: a scheduler requesting {scheduler} (the dask-gateway values' "
            "gateway.backend.scheduler requests) fits no instance type the dask-schedulers "
            f"NodePool allows ({_named(schedulers)}); {_largest(schedulers, overhead)}"
        )
    return problems


# --------------------------------------------------------------------------- pods


def requests_of_pod(pod: Mapping[str, Any]) -> Resources:
    """A pod's scheduling requests (a Pod manifest or its ``spec``): the sum of its containers'
    requests, or the largest init container's if larger, as the kube-scheduler counts them.
    ref: https://kubernetes.io/docs/concepts/workloads/pods/init-containers/#resource-sharing-within-containers
    """
    spec = pod.get("spec", pod)

    def of(container: Mapping[str, Any]) -> Resources:
        requests = (container.get("resources") or {}).get("requests") or {}
        return pod_requests(requests.get("cpu", 0), requests.get("memory", 0))

    containers = sum((of(c) for c in spec.get("containers") or []), Resources(0, 0))
    inits = [of(c) for c in spec.get("initContainers") or []]
    return Resources(
        max([containers.cpu_millis, *(i.cpu_millis for i in inits)]),
        max([containers.memory_bytes, *(i.memory_bytes for i in inits)]),
    )
