"""The keyless path (everything `make demo` shows, tests/integration/test_keyless_path.py) again
with schedulers and workers as podman containers of the worker image, as on EKS: the same
checks, on the session's image platform (one platform per mode). The worker image has no
dask_platform package, so the probes travel by value (cloudpickle), as a notebook's functions
do; plus the object store by profile name through the image's own credential process."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import cloudpickle
import pytest

from dask_platform import credentials, object_stores
from dask_platform.local import probes
from dask_platform.local.platform import LocalPlatform

from . import test_keyless_path
from .conftest import alice_cluster_of, bob_cluster_of
from .test_keyless_path import (  # noqa: F401 - collected here, against the fixtures below
    test_a_team_cannot_touch_another_teams_prefix,
    test_a_user_cannot_see_connect_to_or_stop_another_users_cluster,
    test_a_worker_cannot_assume_another_teams_role_with_its_token,
    test_dataset_round_trip_under_the_team_prefix,
    test_every_worker_is_the_team_role,
    test_workers_hold_no_key_and_only_the_webhook_variables,
)
from .test_object_stores import (  # noqa: F401 - collected here, against the fixtures below
    test_aws_profile_naming_an_unknown_profile_names_the_teams_profiles,
    test_boto3_session_with_an_unknown_profile_names_the_teams_profiles,
    test_s3fs_with_an_unknown_profile_names_the_teams_profiles,
    test_the_stores_region_beats_the_workers_environment,
)

for _module in (probes, credentials, object_stores, test_keyless_path, sys.modules[__name__]):
    cloudpickle.register_pickle_by_value(_module)

STORE = "osn-renci"


@pytest.fixture(scope="module")
def platform(image_platform: LocalPlatform) -> LocalPlatform:
    return image_platform


@pytest.fixture(scope="module")
def outputs(image_platform: LocalPlatform) -> dict[str, Any]:
    return image_platform.outputs()


@pytest.fixture(scope="module")
def gateway_as(image_gateway_as: Callable[..., Any]) -> Callable[..., Any]:
    return image_gateway_as


@pytest.fixture(scope="module")
def alice_cluster(gateway_as: Callable[[str], Any]) -> Iterator[Any]:
    yield from alice_cluster_of(gateway_as)


@pytest.fixture(scope="module")
def bob_cluster(gateway_as: Callable[[str], Any]) -> Iterator[Any]:
    yield from bob_cluster_of(gateway_as)


def test_the_workers_are_containers_of_the_worker_image(
    alice_cluster: Any, platform: LocalPlatform
) -> None:
    assert platform.container_image
    with alice_cluster.get_client() as client:
        facts = client.run(lambda: (__import__("os").getuid(), __import__("sys").executable))
    assert list(facts.values()) == [(1000, "/opt/venv/bin/python")] * 2


def test_alice_reaches_the_store_by_profile_name_through_the_images_credential_process(
    alice_cluster: Any,
) -> None:
    with alice_cluster.get_client() as client:
        report = client.submit(
            probes.by_value(object_stores.credential_process_report), STORE, pure=False
        ).result(timeout=120)
        round_trip = client.submit(
            probes.by_value(object_stores.store_round_trip),
            STORE,
            f"s3://{STORE}/images/alice.txt",
            pure=False,
        ).result(timeout=120)
    assert report["returncode"] == 0, report["stderr"]
    assert report["fields"] == ["AccessKeyId", "Expiration", "SecretAccessKey", "Version"]
    assert report["version"] == 1
    assert round_trip == {"ok": True, "error": None, "team": "hydrology"}


def test_bobs_worker_is_denied_the_store_naming_store_and_team(bob_cluster: Any) -> None:
    with bob_cluster.get_client() as client:
        report = client.submit(
            probes.by_value(object_stores.credential_process_report), STORE, pure=False
        ).result(timeout=120)
    assert report["returncode"] == 1
    assert (
        f"AccessDenied: object store '{STORE}' is not granted to team 'climate'"
        in (report["stderr"])
    )
