"""Object stores by profile name in the images (issue 14): the worker image (which does not
install dask_platform) and the notebook image carry `dask-platform-credential-process`, derived
from dask_platform/object_stores.py at build time, on PATH for uid 1000; run in a container
against a real emulator (moto server, IAM enforced) with a team role's credentials it prints the
credential_process document, and without access it fails with AccessDenied naming store and
team. The notebook's start script writes the platform AWS config from the stack's outputs."""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dask_platform.images.build import credential_process_script
from dask_platform.object_store_deploy import StoreProfile, render_aws_config, secret_name
from dask_platform.object_stores import AWS_CONFIG_PATH, CREDENTIAL_PROCESS, NOTEBOOK_AWS_CONFIG

from .conftest import REPO

STORE = "osn-test"
GRANTED_TEAM = "hydrology"
OTHER_TEAM = "climate"
STORE_KEY = {"access_key_id": "STANDINSTOREKEYID", "secret_access_key": "stand-in-store-secret"}
TRUST_ADMIN = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::{account}:user/{admin}"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@pytest.mark.parametrize("image", ["worker", "notebook"])
def test_the_credential_process_is_on_path_for_uid_1000(image: str, hosts: dict[str, Any]) -> None:
    host = hosts[image]
    assert host.user().uid == 1000
    found = host.run(f"command -v {CREDENTIAL_PROCESS}")
    assert found.rc == 0, f"{CREDENTIAL_PROCESS} is not on PATH in the {image} image"
    # The worker's is the script derived at build time; the notebook, which installs the
    # dask_platform package, finds that package's console script first (the same module).
    first = "/usr/local/bin" if image == "worker" else "/opt/venv/bin"
    assert found.stdout.strip() == f"{first}/{CREDENTIAL_PROCESS}"
    script = host.file(f"/usr/local/bin/{CREDENTIAL_PROCESS}")
    assert script.user == "root"
    assert script.mode == 0o755
    # Derived from the module at build time, byte for byte: no copy that could drift.
    assert script.content_string == credential_process_script()
    usage = host.run(CREDENTIAL_PROCESS)
    assert usage.rc == 2
    assert f"usage: {CREDENTIAL_PROCESS} <object store profile name>" in usage.stderr


def test_the_worker_image_has_no_dask_platform_package(hosts: dict[str, Any]) -> None:
    # The credential process must not depend on it (the worker stays the compute stack only).
    result = hosts["worker"].run("python -c 'import dask_platform'")
    assert result.rc == 1
    assert "No module named 'dask_platform'" in result.stderr


@pytest.fixture(scope="module")
def store_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A moto server (IAM enforced) with one store secret, a role of the granted team that may
    read it (the platform's policy document) and one of another team that may not; the platform
    AWS config for it. Yields the emulator, the config directory and each role's credentials."""
    from dask_platform.iam import object_store_key_read_policy
    from dask_platform.local.emulator import Emulator
    from dask_platform.local.emulator_server import ADMIN_USER

    root = tmp_path_factory.mktemp("credential-process")
    emulator = Emulator(root / "emulator").start()
    try:
        kms = emulator.client("kms")
        key_arn = kms.create_key(Description="object store keys")["KeyMetadata"]["Arn"]
        secret_arn = emulator.client("secretsmanager").create_secret(
            Name=secret_name("dask-test", STORE),
            KmsKeyId=key_arn,
            SecretString=json.dumps(STORE_KEY),
        )["ARN"]
        iam = emulator.client("iam")
        # The test stands in for the webhook: its admin assumes each team's role.
        trust = (
            json.dumps(TRUST_ADMIN)
            .replace("{account}", emulator.account_id)
            .replace("{admin}", ADMIN_USER)
        )
        credentials = {}
        for team in (GRANTED_TEAM, OTHER_TEAM):
            role = iam.create_role(RoleName=f"dask-test-{team}", AssumeRolePolicyDocument=trust)
            if team == GRANTED_TEAM:
                iam.put_role_policy(
                    RoleName=f"dask-test-{team}",
                    PolicyName="object-stores",
                    PolicyDocument=json.dumps(
                        object_store_key_read_policy([secret_arn], key_arn, emulator.region)
                    ),
                )
            credentials[team] = emulator.client("sts").assume_role(
                RoleArn=role["Role"]["Arn"], RoleSessionName=f"{team}-worker"
            )["Credentials"]
        config_dir = root / "aws"
        config_dir.mkdir()
        config_dir.chmod(0o755)
        profile = StoreProfile(STORE, "http://127.0.0.1:9", (GRANTED_TEAM,), secret_arn)
        (config_dir / "config").write_text(
            render_aws_config([profile], default_endpoint_url=emulator.endpoint)
        )
        (config_dir / "config").chmod(0o644)
        yield {"emulator": emulator, "config_dir": config_dir, "credentials": credentials}
    finally:
        emulator.stop()


def run_credential_process(
    engine: Any, image: str, store: dict[str, Any], team: str, profile: str = STORE
) -> tuple[int, str, str]:
    """Run the command in a container of ``image`` as the image's user, on the host network
    (the emulator listens on 127.0.0.1), with ``team``'s role credentials in its environment
    and the platform AWS config mounted where EKS mounts it. Returns (exit code, out, err)."""
    role = store["credentials"][team]
    container = engine.client.containers.run(
        image,
        [CREDENTIAL_PROCESS, profile],
        environment={
            "AWS_ACCESS_KEY_ID": role["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": role["SecretAccessKey"],
            "AWS_SESSION_TOKEN": role["SessionToken"],
            "AWS_DEFAULT_REGION": store["emulator"].region,
            "AWS_CONFIG_FILE": AWS_CONFIG_PATH,
            "DASK_PLATFORM_TEAM": team,
        },
        volumes={
            str(store["config_dir"]): {"bind": os.path.dirname(AWS_CONFIG_PATH), "mode": "ro"}
        },
        network_mode="host",
        healthcheck={"test": ["NONE"]},
        detach=True,
    )
    try:
        code = int(container.wait(timeout=120)["StatusCode"])
        out = container.logs(stdout=True, stderr=False).decode()
        err = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    return code, out, err


@pytest.mark.parametrize("image", ["worker", "notebook"])
def test_the_granted_team_gets_the_store_key_with_an_expiration(
    image: str, engine: Any, built: dict[str, Any], store_emulator: dict[str, Any]
) -> None:
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    code, out, err = run_credential_process(
        engine, built[image].build_reference, store_emulator, GRANTED_TEAM
    )
    assert code == 0, err
    document = json.loads(out)
    assert sorted(document) == ["AccessKeyId", "Expiration", "SecretAccessKey", "Version"]
    assert document["Version"] == 1
    assert document["AccessKeyId"] == STORE_KEY["access_key_id"]
    assert document["SecretAccessKey"] == STORE_KEY["secret_access_key"]
    expires = datetime.datetime.strptime(document["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(
        tzinfo=datetime.UTC
    )
    assert before + datetime.timedelta(minutes=59) <= expires
    assert expires <= before + datetime.timedelta(minutes=62)


def test_another_team_is_denied_naming_store_and_team(
    engine: Any, built: dict[str, Any], store_emulator: dict[str, Any]
) -> None:
    code, out, err = run_credential_process(
        engine, built["worker"].build_reference, store_emulator, OTHER_TEAM
    )
    assert code == 1
    assert out == ""
    assert f"AccessDenied: object store '{STORE}' is not granted to team '{OTHER_TEAM}'" in err
    assert "object stores team 'climate' can use: none" in err
    assert STORE_KEY["secret_access_key"] not in err


def test_an_unknown_profile_names_the_teams_profiles(
    engine: Any, built: dict[str, Any], store_emulator: dict[str, Any]
) -> None:
    code, out, err = run_credential_process(
        engine, built["worker"].build_reference, store_emulator, GRANTED_TEAM, "osn-typo"
    )
    assert code == 1
    assert out == ""
    assert "'osn-typo' is not an object store of this platform; profiles team " in err
    assert f"'{GRANTED_TEAM}' can use: {STORE}" in err


def outputs_with_store(tmp_path: Path) -> Path:
    outputs = json.loads((REPO / "tests/fixtures/outputs/prod.json").read_text())
    outputs["object_stores"] = {
        STORE: {
            "endpoint_url": "https://renc.osn.xsede.org",
            "region": None,
            "addressing_style": "path",
            "teams": [GRANTED_TEAM],
            "secret_arn": "arn:aws:secretsmanager:us-west-2:123456789012:secret:x/osn-test-AbC",
            "profile": STORE,
        }
    }
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(outputs))
    path.chmod(0o644)
    return path


def test_the_notebook_start_writes_the_platform_aws_config(
    engine: Any, built: dict[str, Any], tmp_path: Path
) -> None:
    outputs = outputs_with_store(tmp_path)
    script = (
        "import botocore.session, os; s = botocore.session.Session(profile='osn-test'); "
        "c = s.get_scoped_config(); print(os.environ['AWS_CONFIG_FILE']); "
        "print(c['endpoint_url']); print(c['credential_process']); "
        "print(s.get_config_variable('s3')['addressing_style'])"
    )
    logs = engine.client.containers.run(
        built["notebook"].build_reference,
        ["python", "-c", script],
        environment={"DASK_PLATFORM_OUTPUTS": "/srv/outputs.json"},
        volumes={str(outputs): {"bind": "/srv/outputs.json", "mode": "ro"}},
        network_disabled=True,
        healthcheck={"test": ["NONE"]},
        remove=True,
    )
    lines = logs.decode().strip().splitlines()[-4:]
    assert lines == [
        f"/home/dask/{NOTEBOOK_AWS_CONFIG}",
        "https://renc.osn.xsede.org",
        f"{CREDENTIAL_PROCESS} {STORE}",
        "path",
    ]


def test_the_notebook_start_keeps_a_mounted_aws_config(
    engine: Any, built: dict[str, Any], tmp_path: Path
) -> None:
    # The hub mounts the platform's ConfigMap and sets AWS_CONFIG_FILE: nothing is written.
    outputs = outputs_with_store(tmp_path)
    # The answer goes to a mounted file, not the log: the start script's own lines share stdout,
    # and podman may hand back a short-lived container's log before its last lines arrive.
    results = tmp_path / "results"
    results.mkdir()
    results.chmod(0o777)
    engine.client.containers.run(
        built["notebook"].build_reference,
        [
            "sh",
            "-c",
            f'{{ echo "$AWS_CONFIG_FILE"; test -e "$HOME/{NOTEBOOK_AWS_CONFIG}"; echo $?; }}'
            " > /results/answer",
        ],
        environment={
            "DASK_PLATFORM_OUTPUTS": "/srv/outputs.json",
            "AWS_CONFIG_FILE": AWS_CONFIG_PATH,
        },
        volumes={
            str(outputs): {"bind": "/srv/outputs.json", "mode": "ro"},
            str(results): {"bind": "/results", "mode": "rw"},
        },
        network_disabled=True,
        healthcheck={"test": ["NONE"]},
        remove=True,
    )
    assert (results / "answer").read_text().splitlines() == [AWS_CONFIG_PATH, "1"]


def test_the_notebook_start_sets_the_hub_users_scratch_prefix(
    engine: Any, built: dict[str, Any], tmp_path: Path
) -> None:
    """JupyterHub sets JUPYTERHUB_USER; the notebook runs as its team's role (IRSA sets
    AWS_ROLE_ARN): the start script sets SCRATCH_URL = PANGEO_SCRATCH to that user's prefix."""
    outputs_path = outputs_with_store(tmp_path)
    outputs = json.loads(outputs_path.read_text())
    logs = engine.client.containers.run(
        built["notebook"].build_reference,
        ["sh", "-c", 'echo "$SCRATCH_URL"; echo "$PANGEO_SCRATCH"'],
        environment={
            "DASK_PLATFORM_OUTPUTS": "/srv/outputs.json",
            "JUPYTERHUB_USER": "dana",
            "AWS_ROLE_ARN": outputs["team_role_arns"][OTHER_TEAM],
        },
        volumes={str(outputs_path): {"bind": "/srv/outputs.json", "mode": "ro"}},
        network_disabled=True,
        healthcheck={"test": ["NONE"]},
        remove=True,
    )
    expected = f"s3://{outputs['scratch_bucket']}/{OTHER_TEAM}/dana/"
    assert logs.decode().strip().splitlines()[-2:] == [expected, expected]


def test_a_stores_region_beats_the_workers_environment(engine: Any, built: dict[str, Any]) -> None:
    """The worker image's .pth (no dask_platform package there): a store profile's region holds
    for that profile over AWS_DEFAULT_REGION (which ECS and the EKS webhook set); the team's own
    session keeps the environment's."""
    from dask_platform.object_stores import AWS_CONFIG_CONTENT_ENV, aws_config_env_value

    text = render_aws_config(
        [StoreProfile(STORE, "http://127.0.0.1:9", (GRANTED_TEAM,), "arn:x", region="us-east-2")]
    )
    script = (
        "import boto3; "
        f"print(boto3.Session(profile_name={STORE!r}).region_name); "
        "print(boto3.Session().region_name)"
    )
    logs = engine.client.containers.run(
        built["worker"].build_reference,
        ["python", "-c", script],
        environment={
            AWS_CONFIG_CONTENT_ENV: aws_config_env_value(text),
            "AWS_DEFAULT_REGION": "eu-central-1",
            "AWS_REGION": "eu-central-1",
        },
        network_disabled=True,
        healthcheck={"test": ["NONE"]},
        remove=True,
    )
    assert logs.decode().strip().splitlines()[-2:] == ["us-east-2", "eu-central-1"]


def test_ecs_and_ec2_workers_get_the_config_from_its_text(
    engine: Any, built: dict[str, Any], store_emulator: dict[str, Any]
) -> None:
    """ECS/Fargate tasks and EC2 instances have no mount: the cloudprovider kwargs carry the
    config's text in DASK_PLATFORM_AWS_CONFIG, and any Python of the worker image (a .pth)
    writes it to a file and sets AWS_CONFIG_FILE - so the store resolves by profile name."""
    from dask_platform.object_stores import AWS_CONFIG_CONTENT_ENV, aws_config_env_value

    role = store_emulator["credentials"][GRANTED_TEAM]
    script = (
        "import os, boto3; "
        f"c = boto3.Session(profile_name={STORE!r}).get_credentials().get_frozen_credentials(); "
        "print(os.environ['AWS_CONFIG_FILE']); print(c.access_key)"
    )
    logs = engine.client.containers.run(
        built["worker"].build_reference,
        ["python", "-c", script],
        environment={
            "AWS_ACCESS_KEY_ID": role["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": role["SecretAccessKey"],
            "AWS_SESSION_TOKEN": role["SessionToken"],
            "AWS_DEFAULT_REGION": store_emulator["emulator"].region,
            AWS_CONFIG_CONTENT_ENV: aws_config_env_value(
                (store_emulator["config_dir"] / "config").read_text()
            ),
            "DASK_PLATFORM_TEAM": GRANTED_TEAM,
        },
        network_mode="host",
        healthcheck={"test": ["NONE"]},
        remove=True,
    )
    assert logs.decode().strip().splitlines()[-2:] == [
        "/tmp/dask-platform-aws-1000/config",
        STORE_KEY["access_key_id"],
    ]


def test_without_the_text_nothing_is_written(hosts: dict[str, Any]) -> None:
    result = hosts["worker"].run(
        "python -c 'import os; print(os.environ.get(\"AWS_CONFIG_FILE\"))'; "
        "test -e /tmp/dask-platform-aws-1000; echo $?"
    )
    assert result.stdout.split() == ["None", "1"]


# --------------------------------------------------------------------------- unknown profiles

UNKNOWN_PROFILE_SCRIPT = r"""
import json, os, subprocess, sys
at_start = sorted(m for m in sys.modules if m.startswith(("botocore", "boto3", "s3fs")))
import boto3, fsspec
def error(call):
    try:
        call()
    except Exception as exc:
        return f"{type(exc).__module__}.{type(exc).__name__}: {exc}"
by_env = subprocess.run(
    [sys.executable, "-c", "import boto3; boto3.client('s3')"],
    env={**os.environ, "AWS_PROFILE": "osn-typo"}, capture_output=True, text=True,
)
print(json.dumps({
    "at_start": at_start,
    "session": error(lambda: boto3.Session(profile_name="osn-typo")),
    "s3fs": error(lambda: fsspec.filesystem("s3", profile="osn-typo").ls("osn-test/")),
    "aws_profile": by_env.stderr.strip().splitlines()[-1],
}))
"""


def unknown_profile_errors(
    engine: Any, image: str, environment: dict[str, str], volumes: dict[str, Any]
) -> dict[str, Any]:
    logs = engine.client.containers.run(
        image,
        ["python", "-c", UNKNOWN_PROFILE_SCRIPT],
        environment={"DASK_PLATFORM_TEAM": GRANTED_TEAM, **environment},
        volumes=volumes,
        network_disabled=True,
        healthcheck={"test": ["NONE"]},
        remove=True,
    )
    result: dict[str, Any] = json.loads(logs.decode().strip().splitlines()[-1])
    return result


def expected_unknown_profile(config_file: str) -> str:
    return (
        "botocore.exceptions.ProfileNotFound: The config profile (osn-typo) could not be found: "
        f"'osn-typo' is not an object store of this platform; profiles team '{GRANTED_TEAM}' "
        f"can use: {STORE} (from AWS_CONFIG_FILE={config_file})"
    )


@pytest.mark.parametrize("image", ["worker", "notebook"])
def test_an_unknown_profile_names_the_teams_profiles_in_python(
    image: str, engine: Any, built: dict[str, Any], store_emulator: dict[str, Any]
) -> None:
    """botocore's own ProfileNotFound, from boto3.Session(profile_name=...), s3fs's profile=
    and AWS_PROFILE (a new interpreter), names the team's profiles and the file - extended by
    the image's .pth when botocore is imported, never at interpreter start."""
    errors = unknown_profile_errors(
        engine,
        built[image].build_reference,
        {"AWS_CONFIG_FILE": AWS_CONFIG_PATH},
        {
            str(store_emulator["config_dir"]): {
                "bind": os.path.dirname(AWS_CONFIG_PATH),
                "mode": "ro",
            }
        },
    )
    message = expected_unknown_profile(AWS_CONFIG_PATH)
    assert errors == {
        "at_start": [],
        "session": message,
        "s3fs": message,
        "aws_profile": message,
    }


def test_an_unknown_profile_on_ecs_and_ec2_names_the_teams_profiles(
    engine: Any, built: dict[str, Any], store_emulator: dict[str, Any]
) -> None:
    """Where the config arrives as text (ECS/Fargate tasks, EC2 instances), the same error
    names the file the .pth wrote."""
    from dask_platform.object_stores import AWS_CONFIG_CONTENT_ENV, aws_config_env_value

    text = (store_emulator["config_dir"] / "config").read_text()
    errors = unknown_profile_errors(
        engine,
        built["worker"].build_reference,
        {AWS_CONFIG_CONTENT_ENV: aws_config_env_value(text)},
        {},
    )
    message = expected_unknown_profile("/tmp/dask-platform-aws-1000/config")
    assert errors == {
        "at_start": [],
        "session": message,
        "s3fs": message,
        "aws_profile": message,
    }
