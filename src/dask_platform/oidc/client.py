"""The client side of OIDC: a dask-gateway ``GatewayAuth`` that logs in to the site's identity
provider and sends its access token as ``Authorization: Bearer``.

Two ways to log in, both with authlib's ``OAuth2Session`` and the one public client id the site
publishes (its stack outputs' ``site.auth.oidc.client_id``):

* **device code** (RFC 8628) - for notebooks: prints a verification URL and a short code; the user
  approves in any browser; this object polls until the provider issues the tokens;
* **password** (resource-owner password grant) - for scripts and CI: the password is used for
  the one token request and then dropped; it is never kept on this object nor put in the
  environment. With a password grant a lost session cannot be renewed silently: log in again.

Before each use the access token is refreshed (refresh-token grant) once it is within ``leeway``
seconds of expiry, so a long session survives any number of access-token lifetimes; refresh
tokens rotate. When the refresh token itself has expired, a device-flow login starts again (a
new code is shown), a password login raises :class:`LoginRequired`.

Usage::

    from dask_gateway import Gateway
    from dask_platform.oidc.client import OIDCAuth

    auth = OIDCAuth("https://keycloak.example.org/realms/earth", "dask-platform")  # device flow
    gateway = Gateway("https://gateway.example.org", auth=auth)

or in the dask config (``gateway.auth.type: dask_platform.oidc.client.OIDCAuth`` with
``gateway.auth.kwargs: {issuer: ..., client_id: ...}``).

ref: https://www.rfc-editor.org/rfc/rfc8628#section-3.4 (polling, slow_down)
ref: https://docs.authlib.org/en/latest/client/oauth2.html
"""

from __future__ import annotations

import getpass
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from dask_gateway.auth import GatewayAuth

DEVICE_CODE_GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
DISCOVERY_PATH = "/.well-known/openid-configuration"
Flow = Literal["device", "password"]
FLOWS: tuple[Flow, ...] = ("device", "password")


class OIDCError(RuntimeError):
    """A login or token problem, said in words (never containing a secret)."""


class LoginRequired(OIDCError):
    """The session cannot be renewed without the user: log in again."""


class GatewayRejectedToken(PermissionError):
    """The gateway answered 401 to a fresh token (the reason is the gateway's)."""


@dataclass(frozen=True)
class DeviceLogin:
    """What the user is shown to approve a device login."""

    verification_uri: str
    user_code: str
    verification_uri_complete: str | None
    expires_in: int

    def message(self) -> str:
        return (
            f"To log in, open {self.verification_uri} and enter the code {self.user_code} "
            f"(valid for {self.expires_in // 60} min)"
        )


def _print_prompt(login: DeviceLogin) -> None:
    print(login.message(), file=sys.stderr, flush=True)


class OIDCAuth(GatewayAuth):  # type: ignore[misc]
    """Bearer tokens for dask-gateway from an OIDC provider; see the module docstring.

    ``prompt`` receives the :class:`DeviceLogin` to show (default: printed to stderr).
    ``leeway``: refresh when the access token has fewer seconds left than this.
    """

    def __init__(
        self,
        issuer: str,
        client_id: str,
        *,
        flow: Flow = "device",
        username: str | None = None,
        password: str | None = None,
        scope: str = "openid profile groups offline_access",
        leeway: float = 30.0,
        prompt: Callable[[DeviceLogin], None] | None = None,
        timeout: float = 10.0,
    ) -> None:
        if flow not in FLOWS:
            raise ValueError(f"flow: {flow!r} is not one of {', '.join(FLOWS)}")
        if flow == "password" and not username:
            raise ValueError("username: required with flow='password'")
        if password is not None and flow != "password":
            raise ValueError("password: only used with flow='password'")
        if not client_id:
            raise ValueError("client_id: required (the site's published OIDC client id)")
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.flow: Flow = flow
        self.username = username
        self.scope = scope
        self.leeway = float(leeway)
        self.timeout = float(timeout)
        self._prompt = prompt or _print_prompt
        self._lock = threading.RLock()
        self._metadata: dict[str, Any] | None = None
        self._session: Any = None
        if password is not None:
            # Log in now so the password goes no further than this call.
            self.login_with_password(password)

    # ------------------------------------------------------------------ provider

    @property
    def metadata(self) -> dict[str, Any]:
        """The provider's discovery document (fetched once)."""
        if self._metadata is None:
            import requests

            url = self.issuer + DISCOVERY_PATH
            try:
                response = requests.get(url, timeout=self.timeout)
                response.raise_for_status()
                metadata: dict[str, Any] = response.json()
            except (requests.RequestException, ValueError) as exc:
                raise OIDCError(f"cannot read the identity provider's {url}: {exc}") from None
            if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
                raise OIDCError(
                    f"{url} names issuer {metadata.get('issuer')!r}, not {self.issuer!r}"
                )
            self._metadata = metadata
        return self._metadata

    def _endpoint(self, name: str) -> str:
        url = self.metadata.get(name)
        if not url:
            raise OIDCError(f"the identity provider at {self.issuer} has no {name}")
        return str(url)

    def _new_session(self) -> Any:
        from authlib.integrations.requests_client import OAuth2Session

        return OAuth2Session(
            client_id=self.client_id,
            # A public client: it runs on analysts' machines, so it has no secret.
            token_endpoint_auth_method="none",  # noqa: S106
            scope=self.scope,
            leeway=self.leeway,
            default_timeout=self.timeout,
            token_endpoint=self._endpoint("token_endpoint"),
        )

    # ------------------------------------------------------------------ login

    def login_with_password(self, password: str) -> None:
        """Password grant; ``password`` is used for this request only."""
        from authlib.integrations.requests_client import OAuthError

        if self.flow != "password" or not self.username:
            raise OIDCError("login_with_password needs flow='password' and a username")
        session = self._new_session()
        try:
            session.fetch_token(
                self._endpoint("token_endpoint"),
                grant_type="password",
                username=self.username,
                password=password,
            )
        except OAuthError as exc:
            raise OIDCError(
                f"login as {self.username!r} at {self.issuer} refused: "
                f"{exc.error}: {exc.description or 'no detail'}"
            ) from None
        with self._lock:
            self._session = session

    def login_with_device_code(self, max_wait: float | None = None) -> None:
        """Device authorization grant: show the code, poll until approved, denied or expired."""
        from authlib.integrations.requests_client import OAuthError

        session = self._new_session()
        response = session.post(
            self._endpoint("device_authorization_endpoint"),
            data={"client_id": self.client_id, "scope": self.scope},
            withhold_token=True,
        )
        body = response.json()
        if response.status_code != 200:
            raise OIDCError(
                f"device login at {self.issuer} refused: {body.get('error')}: "
                f"{body.get('error_description') or 'no detail'}"
            )
        login = DeviceLogin(
            verification_uri=body["verification_uri"],
            user_code=body["user_code"],
            verification_uri_complete=body.get("verification_uri_complete"),
            expires_in=int(body["expires_in"]),
        )
        self._prompt(login)
        interval = float(body.get("interval", 5))
        deadline = time.monotonic() + min(login.expires_in, max_wait or login.expires_in)
        while True:
            time.sleep(interval)
            try:
                session.fetch_token(
                    self._endpoint("token_endpoint"),
                    grant_type=DEVICE_CODE_GRANT_TYPE,
                    device_code=body["device_code"],
                )
                break
            except OAuthError as exc:
                if exc.error == "authorization_pending":
                    pass
                elif exc.error == "slow_down":
                    interval += 5  # RFC 8628 section 3.5
                elif exc.error == "access_denied":
                    raise OIDCError(f"the device login was denied at {self.issuer}") from None
                elif exc.error == "expired_token":
                    raise LoginRequired(
                        f"the code {login.user_code} expired before it was approved; log in again"
                    ) from None
                else:
                    raise OIDCError(
                        f"device login failed: {exc.error}: {exc.description or 'no detail'}"
                    ) from None
            if time.monotonic() > deadline:
                raise LoginRequired(f"the code {login.user_code} was not approved in time")
        with self._lock:
            self._session = session

    def login(self) -> None:
        if self.flow == "device":
            self.login_with_device_code()
        elif sys.stdin is not None and sys.stdin.isatty():
            self.login_with_password(getpass.getpass(f"Password for {self.username}: "))
        else:
            raise LoginRequired(
                f"not logged in to {self.issuer}: call login_with_password(...) or pass "
                "password= (it is not stored)"
            )

    # ------------------------------------------------------------------ tokens

    @property
    def token(self) -> dict[str, Any] | None:
        session = self._session
        return dict(session.token) if session is not None and session.token else None

    def access_token(self) -> str:
        """A valid access token, refreshed first if it expires within ``leeway`` seconds."""
        from authlib.integrations.requests_client import OAuthError

        with self._lock:
            if self._session is None:
                self.login()
            if self._expires_soon(self._session.token):
                try:
                    self._session.refresh_token(self._endpoint("token_endpoint"))
                except OAuthError as exc:
                    self._session = None
                    if self.flow == "device":
                        self.login()
                    else:
                        raise LoginRequired(
                            f"the session at {self.issuer} ended ({exc.error}: "
                            f"{exc.description or 'refresh token expired or revoked'}); log in "
                            "again"
                        ) from None
            return str(self._session.token["access_token"])

    def _expires_soon(self, token: Mapping[str, Any]) -> bool:
        expires_at = token.get("expires_at")
        if expires_at is None:
            return False
        # A leeway longer than a quarter of the token's lifetime would refresh on every use.
        lifetime = float(token.get("expires_in") or self.leeway * 4)
        return float(expires_at) - time.time() < min(self.leeway, lifetime / 4)

    def pre_request(self, resp: Any) -> tuple[dict[str, str], None]:
        return {"Authorization": f"Bearer {self.access_token()}"}, None

    def post_response(self, resp: Any, context: Any = None) -> None:
        if getattr(resp, "status", None) == 401:
            challenge = resp.headers.get("WWW-Authenticate", "")
            _, _, detail = challenge.partition('error_description="')
            reason = detail.split('"', 1)[0] or "no reason given"
            raise GatewayRejectedToken(
                f"the gateway at {resp.url.origin()} refused the token: {reason}"
            )

    def __repr__(self) -> str:
        state = "logged in" if self._session is not None else "not logged in"
        who = f" as {self.username}" if self.username else ""
        return f"OIDCAuth<{self.issuer}, client {self.client_id}, {self.flow}{who}, {state}>"
