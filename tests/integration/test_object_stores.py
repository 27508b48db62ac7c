"""An outside S3-compatible store (OSN) by profile name, on the real local platform.

The stack config (local/platform.yaml) has one store, osn-renci, for hydrology (alice's team).
A second emulator process stands in for OSN with its own static key; only the store's secret in
the first emulator holds that key, and IAM there lets only hydrology's role read it.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from dask_platform.local.emulator import Emulator
from dask_platform.local.object_stores import aws_config_path, stand_in_dir
from dask_platform.local.platform import LocalPlatform
from dask_platform.local.probes import by_value
from dask_platform.object_stores import (
    CREDENTIAL_LIFETIME_SECONDS,
    CREDENTIAL_PROCESS,
    credential_process_report,
    store_round_trip,
)
from dask_platform.runbooks.verify import _object_store_findings, verify

from . import worker_probes

STORE = "osn-renci"


def run_on_cluster(cluster: Any, function: Callable[..., Any], *args: Any) -> Any:
    with cluster.get_client() as client:
        return client.submit(function, *args, pure=False).result(timeout=120)


@pytest.fixture(scope="module")
def store_key(platform: LocalPlatform, outputs: dict[str, Any]) -> dict[str, str]:
    """The stand-in's key pair, read as the operator (admin) from the first emulator."""
    secret_arn = outputs["object_stores"][STORE]["secret_arn"]
    value = platform.emulator().client("secretsmanager").get_secret_value(SecretId=secret_arn)
    pair: dict[str, str] = json.loads(value["SecretString"])
    return pair


def test_outputs_name_the_store_and_no_key(
    outputs: dict[str, Any], store_key: dict[str, str]
) -> None:
    store = outputs["object_stores"][STORE]
    assert store["teams"] == ["hydrology"]
    assert store["endpoint_url"] == "https://renc.osn.xsede.org"
    assert store["local_endpoint_url"].startswith("http://127.0.0.1:")
    text = json.dumps(outputs)
    assert store_key["access_key_id"] not in text
    assert store_key["secret_access_key"] not in text


def test_alice_writes_and_reads_the_store_by_profile_name(
    alice_cluster: Any, platform: LocalPlatform
) -> None:
    url = f"s3://{STORE}/it/alice.txt"
    result = run_on_cluster(alice_cluster, store_round_trip, STORE, url)
    assert result == {"ok": True, "error": None, "team": "hydrology"}
    # The object is in the stand-in (the second emulator), not in the platform's own S3.
    stand_in = Emulator.attach(stand_in_dir(platform.state_dir, STORE))
    body = stand_in.client("s3").get_object(Bucket=STORE, Key="it/alice.txt")["Body"].read()
    assert body == b"written by team hydrology through profile osn-renci"


def test_the_stores_region_beats_the_workers_environment(
    alice_cluster: Any, outputs: dict[str, Any]
) -> None:
    """Workers carry AWS_DEFAULT_REGION (the team's region, as the EKS webhook sets it); a
    session on the store's profile signs with the store's region, the team's own calls not."""
    store_region = outputs["object_stores"][STORE]["region"]
    assert store_region not in (None, outputs["region"])
    regions = run_on_cluster(alice_cluster, by_value(worker_probes.store_regions), STORE)
    assert regions == {
        "environment": outputs["region"],
        "team": outputs["region"],
        "boto3_session": store_region,
        "aws_profile": store_region,
        "s3fs": store_region,
    }


def test_aws_profile_naming_the_store_reads_and_writes_it(alice_cluster: Any) -> None:
    """Workers have IRSA's variables, which botocore reads before a profile's
    credential_process unless the profile is explicit: AWS_PROFILE must still get the store's
    key (it got the team's web identity, its STS call sent to the store's endpoint)."""
    result = run_on_cluster(
        alice_cluster, by_value(worker_probes.aws_profile_round_trip), STORE, STORE, "it/env.txt"
    )
    assert result == {"method": "custom-process", "read": "by AWS_PROFILE"}


def test_bobs_team_is_denied_the_secret_by_iam(bob_cluster: Any) -> None:
    result = run_on_cluster(bob_cluster, store_round_trip, STORE, f"s3://{STORE}/it/bob.txt")
    assert result["ok"] is False
    assert result["team"] == "climate"
    assert (
        "AccessDenied: object store 'osn-renci' is not granted to team 'climate'"
        in (result["error"])
    )
    assert "object stores team 'climate' can use: none" in result["error"]


def test_an_unknown_profile_names_the_teams_profiles(alice_cluster: Any) -> None:
    report = run_on_cluster(alice_cluster, credential_process_report, "osn-typo")
    assert report["returncode"] == 1
    assert (
        "'osn-typo' is not an object store of this platform; profiles team 'hydrology' can use: "
        "osn-renci"
    ) in report["stderr"]


def worker_aws_config(platform: LocalPlatform) -> str:
    """AWS_CONFIG_FILE as the platform's workers see it (venv workers: the state directory's
    file; image workers: the same file mounted where EKS mounts it)."""
    from dask_platform.local.containers import AWS_CONFIG_DIR

    path = aws_config_path(platform.state_dir)
    return f"{AWS_CONFIG_DIR}/{path.name}" if platform.container_image else str(path)


def unknown_profile_error(platform: LocalPlatform, team: str, usable: str) -> str:
    return (
        "The config profile (osn-typo) could not be found: 'osn-typo' is not an object store "
        f"of this platform; profiles team {team!r} can use: {usable} "
        f"(from AWS_CONFIG_FILE={worker_aws_config(platform)})"
    )


def test_boto3_session_with_an_unknown_profile_names_the_teams_profiles(
    alice_cluster: Any, platform: LocalPlatform
) -> None:
    """Raised on the worker by botocore itself, received by the client as that same error."""
    import boto3
    from botocore.exceptions import ProfileNotFound

    with alice_cluster.get_client() as client:
        future = client.submit(boto3.Session, profile_name="osn-typo", pure=False)
        with pytest.raises(ProfileNotFound) as caught:
            future.result(timeout=120)
    assert str(caught.value) == unknown_profile_error(platform, "hydrology", STORE)


def test_s3fs_with_an_unknown_profile_names_the_teams_profiles(
    bob_cluster: Any, platform: LocalPlatform
) -> None:
    from botocore.exceptions import ProfileNotFound

    def list_by_profile() -> Any:
        import fsspec

        fs = fsspec.filesystem("s3", profile="osn-typo", skip_instance_cache=True)
        return fs.ls(f"{STORE}/")

    with bob_cluster.get_client() as client:
        future = client.submit(list_by_profile, pure=False)
        with pytest.raises(ProfileNotFound) as caught:
            future.result(timeout=120)
    assert str(caught.value) == unknown_profile_error(platform, "climate", "none")


def test_aws_profile_naming_an_unknown_profile_names_the_teams_profiles(
    alice_cluster: Any, platform: LocalPlatform
) -> None:
    """A new interpreter on the worker (the hook comes from the environment's .pth, not from
    the worker process) whose AWS_PROFILE names no profile: boto3's default client."""

    def client_with_aws_profile() -> tuple[int, str]:
        import os
        import subprocess
        import sys

        done = subprocess.run(
            [sys.executable, "-c", "import boto3; boto3.client('s3')"],
            env={**os.environ, "AWS_PROFILE": "osn-typo"},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        return done.returncode, done.stderr.strip().splitlines()[-1]

    code, last_line = run_on_cluster(alice_cluster, client_with_aws_profile)
    assert code == 1
    assert last_line == "botocore.exceptions.ProfileNotFound: " + unknown_profile_error(
        platform, "hydrology", STORE
    )


def test_the_credential_process_prints_an_expiring_document(alice_cluster: Any) -> None:
    report = run_on_cluster(alice_cluster, credential_process_report, STORE)
    assert report["returncode"] == 0, report["stderr"]
    assert report["version"] == 1
    assert report["fields"] == ["AccessKeyId", "Expiration", "SecretAccessKey", "Version"]
    expires = datetime.datetime.strptime(report["expiration"], "%Y-%m-%dT%H:%M:%SZ")
    remaining = expires.replace(tzinfo=datetime.UTC) - datetime.datetime.now(datetime.UTC)
    # Longer than botocore's 15-minute advisory refresh, at most the documented lifetime.
    assert (
        datetime.timedelta(minutes=15)
        < remaining
        <= datetime.timedelta(seconds=CREDENTIAL_LIFETIME_SECONDS)
    )


def test_the_key_is_in_no_worker_environment_log_or_file(
    alice_cluster: Any, platform: LocalPlatform, store_key: dict[str, str]
) -> None:
    with alice_cluster.get_client() as client:
        environments = client.run(lambda: dict(__import__("os").environ))
        environments["scheduler"] = client.run_on_scheduler(lambda: dict(__import__("os").environ))
    places: dict[str, str] = {f"env {w}": json.dumps(e) for w, e in environments.items()}
    # Every log of the platform: its services', the clusters' and each stand-in store's own
    # (object-stores/<store>/logs/, which sees every request signed with the store's key).
    logs = {p for p in platform.state_dir.rglob("*.log") if p.is_file()}
    logs |= {p for p in (platform.state_dir / "logs").rglob("*") if p.is_file()}
    assert any("object-stores" in p.parts for p in logs)
    for path in logs:
        places[str(path)] = path.read_text(errors="replace")
    places["aws config"] = aws_config_path(platform.state_dir).read_text()
    places["outputs"] = platform.outputs_file.read_text()
    assert len(places) > 5
    for where, text in places.items():
        assert store_key["secret_access_key"] not in text, where
        assert store_key["access_key_id"] not in text, where


def test_scratch_prefix_is_the_users_own(alice_cluster: Any, outputs: dict[str, Any]) -> None:
    expected = f"s3://{outputs['scratch_bucket']}/hydrology/alice/"
    with alice_cluster.get_client() as client:
        on_workers = client.run(lambda: __import__("os").environ.get("PANGEO_SCRATCH"))
        on_scheduler = client.run_on_scheduler(lambda: __import__("os").environ.get("SCRATCH_URL"))
    assert set(on_workers.values()) == {expected}
    assert on_scheduler == expected


def test_workers_get_the_platform_aws_config(
    alice_cluster: Any, platform: LocalPlatform, outputs: dict[str, Any]
) -> None:
    from botocore.configloader import load_config

    with alice_cluster.get_client() as client:
        paths = set(client.run(lambda: __import__("os").environ.get("AWS_CONFIG_FILE")).values())
    assert paths == {str(aws_config_path(platform.state_dir))}
    profiles = load_config(str(Path(paths.pop())))["profiles"]
    assert profiles["default"]["endpoint_url"] == outputs["aws_endpoint_url"]
    assert profiles[STORE]["endpoint_url"] == outputs["object_stores"][STORE]["local_endpoint_url"]
    assert profiles[STORE]["credential_process"] == f"{CREDENTIAL_PROCESS} {STORE}"


# --------------------------------------------------------------------------- verify-workers


def test_verify_workers_checks_store_access_per_team(
    alice_cluster: Any, bob_cluster: Any, outputs: dict[str, Any]
) -> None:
    for cluster, team, granted in (
        (alice_cluster, "hydrology", True),
        (bob_cluster, "climate", False),
    ):
        with cluster.get_client() as client:
            report = verify(client, outputs)
        assert report.team == team
        assert report.object_stores == {STORE: granted}
        assert report.findings == []
        for worker in report.workers:
            outcome = worker.report["object_stores"][STORE]
            assert outcome["ok"] is granted
            if not granted:
                assert (
                    f"AccessDenied: object store '{STORE}' is not granted to team"
                    in (outcome["error"])
                )


def test_verify_workers_reports_a_store_key_another_team_can_read() -> None:
    """The violating case: a worker of climate that COULD read osn-renci's key."""
    stores = {STORE: {"teams": ["hydrology"]}}
    findings = _object_store_findings("climate", stores, {STORE: {"ok": True, "error": None}})
    assert findings == [
        "READ the key of object store osn-renci, which team climate is not granted: "
        "isolation is broken"
    ]
    denied = {STORE: {"ok": False, "error": "CredentialRetrievalError: AccessDenied: ..."}}
    assert _object_store_findings("hydrology", stores, denied) == [
        "cannot use object store osn-renci (CredentialRetrievalError: AccessDenied: ...)"
    ]


# --------------------------------------------------------------------------- the emulator's IAM


def test_the_emulator_authorizes_get_secret_value_by_the_secrets_arn(emulator: Emulator) -> None:
    """A grant on one secret's literal ARN reads that secret and no other (moto alone would
    check every Secrets Manager call against the resource "*")."""
    secretsmanager = emulator.client("secretsmanager")
    granted = secretsmanager.create_secret(Name="it-arn/granted", SecretString="a")["ARN"]
    other = secretsmanager.create_secret(Name="it-arn/other", SecretString="b")["ARN"]
    iam = emulator.client("iam")
    iam.create_user(UserName="it-arn-reader")
    iam.put_user_policy(
        UserName="it-arn-reader",
        PolicyName="one-secret",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "secretsmanager:GetSecretValue",
                        "Resource": granted,
                    }
                ],
            }
        ),
    )
    key = iam.create_access_key(UserName="it-arn-reader")["AccessKey"]
    reader = emulator.client(
        "secretsmanager",
        {
            "AccessKeyId": key["AccessKeyId"],
            "SecretAccessKey": key["SecretAccessKey"],
            "SessionToken": "",
        },
    )
    assert reader.get_secret_value(SecretId=granted)["SecretString"] == "a"
    assert reader.get_secret_value(SecretId="it-arn/granted")["SecretString"] == "a"
    for secret_id in (other, "it-arn/other"):
        with pytest.raises(ClientError) as caught:
            reader.get_secret_value(SecretId=secret_id)
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
