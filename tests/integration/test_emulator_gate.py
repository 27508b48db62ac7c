"""The emulator's gate: STS's web-identity checks and IAM conditions that moto skips.

Each rule has a violating request that must be refused, next to one that must pass.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import boto3
import jwt
import pytest
import requests
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.asymmetric import rsa

from .conftest import SHORT_CREDENTIALS_SECONDS


def _mint(platform: Any, claims: dict[str, Any], lifetime: int = 300) -> str:
    issuer = platform.issuer_info()
    response = requests.post(
        issuer["url"] + "/admin/tokens",
        json={"claims": claims, "lifetime": lifetime},
        headers={"Authorization": f"Bearer {issuer['admin_token']}"},
        timeout=10,
    )
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


def _sts(outputs: dict[str, Any]) -> Any:
    # Unsigned, exactly as botocore's web-identity provider calls it.
    return boto3.client(
        "sts",
        endpoint_url=outputs["aws_endpoint_url"],
        region_name=outputs["region"],
        config=Config(signature_version=UNSIGNED),
    )


def _sa(outputs: dict[str, Any], team: str) -> str:
    return f"system:serviceaccount:{outputs['namespace']}:dask-{team}"


def _exchange(outputs: dict[str, Any], token: str, team: str = "hydrology", **extra: Any) -> Any:
    return _sts(outputs).assume_role_with_web_identity(
        RoleArn=outputs["team_role_arns"][team],
        RoleSessionName="gate-test",
        WebIdentityToken=token,
        **extra,
    )


def test_a_valid_service_account_token_gets_short_team_credentials(
    platform: Any, outputs: dict[str, Any]
) -> None:
    token = _mint(platform, {"sub": _sa(outputs, "hydrology"), "aud": "sts.amazonaws.com"})
    before = time.time()
    response = _exchange(outputs, token)
    role_name = outputs["team_role_arns"]["hydrology"].split("/")[-1]
    assert f":assumed-role/{role_name}/gate-test" in response["AssumedRoleUser"]["Arn"]
    lifetime = response["Credentials"]["Expiration"].timestamp() - before
    assert SHORT_CREDENTIALS_SECONDS - 5 <= lifetime <= SHORT_CREDENTIALS_SECONDS + 5


def _foreign_token(claims: dict[str, Any]) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    payload = {"iat": now, "exp": now + 300, "jti": uuid.uuid4().hex, **claims}
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": "forged"})


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("another team's service account", "AccessDenied"),
        ("another namespace", "AccessDenied"),
        ("wrong audience", "InvalidIdentityToken"),
        ("expired", "ExpiredTokenException"),
        ("signed by another key", "InvalidIdentityToken"),
        ("unregistered issuer", "InvalidIdentityToken"),
        ("not a token", "InvalidIdentityToken"),
    ],
)
def test_a_bad_web_identity_is_refused(
    case: str, code: str, platform: Any, outputs: dict[str, Any]
) -> None:
    sub = _sa(outputs, "hydrology")
    token = {
        "another team's service account": lambda: _mint(
            platform, {"sub": _sa(outputs, "climate"), "aud": "sts.amazonaws.com"}
        ),
        "another namespace": lambda: _mint(
            platform,
            {"sub": "system:serviceaccount:default:dask-hydrology", "aud": "sts.amazonaws.com"},
        ),
        "wrong audience": lambda: _mint(platform, {"sub": sub, "aud": "someone-else"}),
        "expired": lambda: _mint(platform, {"sub": sub, "aud": "sts.amazonaws.com"}, lifetime=-60),
        "signed by another key": lambda: _foreign_token(
            {"iss": outputs["oidc_issuer_url"], "sub": sub, "aud": "sts.amazonaws.com"}
        ),
        "unregistered issuer": lambda: _foreign_token(
            {"iss": "http://127.0.0.1:9/elsewhere", "sub": sub, "aud": "sts.amazonaws.com"}
        ),
        "not a token": lambda: "not-a-jwt",
    }[case]()
    with pytest.raises(ClientError) as raised:
        _exchange(outputs, token)
    assert raised.value.response["Error"]["Code"] == code


def test_a_session_longer_than_the_role_allows_is_refused(
    platform: Any, outputs: dict[str, Any]
) -> None:
    token = _mint(platform, {"sub": _sa(outputs, "hydrology"), "aud": "sts.amazonaws.com"})
    with pytest.raises(ClientError) as raised:
        _exchange(outputs, token, DurationSeconds=7200)
    assert raised.value.response["Error"]["Code"] == "ValidationError"


def _team_s3(platform: Any, outputs: dict[str, Any], team: str) -> Any:
    token = _mint(platform, {"sub": _sa(outputs, team), "aud": "sts.amazonaws.com"})
    credentials = _exchange(outputs, token, team)["Credentials"]
    return platform.emulator().client("s3", credentials)


@pytest.mark.parametrize(
    ("prefix", "allowed"),
    [
        ("hydrology/", True),
        ("hydrology/sub/", True),
        ("climate/", False),
        ("", False),
        ("hydro", False),
    ],
)
def test_listing_is_limited_to_the_team_prefix(
    prefix: str, allowed: bool, platform: Any, outputs: dict[str, Any]
) -> None:
    s3 = _team_s3(platform, outputs, "hydrology")
    if allowed:
        assert s3.list_objects_v2(Bucket=outputs["scratch_bucket"], Prefix=prefix)[
            "ResponseMetadata"
        ]
    else:
        with pytest.raises(ClientError) as raised:
            s3.list_objects_v2(Bucket=outputs["scratch_bucket"], Prefix=prefix)
        assert raised.value.response["Error"]["Code"] == "AccessDenied"


def test_anonymous_requests_and_the_admin_api_are_refused(
    platform: Any, outputs: dict[str, Any]
) -> None:
    endpoint = outputs["aws_endpoint_url"]
    bucket = outputs["scratch_bucket"]
    assert requests.get(f"{endpoint}/{bucket}/hydrology/", timeout=10).status_code == 403
    assert (
        requests.post(f"{endpoint}/moto-api/reset-auth", data=b"inf", timeout=10).status_code == 403
    )
    assert requests.get(f"{endpoint}/dask-platform/stats", timeout=10).status_code == 403
    assert platform.emulator().enforcement_enabled()


def test_the_bare_emulator_enforces_iam_and_toggles(emulator: Any) -> None:
    s3 = emulator.client("s3")
    s3.create_bucket(Bucket="toggle-check")
    forged = emulator.client(
        "s3", {"AccessKeyId": "ASIAFORGED", "SecretAccessKey": "x", "SessionToken": "y"}
    )
    with pytest.raises(ClientError):
        forged.list_objects_v2(Bucket="toggle-check")
    assert emulator.enforcement_enabled()
    emulator.set_enforcement(False)
    try:
        assert not emulator.enforcement_enabled()
    finally:
        emulator.set_enforcement(True)
    assert emulator.enforcement_enabled()


def test_a_token_signed_right_after_a_key_rotation_is_accepted(
    platform: Any, outputs: dict[str, Any]
) -> None:
    """The issuer publishes the next key before it signs with it, so a verifier that has just
    fetched the JWKS - and will not refetch it for an unknown key id within its cooldown -
    already holds the key of a token signed right after the rotation."""
    sub = _sa(outputs, "hydrology")
    before = platform.emulator().stats()["counters"].get("sts:AssumeRoleWithWebIdentity:rejected")
    # An unknown key id makes the STS stand-in refetch the JWKS now (or it did within its
    # cooldown): from here on it cannot refetch for a while.
    with pytest.raises(ClientError):
        _exchange(
            outputs,
            _foreign_token(
                {"iss": outputs["oidc_issuer_url"], "sub": sub, "aud": "sts.amazonaws.com"}
            ),
        )
    issuer = platform.issuer_info()
    response = requests.post(
        issuer["url"] + "/admin/rotate-signing-key",
        headers={"Authorization": f"Bearer {issuer['admin_token']}"},
        timeout=60,
    )
    response.raise_for_status()
    rotated = response.json()
    token = _mint(platform, {"sub": sub, "aud": "sts.amazonaws.com"})
    assert jwt.get_unverified_header(token)["kid"] == rotated["kid"]
    assert _exchange(outputs, token)["Credentials"]["AccessKeyId"]
    after = platform.emulator().stats()["counters"].get("sts:AssumeRoleWithWebIdentity:rejected")
    assert after == (before or 0) + 1  # the forged token only
    refused = [e for e in platform.emulator().sts_log() if e.get("error")]
    assert refused[-1]["error"] == "InvalidIdentityToken"
    assert "forged" in refused[-1]["message"] or "kid" in refused[-1]["message"].lower()
