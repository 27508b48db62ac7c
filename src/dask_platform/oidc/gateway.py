"""The gateway side of OIDC: a dask-gateway-server authenticator for bearer JWT access tokens.

Configured by the Helm values the platform renders (``gateway.auth.type: custom``, class
``dask_platform.oidc.gateway.OIDCAuthenticator``, config keys ``issuer``, ``audience``,
``groups_claim``) and by the local platform with ``local.gateway_auth: oidc``. Every request
either carries ``Authorization: Bearer <JWT>`` or the session cookie this authenticator set for
an earlier valid token; the cookie never outlives that token.

A token is accepted only if its header names an allowed algorithm and a key of the issuer's
JWKS, its signature verifies with that key, ``iss`` is the configured issuer, ``aud`` contains
the configured audience, and ``exp`` (with a small leeway) has not passed. The groups claim
becomes ``User.groups``; the gateway config's options handler maps groups to the team. Any
failure is a 401 whose ``WWW-Authenticate`` header and the gateway log say why - never echoing
the token.

The JWKS is fetched from the issuer's discovery document (or ``jwks_uri``) when first needed,
cached for ``jwks_cache_seconds``, and refetched once for a key id it does not know (the issuer
rotated its key) - at most once per ``jwks_refetch_seconds``, so tokens with made-up key ids
cannot make the gateway hammer the identity provider.

ref: https://gateway.dask.org/authentication.html#custom-authentication
ref: https://www.rfc-editor.org/rfc/rfc6750#section-3 (the WWW-Authenticate error codes)
ref: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderConfig
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from dask_gateway_server.auth import Authenticator
from dask_gateway_server.models import User
from traitlets import Float, List, Unicode

DISCOVERY_PATH = "/.well-known/openid-configuration"
# Asymmetric algorithms only: an HS256 token would be verified with a public key as the secret.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384")


class TokenRejected(Exception):
    """Why a token is not accepted (safe to show: it never contains the token)."""


class JwksUnavailable(Exception):
    """The identity provider's keys could not be fetched."""


@dataclass
class _Session:
    user: User
    expires_at: float


class JwksCache:
    """The issuer's signing keys by key id, fetched lazily and refetched on an unknown kid at
    most once per ``min_refetch`` seconds. ``fetch`` returns the JWKS document."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[dict[str, Any]]],
        max_age: float,
        min_refetch: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch
        self.max_age = max_age
        self.min_refetch = min_refetch
        self._clock = clock
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._attempted_at: float | None = None
        self._lock = asyncio.Lock()

    async def _refresh(self) -> None:
        self._attempted_at = self._clock()
        document = await self._fetch()
        try:
            key_set = jwt.PyJWKSet.from_dict(document)
        except jwt.PyJWKSetError as exc:
            raise JwksUnavailable(f"the JWKS has no usable key ({exc})") from None
        keys: dict[str | None, jwt.PyJWK] = {k.key_id: k for k in key_set.keys}
        self._keys = keys
        self._fetched_at = self._clock()

    async def key(self, kid: str | None) -> jwt.PyJWK:
        async with self._lock:
            now = self._clock()
            if self._fetched_at is None or now - self._fetched_at > self.max_age:
                try:
                    await self._refresh()
                except JwksUnavailable:
                    if not self._keys:
                        raise
            if kid not in self._keys and (
                self._attempted_at is None or now - self._attempted_at >= self.min_refetch
            ):
                # Most likely the issuer rotated its key: refetch once.
                try:
                    await self._refresh()
                except JwksUnavailable:
                    if not self._keys:
                        raise
            if kid is None and len(self._keys) == 1:
                return next(iter(self._keys.values()))
            key = self._keys.get(kid)
            if key is None:
                raise TokenRejected(
                    f"unknown signing key id {kid!r} (not in the issuer's JWKS)"
                    if kid is not None
                    else "the token names no signing key id (kid) and the JWKS has several keys"
                )
            return key


class OIDCAuthenticator(Authenticator):  # type: ignore[misc]
    """Bearer JWT access tokens from an OIDC identity provider (Keycloak, Cognito, ...)."""

    issuer = Unicode(
        help="The identity provider's issuer URL; tokens' `iss` must equal it.", config=True
    )
    audience = Unicode(help="The audience tokens must carry in `aud` (the gateway's).", config=True)
    groups_claim = Unicode(
        "groups", help="The claim listing the user's groups (-> teams).", config=True
    )
    username_claim = Unicode(
        "preferred_username",
        help="The claim naming the user (falls back to `sub` when absent).",
        config=True,
    )
    jwks_uri = Unicode(
        "", help="The issuer's JWKS URL; default: from its discovery document.", config=True
    )
    algorithms = List(
        Unicode(),
        default_value=["RS256"],
        help=f"Signature algorithms accepted; a subset of {', '.join(ALLOWED_ALGORITHMS)}.",
        config=True,
    )
    leeway = Float(10.0, help="Clock skew tolerated on exp/nbf/iat, in seconds.", config=True)
    jwks_cache_seconds = Float(
        3600.0, help="How long the JWKS is used before it is fetched again.", config=True
    )
    jwks_refetch_seconds = Float(
        10.0,
        help="Minimum time between JWKS fetches caused by an unknown key id.",
        config=True,
    )
    http_timeout = Float(10.0, help="Timeout of requests to the identity provider.", config=True)

    async def setup(self, app: web.Application) -> None:
        problems = [
            f"OIDCAuthenticator.{name}: required (got {getattr(self, name)!r})"
            for name in ("issuer", "audience")
            if not getattr(self, name)
        ]
        bad = sorted(set(self.algorithms) - set(ALLOWED_ALGORITHMS))
        if bad or not self.algorithms:
            problems.append(
                f"OIDCAuthenticator.algorithms: {', '.join(bad) or 'empty'} not allowed; "
                f"allowed: {', '.join(ALLOWED_ALGORITHMS)}"
            )
        if problems:
            raise ValueError("; ".join(problems))
        self.issuer = self.issuer.rstrip("/")
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.http_timeout))
        self._sessions: dict[str, _Session] = {}
        self.jwks = JwksCache(self._fetch_jwks, self.jwks_cache_seconds, self.jwks_refetch_seconds)
        self.log.info(
            "OIDC authentication: issuer %s, audience %s, groups from claim %r",
            self.issuer,
            self.audience,
            self.groups_claim,
        )

    async def cleanup(self) -> None:
        http = getattr(self, "_http", None)
        if http is not None:
            await http.close()

    # ------------------------------------------------------------------ the identity provider

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with self._http.get(url) as response:
                response.raise_for_status()
                data: dict[str, Any] = await response.json(content_type=None)
                return data
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise JwksUnavailable(f"{url}: {type(exc).__name__}: {exc}") from None

    async def _fetch_jwks(self) -> dict[str, Any]:
        uri = self.jwks_uri
        if not uri:
            discovery = await self._get_json(self.issuer + DISCOVERY_PATH)
            if str(discovery.get("issuer", "")).rstrip("/") != self.issuer:
                raise JwksUnavailable(
                    f"the discovery document at {self.issuer}{DISCOVERY_PATH} names issuer "
                    f"{discovery.get('issuer')!r}, not {self.issuer!r}"
                )
            uri = str(discovery["jwks_uri"])
        return await self._get_json(uri)

    # ------------------------------------------------------------------ tokens

    async def validate(self, token: str) -> dict[str, Any]:
        """The token's claims if it is valid for this gateway; else :class:`TokenRejected`."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError:
            raise TokenRejected("malformed token (not a JWT)") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise TokenRejected(
                f"algorithm {algorithm!r} not accepted; allowed: {', '.join(self.algorithms)}"
            )
        key = await self.jwks.key(header.get("kid"))
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise TokenRejected("token expired") from None
        except jwt.InvalidAudienceError:
            raise TokenRejected(
                f"wrong audience (this gateway accepts {self.audience!r})"
            ) from None
        except jwt.InvalidIssuerError:
            raise TokenRejected(f"wrong issuer (this gateway trusts {self.issuer!r})") from None
        except jwt.InvalidSignatureError:
            raise TokenRejected("signature does not verify with the issuer's key") from None
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"missing claim {exc.claim!r}") from None
        except jwt.ImmatureSignatureError:
            raise TokenRejected("token not yet valid (nbf/iat in the future)") from None
        except jwt.InvalidTokenError as exc:
            raise TokenRejected(f"invalid token ({type(exc).__name__})") from None
        return claims

    def user_from(self, claims: dict[str, Any]) -> User:
        name = claims.get(self.username_claim) or claims["sub"]
        groups = claims.get(self.groups_claim, [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise TokenRejected(f"claim {self.groups_claim!r} must be a list of group names")
        return User(str(name), groups=list(groups))

    def _unauthorized(self, request: web.Request, reason: str | None) -> web.HTTPUnauthorized:
        challenge = 'Bearer realm="dask-gateway"'
        if reason is not None:
            # Logged with the client address, never the token.
            self.log.warning("Rejected a bearer token from %s: %s", request.remote, reason)
            safe = reason.replace('"', "'").replace("\\", "/")
            challenge += f', error="invalid_token", error_description="{safe}"'
        return web.HTTPUnauthorized(
            headers={"WWW-Authenticate": challenge}, reason="Authentication required"
        )

    async def authenticate(self, request: web.Request) -> User:
        user, _ = await self._authenticate(request)
        return user

    async def _authenticate(self, request: web.Request) -> tuple[User, float]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthorized(request, None)
        try:
            claims = await self.validate(token.strip())
            user = self.user_from(claims)
        except TokenRejected as exc:
            raise self._unauthorized(request, str(exc)) from None
        except JwksUnavailable as exc:
            self.log.error("Cannot verify tokens: the issuer's keys are unavailable: %s", exc)
            raise web.HTTPServiceUnavailable(
                reason="the identity provider's signing keys are unavailable"
            ) from None
        return user, float(claims["exp"])

    async def authenticate_and_handle(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """The base class's flow, except that a session cookie expires with the token that
        opened it (the base class would honour it for ``cache_max_age`` regardless)."""
        now = time.time()
        cookie = request.cookies.get(self.cookie_name)
        if cookie is not None and "Authorization" not in request.headers:
            session = self._sessions.get(cookie)
            if session is not None and session.expires_at > now:
                request["user"] = session.user
                return await handler(request)
            self._sessions.pop(cookie, None)
        user, token_expires_at = await self._authenticate(request)
        request["user"] = user
        response = await handler(request)
        expires_at = min(token_expires_at, now + self.cache_max_age)
        self._sessions = {k: s for k, s in self._sessions.items() if s.expires_at > now}
        cookie = secrets.token_urlsafe(32)
        self._sessions[cookie] = _Session(user, expires_at)
        response.set_cookie(
            self.cookie_name, cookie, max_age=max(1, int(expires_at - now)), httponly=True
        )
        return response
