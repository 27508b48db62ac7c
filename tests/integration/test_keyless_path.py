"""Everything `make demo` shows, as assertions, plus the isolation it implies."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import cloudpickle
import dask
import dask.bag as db
import pytest

from dask_platform.local import probes

from . import worker_probes

# This module's own worker functions travel by value, as a notebook's do (the workers cannot
# import `tests`).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

WEBHOOK_VARIABLES = {
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    # The platform AWS config (object store profiles; locally also the emulator as the default
    # endpoint, in place of an AWS_ENDPOINT_URL that would override every profile's).
    "AWS_CONFIG_FILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
}


def identities(cluster: Any) -> dict[str, dict[str, Any]]:
    with cluster.get_client() as client:
        result: dict[str, dict[str, Any]] = client.run(worker_probes.identity_report)
    return result


def run_on_cluster(cluster: Any, function: Callable[..., Any], *args: Any) -> Any:
    with cluster.get_client() as client:
        return client.submit(probes.by_value(function), *args, pure=False).result(timeout=120)


def test_every_worker_is_the_team_role(alice_cluster: Any, outputs: dict[str, Any]) -> None:
    role_name = outputs["team_role_arns"]["hydrology"].split("/")[-1]
    reports = identities(alice_cluster)
    assert len(reports) == 2
    for report in reports.values():
        assert f":assumed-role/{role_name}/" in report["caller_arn"]
        assert report["team"] == "hydrology"


def worker_environment_and_aws_config() -> dict[str, Any]:
    """Run ON a worker: its environment and the platform AWS config file as it sees it."""
    import os

    with open(os.environ["AWS_CONFIG_FILE"]) as config:
        return {"environment": dict(os.environ), "aws_config": config.read()}


def test_workers_hold_no_key_and_only_the_webhook_variables(
    alice_cluster: Any, outputs: dict[str, Any], platform: Any
) -> None:
    from dask_platform.local.containers import POD_TOKEN_DIR
    from dask_platform.object_stores import AWS_CONFIG_PATH

    for report in identities(alice_cluster).values():
        assert report["key_variables"] == []
        assert set(report["aws_variables"]) == WEBHOOK_VARIABLES
        assert report["my_variable"] == "1"
    with alice_cluster.get_client() as client:
        seen = client.run(probes.by_value(worker_environment_and_aws_config))
    token_file = outputs["service_account_token_files"]["hydrology"]
    config_file = str(platform.state_dir / "aws" / "config")
    if platform.container_image:
        # In a container of the worker image: where EKS mounts the token and the ConfigMap.
        token_file = f"{POD_TOKEN_DIR}/{token_file.rsplit('/', 1)[-1]}"
        config_file = AWS_CONFIG_PATH
    for report in seen.values():
        environment = report["environment"]
        assert environment["AWS_ROLE_ARN"] == outputs["team_role_arns"]["hydrology"]
        assert environment["AWS_WEB_IDENTITY_TOKEN_FILE"] == token_file
        assert environment["AWS_CONFIG_FILE"] == config_file
        assert f"endpoint_url = {outputs['aws_endpoint_url']}" in report["aws_config"]
        assert (
            "credential_process = dask-platform-credential-process osn-renci"
            in (report["aws_config"])
        )


def test_dataset_round_trip_under_the_team_prefix(
    alice_cluster: Any, outputs: dict[str, Any]
) -> None:
    prefix = outputs["scratch_urls"]["hydrology"] + "it-dataset/"
    records = [{"station": f"s{i % 3}", "value": i} for i in range(90)]
    with alice_cluster.get_client() as client:
        parts = db.from_sequence(records, npartitions=3).to_delayed()
        written = client.compute(
            [
                dask.delayed(probes.by_value(probes.write_records))(f"{prefix}part-{i}.json", p)
                for i, p in enumerate(parts)
            ],
            sync=True,
        )
        listed = client.submit(probes.by_value(probes.list_prefix), prefix, pure=False).result()
        rows = [
            r
            for chunk in client.map(probes.by_value(probes.read_records), written)
            for r in chunk.result()
        ]
    assert sorted(listed) == sorted(written)
    assert sorted(rows, key=lambda r: r["value"]) == records


@pytest.mark.parametrize("operation", ["put", "get", "delete", "list"])
def test_a_team_cannot_touch_another_teams_prefix(
    operation: str,
    alice_cluster: Any,
    bob_cluster: Any,
    platform: Any,
    outputs: dict[str, Any],
) -> None:
    bucket = outputs["scratch_bucket"]
    admin = platform.emulator().client("s3")
    admin.put_object(Bucket=bucket, Key="hydrology/secret.txt", Body=b"hydrology only")
    url = f"s3://{bucket}/hydrology/" + ("" if operation == "list" else "secret.txt")

    result = run_on_cluster(bob_cluster, worker_probes.s3_attempt, operation, url)

    assert result == {"operation": operation, "url": url, "ok": False, "error": "AccessDenied"}
    body = admin.get_object(Bucket=bucket, Key="hydrology/secret.txt")["Body"].read()
    assert body == b"hydrology only"
    # The same operation on the team's own prefix works: the denial is about the prefix.
    own = run_on_cluster(alice_cluster, worker_probes.s3_attempt, operation, url)
    assert own["ok"], own


def test_a_worker_cannot_assume_another_teams_role_with_its_token(
    bob_cluster: Any, outputs: dict[str, Any]
) -> None:
    other_role = outputs["team_role_arns"]["hydrology"]
    own_role = outputs["team_role_arns"]["climate"]
    assert run_on_cluster(bob_cluster, worker_probes.assume_role_with_own_token, other_role) == {
        "ok": False,
        "error": "AccessDenied",
    }
    assert run_on_cluster(bob_cluster, worker_probes.assume_role_with_own_token, own_role)["ok"]


@pytest.mark.parametrize(
    "variable", ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "AWS_ROLE_ARN", "aws_profile"]
)
def test_environment_with_aws_variables_is_refused(
    variable: str, gateway_as: Callable[[str], Any]
) -> None:
    gateway = gateway_as("alice")
    before = {c.name for c in gateway.list_clusters()}
    options = gateway.cluster_options()
    options.environment = {variable: "AKIAEXAMPLE", "MY_VARIABLE": "1"}
    # submit, not new_cluster: a GatewayCluster whose start fails leaks its IO-loop thread
    # (dask-gateway 2026.3.0), and the refusal happens at submission anyway.
    with pytest.raises(ValueError, match=f"environment: {variable} may not be set"):
        gateway.submit(options)
    assert {c.name for c in gateway.list_clusters()} == before


def test_a_user_in_no_team_gets_no_cluster(gateway_as: Callable[[str], Any]) -> None:
    gateway = gateway_as("carol")
    with pytest.raises(ValueError, match="belongs to no team"):
        gateway.submit()
    assert gateway.list_clusters() == []


def test_a_wrong_password_is_refused(outputs: dict[str, Any]) -> None:
    from aiohttp import ClientResponseError
    from dask_gateway import BasicAuth, Gateway

    wrong = BasicAuth("alice", "not-her-password")
    with (
        Gateway(outputs["gateway_address"], auth=wrong) as gateway,
        pytest.raises(ClientResponseError) as raised,
    ):
        gateway.list_clusters()
    assert raised.value.status == 401


def test_a_user_cannot_see_connect_to_or_stop_another_users_cluster(
    alice_cluster: Any, gateway_as: Callable[[str], Any]
) -> None:
    from aiohttp import ClientResponseError

    bob = gateway_as("bob")
    assert alice_cluster.name not in {c.name for c in bob.list_clusters()}
    with pytest.raises(ClientResponseError) as connect:
        bob.connect(alice_cluster.name)
    assert connect.value.status == 403
    with pytest.raises(ClientResponseError) as stop:
        bob.stop_cluster(alice_cluster.name)
    assert stop.value.status == 403
    alice = gateway_as("alice")
    assert alice.get_cluster(alice_cluster.name).status.name == "RUNNING"
    with alice_cluster.get_client() as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6
