"""The platform under the failures and lifetimes it meets in production."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import requests

from dask_platform.local.emulator_settings import LOWEST_SESSION_SECONDS
from dask_platform.local.probes import by_value

from . import worker_probes
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
            futures = client.map(by_value(worker_probes.slow_square), range(24), seconds=0.5)
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
    counters = platform.emulator().stats()["counters"]
    sts_before = counters.get("sts:AssumeRoleWithWebIdentity", 0)
    refused_before = counters.get("sts:AssumeRoleWithWebIdentity:rejected", 0)
    rotated_key: dict[str, str] = {}

    def rotate_signing_key_mid_job() -> None:
        time.sleep(SHORT_TOKEN_SECONDS / 2)
        response = requests.post(
            issuer["url"] + "/admin/rotate-signing-key",
            headers={"Authorization": f"Bearer {issuer['admin_token']}"},
            timeout=60,
        )
        response.raise_for_status()
        rotated_key.update(response.json())

    # The rotation below happens mid-job only if the issuer's next key has been published for
    # its lead time; a platform started a moment ago waits that out first.
    time.sleep(
        requests.get(
            issuer["url"] + "/admin/stats",
            headers={"Authorization": f"Bearer {issuer['admin_token']}"},
            timeout=10,
        ).json()["seconds_until_rotation"]
    )
    started = time.time()
    rotator = threading.Thread(target=rotate_signing_key_mid_job)
    rotator.start()
    with alice_cluster.get_client() as client:
        # About 1.7 token lifetimes: the projector rewrites the file at least once mid-job.
        result = client.submit(
            by_value(worker_probes.s3_round_trips),
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
    counters = platform.emulator().stats()["counters"]
    assert counters.get("sts:AssumeRoleWithWebIdentity", 0) - sts_before >= 2
    # No token was refused across the key rotation: the new key was published before use.
    assert counters.get("sts:AssumeRoleWithWebIdentity:rejected", 0) == refused_before


def test_projected_tokens_carry_the_eks_claims(platform: Any, outputs: dict[str, Any]) -> None:
    for team, path in outputs["service_account_token_files"].items():
        with open(path) as handle:
            claims = _claims(handle.read())
        assert claims["iss"] == outputs["oidc_issuer_url"]
        assert claims["sub"] == f"system:serviceaccount:{outputs['namespace']}:dask-{team}"
        assert claims["aud"] == ["sts.amazonaws.com"]
        assert claims["exp"] - claims["iat"] == SHORT_TOKEN_SECONDS


# The shortest session the emulator can be set to mint (STS's own minimum is 900 s): a job can
# outlive several in real time. The job below spans this many lifetimes.
REFRESH_SESSION_SECONDS = LOWEST_SESSION_SECONDS
LIFETIMES = 2


@contextlib.contextmanager
def _short_sessions(platform: Any) -> Iterator[Any]:
    """The platform's STS stand-in mints REFRESH_SESSION_SECONDS sessions for a while."""
    emulator = platform.emulator()
    before = emulator.sts_settings()
    emulator.sts_settings(
        minimum_session_seconds=REFRESH_SESSION_SECONDS,
        web_identity_session_seconds=REFRESH_SESSION_SECONDS,
    )
    try:
        yield emulator
    finally:
        emulator.sts_settings(**before)


def _one_job_per_worker(cluster: Any, url: str, fixed_session: bool) -> list[dict[str, Any]]:
    with cluster.get_client() as client:
        workers = sorted(client.scheduler_info()["workers"])
        futures = [
            client.submit(
                by_value(worker_probes.s3_round_trips_recorded),
                f"{url}{'fixed' if fixed_session else 'refresh'}/{index}/",
                LIFETIMES * REFRESH_SESSION_SECONDS + 2,
                0.5,
                fixed_session,
                workers=[worker],
                pure=False,
            )
            for index, worker in enumerate(workers)
        ]
        results: list[dict[str, Any]] = client.gather(futures)
    return results


def test_a_job_across_credential_lifetimes_gets_a_new_session_per_lifetime_on_every_worker(
    platform: Any, alice_cluster: Any, outputs: dict[str, Any]
) -> None:
    with _short_sessions(platform) as emulator:
        results = _one_job_per_worker(
            alice_cluster, outputs["scratch_urls"]["hydrology"], fixed_session=False
        )
        log = emulator.sts_log()
    issued = {entry["access_key_id"]: entry for entry in log if "access_key_id" in entry}
    assert len({r["pid"] for r in results}) == 2
    for result in results:
        assert result["ok"], result
        used = result["access_keys"]
        # Every session the worker signed with came from an AssumeRoleWithWebIdentity ...
        assert set(used) <= set(issued), set(used) - set(issued)
        assert {issued[key]["duration_seconds"] for key in used} == {REFRESH_SESSION_SECONDS}
        # ... and the worker got a new one in every credential lifetime the job spanned.
        minted = [issued[key]["time"] for key in used]
        for lifetime in range(LIFETIMES):
            window_start = result["started"] + lifetime * REFRESH_SESSION_SECONDS
            assert any(
                window_start <= moment < window_start + REFRESH_SESSION_SECONDS for moment in minted
            ), f"worker {result['pid']}: no new session in lifetime {lifetime}"


def test_the_same_job_with_a_fixed_session_fails_with_expired_token(
    platform: Any, alice_cluster: Any, outputs: dict[str, Any]
) -> None:
    with _short_sessions(platform):
        results = _one_job_per_worker(
            alice_cluster, outputs["scratch_urls"]["hydrology"], fixed_session=True
        )
    for result in results:
        assert not result["ok"], result
        assert (result["error"], result["status"]) == ("ExpiredToken", 400)
        assert len(result["access_keys"]) == 1  # one session, never refreshed
        assert result["round_trips"] >= 1  # it worked until the session expired
