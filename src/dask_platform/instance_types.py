"""EC2 instance types as the GPU paths need them: vCPUs, installed memory, GPUs, and what an ECS
container instance of that type registers for tasks.

The catalogue is moto's copy of EC2's DescribeInstanceTypes answer
(``moto/ec2/resources/instance_types.json.gz``), read as data: the program sizes the ECS GPU
workers from it at ``pulumi up`` (moto is installed with the ``local`` extra, which ``make
setup`` syncs), and nothing here imports moto or starts anything.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ECS_RESERVED_MEMORY_MIB = 256
"""MiB the GPU container instances hold back from tasks for the ECS agent, Docker and the NVIDIA
runtime (set as ``ECS_RESERVED_MEMORY`` in their user data).
ref: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/memory-management.html"""

KERNEL_MEMORY_FRACTION = 0.06
"""Share of the installed memory the kernel and firmware take before the ECS agent reads the
total (``ReadMemInfo``): AWS's example m4.large registers 7985 of 8192 MiB (2.5%); 6% leaves
room for larger kernel tables on bigger and GPU instances, so a sized worker always fits.
ref: https://docs.aws.amazon.com/batch/latest/userguide/memory-management.html"""


class UnknownInstanceTypeError(ValueError):
    """An instance type EC2's catalogue does not list."""


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_mib: int  # installed, as EC2 advertises it
    gpus: int  # 0 for a type without GPUs

    @property
    def ecs_cpu_units(self) -> int:
        """CPU units ECS registers: 1024 per vCPU (all of them)."""
        return self.vcpus * 1024

    @property
    def ecs_memory_mib(self) -> int:
        """Memory a container instance of this type registers for tasks (MiB): installed memory
        less the kernel's share and :data:`ECS_RESERVED_MEMORY_MIB`."""
        return int(self.memory_mib * (1 - KERNEL_MEMORY_FRACTION)) - ECS_RESERVED_MEMORY_MIB


def _catalogue_path() -> Path:
    spec = importlib.util.find_spec("moto")
    if spec is None or not spec.submodule_search_locations:
        raise UnknownInstanceTypeError(
            "the EC2 instance-type catalogue (moto's ec2/resources/instance_types.json.gz) is "
            "not installed; run `make setup` (the local extra)"
        )
    return (
        Path(next(iter(spec.submodule_search_locations))) / "ec2/resources/instance_types.json.gz"
    )


@cache
def _catalogue() -> dict[str, Any]:
    with gzip.open(_catalogue_path(), "rt") as handle:
        return dict(json.load(handle))


def instance_type(name: str) -> InstanceType:
    """The catalogue entry for ``name`` (UnknownInstanceTypeError naming it otherwise)."""
    entry = _catalogue().get(name)
    if entry is None:
        raise UnknownInstanceTypeError(f"{name!r} is not an EC2 instance type")
    gpus = sum(int(g.get("Count", 0)) for g in entry.get("GpuInfo", {}).get("Gpus", []))
    return InstanceType(
        name=name,
        vcpus=int(entry["VCpuInfo"]["DefaultVCpus"]),
        memory_mib=int(entry["MemoryInfo"]["SizeInMiB"]),
        gpus=gpus,
    )


@dataclass(frozen=True)
class GpuWorkerSize:
    """``ECSCluster(worker_cpu=, worker_mem=, worker_gpu=)`` for one GPU worker task."""

    worker_cpu: int  # CPU units
    worker_mem: int  # MiB
    worker_gpu: int


def ecs_gpu_worker_size(instance_types: list[str], gpus_per_worker: int) -> GpuWorkerSize:
    """The largest worker that fits ``gpus_per_worker``-GPU tasks side by side on EVERY listed
    type (the capacity provider may launch any of them): each instance runs
    ``gpus // gpus_per_worker`` workers, which share its registered CPU and memory.

    Raises ValueError when a type has fewer GPUs than one worker needs.
    """
    sizes = []
    for name in instance_types:
        kind = instance_type(name)
        if kind.gpus < gpus_per_worker:
            raise ValueError(
                f"{name} has {kind.gpus} GPU(s), fewer than gpus_per_worker ({gpus_per_worker})"
            )
        per_instance = kind.gpus // gpus_per_worker
        sizes.append((kind.ecs_cpu_units // per_instance, kind.ecs_memory_mib // per_instance))
    cpu = min(s[0] for s in sizes)
    mem = min(s[1] for s in sizes)
    return GpuWorkerSize(
        worker_cpu=cpu,
        worker_mem=mem,
        worker_gpu=gpus_per_worker,
    )
