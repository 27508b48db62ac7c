"""dask_platform.cloudprovider: kwargs for the INSTALLED dask-cloudprovider, refusals, and the
list of API calls the analyst policy covers, checked against dask-cloudprovider's source.

The kwargs are built from tests/fixtures/outputs/<stack>.json, which are the program's own
outputs under mocks (regenerate with UPDATE_OUTPUT_FIXTURES=1; a test fails if they drift).
"""

from __future__ import annotations

import inspect
import json
import os
import re
from pathlib import Path

import dask_cloudprovider.aws.ec2 as ec2_module
import dask_cloudprovider.aws.ecs as ecs_module
import pytest
from dask_cloudprovider.aws import EC2Cluster, ECSCluster, FargateCluster
from dask_cloudprovider.generic.vmcluster import VMCluster

from dask_platform.analyst_policy import CLOUDPROVIDER_CALLS, calls_table
from dask_platform.cloudprovider import (
    TEAM_TAG,
    Platform,
    PlatformError,
    current_user,
    ecr_repository_arn,
)
from dask_platform.credentials import ForbiddenEnvironmentError
from dask_platform.pulumi_eval import evaluate_stack

from .conftest import REPO, STACKS

OUTPUTS = REPO / "tests" / "fixtures" / "outputs"


def fixture_outputs(stack: str) -> dict:
    """What `pulumi stack output --json` prints for the stack (secrets print as [secret])."""
    evaluation = evaluate_stack(stack, REPO)
    return {
        name: "[secret]" if name in evaluation.secret_outputs else value
        for name, value in sorted(evaluation.outputs.items())
    }


@pytest.mark.parametrize("stack", STACKS)
def test_output_fixtures_are_the_programs_outputs(stack):
    path = OUTPUTS / f"{stack}.json"
    current = fixture_outputs(stack)
    if os.environ.get("UPDATE_OUTPUT_FIXTURES"):
        path.write_text(json.dumps(current, indent=2) + "\n")
    assert json.loads(path.read_text()) == current, (
        f"{path} is stale: UPDATE_OUTPUT_FIXTURES=1 pytest {__file__}"
    )


@pytest.fixture(params=STACKS)
def platform(request) -> Platform:
    return Platform.from_outputs(OUTPUTS / f"{request.param}.json")


@pytest.fixture
def gpu_platform() -> Platform:
    platform = Platform.from_outputs(OUTPUTS / "prod.json")
    assert platform.outputs.ecs_gpu is not None, "prod is the committed stack with GPUs"
    return platform


# --------------------------------------------------------------------------- binding


def explicit_parameters(*functions) -> set[str]:
    """Named parameters (not **kwargs) of the functions a cluster manager's kwargs flow into."""
    names: set[str] = set()
    for function in functions:
        for parameter in inspect.signature(function).parameters.values():
            if parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
                names.add(parameter.name)
    return names - {"self"}


def assert_binds(kwargs: dict, *functions) -> None:
    # bind() proves the call is legal; the explicit-name check proves no kwarg silently falls
    # into a **kwargs catch-all (a renamed parameter would otherwise still "bind").
    inspect.signature(functions[0]).bind(None, **kwargs)
    unknown = set(kwargs) - explicit_parameters(*functions)
    assert not unknown, f"not parameters of the installed dask-cloudprovider: {unknown}"


def test_fargate_kwargs_bind(platform):
    for team in platform.outputs.teams:
        kwargs = platform.fargate_kwargs(team, n_workers=2)
        inspect.signature(FargateCluster.__init__).bind(None, **kwargs)
        # FargateCluster passes everything on to ECSCluster with the two fargate switches.
        assert_binds(
            {**kwargs, "fargate_scheduler": True, "fargate_workers": True}, ECSCluster.__init__
        )
        assert kwargs["task_role_arn"] == platform.outputs.ecs_task_role_arns[team]
        assert kwargs["skip_cleanup"] is True
        assert kwargs["fargate_use_private_ip"] is True
        assert kwargs["security_groups"] == [platform.outputs.ecs_security_group_id]
        assert kwargs["tags"] == {TEAM_TAG: team}


def test_ecs_kwargs_bind(platform):
    for team in platform.outputs.teams:
        kwargs = platform.ecs_kwargs(team)
        assert_binds(kwargs, ECSCluster.__init__)
        assert (kwargs["fargate_scheduler"], kwargs["fargate_workers"]) == (True, True)


def test_ecs_gpu_kwargs_bind(gpu_platform):
    kwargs = gpu_platform.ecs_kwargs("hydrology", gpu=True)
    assert_binds(kwargs, ECSCluster.__init__)
    gpu = gpu_platform.outputs.ecs_gpu
    assert gpu is not None
    assert kwargs["worker_gpu"] == gpu.gpus_per_worker
    assert kwargs["image"] == gpu.image
    assert kwargs["fargate_workers"] is False
    strategy = kwargs["worker_task_kwargs"]["capacityProviderStrategy"]
    assert strategy == [{"capacityProvider": gpu.capacity_provider, "weight": 1}]


def test_ec2_kwargs_bind(platform):
    for team in platform.outputs.teams:
        kwargs = platform.ec2_kwargs(
            team, n_workers=1, env_vars={"DASK_LOGGING__DISTRIBUTED": "info"}
        )
        assert_binds(kwargs, EC2Cluster.__init__, VMCluster.__init__)
        assert kwargs["iam_instance_profile"] == {
            "Arn": platform.outputs.ec2_instance_profile_arns[team]
        }
        assert kwargs["use_private_ip"] is True
        assert kwargs["subnet_id"] in platform.outputs.private_subnet_ids
        assert kwargs["instance_tags"] == kwargs["volume_tags"] == {TEAM_TAG: team}


def test_ec2_gpu_kwargs_bind(gpu_platform):
    kwargs = gpu_platform.ec2_kwargs("oceans", gpu=True)
    assert_binds(kwargs, EC2Cluster.__init__, VMCluster.__init__)
    assert kwargs["instance_type"].startswith(("g", "p"))


def test_a_renamed_parameter_would_be_caught():
    """The violating fixture for the binding check: a kwarg the installed version lacks."""
    with pytest.raises(AssertionError, match="cloudwatch_log_group"):
        assert_binds({"cloudwatch_log_group": "x"}, ECSCluster.__init__)


def test_ec2_cluster_still_cannot_request_imdsv2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EC2Cluster sends no MetadataOptions, which is why the platform sets the region default
    (infra/components/ecs.py, InstanceMetadataDefaults). dask-cloudprovider's own create_vm runs
    here against the AWS emulator, and the instance it launched is read back: if an upgrade
    requests IMDSv2 itself, this fails - then pass HttpTokens=required through ec2_kwargs."""
    import asyncio

    from dask_platform.local.emulator import Emulator

    assert "metadata" not in inspect.signature(EC2Cluster.__init__).parameters
    with Emulator(tmp_path / "emulator").start() as aws:
        admin = aws.admin_credentials
        for name, value in {
            "AWS_ENDPOINT_URL": aws.endpoint,
            "AWS_ACCESS_KEY_ID": admin.access_key_id,
            "AWS_SECRET_ACCESS_KEY": admin.secret_access_key,
            "AWS_DEFAULT_REGION": aws.region,
        }.items():
            monkeypatch.setenv(name, value)
        ec2 = aws.client("ec2")
        (vpc,) = ec2.describe_vpcs()["Vpcs"]  # the region's default VPC
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        group = ec2.create_security_group(
            GroupName="dask-workers", Description="workers", VpcId=vpc["VpcId"]
        )["GroupId"]
        ami, tags = "ami-12c6146b", {TEAM_TAG: "hydrology"}

        async def launch() -> None:
            cluster = EC2Cluster(asynchronous=True, region=aws.region, security=False)
            instance = ec2_module.EC2Instance(
                cluster,
                cluster.config,
                region=aws.region,
                ami=ami,
                instance_type="t3.medium",
                vpc=vpc["VpcId"],
                subnet_id=subnet,
                security_groups=[group],
                use_private_ip=True,
                filesystem_size=40,
                enable_detailed_monitoring=False,
                instance_tags=tags,
                volume_tags=tags,
                docker_image="worker",
                env_vars={},
            )
            instance.name = "dask-worker-0"  # what the cluster names its workers
            await instance.create_vm()

        # Not asyncio.run: it unsets the thread's event loop, which Pulumi's mocks (other tests
        # in this process) still use.
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(launch())
        finally:
            loop.close()
        (launched,) = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
        assert launched["MetadataOptions"]["HttpTokens"] == "optional"
        # The violating case: a launch that does ask for IMDSv2 reads back as required.
        (asked,) = ec2.run_instances(
            ImageId=ami, MinCount=1, MaxCount=1, MetadataOptions={"HttpTokens": "required"}
        )["Instances"]
        (read,) = ec2.describe_instances(InstanceIds=[asked["InstanceId"]])["Reservations"]
        assert read["Instances"][0]["MetadataOptions"]["HttpTokens"] == "required"


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "name", ["aws_access_key_id", "aws_secret_access_key", "aws_session_token"]
)
def test_key_kwargs_are_refused(platform, name):
    with pytest.raises(PlatformError, match=name):
        platform.fargate_kwargs("hydrology", **{name: "AKIAEXAMPLE"})


def test_key_variables_in_environment_are_refused(platform):
    with pytest.raises(ForbiddenEnvironmentError, match="environment: AWS_SECRET_ACCESS_KEY"):
        platform.fargate_kwargs("hydrology", environment={"AWS_SECRET_ACCESS_KEY": "x", "A": "1"})
    with pytest.raises(ForbiddenEnvironmentError, match="env_vars: AWS_SESSION_TOKEN"):
        platform.ec2_kwargs("hydrology", env_vars={"AWS_SESSION_TOKEN": "x"})
    with pytest.raises(ForbiddenEnvironmentError, match="environment: aws_role_arn"):
        platform.ecs_kwargs("hydrology", environment={"aws_role_arn": "arn:aws:iam::1:role/x"})


def test_key_variables_smuggled_elsewhere_are_refused(platform):
    with pytest.raises(PlatformError, match="docker_args"):
        platform.ec2_kwargs("hydrology", docker_args="-e AWS_ACCESS_KEY_ID=AKIAEXAMPLE")
    with pytest.raises(PlatformError, match="worker_task_kwargs"):
        platform.ecs_kwargs(
            "hydrology",
            worker_task_kwargs={"overrides": {"environment": [{"AWS_SECRET_ACCESS_KEY": "x"}]}},
        )


def test_a_harmless_environment_passes(platform):
    kwargs = platform.fargate_kwargs("hydrology", environment={"EXTRA_PIP_PACKAGES": "xarray"})
    assert kwargs["environment"]["EXTRA_PIP_PACKAGES"] == "xarray"


@pytest.mark.parametrize("name", ["task_role_arn", "iam_instance_profile", "security_groups"])
def test_platform_owned_kwargs_cannot_be_replaced(platform, name):
    build = platform.ec2_kwargs if name == "iam_instance_profile" else platform.fargate_kwargs
    with pytest.raises(PlatformError, match=f"{name}: set by the platform"):
        build("hydrology", **{name: "something-else"})


def test_the_team_tag_cannot_name_another_team(platform):
    with pytest.raises(PlatformError, match=r"tags\['dask-platform/team'\]: must be 'hydrology'"):
        platform.fargate_kwargs("hydrology", tags={TEAM_TAG: "climate"})
    kwargs = platform.fargate_kwargs("hydrology", tags={"project": "floods"})
    assert kwargs["tags"] == {"project": "floods", TEAM_TAG: "hydrology"}


def test_unknown_team_names_the_teams(platform):
    with pytest.raises(PlatformError, match="team: unknown team 'nobody'; one of hydrology"):
        platform.fargate_kwargs("nobody")


def test_gpu_without_gpu_capacity_names_the_config_key():
    platform = Platform.from_outputs(OUTPUTS / "dev.json")
    with pytest.raises(PlatformError, match=r"ecs\.gpu\.enabled: false"):
        platform.ecs_kwargs("hydrology", gpu=True)


def test_ec2_refused_without_the_imdsv2_default():
    data = json.loads((OUTPUTS / "dev.json").read_text())
    platform = Platform.from_mapping({**data, "ec2_imdsv2_required": False})
    with pytest.raises(PlatformError, match=r"ecs\.imdsv2_account_default"):
        platform.ec2_kwargs("hydrology")
    assert platform.fargate_kwargs("hydrology")["cluster_arn"] == data["ecs_cluster_arn"]


def test_outputs_without_ecs_are_refused():
    data = json.loads((OUTPUTS / "dev.json").read_text())
    platform = Platform.from_mapping({k: v for k, v in data.items() if not k.startswith("ecs_")})
    with pytest.raises(PlatformError, match=r"ecs\.enabled: false"):
        platform.fargate_kwargs("hydrology")


def test_bad_outputs_files_name_the_problem(tmp_path):
    with pytest.raises(PlatformError, match=r"missing\.json: no such file \(write it with"):
        Platform.from_outputs(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"region": "us-west-2"}))
    with pytest.raises(PlatformError, match="vpc_id: required key is missing"):
        Platform.from_outputs(bad)


def test_ecr_repository_arn():
    image = "123456789012.dkr.ecr.us-west-2.amazonaws.com/dask-platform/worker:lock-1"
    assert ecr_repository_arn(image) == (
        "arn:aws:ecr:us-west-2:123456789012:repository/dask-platform/worker"
    )
    assert ecr_repository_arn("ghcr.io/org/worker:1") is None


# --------------------------------------------------------------------------- the call list

# Calls in dask-cloudprovider's AWS code that the platform's kwargs never reach, and why.
NOT_ON_THE_SUPPLIED_PATH = {
    "create_cluster": "cluster_arn is supplied",
    "delete_cluster": "cluster_arn is supplied (and skip_cleanup=True)",
    "list_tasks": "only when deleting a cluster it created",
    "create_role": "execution_role_arn and task_role_arn are supplied",
    "attach_role_policy": "roles are supplied",
    "list_attached_role_policies": "roles are supplied (and skip_cleanup=True)",
    "detach_role_policy": "roles are supplied (and skip_cleanup=True)",
    "delete_role": "roles are supplied (and skip_cleanup=True)",
    "list_role_tags": "skip_cleanup=True",
    "list_roles": "skip_cleanup=True",
    "list_clusters": "skip_cleanup=True",
    "list_task_definitions": "skip_cleanup=True",
    "describe_task_definition": "skip_cleanup=True",
    "describe_log_groups": "cloudwatch_logs_group is supplied",
    "create_log_group": "cloudwatch_logs_group is supplied",
    "put_retention_policy": "cloudwatch_logs_group is supplied",
    "delete_security_group": "security_groups are supplied",
    "describe_security_groups": "security_groups are supplied",
    "create_security_group": "security_groups are supplied",
    "authorize_security_group_ingress": "security_groups are supplied",
    "describe_vpcs": "vpc and subnets are supplied",
    "describe_subnets": "subnets/subnet_id are supplied",
    "describe_images": "ami is supplied",
    "get_log_events": "never reached: Task.logs fails on its own attributes first "
    "(test_ecs_task_logs_fail_before_any_request)",
}


def source_operations() -> set[str]:
    """Every AWS operation the installed dask-cloudprovider's AWS modules call."""
    package = Path(ecs_module.__file__).parent
    text = "\n".join((package / f).read_text() for f in ("ecs.py", "ec2.py", "helper.py"))
    calls = re.findall(r"await (?:ecs|ec2|iam|logs|client)\.([a-z_]+)\(", text)
    paginated = re.findall(r'get_paginator\("([a-z_]+)"\)', text)
    return set(calls + paginated)


def test_every_call_in_the_source_is_listed_or_explained():
    listed = {call.operation for call in CLOUDPROVIDER_CALLS}
    operations = source_operations()
    unexplained = operations - listed - set(NOT_ON_THE_SUPPLIED_PATH)
    assert not unexplained, f"new dask-cloudprovider calls to review: {sorted(unexplained)}"
    assert listed <= operations, f"listed but no longer in the source: {listed - operations}"


def test_docs_list_the_calls():
    doc = (REPO / "docs" / "explanation" / "cloudprovider.md").read_text()
    assert calls_table() in doc, (
        "docs/explanation/cloudprovider.md table is stale: paste "
        "dask_platform.analyst_policy.calls_table()"
    )


# --------------------------------------------------------------------------- object stores

STORE_OUTPUT = {
    "endpoint_url": "https://renc.osn.xsede.org",
    "region": None,
    "addressing_style": "path",
    "teams": ["hydrology"],
    "secret_arn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:x/osn-renci-AbC",
    "profile": "osn-renci",
}


@pytest.fixture
def platform_with_store() -> Platform:
    outputs = json.loads((OUTPUTS / "prod.json").read_text())
    outputs["object_stores"] = {"osn-renci": STORE_OUTPUT}
    return Platform.from_mapping(outputs)


@pytest.mark.parametrize(
    ("method", "field"),
    [("fargate_kwargs", "environment"), ("ecs_kwargs", "environment"), ("ec2_kwargs", "env_vars")],
)
def test_ecs_and_ec2_get_the_platform_aws_config_as_text(
    platform_with_store: Platform, method: str, field: str, tmp_path
) -> None:
    from botocore.configloader import load_config

    from dask_platform.object_stores import materialize_aws_config

    kwargs = getattr(platform_with_store, method)("hydrology", **{field: {"MY_VARIABLE": "1"}})
    environment = kwargs[field]
    assert sorted(environment) == [
        "DASK_PLATFORM_AWS_CONFIG",
        "DASK_PLATFORM_TEAM",
        "MY_VARIABLE",
        "PANGEO_SCRATCH",
        "SCRATCH_URL",
    ]
    assert environment["DASK_PLATFORM_TEAM"] == "hydrology"
    assert environment["MY_VARIABLE"] == "1"
    # What the worker image does with it at interpreter start: a file botocore reads.
    env = dict(environment)
    path = materialize_aws_config(env)
    assert path is not None
    assert env["AWS_CONFIG_FILE"] == path
    profile = load_config(path)["profiles"]["osn-renci"]
    assert profile["credential_process"] == "dask-platform-credential-process osn-renci"
    assert profile["dask_platform_secret_id"] == STORE_OUTPUT["secret_arn"]


def test_the_config_survives_ec2clusters_cloud_init(platform_with_store: Platform) -> None:
    """EC2Cluster renders env_vars into a quoted line of its cloud-init YAML (the upstream
    template, rendered here); the instance's `docker run` must receive the config intact."""
    import shlex
    from types import SimpleNamespace

    import yaml
    from dask_cloudprovider.generic.vmcluster import VMCluster

    from dask_platform.object_store_deploy import aws_config_from_outputs
    from dask_platform.object_stores import materialize_aws_config

    kwargs = platform_with_store.ec2_kwargs("hydrology")

    def docker_env(env_vars: dict[str, str]) -> dict[str, str]:
        rendered = VMCluster.render_cloud_init(
            SimpleNamespace(debug=False),
            image=kwargs["docker_image"],
            command="python -m distributed.cli.dask_worker tls://10.0.0.1:8786",
            docker_args="",
            extra_bootstrap=None,
            gpu_instance=False,
            bootstrap=True,
            auto_shutdown=True,
            env_vars=env_vars,
        )
        runs = [c for c in yaml.safe_load(rendered)["runcmd"] if "docker run" in str(c)]
        words = shlex.split(runs[0])
        return dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "-e")

    received = docker_env(kwargs["env_vars"])
    scratch = f"s3://{platform_with_store.outputs.scratch_bucket}/hydrology/{current_user()}/"
    assert received["PANGEO_SCRATCH"] == received["SCRATCH_URL"] == scratch
    assert received["DASK_PLATFORM_TEAM"] == "hydrology"
    expected = aws_config_from_outputs({"object_stores": {"osn-renci": STORE_OUTPUT}})
    path = materialize_aws_config(dict(received))
    assert path is not None
    assert Path(path).read_text() == expected
    # The violating case: the config's plain text (its newlines) breaks the cloud-init YAML.
    with pytest.raises(yaml.YAMLError):
        docker_env({"DASK_PLATFORM_AWS_CONFIG": expected or ""})


def test_a_malformed_config_value_is_one_clear_error() -> None:
    from dask_platform.object_stores import ObjectStoreError, materialize_aws_config

    with pytest.raises(ObjectStoreError) as caught:
        materialize_aws_config({"DASK_PLATFORM_AWS_CONFIG": "[profile x]\nregion = y\n"})
    assert str(caught.value).startswith(
        "DASK_PLATFORM_AWS_CONFIG: not the base64 of an AWS config file"
    )


BINDS = {
    "fargate_kwargs": (ECSCluster.__init__,),  # FargateCluster passes everything on
    "ecs_kwargs": (ECSCluster.__init__,),
    "ec2_kwargs": (EC2Cluster.__init__, VMCluster.__init__),
}

KWARGS_ENVIRONMENT = [
    ("fargate_kwargs", "environment", {}),
    ("ecs_kwargs", "environment", {}),
    ("ecs_kwargs", "environment", {"gpu": True}),
    ("ec2_kwargs", "env_vars", {}),
    ("ec2_kwargs", "env_vars", {"gpu": True}),
]


@pytest.mark.parametrize(("method", "field", "options"), KWARGS_ENVIRONMENT)
def test_every_kwargs_set_the_users_scratch_prefix_and_team(
    method: str, field: str, options: dict
) -> None:
    """As the gateway does on Kubernetes: s3://<scratch>/<team>/<user>/ on scheduler and workers
    (dask-cloudprovider passes one environment to both), with or without object stores."""
    platform = Platform.from_outputs(OUTPUTS / "prod.json")
    bucket = platform.outputs.scratch_bucket
    kwargs = getattr(platform, method)("oceans", user="carol", **options, **{field: {"A": "1"}})
    assert kwargs[field] == {
        "A": "1",
        "DASK_PLATFORM_TEAM": "oceans",
        "SCRATCH_URL": f"s3://{bucket}/oceans/carol/",
        "PANGEO_SCRATCH": f"s3://{bucket}/oceans/carol/",
    }
    assert_binds(kwargs, *BINDS[method])


def test_the_user_defaults_to_the_hub_user_then_the_login_name(
    platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = platform.outputs.scratch_bucket
    monkeypatch.setenv("JUPYTERHUB_USER", "dana")
    monkeypatch.setenv("USER", "dana-login")
    assert platform.fargate_kwargs("hydrology")["environment"]["PANGEO_SCRATCH"] == (
        f"s3://{bucket}/hydrology/dana/"
    )
    monkeypatch.delenv("JUPYTERHUB_USER")
    monkeypatch.setenv("LOGNAME", "dana-login")
    assert platform.ec2_kwargs("hydrology")["env_vars"]["SCRATCH_URL"] == (
        f"s3://{bucket}/hydrology/dana-login/"
    )
    assert current_user({"JUPYTERHUB_USER": "erin"}) == "erin"


@pytest.mark.parametrize("user", ["a/b", "..", ".", "al\nice", "tab\t", ""])
@pytest.mark.parametrize("method", ["fargate_kwargs", "ecs_kwargs", "ec2_kwargs"])
def test_a_user_that_cannot_be_a_prefix_is_one_clear_error(platform, method, user) -> None:
    """'..' would make the prefix the team's own (s3://<scratch>/<team>/../), which zarr and
    any path normalisation resolve; an explicit empty user is not the login name."""
    with pytest.raises(PlatformError) as caught:
        getattr(platform, method)("hydrology", user=user)
    assert str(caught.value) == (
        f"user: {user!r} cannot name a scratch prefix (one path segment: not empty, not '.' "
        "or '..', no '/' or control character)"
    )


@pytest.mark.parametrize(
    "name",
    [
        "DASK_PLATFORM_AWS_CONFIG",
        "dask_platform_aws_config",
        "PANGEO_SCRATCH",
        "SCRATCH_URL",
        "DASK_PLATFORM_TEAM",
        "dask_platform_team",
    ],
)
@pytest.mark.parametrize("with_stores", [True, False])
def test_users_cannot_set_the_platform_variables(
    platform_with_store: Platform, name: str, with_stores: bool
) -> None:
    platform = platform_with_store if with_stores else Platform.from_outputs(OUTPUTS / "prod.json")
    with pytest.raises(PlatformError) as caught:
        platform.fargate_kwargs("hydrology", environment={name: "x"})
    assert str(caught.value).startswith(f"environment: {name} is set by the platform")
    with pytest.raises(PlatformError) as caught:
        platform.ec2_kwargs("hydrology", env_vars={name: "x"})
    assert str(caught.value).startswith(f"env_vars: {name} is set by the platform")


def test_a_mounted_config_file_wins_over_the_text(tmp_path) -> None:
    from dask_platform.object_stores import materialize_aws_config

    env = {"DASK_PLATFORM_AWS_CONFIG": "W3Byb2ZpbGUgeF0K", "AWS_CONFIG_FILE": "/etc/mounted"}
    assert materialize_aws_config(env) is None
    assert env["AWS_CONFIG_FILE"] == "/etc/mounted"
    assert materialize_aws_config({}) is None
