"""The local identity provider: what Keycloak is at a real site, served by the local issuer.

Users and their groups come from the local config (``local.users``); their passwords are the
ones ``local up`` generated (the issuer only reads the scrypt hashes in ``users.json``). The
OAuth2 machinery is authlib's: :class:`authlib.oauth2.rfc6749.AuthorizationServer` with its
resource-owner-password and refresh-token grants, and RFC 8628's device authorization endpoint
and device-code grant. This module only supplies what authlib leaves to the framework and the
storage: an aiohttp request adapter, one public client, in-memory refresh tokens and device
codes, and the page where a user approves a device code.

Access tokens are JWTs signed by the issuer's current key (the same JWKS as the ServiceAccount
tokens) with ``sub``/``preferred_username`` = the user name, ``aud`` = the gateways' audience,
``azp``/``client_id`` = the client, and the groups claim. Refresh tokens are opaque and rotate on
every use (the old one stops working), as Keycloak's "revoke refresh token" setting does.

ref: https://www.rfc-editor.org/rfc/rfc6749#section-4.3 (password grant)
ref: https://www.rfc-editor.org/rfc/rfc8628 (device authorization grant)
ref: https://docs.authlib.org/en/latest/oauth2/specs/rfc8628.html
"""

from __future__ import annotations

import functools
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from authlib.common.security import generate_token
from authlib.oauth2.rfc6749 import (
    AuthorizationServer,
    ClientMixin,
    OAuth2Request,
    TokenMixin,
    grants,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc8628 import (
    DEVICE_CODE_GRANT_TYPE,
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)

from dask_platform.local.passwords import hash_password, verify_password

PASSWORD_GRANT = "password"  # noqa: S105 - a grant type name
REFRESH_GRANT = "refresh_token"
GRANT_TYPES = (PASSWORD_GRANT, REFRESH_GRANT, DEVICE_CODE_GRANT_TYPE)
SCOPES = ("openid", "profile", "groups", "offline_access")


@dataclass(frozen=True)
class IdpSettings:
    """What the issuer process is told about the identity provider (from ``local.oidc``)."""

    users_file: Path
    client_id: str
    audience: str
    groups_claim: str
    access_token_seconds: int
    refresh_token_seconds: int
    device_code_seconds: int
    device_poll_seconds: int

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> IdpSettings:
        return cls(**{**spec, "users_file": Path(spec["users_file"])})


@dataclass(frozen=True)
class IdpUser:
    name: str
    groups: tuple[str, ...]
    # When the user authenticated (epoch seconds): kept across refreshes of the session it
    # opened, as OIDC's auth_time claim. ref: https://openid.net/specs/openid-connect-core-1_0.html#IDToken
    auth_time: int = field(default_factory=lambda: int(time.time()))

    def get_user_id(self) -> str:
        return self.name


class PublicClient(ClientMixin):  # type: ignore[misc]
    """The one public client (no secret: it runs on analysts' machines and notebooks)."""

    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> None:
        return None

    def get_allowed_scope(self, scope: str | None) -> str:
        requested = (scope or "openid").split()
        return " ".join(s for s in requested if s in SCOPES) or "openid"

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in GRANT_TYPES


@dataclass
class RefreshRecord(TokenMixin):  # type: ignore[misc]
    user: IdpUser
    client_id: str
    scope: str
    expires_at: float
    revoked: bool = False

    def check_client(self, client: ClientMixin) -> bool:
        return bool(client.get_client_id() == self.client_id)

    def get_scope(self) -> str:
        return self.scope

    def get_expires_in(self) -> int:
        return max(0, int(self.expires_at - time.time()))

    def is_expired(self) -> bool:
        return time.time() >= self.expires_at

    def is_revoked(self) -> bool:
        return self.revoked

    def get_user(self) -> IdpUser:
        return self.user


@dataclass
class _Store:
    """The provider's state: in memory (an issuer restart logs everyone out, as it should)."""

    refresh: dict[str, RefreshRecord] = field(default_factory=dict)
    devices: dict[str, DeviceCredentialDict] = field(default_factory=dict)
    # user_code -> (user, approved): written by the verification page.
    decisions: dict[str, tuple[IdpUser, bool]] = field(default_factory=dict)
    last_poll: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def prune(self, now: float) -> None:
        self.refresh = {k: r for k, r in self.refresh.items() if r.expires_at > now}
        expired = {k for k, d in self.devices.items() if d.is_expired()}
        for code in expired:
            user_code = self.devices.pop(code)["user_code"]
            self.decisions.pop(user_code, None)
            self.last_poll.pop(code, None)


class LocalRequest(OAuth2Request):  # type: ignore[misc]
    """authlib's request, built from an aiohttp request whose form was already read."""

    def __init__(
        self, method: str, uri: str, headers: Mapping[str, str], form: Mapping[str, str]
    ) -> None:
        super().__init__(method=method, uri=uri, headers=dict(headers))
        self._form = dict(form)
        self.payload = BasicOAuth2Payload(self._form)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


@dataclass
class Response:
    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]]


class LocalAuthorizationServer(AuthorizationServer):  # type: ignore[misc]
    def __init__(
        self, settings: IdpSettings, issuer_url: str, mint: Callable[[dict[str, Any], int], str]
    ) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.settings = settings
        self.issuer_url = issuer_url
        self.client = PublicClient(settings.client_id)
        self.store = _Store()
        self._mint = mint
        self.register_token_generator(
            "default",
            BearerTokenGenerator(
                access_token_generator=self._access_token,
                refresh_token_generator=lambda **_: generate_token(48),
                expires_generator=settings.access_token_seconds,
            ),
        )

    # -- what authlib leaves to the framework

    def query_client(self, client_id: str) -> PublicClient | None:
        return self.client if client_id == self.client.client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        refresh_token = token.get("refresh_token")
        if refresh_token:
            now = time.time()
            with self.store.lock:
                self.store.prune(now)
                self.store.refresh[refresh_token] = RefreshRecord(
                    user=request.user,
                    client_id=self.client.client_id,
                    scope=token.get("scope", ""),
                    expires_at=now + self.settings.refresh_token_seconds,
                )

    def create_oauth2_request(self, request: LocalRequest) -> LocalRequest:
        return request

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoints")

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> Response:
        return Response(status, dict(body or {}), list(headers or []))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        return None

    # -- tokens

    def _access_token(self, client: ClientMixin, grant_type: str, user: IdpUser, scope: str) -> str:
        claims = {
            "sub": user.name,
            "preferred_username": user.name,
            "aud": self.settings.audience,
            "azp": client.get_client_id(),
            "client_id": client.get_client_id(),
            "scope": scope,
            "typ": "Bearer",
            "auth_time": user.auth_time,
            self.settings.groups_claim: list(user.groups),
        }
        return self._mint(claims, self.settings.access_token_seconds)

    # -- users

    def users(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.settings.users_file.read_text())
        return data

    def authenticate_user(self, username: str, password: str) -> IdpUser | None:
        record = self.users().get(username)
        stored = record["password_hash"] if record else _dummy_hash()
        if not verify_password(password, stored) or record is None:
            return None
        return IdpUser(username, tuple(record["groups"]))

    def revoke_sessions(self, user: str) -> int:
        """End every session of ``user`` (an admin's "log out everywhere"): their refresh
        tokens stop working; access tokens already issued run out on their own."""
        with self.store.lock:
            mine = [k for k, r in self.store.refresh.items() if r.user.name == user]
            for key in mine:
                self.store.refresh.pop(key).revoked = True
        return len(mine)

    # -- the device verification page

    def decide(self, user_code: str, user: IdpUser, approved: bool) -> bool:
        """Record the user's decision for ``user_code``; False if no pending code has it."""
        with self.store.lock:
            self.store.prune(time.time())
            pending = {d["user_code"] for d in self.store.devices.values()}
            if user_code not in pending:
                return False
            self.store.decisions[user_code] = (user, approved)
            return True


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user does not exist, so a login takes as long for an unknown
    user as for a wrong password (no user enumeration by timing)."""
    return hash_password(secrets.token_hex(8))


def make_server(
    settings: IdpSettings, issuer_url: str, mint: Callable[[dict[str, Any], int], str]
) -> LocalAuthorizationServer:
    server = LocalAuthorizationServer(settings, issuer_url, mint)
    store = server.store

    class PasswordGrant(grants.ResourceOwnerPasswordCredentialsGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

        def authenticate_user(self, username: str, password: str) -> IdpUser | None:
            return server.authenticate_user(username, password)

    class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
        # Rotation: every refresh returns a new refresh token and revokes the old one.
        INCLUDE_NEW_REFRESH_TOKEN = True

        def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
            with store.lock:
                record = store.refresh.get(refresh_token)
            if record is None or record.is_expired() or record.is_revoked():
                return None
            return record

        def authenticate_user(self, record: RefreshRecord) -> IdpUser:
            # The user's groups as of now: a group removed since login is gone after a refresh.
            current = server.users().get(record.user.name)
            if current is None:
                return record.user
            return IdpUser(record.user.name, tuple(current["groups"]), record.user.auth_time)

        def revoke_old_credential(self, record: RefreshRecord) -> None:
            with store.lock:
                record.revoked = True
                for key, value in list(store.refresh.items()):
                    if value is record:
                        del store.refresh[key]

    class DeviceGrant(DeviceCodeGrant):  # type: ignore[misc]
        TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

        def query_device_credential(self, device_code: str) -> DeviceCredentialDict | None:
            with store.lock:
                return store.devices.get(device_code)

        def query_user_grant(self, user_code: str) -> tuple[IdpUser, bool] | None:
            with store.lock:
                decision = store.decisions.get(user_code)
                if decision is not None:
                    # A device code is redeemed once.
                    for code, device in list(store.devices.items()):
                        if device["user_code"] == user_code:
                            del store.devices[code]
                    del store.decisions[user_code]
            return decision

        def should_slow_down(self, credential: DeviceCredentialDict) -> bool:
            now = time.time()
            with store.lock:
                last = store.last_poll.get(credential["device_code"])
                store.last_poll[credential["device_code"]] = now
            return last is not None and now - last < settings.device_poll_seconds * 0.8

    class DeviceEndpoint(DeviceAuthorizationEndpoint):  # type: ignore[misc]
        CLIENT_AUTH_METHODS = ["none"]
        EXPIRES_IN = settings.device_code_seconds
        INTERVAL = settings.device_poll_seconds

        def get_verification_uri(self) -> str:
            return f"{issuer_url}/device"

        def save_device_credential(
            self, client_id: str, scope: str | None, data: dict[str, Any]
        ) -> None:
            credential = DeviceCredentialDict(
                client_id=client_id,
                scope=scope,
                expires_at=time.time() + data["expires_in"],
                **data,
            )
            with store.lock:
                store.prune(time.time())
                store.devices[data["device_code"]] = credential

    server.register_grant(PasswordGrant)
    server.register_grant(RefreshTokenGrant)
    server.register_grant(DeviceGrant)
    server.register_endpoint(DeviceEndpoint)
    return server
