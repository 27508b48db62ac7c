"""The emulator refuses expired sessions as AWS does, and serves requests concurrently.

A fresh emulator of its own: these tests move its clock (which never goes back), so they do
not share one with tests whose sessions must stay valid.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from dask_platform.local.emulator import Emulator
from dask_platform.local.emulator_server import ADMIN_USER
from dask_platform.local.processes import marked_processes

# ref: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html (minimum 900)
SESSION_SECONDS = 900
S3_MESSAGE = "The provided token has expired."
QUERY_MESSAGE = "The security token included in the request is expired"


@pytest.fixture(scope="module")
def aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    state = tmp_path_factory.mktemp("emulator-clock")
    emulator = Emulator(state).start()
    try:
        iam = emulator.client("iam")
        admin_arn = f"arn:aws:iam::{emulator.account_id}:user/{ADMIN_USER}"
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": admin_arn}, "Action": "sts:AssumeRole"}
            ],
        }
        iam.create_role(RoleName="any-action", AssumeRolePolicyDocument=json.dumps(trust))
        # Every action allowed: the only reason left to refuse a call is the session's expiry.
        everything = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
        }
        iam.put_role_policy(
            RoleName="any-action", PolicyName="all", PolicyDocument=json.dumps(everything)
        )
        emulator.client("s3").create_bucket(Bucket="expiry")
        yield emulator
    finally:
        emulator.stop()
        assert not marked_processes(state), "the emulator left processes behind"


def _session(aws: Emulator) -> dict[str, Any]:
    response = aws.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{aws.account_id}:role/any-action",
        RoleSessionName="expiry-test",
        DurationSeconds=SESSION_SECONDS,
    )
    credentials: dict[str, Any] = response["Credentials"]
    return credentials


def _advance_to(aws: Emulator, moment: float) -> None:
    aws.advance_clock(moment - aws.clock()["now"])


# One call per protocol the emulator serves, with AWS's answer to an expired session:
# (service, call, HTTP status, error code, message).
CALLS: list[tuple[str, Callable[[Any], Any], int, str, str]] = [
    ("s3", lambda c: c.list_objects_v2(Bucket="expiry"), 400, "ExpiredToken", S3_MESSAGE),
    ("sts", lambda c: c.get_caller_identity(), 403, "ExpiredToken", QUERY_MESSAGE),
    ("iam", lambda c: c.list_roles(), 403, "ExpiredToken", QUERY_MESSAGE),
    ("ecs", lambda c: c.list_clusters(), 400, "ExpiredTokenException", QUERY_MESSAGE),
    ("ecr", lambda c: c.describe_repositories(), 400, "ExpiredTokenException", QUERY_MESSAGE),
    (
        "secretsmanager",
        lambda c: c.list_secrets(),
        400,
        "ExpiredTokenException",
        QUERY_MESSAGE,
    ),
    ("logs", lambda c: c.describe_log_groups(), 400, "ExpiredTokenException", QUERY_MESSAGE),
    ("ec2", lambda c: c.describe_vpcs(), 400, "RequestExpired", QUERY_MESSAGE),
]


@pytest.mark.parametrize(
    ("service", "call", "status", "code", "message"), CALLS, ids=[c[0] for c in CALLS]
)
def test_a_900_s_session_used_at_901_s_gets_expired_token(
    aws: Emulator,
    service: str,
    call: Callable[[Any], Any],
    status: int,
    code: str,
    message: str,
) -> None:
    before = aws.clock()["now"]
    credentials = _session(aws)
    expiration = credentials["Expiration"].timestamp()
    # Minted on the emulator's clock (moved by the tests before this one).
    assert before + SESSION_SECONDS - 1 <= expiration <= aws.clock()["now"] + SESSION_SECONDS
    client = aws.client(service, credentials)
    call(client)  # valid when minted
    _advance_to(aws, expiration - 5)
    call(client)  # valid 5 s before its expiration
    _advance_to(aws, expiration + 1)  # 901 s after it was minted
    with pytest.raises(ClientError) as raised:
        call(client)
    response = raised.value.response
    assert response["Error"]["Code"] == code
    assert response["Error"]["Message"] == message
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    # botocore does not retry it: one attempt, as against AWS.
    assert response["ResponseMetadata"]["RetryAttempts"] == 0
    assert aws.stats()["counters"][f"{service}:expired-token"] >= 1


def test_admin_credentials_do_not_expire(aws: Emulator) -> None:
    aws.advance_clock(10 * SESSION_SECONDS)
    assert aws.client("s3").list_objects_v2(Bucket="expiry")["ResponseMetadata"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"advance_seconds": -5}, "advance_seconds"),
        ({"advance_seconds": 0}, "advance_seconds"),
    ],
)
def test_the_clock_never_goes_back(aws: Emulator, body: dict[str, Any], field: str) -> None:
    before = aws.clock()["offset_seconds"]
    with pytest.raises(ValueError, match=field):
        aws.advance_clock(body["advance_seconds"])
    assert aws.clock()["offset_seconds"] == before


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"minimum_session_seconds": 5}, "minimum_session_seconds"),
        ({"minimum_session_seconds": 901}, "minimum_session_seconds"),
        ({"web_identity_session_seconds": 600}, "web_identity_session_seconds"),
        ({"session_seconds": 900}, "session_seconds"),
    ],
)
def test_bad_sts_settings_are_refused_naming_the_field(
    aws: Emulator, values: dict[str, Any], field: str
) -> None:
    before = aws.sts_settings()
    with pytest.raises(ValueError, match=field):
        aws.sts_settings(**values)
    assert (
        aws.sts_settings()
        == before
        == {
            "minimum_session_seconds": 900,
            "web_identity_session_seconds": None,
        }
    )


def test_the_admin_api_names_its_endpoints(aws: Emulator) -> None:
    response = requests.get(
        aws.endpoint + "/dask-platform/clocks",
        headers={"X-Dask-Platform-Admin-Token": aws.info["admin_token"]},
        timeout=10,
    )
    assert response.status_code == 404
    assert "GET|POST clock" in response.text


PARALLEL_CLIENTS = 8
REQUESTS_PER_CLIENT = 15


def test_requests_are_served_concurrently(aws: Emulator, tmp_path: Path) -> None:
    """N clients at once: the server side counts the requests inside moto at the same moment
    (its peak must exceed one); every request still authenticates (a forged key is refused)."""
    body = b"x" * (256 * 1024)
    errors: list[BaseException] = []
    start = threading.Barrier(PARALLEL_CLIENTS)

    def client(index: int) -> None:
        try:
            s3 = aws.client("s3", _session(aws))
            start.wait()
            for i in range(REQUESTS_PER_CLIENT):
                s3.put_object(Bucket="expiry", Key=f"parallel/{index}/{i}", Body=body)
        except BaseException as exc:  # reported below, with the thread's own error
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(PARALLEL_CLIENTS)]
    for thread in threads:
        thread.start()
    forged = aws.client(
        "s3", {"AccessKeyId": "ASIAFORGED", "SecretAccessKey": "x", "SessionToken": "y"}
    )
    with pytest.raises(ClientError):
        forged.list_objects_v2(Bucket="expiry")
    for thread in threads:
        thread.join()
    assert errors == []
    keys = aws.client("s3").list_objects_v2(Bucket="expiry", Prefix="parallel/")["KeyCount"]
    assert keys == PARALLEL_CLIENTS * REQUESTS_PER_CLIENT
    stats = aws.stats()
    assert stats["in_flight"] == 0  # the stats request is not forwarded to moto
    assert stats["peak_in_flight"] >= 2
