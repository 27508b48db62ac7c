"""The dask-cloudprovider paths on a real deployment (issue 13): EC2Cluster's instances log in
to ECR before `docker run` and their roles may pull; ECS GPU workers are sized to what the
instance registers; the GPU resource equals the GPUs the worker got (ECS and EC2 alike, and in
the image's dask-cuda-worker shim); the GPU AMI is Amazon Linux 2023; the analyst policy has no
grant for a call dask-cloudprovider never makes.

dask-cloudprovider's own code renders the cloud-init and builds the worker commands; the shim
runs against a real Dask scheduler.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from dask_cloudprovider.aws import EC2Cluster

from dask_platform.cloudprovider import ECS_GPU_AMI_PARAMETER, Platform, ecr_repository_arn
from dask_platform.iam import render_policy
from dask_platform.instance_types import (
    ECS_RESERVED_MEMORY_MIB,
    ecs_gpu_worker_size,
    instance_type,
)

from .conftest import REPO, document, evaluated

OUTPUTS = REPO / "tests" / "fixtures" / "outputs"
SHIM = REPO / "images" / "worker-gpu" / "dask-cuda-worker"


def platform(stack: str) -> Platform:
    return Platform.from_outputs(OUTPUTS / f"{stack}.json")


def render(kwargs: dict) -> tuple[str, str, str]:
    """(scheduler cloud-init, worker cloud-init, worker command), as EC2Cluster renders them."""

    async def build():
        cluster = EC2Cluster(asynchronous=True, **kwargs)
        worker = cluster.worker_class(scheduler="tcp://10.40.0.10:8786", **cluster.worker_options)
        scheduler = EC2Cluster.get_cloud_init(**kwargs)
        return scheduler, cluster.render_process_cloud_init(worker), worker.command

    # EC2Cluster writes its temporary TLS settings into the process-wide Dask config; keep them
    # out of every later test.
    import copy

    import dask

    saved = copy.deepcopy(dask.config.config)
    try:
        return _run(build())
    finally:
        dask.config.config.clear()
        dask.config.config.update(saved)


def _run(coroutine):
    # Not asyncio.run: it unsets the thread's event loop, which Pulumi's mocks (other tests in
    # this process) still use.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()


def runcmd(cloud_init: str) -> list[str]:
    document = yaml.safe_load(cloud_init)
    return [str(c) for c in document["runcmd"]]


@pytest.mark.parametrize(("stack", "gpu"), [("dev", False), ("prod", False), ("prod", True)])
def test_ec2_instances_log_in_to_ecr_before_docker_run(stack, gpu, tmp_path):
    kwargs = platform(stack).ec2_kwargs("hydrology", gpu=gpu)
    image = kwargs["docker_image"]
    registry = image.split("/", 1)[0]
    for cloud_init in render(kwargs)[:2]:
        commands = runcmd(cloud_init)  # valid YAML: the commands survive the template
        (run,) = [i for i, c in enumerate(commands) if c.startswith("docker run")]
        assert image in commands[run]
        install = commands.index("apt-get install -y amazon-ecr-credential-helper")
        assert commands.index("apt-get install -y docker-ce docker-ce-cli containerd.io") < install
        (config,) = [c for c in commands if "/root/.docker/config.json" in c]
        assert install < commands.index(config) < run
        # Run the command as cloud-init would, into a scratch path: Docker's config names the
        # image's registry with the ECR credential helper.
        written = tmp_path / "config.json"
        subprocess.run(
            ["sh", "-c", config.replace("/root/.docker/config.json", str(written))], check=True
        )
        assert json.loads(written.read_text()) == {"credHelpers": {registry: "ecr-login"}}


def test_user_extra_bootstrap_runs_after_the_login():
    kwargs = platform("dev").ec2_kwargs("hydrology", extra_bootstrap=["echo ready"])
    assert kwargs["extra_bootstrap"][-1] == "echo ready"
    assert kwargs["extra_bootstrap"][0] == "apt-get install -y amazon-ecr-credential-helper"


def test_ec2_instance_roles_may_pull_the_images_they_run(stack):
    evaluation = evaluated(stack)
    outputs = evaluation.outputs
    images = [outputs["worker_image"]] + (
        [outputs["ecs_gpu"]["image"]] if outputs.get("ecs_gpu") else []
    )
    for team in outputs["teams"]:
        (policy,) = [
            p
            for p in evaluation.of_type("aws:iam/rolePolicy:RolePolicy")
            if p.name == f"ecs-{team}-instance-ecr"
        ]
        assert policy.inputs["role"] == f"ecs-{team}-instance-id"
        pulled = document(policy.inputs["policy"])
        expected = sorted({ecr_repository_arn(i) for i in images} - {None})
        assert pulled == render_policy("ecr-pull", repository_arns=expected)


def test_ecs_gpu_workers_fit_what_the_instance_registers():
    outputs = platform("prod").outputs
    assert outputs.ecs_gpu is not None
    gpu = outputs.ecs_gpu
    kwargs = platform("prod").ecs_kwargs("hydrology", gpu=True)
    assert (kwargs["worker_cpu"], kwargs["worker_mem"]) == (gpu.worker_cpu, gpu.worker_mem)
    for name in gpu.instance_types:
        kind = instance_type(name)
        per_instance = kind.gpus // gpu.gpus_per_worker
        assert kwargs["worker_cpu"] * per_instance <= kind.vcpus * 1024
        assert kwargs["worker_mem"] * per_instance <= kind.ecs_memory_mib
        # dask-cloudprovider's default (16 GiB) is more than a 16 GiB type registers.
        if kind.memory_mib == 16384:
            assert kind.ecs_memory_mib < 16384
    assert ECS_RESERVED_MEMORY_MIB == 256


def test_gpu_instances_reserve_the_memory_the_sizing_assumes(stack):
    evaluation = evaluated(stack)
    templates = [
        t
        for t in evaluation.of_type("aws:ec2/launchTemplate:LaunchTemplate")
        if t.name == "ecs-gpu"
    ]
    if not evaluation.outputs.get("ecs_gpu"):
        assert templates == []
        return
    import base64

    (template,) = templates
    user_data = base64.b64decode(template.inputs["userData"]).decode()
    assert f"ECS_RESERVED_MEMORY={ECS_RESERVED_MEMORY_MIB}" in user_data.splitlines()


@pytest.mark.parametrize(
    ("types", "gpus", "expected"),
    [
        (["g5.xlarge"], 1, (4096, 15144, 1)),
        (["g5.12xlarge"], 2, (24576, 92277, 2)),  # 4 GPUs: two 2-GPU workers per instance
        (["g5.12xlarge", "g5.xlarge"], 1, (4096, 15144, 1)),  # fits either type
    ],
)
def test_gpu_worker_size(types, gpus, expected):
    size = ecs_gpu_worker_size(types, gpus)
    assert (size.worker_cpu, size.worker_mem, size.worker_gpu) == expected


def test_more_gpus_per_worker_than_a_type_has_is_a_config_error():
    from dask_platform.config.errors import StackConfigError
    from dask_platform.config.rules import validate_stack_config

    raw = yaml.safe_load((REPO / "tests/fixtures/config/minimal.ok.yaml").read_text())["config"]
    data = {k.split(":", 1)[1]: v for k, v in raw.items()}
    data["ecs"] = {
        "gpu": {
            "enabled": True,
            "instance_types": ["g5.xlarge"],
            "gpus_per_worker": 2,
            "image": {"name": "ghcr.io/example/dask-gpu", "tag": "2026.11.1"},
        }
    }
    with pytest.raises(StackConfigError) as caught:
        validate_stack_config(data)
    assert any(
        "instance_types: g5.xlarge has 1 GPU(s), fewer than gpus_per_worker (2)" in p
        for p in caught.value.problems
    ), caught.value.problems


def test_the_gpu_resource_is_the_gpus_the_ecs_task_gets():
    kwargs = platform("prod").ecs_kwargs(
        "hydrology", gpu=True, worker_extra_args=["--lifetime", "1h"]
    )
    gpus = kwargs["worker_gpu"]
    assert gpus == platform("prod").outputs.ecs_gpu.gpus_per_worker
    assert kwargs["worker_extra_args"] == ["--resources", f"GPU={gpus}", "--lifetime", "1h"]


def test_the_gpu_resource_is_every_gpu_of_the_ec2_instance():
    gpu = platform("prod").outputs.ecs_gpu
    kwargs = platform("prod").ec2_kwargs("hydrology", gpu=True)
    assert kwargs["instance_type"] == gpu.ec2_instance_type
    assert gpu.ec2_gpus == instance_type(gpu.ec2_instance_type).gpus
    _, _, command = render(kwargs)
    spec = json.loads(command.split("--spec ''", 1)[1].rsplit("''", 1)[0])
    assert spec["cls"] == "dask.distributed.Nanny"
    assert spec["opts"]["resources"] == {"GPU": gpu.ec2_gpus}


def test_the_gpu_ami_is_amazon_linux_2023():
    assert ECS_GPU_AMI_PARAMETER == (
        "/aws/service/ecs/optimized-ami/amazon-linux-2023/gpu/recommended/image_id"
    )


def test_ecs_task_logs_fail_before_any_request():
    """Why the analyst policy grants no logs:GetLogEvents: in dask-cloudprovider 2025.9,
    ECSCluster passes log_group/log_stream_prefix to Task, which keeps them in self.kwargs, so
    Task.logs() fails on its own attributes before it sends GetLogEvents."""
    from dask_cloudprovider.aws.ecs import Task

    requests: list[str] = []

    class Client:
        def __init__(self, service: str) -> None:
            requests.append(service)

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return False

        async def get_log_events(self, **kwargs):
            requests.append(f"get_log_events {kwargs}")
            return {"events": [], "nextForwardToken": None}

    task = Task(
        client=Client,
        cluster_arn="arn:aws:ecs:us-west-2:111122223333:cluster/dask-prod-ecs",
        task_definition_arn="arn:aws:ecs:us-west-2:111122223333:task-definition/dask-1:1",
        vpc_subnets=["subnet-1"],
        security_groups=["sg-1"],
        fargate=True,
        environment={},
        tags={},
        log_group="/dask-platform/dask-prod/ecs",
        log_stream_prefix="dask",
    )

    async def first_line():
        async for line in task.logs():
            return line
        return None

    with pytest.raises(AttributeError, match=r"log_group|log_stream_prefix"):
        _run(first_line())
    assert not [r for r in requests if r.startswith("get_log_events")]
    assert "logs:GetLogEvents" not in json.dumps(
        render_policy(
            "analyst-resources-supplied",
            **{
                k: "x"
                for k in (
                    "account_id",
                    "region",
                    "team",
                    "cluster_arn",
                    "cluster_name",
                    "task_role_arn",
                    "execution_role_arn",
                    "instance_role_arn",
                )
            },
            launch_resource_arns=["arn:aws:ec2:us-west-2:111122223333:subnet/subnet-1"],
        )
    )


# --------------------------------------------------------------------------- the image's shim


@pytest.fixture(scope="module")
def scheduler_address():
    from distributed import LocalCluster

    # A real scheduler on TCP (processes=True: inproc:// would not reach the shim's process).
    cluster = LocalCluster(n_workers=0, processes=True, dashboard_address=None)
    yield cluster.scheduler_address
    cluster.close()


def run_shim(scheduler: str, env: dict[str, str], *args: str) -> dict:
    """Start the shim against the scheduler; return the worker's resources as it registered."""
    from distributed import Client

    process = subprocess.Popen(
        ["/bin/sh", str(SHIM), scheduler, "--nthreads", "1", "--no-dashboard", *args],
        env={"PATH": os.environ["PATH"], "DASK_WORKER_PYTHON": sys.executable, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with Client(scheduler, timeout=30) as client:
            client.wait_for_workers(1, timeout=60)
            (info,) = client.scheduler_info()["workers"].values()
            return dict(info["resources"])
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_the_shim_advertises_the_gpus_ecs_assigned(scheduler_address):
    resources = run_shim(scheduler_address, {"NVIDIA_VISIBLE_DEVICES": "GPU-aa,GPU-bb,GPU-cc"})
    assert resources == {"GPU": 3}


def test_the_shim_keeps_the_callers_resources(scheduler_address):
    resources = run_shim(
        scheduler_address, {"NVIDIA_VISIBLE_DEVICES": "GPU-aa"}, "--resources", "GPU=2"
    )
    assert resources == {"GPU": 2}


def test_the_shim_refuses_to_start_without_a_gpu():
    import shutil

    path = "/usr/bin:/bin"
    assert shutil.which("nvidia-smi", path=path) is None  # this machine has no GPU
    result = subprocess.run(
        ["/bin/sh", str(SHIM), "tcp://127.0.0.1:9"],
        env={"PATH": path, "DASK_WORKER_PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "no GPU is visible" in result.stderr


def test_the_shim_is_in_the_gpu_images_build_context(tmp_path: Path):
    """The Containerfile COPYs files/dask-cuda-worker: the build context carries it, and it is
    part of the build key (a changed shim is a new image)."""
    from dask_platform.images.build import assemble_context, image_files

    assert image_files("worker-gpu") == [SHIM]
    assert image_files("worker") == []
    assemble_context(tmp_path / "context", "worker-gpu", {}, {})
    copied = tmp_path / "context" / "files" / "dask-cuda-worker"
    assert copied.read_bytes() == SHIM.read_bytes()
    # The one static check left: the GPU image (CUDA wheels, gigabytes) is built only on request,
    # never by the tests, so what its Containerfile COPYs is read rather than run.
    assert "COPY files/dask-cuda-worker " in (SHIM.parent / "Containerfile").read_text()
