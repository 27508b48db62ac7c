"""OIDC end to end: the local identity provider, the client GatewayAuth, the gateway's
authenticator - real processes on 127.0.0.1 (see federation.py), nothing mocked.

Logins with the password grant and the device flow (approved through the provider's own
verification page, as a user would), one client id throughout, the password kept nowhere, a
long session refreshing across many token lifetimes, key rotation, and every kind of bad token
refused with 401 and a reason - logged by the gateway without the token.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from dask_platform.local.config import LocalOidc
from dask_platform.local.platform import LocalPlatform
from dask_platform.oidc.client import (
    DeviceLogin,
    GatewayRejectedToken,
    LoginRequired,
    OIDCAuth,
    OIDCError,
)

pytest_plugins = ("tests.integration.federation",)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# The federation uses the local config's client id and audience.
CLIENT_ID = LocalOidc().client_id
AUDIENCE = LocalOidc().audience


@pytest.fixture(scope="module")
def issuer_url(site_outputs: dict[str, Any]) -> str:
    return str(site_outputs["central"]["site"]["auth"]["oidc"]["issuer"])


@pytest.fixture(scope="module")
def gateway_url(site_outputs: dict[str, Any]) -> str:
    return str(site_outputs["central"]["gateway_address"])


def claims_of(token: str, issuer_url: str) -> dict[str, Any]:
    """Verify a token the way a third party would: the issuer's published JWKS."""
    jwks = jwt.PyJWKClient(f"{issuer_url}/keys")
    key = jwks.get_signing_key_from_jwt(token)
    return dict(
        jwt.decode(token, key.key, algorithms=["RS256"], audience=AUDIENCE, issuer=issuer_url)
    )


def api_status(gateway_url: str, token: str) -> tuple[int, str]:
    response = requests.get(
        f"{gateway_url}/api/v1/clusters/",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    return response.status_code, response.headers.get("WWW-Authenticate", "")


def gateway_log(federation: LocalPlatform) -> str:
    return (federation.state_dir / "logs" / "gateway.log").read_text(errors="replace")


# --------------------------------------------------------------------------- the provider


def test_discovery_names_the_endpoints_and_grants(issuer_url: str) -> None:
    document = requests.get(f"{issuer_url}/.well-known/openid-configuration", timeout=10).json()
    assert document["issuer"] == issuer_url
    assert document["token_endpoint"] == f"{issuer_url}/token"
    assert document["device_authorization_endpoint"] == f"{issuer_url}/device/code"
    assert set(document["grant_types_supported"]) == {"password", "refresh_token", DEVICE_GRANT}
    assert document["token_endpoint_auth_methods_supported"] == ["none"]
    assert "groups" in document["claims_supported"]


def test_password_login_gives_a_token_with_groups_for_the_gateway(
    issuer_url: str, passwords: dict[str, str], oidc_settings: LocalOidc
) -> None:
    auth = OIDCAuth(
        issuer_url, CLIENT_ID, flow="password", username="alice", password=passwords["alice"]
    )
    claims = claims_of(auth.access_token(), issuer_url)
    assert claims["sub"] == claims["preferred_username"] == "alice"
    assert claims["aud"] == AUDIENCE
    assert claims["azp"] == claims["client_id"] == CLIENT_ID
    assert claims["groups"] == ["dask-hydrology"]
    assert claims["exp"] - claims["iat"] == oidc_settings.access_token_seconds
    assert 0 <= claims["iat"] - claims["auth_time"] <= 60, "when alice logged in"
    assert auth.token is not None
    assert auth.token["refresh_token"]


def test_the_password_is_kept_nowhere(issuer_url: str, passwords: dict[str, str]) -> None:
    password = passwords["bob"]
    auth = OIDCAuth(issuer_url, CLIENT_ID, flow="password", username="bob", password=password)
    session = auth._session
    places = {
        "the auth object": repr(vars(auth)),
        "its OAuth2 session": repr(vars(session)) + repr(session.metadata) + repr(session.token),
        "the environment": json.dumps(dict(os.environ)),
    }
    for where, text in places.items():
        assert password not in text, f"the password is kept in {where}"
    assert claims_of(auth.access_token(), issuer_url)["preferred_username"] == "bob"


def test_a_wrong_password_is_refused_without_echoing_it(issuer_url: str) -> None:
    wrong = "not-" + uuid.uuid4().hex
    with pytest.raises(OIDCError, match=r"login as 'alice' at .* refused: invalid_request") as err:
        OIDCAuth(issuer_url, CLIENT_ID, flow="password", username="alice", password=wrong)
    assert wrong not in str(err.value)


def test_an_unknown_client_id_is_refused(issuer_url: str, passwords: dict[str, str]) -> None:
    with pytest.raises(OIDCError, match="invalid_client"):
        OIDCAuth(
            issuer_url,
            "someone-else",
            flow="password",
            username="alice",
            password=passwords["alice"],
        )


def test_bad_client_arguments_name_the_field(issuer_url: str) -> None:
    with pytest.raises(ValueError, match=r"flow: 'implicit' is not one of device, password"):
        OIDCAuth(issuer_url, CLIENT_ID, flow="implicit")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="username: required with flow='password'"):
        OIDCAuth(issuer_url, CLIENT_ID, flow="password")
    with pytest.raises(ValueError, match="client_id: required"):
        OIDCAuth(issuer_url, "")


# --------------------------------------------------------------------------- device flow


class DeviceUser:
    """Plays the person at the browser: reads the code the client printed, opens the page."""

    def __init__(self) -> None:
        self.shown: list[DeviceLogin] = []
        self.ready = threading.Event()

    def prompt(self, login: DeviceLogin) -> None:
        self.shown.append(login)
        self.ready.set()

    def decide(self, user: str, password: str, action: str = "approve") -> requests.Response:
        assert self.ready.wait(30), "the client never showed a code"
        login = self.shown[-1]
        page = requests.get(login.verification_uri_complete or login.verification_uri, timeout=10)
        assert page.status_code == 200
        assert f'value="{login.user_code}"' in page.text, "the page pre-fills the code"
        return requests.post(
            login.verification_uri,
            data={
                "user_code": login.user_code.lower(),  # people type codes in lower case
                "username": user,
                "password": password,
                "action": action,
            },
            timeout=10,
        )


def run_device_login(auth: OIDCAuth) -> dict[str, Any]:
    outcome: dict[str, Any] = {}

    def login() -> None:
        try:
            auth.login_with_device_code(max_wait=60)
            outcome["ok"] = True
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=login, daemon=True)
    thread.start()
    outcome["thread"] = thread
    return outcome


def test_device_login_approved_at_the_verification_page(
    issuer_url: str, passwords: dict[str, str], oidc_gateway_as: Any, site_outputs: Any
) -> None:
    from dask_gateway import Gateway

    person = DeviceUser()
    auth = OIDCAuth(issuer_url, CLIENT_ID, flow="device", prompt=person.prompt)
    outcome = run_device_login(auth)

    wrong = person.decide("alice", "wrong-password")
    assert wrong.status_code == 401
    assert "Wrong user name or password" in wrong.text
    assert "ok" not in outcome, "a wrong password must not approve the code"
    right = person.decide("alice", passwords["alice"])
    assert right.status_code == 200, right.text
    assert "approved for alice" in right.text
    outcome["thread"].join(30)

    assert outcome.get("ok"), outcome.get("error")
    assert re.fullmatch(r"[B-Z]{4}-[B-Z]{4}", person.shown[0].user_code)
    assert person.shown[0].verification_uri == f"{issuer_url}/device"
    claims = claims_of(auth.access_token(), issuer_url)
    assert (claims["sub"], claims["azp"], claims["groups"]) == (
        "alice",
        CLIENT_ID,
        ["dask-hydrology"],
    )
    outputs = site_outputs["central"]
    gateway = Gateway(
        outputs["gateway_address"], proxy_address=outputs["gateway_proxy_address"], auth=auth
    )
    try:
        assert gateway.cluster_options().team == "hydrology"
    finally:
        gateway.close()


def test_a_denied_device_login_says_so(issuer_url: str, passwords: dict[str, str]) -> None:
    person = DeviceUser()
    auth = OIDCAuth(issuer_url, CLIENT_ID, flow="device", prompt=person.prompt)
    outcome = run_device_login(auth)
    assert person.decide("bob", passwords["bob"], action="deny").status_code == 200
    outcome["thread"].join(30)
    assert isinstance(outcome.get("error"), OIDCError)
    assert "denied" in str(outcome["error"])


def test_a_device_code_is_redeemed_once(issuer_url: str, passwords: dict[str, str]) -> None:
    person = DeviceUser()
    auth = OIDCAuth(issuer_url, CLIENT_ID, flow="device", prompt=person.prompt)
    outcome = run_device_login(auth)
    assert person.decide("bob", passwords["bob"]).status_code == 200
    outcome["thread"].join(30)
    assert outcome.get("ok"), outcome.get("error")
    again = person.decide("bob", passwords["bob"])
    assert again.status_code == 400
    assert "Unknown or expired code" in again.text


# --------------------------------------------------------------------------- long sessions


def test_a_long_session_refreshes_across_token_expiry(
    oidc_gateway_as: Any, oidc_settings: LocalOidc
) -> None:
    """Four access-token lifetimes of gateway calls and computations on one login."""
    from .conftest import new_cluster

    gateway = oidc_gateway_as("alice", "central")
    auth = gateway.auth
    tokens = {auth.access_token()}
    cluster = new_cluster(gateway, 1)
    client = cluster.get_client()
    results = []
    deadline = time.monotonic() + 4 * oidc_settings.access_token_seconds
    while time.monotonic() < deadline:
        # Each round: the gateway API (authenticated) and the cluster (already connected).
        assert cluster.name in {c.name for c in gateway.list_clusters()}
        cluster.scale(1)
        results.append(client.submit(lambda x: x + 1, len(results), pure=False).result())
        tokens.add(auth.access_token())  # the one the gateway calls above were sent with
        time.sleep(2)
    cluster.shutdown()
    assert results == [i + 1 for i in range(len(results))]
    assert len(tokens) >= 4, "the session outlived several tokens"
    logins = {jwt.decode(t, options={"verify_signature": False})["auth_time"] for t in tokens}
    assert len(logins) == 1, "one login for the whole session"


def test_revoked_sessions_need_a_new_login(
    issuer_url: str, issuer_admin: Any, passwords: dict[str, str], oidc_settings: LocalOidc
) -> None:
    auth = OIDCAuth(
        issuer_url, CLIENT_ID, flow="password", username="bob", password=passwords["bob"]
    )
    assert issuer_admin("/admin/revoke-sessions", {"user": "bob"})["revoked"] >= 1
    # The access token runs out; its refresh is refused.
    time.sleep(oidc_settings.access_token_seconds)
    with pytest.raises(LoginRequired, match=f"the session at {re.escape(issuer_url)} ended"):
        auth.access_token()


# --------------------------------------------------------------------------- bad tokens


def forged(claims: dict[str, Any], kid: str, algorithm: str = "RS256") -> str:
    now = int(time.time())
    payload = {"iat": now, "nbf": now, "exp": now + 300, **claims}
    if algorithm == "HS256":
        return jwt.encode(payload, "a-shared-secret-nobody-should-accept", algorithm="HS256")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode(payload, key, algorithm=algorithm, headers={"kid": kid})


def valid_claims(issuer_url: str, **override: Any) -> dict[str, Any]:
    return {
        "iss": issuer_url,
        "sub": "alice",
        "preferred_username": "alice",
        "aud": AUDIENCE,
        "groups": ["dask-hydrology"],
        **override,
    }


def current_kid(issuer_url: str) -> str:
    return str(requests.get(f"{issuer_url}/keys", timeout=10).json()["keys"][-1]["kid"])


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        ("expired", "token expired"),
        ("wrong-audience", "wrong audience (this gateway accepts 'dask-gateway')"),
        ("wrong-issuer", "wrong issuer"),
        ("forged-signature", "signature does not verify with the issuer's key"),
        ("unknown-kid", "unknown signing key id"),
        ("hs256", "algorithm 'HS256' not accepted"),
        ("not-a-jwt", "malformed token"),
        ("no-sub", "missing claim 'sub'"),
    ],
)
def test_bad_tokens_get_401_with_the_reason(
    case: str,
    reason: str,
    mint: Any,
    issuer_url: str,
    gateway_url: str,
    federation: LocalPlatform,
) -> None:
    claims = valid_claims(issuer_url)
    if case == "expired":
        # Past the gateway's 10 s leeway.
        token = mint(claims, lifetime=-60)
    elif case == "wrong-audience":
        token = mint({**claims, "aud": "another-service"})
    elif case == "wrong-issuer":
        token = mint({**claims, "iss": "https://keycloak.evil.example/realms/x"})
    elif case == "forged-signature":
        token = forged(claims, kid=current_kid(issuer_url))
    elif case == "unknown-kid":
        token = forged(claims, kid=uuid.uuid4().hex)
    elif case == "hs256":
        token = forged(claims, kid="", algorithm="HS256")
    elif case == "no-sub":
        token = mint({k: v for k, v in claims.items() if k != "sub"})
    else:
        token = "definitely.not.a-jwt"
    status, challenge = api_status(gateway_url, token)
    assert status == 401
    assert 'error="invalid_token"' in challenge
    assert reason in challenge
    log = gateway_log(federation)
    assert f"Rejected a bearer token from 127.0.0.1: {reason}" in log
    assert token not in log, "the gateway must never log a token"


def test_the_client_reports_the_gateways_reason(
    mint: Any, issuer_url: str, site_outputs: dict[str, Any]
) -> None:
    from dask_gateway import Gateway

    class StaleToken(OIDCAuth):
        """A client holding an expired token it believes valid (e.g. a clock far off)."""

        def access_token(self) -> str:
            return mint(valid_claims(issuer_url), lifetime=-60)

    outputs = site_outputs["central"]
    auth = StaleToken(issuer_url, CLIENT_ID, flow="device")
    gateway = Gateway(outputs["gateway_address"], auth=auth)
    try:
        with pytest.raises(GatewayRejectedToken, match="refused the token: token expired"):
            gateway.list_clusters()
    finally:
        gateway.close()


def test_a_valid_minted_token_is_accepted(mint: Any, issuer_url: str, gateway_url: str) -> None:
    """The positive control for the table above: same claims, nothing wrong."""
    assert api_status(gateway_url, mint(valid_claims(issuer_url)))[0] == 200


def test_unknown_key_ids_refetch_the_jwks_at_most_once_per_interval(
    issuer_admin: Any, issuer_url: str, gateway_url: str
) -> None:
    claims = valid_claims(issuer_url)
    time.sleep(2.5)  # past the federation's 2 s refetch interval
    before = issuer_admin("/admin/stats", method="GET")["jwks_requests"]
    for _ in range(5):
        assert api_status(gateway_url, forged(claims, kid=uuid.uuid4().hex))[0] == 401
    after = issuer_admin("/admin/stats", method="GET")["jwks_requests"]
    assert after - before == 1, "five unknown kids in a burst: one JWKS fetch"


def test_a_rotated_signing_key_is_picked_up(
    mint: Any, issuer_admin: Any, issuer_url: str, gateway_url: str
) -> None:
    old = mint(valid_claims(issuer_url))
    assert api_status(gateway_url, old)[0] == 200
    new_kid = issuer_admin("/admin/rotate-signing-key")["kid"]
    new = mint(valid_claims(issuer_url))
    assert jwt.get_unverified_header(new)["kid"] == new_kid
    time.sleep(2.5)  # the gateway refetches for an unknown kid at most every 2 s
    assert api_status(gateway_url, new)[0] == 200, "the new key is fetched on first sight"
    assert api_status(gateway_url, old)[0] == 200, "tokens of the retired key stay valid"


def test_no_token_is_a_plain_bearer_challenge(gateway_url: str) -> None:
    response = requests.get(f"{gateway_url}/api/v1/clusters/", timeout=10)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="dask-gateway"'


def test_the_gateway_is_configured_as_the_helm_values_say(
    federation: LocalPlatform, issuer_url: str
) -> None:
    """The running gateway says which authenticator it loaded and which issuer it trusts: the
    one the site's outputs name for clients."""
    log = gateway_log(federation)
    assert "Authenticator: 'dask_platform.oidc.gateway.OIDCAuthenticator'" in log
    assert f"OIDC authentication: issuer {issuer_url}, audience {AUDIENCE}" in log


def test_the_helm_values_configure_this_authenticator() -> None:
    """The production stack's `auth.type: custom` names this class, and each key of its config
    is one of the class's configurable traits (the chart sets them as c.<Class>.<key>)."""
    import importlib

    from dask_platform.config.sources import load_stack_file
    from dask_platform.gateway_settings import render_values
    from dask_platform.oidc.gateway import OIDCAuthenticator
    from dask_platform.pulumi_eval import stack_images

    repo = Path(__file__).resolve().parents[2]
    auth = render_values(load_stack_file(repo, "prod"), stack_images("prod", repo))["gateway"][
        "auth"
    ]
    assert auth["type"] == "custom"
    module, _, name = auth["custom"]["class"].rpartition(".")
    assert getattr(importlib.import_module(module), name) is OIDCAuthenticator
    traits = set(OIDCAuthenticator.class_trait_names(config=True))
    assert set(auth["custom"]["config"]) <= traits
    assert auth["custom"]["config"] == {
        "issuer": "https://keycloak.example.org/realms/earth",
        "audience": "dask-gateway",
        "groups_claim": "groups",
    }
