"""The platform under the failures and lifetimes it meets in production."""

from __future__ import annotations

import base64
import json
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import requests

from dask_platform.local import probes

from .conftest import SHORT_CREDENTIALS_SECONDS, SHORT_TOKEN_SECONDS, new_cluster


def _claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    result: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return result


def test_the_client_reconnects_by_name_after_a_gateway_restart(
    platform: Any, gateway_as: Callable[[str], Any]
) -> None:
    cluster = new_cluster(gateway_as("alice"), 1)
    name = cluster.name
    old_pid = platform.state()["components"]["gateway"]["pid"]

    platform.restart_gateway()

    assert platform.state()["components"]["gateway"]["pid"] != old_pid
    # A new client, as a notebook restarted after the gateway would make.
    again = gateway_as("alice", fresh=True).connect(name)
    with again.get_client() as client:
        assert client.submit(sum, [20, 22], pure=False).result(timeout=60) == 42
        team = client.run(lambda: os.environ["DASK_PLATFORM_TEAM"])
    assert set(team.values()) == {"hydrology"}
    again.shutdown()
    cluster.close()


def test_a_worker_killed_mid_computation_does_not_lose_the_result(
    gateway_as: Callable[[str], Any],
) -> None:
    cluster = new_cluster(gateway_as("alice"), 2)
    try:
        with cluster.get_client() as client:
            pids = client.run(os.getpid)
            futures = client.map(probes.slow_square, range(24), seconds=0.5)
            time.sleep(1.5)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            results = client.gather(futures)
            survivors = client.run(os.getpid)
        assert results == [x * x for x in range(24)]
        assert victim not in survivors.values()
    finally:
        cluster.shutdown()


def test_short_credentials_and_rotated_tokens_do_not_break_a_job(
    platform: Any, alice_cluster: Any, outputs: dict[str, Any]
) -> None:
    token_file = outputs["service_account_token_files"]["hydrology"]
    with open(token_file) as handle:
        first_token = handle.read()
    issuer = platform.issuer_info()
    sts_before = platform.emulator().stats()["counters"].get("sts:AssumeRoleWithWebIdentity", 0)
    rotated_key: dict[str, str] = {}

    def rotate_signing_key_mid_job() -> None:
        time.sleep(SHORT_TOKEN_SECONDS / 2)
        response = requests.post(
            issuer["url"] + "/admin/rotate-signing-key",
            headers={"Authorization": f"Bearer {issuer['admin_token']}"},
            timeout=10,
        )
        response.raise_for_status()
        rotated_key.update(response.json())

    started = time.time()
    rotator = threading.Thread(target=rotate_signing_key_mid_job)
    rotator.start()
    with alice_cluster.get_client() as client:
        # About 1.7 token lifetimes: the projector rewrites the file at least once mid-job.
        result = client.submit(
            probes.s3_round_trips,
            outputs["scratch_urls"]["hydrology"] + "rotation/",
            int(SHORT_TOKEN_SECONDS * 1.7),
            1.0,
            pure=False,
        ).result(timeout=300)
    rotator.join()
    finished = time.time()

    assert result["round_trips"] == int(SHORT_TOKEN_SECONDS * 1.7)
    with open(token_file) as handle:
        last_token = handle.read()
    assert last_token != first_token
    assert _claims(last_token)["iat"] > _claims(first_token)["iat"]
    # Tokens minted after the key rotation carry the new key id, and were accepted.
    header = json.loads(base64.urlsafe_b64decode(last_token.split(".")[0] + "=="))
    assert header["kid"] == rotated_key["kid"]
    # Every credential the worker held lived SHORT_CREDENTIALS_SECONDS (15 minutes).
    for expiry in result["credential_expiries"]:
        expires = datetime.fromisoformat(expiry).timestamp()
        assert (
            started + SHORT_CREDENTIALS_SECONDS - 5
            <= expires
            <= finished + SHORT_CREDENTIALS_SECONDS + 5
        )
    # boto3 refreshes credentials this short on use, re-reading the rotated token each time.
    sts_after = platform.emulator().stats()["counters"].get("sts:AssumeRoleWithWebIdentity", 0)
    assert sts_after - sts_before >= 2


def test_projected_tokens_carry_the_eks_claims(platform: Any, outputs: dict[str, Any]) -> None:
    for team, path in outputs["service_account_token_files"].items():
        with open(path) as handle:
            claims = _claims(handle.read())
        assert claims["iss"] == outputs["oidc_issuer_url"]
        assert claims["sub"] == f"system:serviceaccount:{outputs['namespace']}:dask-{team}"
        assert claims["aud"] == ["sts.amazonaws.com"]
        assert claims["exp"] - claims["iat"] == SHORT_TOKEN_SECONDS
