"""Cluster profiles without a network: the file's validation and errors, the exact SLURM job
script, dask-cloudprovider arguments bound to the INSTALLED constructors, and a cheap
`import dask_platform`. (Profiles that start clusters: tests/integration/test_profiles.py.)"""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import dask_platform
from dask_platform import profiles
from dask_platform.profiles import (
    ProfileError,
    cluster_arguments,
    get_profile,
    load_profiles,
    profiles_path,
)

from ..examples import EXAMPLE_ACCESS_KEY_ID
from .conftest import REPO

OUTPUTS = REPO / "tests" / "fixtures" / "outputs"


def write(tmp_path: Path, document: dict[str, Any]) -> Path:
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


SLURM = {
    "kind": "slurm",
    "account": "hydro-2026",
    "walltime": "02:30:00",
    "memory": "16GiB",
    "cores": 4,
    "processes": 2,
    "interface": "lo",
    "queue": "compute",
    "job_extra_directives": ["--constraint=haswell"],
}


@pytest.fixture
def profiles_file(tmp_path: Path) -> Path:
    return write(
        tmp_path,
        {
            "profiles": {
                "hpc": SLURM,
                "laptop": {"kind": "local", "n_workers": 1, "threads_per_worker": 1},
                "fargate": {
                    "kind": "fargate",
                    "outputs": str(OUTPUTS / "prod.json"),
                    "team": "hydrology",
                    "n_workers": 4,
                },
                "ecs-gpu": {
                    "kind": "ecs",
                    "outputs": str(OUTPUTS / "prod.json"),
                    "team": "oceans",
                    "gpu": True,
                },
                "ec2": {"kind": "ec2", "outputs": str(OUTPUTS / "dev.json"), "team": "climate"},
                "central": {"kind": "gateway", "site": "central"},
            }
        },
    )


# --------------------------------------------------------------------------- the file


def test_the_path_comes_from_the_argument_then_the_environment_then_home(tmp_path: Path) -> None:
    env = {"DASK_PLATFORM_PROFILES": str(tmp_path / "from-env.yaml")}
    assert profiles_path(tmp_path / "given.yaml", env) == tmp_path / "given.yaml"
    assert profiles_path(None, env) == tmp_path / "from-env.yaml"
    home = Path("~/.config/dask-platform/profiles.yaml").expanduser()
    assert profiles_path(None, {}) == home


def test_an_unknown_profile_names_the_defined_ones(profiles_file: Path) -> None:
    with pytest.raises(
        ProfileError,
        match=r"profile: 'gpu' is not defined in .*profiles.yaml; profiles: central, ec2, "
        r"ecs-gpu, fargate, hpc, laptop",
    ):
        get_profile("gpu", profiles_file)


def test_every_problem_is_reported_with_its_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "profiles": {
                "hpc": {k: v for k, v in SLURM.items() if k not in {"account", "memory"}},
                "pbs": {"kind": "pbs"},
                "laptop": {"kind": "local", "n_workers": 1, "threads": 2},
                "late": {**SLURM, "walltime": "two hours"},
            }
        },
    )
    with pytest.raises(ProfileError) as error:
        load_profiles(path)
    message = str(error.value)
    assert "5 problem(s)" in message
    assert "profiles.hpc.account: required key is missing" in message
    assert "profiles.hpc.memory: required key is missing" in message
    assert (
        "profiles.pbs.kind: must be one of gateway, fargate, ecs, ec2, slurm, local (got 'pbs')"
        in message
    )
    assert "profiles.laptop.threads: unknown key; allowed keys: kind, " in message
    assert "profiles.late.walltime: String should match pattern" in message


@pytest.mark.parametrize(
    ("profile", "finding"),
    [
        (
            {**SLURM, "job_script_prologue": ["export AWS_SECRET_ACCESS_KEY=abc"]},
            "profiles.p.job_script_prologue: assigns AWS_SECRET_ACCESS_KEY",
        ),
        (
            {
                "kind": "fargate",
                "outputs": "x.json",
                "team": "t",
                "options": {"environment": {"AWS_ACCESS_KEY_ID": EXAMPLE_ACCESS_KEY_ID}},
            },
            "profiles.p.options.environment.AWS_ACCESS_KEY_ID",
        ),
        (
            {"kind": "gateway", "site": "s", "options": {"note": EXAMPLE_ACCESS_KEY_ID}},
            "profiles.p.options.note: contains an AWS access key id",
        ),
    ],
)
def test_a_profile_carrying_a_key_is_refused(
    tmp_path: Path, profile: dict[str, Any], finding: str
) -> None:
    with pytest.raises(ProfileError, match=finding):
        load_profiles(write(tmp_path, {"profiles": {"p": profile}}))


def test_a_missing_file_says_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match=r"no profiles file; .* DASK_PLATFORM_PROFILES"):
        load_profiles(tmp_path / "absent.yaml")


# --------------------------------------------------------------------------- SLURM


def test_the_slurm_job_script_is_exactly_this(profiles_file: Path) -> None:
    from dask_jobqueue import SLURMCluster

    arguments = cluster_arguments(get_profile("hpc", profiles_file))
    assert arguments.cluster_class == "dask_jobqueue.SLURMCluster"
    assert arguments.load_class() is SLURMCluster
    cluster = SLURMCluster(**arguments.kwargs)
    try:
        script = cluster.job_script()
        address = cluster.scheduler_address
    finally:
        cluster.close()
    assert address.startswith("tcp://127.0.0.1:")
    assert script == (
        "#!/usr/bin/env bash\n"
        "\n"
        "#SBATCH -J dask-worker\n"
        "#SBATCH -p compute\n"
        "#SBATCH -A hydro-2026\n"
        "#SBATCH -n 1\n"
        "#SBATCH --cpus-per-task=4\n"
        "#SBATCH --mem=16G\n"
        "#SBATCH -t 02:30:00\n"
        "#SBATCH --constraint=haswell\n"
        "\n"
        f"{sys.executable} -m distributed.cli.dask_worker {address} --name dummy-name "
        "--nthreads 2 --memory-limit 8.00GiB --nworkers 2 --nanny --death-timeout 60 "
        "--interface lo\n"
    )


# --------------------------------------------------------------------------- cloudprovider


def named_parameters(*functions: Any) -> set[str]:
    names: set[str] = set()
    for function in functions:
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                names.add(parameter.name)
    return names - {"self"}


def test_fargate_profile_arguments_bind_to_the_installed_constructor(profiles_file: Path) -> None:
    from dask_cloudprovider.aws import ECSCluster, FargateCluster

    arguments = cluster_arguments(get_profile("fargate", profiles_file))
    assert arguments.load_class() is FargateCluster
    kwargs = arguments.kwargs
    inspect.signature(FargateCluster.__init__).bind(None, **kwargs)
    # FargateCluster hands everything to ECSCluster: each key must be one of its parameters.
    assert set(kwargs) - named_parameters(ECSCluster.__init__) == set()
    assert kwargs["n_workers"] == 4
    assert kwargs["task_role_arn"].endswith("ecs-hydrology-task")
    assert not {"aws_access_key_id", "aws_secret_access_key"} & set(kwargs)


def test_ecs_gpu_and_ec2_profile_arguments_bind(profiles_file: Path) -> None:
    from dask_cloudprovider.aws import EC2Cluster, ECSCluster
    from dask_cloudprovider.generic.vmcluster import VMCluster

    ecs = cluster_arguments(get_profile("ecs-gpu", profiles_file))
    assert ecs.load_class() is ECSCluster
    assert set(ecs.kwargs) - named_parameters(ECSCluster.__init__) == set()
    assert ecs.kwargs["worker_gpu"] >= 1
    ec2 = cluster_arguments(get_profile("ec2", profiles_file))
    assert ec2.load_class() is EC2Cluster
    assert set(ec2.kwargs) - named_parameters(EC2Cluster.__init__, VMCluster.__init__) == set()
    assert ec2.kwargs["iam_instance_profile"]["Arn"].endswith("ecs-climate-instance")


def test_fargate_has_no_gpus(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "profiles": {
                "f": {"kind": "fargate", "outputs": str(OUTPUTS / "prod.json"), "team": "oceans"}
                | {"gpu": True}
            }
        },
    )
    with pytest.raises(ProfileError, match="gpu: Fargate has no GPUs; use kind: ecs or ec2"):
        cluster_arguments(get_profile("f", path))


def test_a_gateway_profile_has_no_constructor_arguments(profiles_file: Path) -> None:
    with pytest.raises(ProfileError, match="starts through its gateway; use connect"):
        cluster_arguments(get_profile("central", profiles_file))


# --------------------------------------------------------------------------- the package


def test_connect_is_exported_lazily() -> None:
    assert dask_platform.connect is profiles.connect
    probe = (
        "import sys, dask_platform\n"
        "heavy = sorted(m for m in ('dask', 'distributed', 'pydantic', 'dask_gateway',"
        " 'dask_platform.profiles') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "", f"`import dask_platform` imported {done.stdout.strip()}"
    with pytest.raises(AttributeError, match="has no attribute 'conect'"):
        dask_platform.conect  # noqa: B018
