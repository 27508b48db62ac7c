"""``sts:AssumeRoleWithWebIdentity`` as STS verifies it, for the emulator's gate (moto crashes
on this unsigned call under IAM enforcement): the OIDC token against the registered
provider's JWKS, the role's trust policy, ``DurationSeconds``.

ref: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
"""

from __future__ import annotations

import json
import urllib.request
import xml.etree.ElementTree as ET
from typing import Any

from dask_platform.local import emulator_moto
from dask_platform.local.emulator_settings import (
    StsSettings,
)

# How long the gate keeps a fetched JWKS, and the least time between two refetches for an
# unknown key id (PyJWKClient's cooldown): a verifier that caches keys as STS does (AWS does
# not publish its cache time; these are short so tests need not wait). An issuer must publish
# a key at least JWKS_CACHE_SECONDS before it signs with it (the local issuer does).
JWKS_CACHE_SECONDS = 10
JWKS_REFETCH_COOLDOWN_SECONDS = 10


class WebIdentityRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class WebIdentityVerifier:
    """Verifies an ``AssumeRoleWithWebIdentity`` request as STS does (the token's issuer, signature,
    audience and expiry; the role's trust policy; ``DurationSeconds``) against the emulator's
    OIDC providers and roles; :class:`WebIdentityRejected` with STS's error code otherwise."""

    def __init__(self, account_id: str, sts_settings: StsSettings) -> None:
        self.account_id = account_id
        self.sts_settings = sts_settings
        self._jwks_clients: dict[str, Any] = {}

    def verify(self, params: dict[str, str]) -> tuple[str, int]:
        import jwt

        from dask_platform.iam import issuer_host
        from dask_platform.local.iam_eval import (
            Decision,
            Request,
            UnsupportedConditionError,
            evaluate,
        )

        token = params.get("WebIdentityToken", "")
        role_arn = params.get("RoleArn", "")
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError as exc:
            raise WebIdentityRejected("InvalidIdentityToken", f"malformed token: {exc}") from None
        issuer = str(unverified.get("iss", ""))
        host = issuer_host(issuer)
        provider_arn = f"arn:aws:iam::{self.account_id}:oidc-provider/{host}"
        audiences = emulator_moto.oidc_provider_audiences(self.account_id, provider_arn)
        if audiences is None:
            raise WebIdentityRejected(
                "InvalidIdentityToken",
                f"No OpenIDConnect provider found in your account for {issuer}",
            )
        try:
            signing_key = self._jwks_client(issuer).get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=["RS256"],
                audience=audiences,
                issuer=issuer,
                options={"require": ["exp", "iat", "iss", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise WebIdentityRejected("ExpiredTokenException", "Token is expired") from None
        except jwt.PyJWTError as exc:
            raise WebIdentityRejected("InvalidIdentityToken", f"token rejected: {exc}") from None
        role = emulator_moto.role(self.account_id, role_arn)
        if role is None:
            raise WebIdentityRejected(
                "AccessDenied",
                f"Not authorized to perform sts:AssumeRoleWithWebIdentity on {role_arn}",
            )
        aud = claims["aud"]
        try:
            decision = evaluate(
                [role.trust_policy],
                Request(
                    action="sts:AssumeRoleWithWebIdentity",
                    principal=("Federated", provider_arn),
                    context={f"{host}:sub": claims["sub"], f"{host}:aud": aud},
                ),
            )
        except UnsupportedConditionError as exc:
            raise WebIdentityRejected("AccessDenied", f"{role_arn}: {exc}") from None
        if decision is not Decision.ALLOW:
            raise WebIdentityRejected(
                "AccessDenied",
                f"Not authorized to perform sts:AssumeRoleWithWebIdentity: the trust policy of "
                f"{role_arn} does not allow sub={claims['sub']!r}",
            )
        settings = self.sts_settings
        requested = params.get("DurationSeconds")
        duration = int(requested) if requested else settings.web_identity_session_seconds or 3600
        minimum = settings.minimum_session_seconds
        if not minimum <= duration <= role.max_session_duration:
            raise WebIdentityRejected(
                "ValidationError",
                f"DurationSeconds {duration} must lie between {minimum} and the role's "
                f"MaxSessionDuration {role.max_session_duration}",
            )
        return role_arn, duration

    def _jwks_client(self, issuer: str) -> Any:
        import jwt

        client = self._jwks_clients.get(issuer)
        if client is None:
            discovery = issuer.rstrip("/") + "/.well-known/openid-configuration"
            with urllib.request.urlopen(discovery, timeout=5) as response:  # noqa: S310
                jwks_uri = json.load(response)["jwks_uri"]
            # A verifier that caches the JWKS (as STS does) and refetches it for an unknown key
            # id at most every cooldown: a key becomes valid here once it is published long
            # enough, which is what the issuer guarantees (it publishes the next key early).
            client = jwt.PyJWKClient(
                jwks_uri,
                cache_keys=False,
                lifespan=JWKS_CACHE_SECONDS,
                cooldown_duration=JWKS_REFETCH_COOLDOWN_SECONDS,
            )
            self._jwks_clients[issuer] = client
        return client


def issued_credentials(body: bytes) -> dict[str, Any]:
    """AccessKeyId and Expiration of an AssumeRoleWithWebIdentity response (no secret)."""
    try:
        root = ET.fromstring(body)  # noqa: S314 (moto's own response)
    except ET.ParseError:
        return {"error": "unparsable response"}
    found: dict[str, Any] = {}
    for element in root.iter():
        tag = element.tag.rsplit("}", 1)[-1]
        if tag == "AccessKeyId":
            found["access_key_id"] = element.text
        elif tag == "Expiration":
            found["expiration"] = element.text
        elif tag == "Code":
            found["error"] = element.text
    return found
