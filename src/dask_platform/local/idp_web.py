"""The local identity provider's HTTP side: its discovery fields and the routes it adds to the
local issuer's aiohttp app (token, device authorization, the device-code approval page).

The OAuth2 server itself (authlib's AuthorizationServer with the platform's client, grants and
stores) is :mod:`dask_platform.local.idp`; these routes adapt aiohttp requests to it.

ref: https://openid.net/specs/openid-connect-discovery-1_0.html#ProviderMetadata
ref: https://www.rfc-editor.org/rfc/rfc8628 (device authorization grant)
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from dask_platform.local.idp import (
    GRANT_TYPES,
    SCOPES,
    IdpSettings,
    LocalAuthorizationServer,
    LocalRequest,
    Response,
)


def discovery_fields(issuer_url: str, settings: IdpSettings) -> dict[str, Any]:
    """What a client needs from ``/.well-known/openid-configuration`` to log in."""
    return {
        "token_endpoint": f"{issuer_url}/token",
        "device_authorization_endpoint": f"{issuer_url}/device/code",
        "grant_types_supported": list(GRANT_TYPES),
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": list(SCOPES),
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "preferred_username",
            settings.groups_claim,
        ],
    }


def add_routes(app: Any, provider: Callable[[], LocalAuthorizationServer]) -> None:
    """The token, device-authorization and device-verification endpoints on the issuer app.

    ``provider`` returns the server once the issuer knows its own URL (routes are added before
    the app binds its port)."""
    from aiohttp import web

    def to_web(response: Response) -> web.Response:
        headers = {k: v for k, v in response.headers if k.lower() != "content-type"}
        return web.json_response(response.body, status=response.status, headers=headers)

    async def oauth_request(request: web.Request) -> LocalRequest:
        form = await request.post()
        # authlib refuses plain http except on loopback; it checks the URL it is given, which
        # is the issuer's own (127.0.0.1).
        path = urlsplit(str(request.url)).path
        return LocalRequest(
            request.method,
            f"{provider().issuer_url}{path}",
            request.headers,
            {k: str(v) for k, v in form.items()},
        )

    async def token(request: web.Request) -> web.Response:
        return to_web(provider().create_token_response(await oauth_request(request)))

    async def device_code(request: web.Request) -> web.Response:
        return to_web(
            provider().create_endpoint_response(
                "device_authorization", await oauth_request(request)
            )
        )

    async def device_page(request: web.Request) -> web.Response:
        user_code = html.escape(request.query.get("user_code", ""))
        return web.Response(
            content_type="text/html",
            text=_PAGE.format(
                body=(
                    '<form method="post">'
                    f'<label>Code <input name="user_code" value="{user_code}"></label>'
                    '<label>User <input name="username"></label>'
                    '<label>Password <input name="password" type="password"></label>'
                    '<button name="action" value="approve">Approve</button>'
                    '<button name="action" value="deny">Deny</button></form>'
                )
            ),
        )

    async def device_decision(request: web.Request) -> web.Response:
        form = await request.post()
        user_code = str(form.get("user_code", "")).strip().upper()
        action = str(form.get("action", "approve"))
        if action not in {"approve", "deny"}:
            return _page(400, "action: must be one of approve, deny")
        server = provider()
        user = server.authenticate_user(
            str(form.get("username", "")), str(form.get("password", ""))
        )
        if user is None:
            return _page(401, "Wrong user name or password.")
        if not server.decide(user_code, user, approved=action == "approve"):
            return _page(400, "Unknown or expired code. Start the login again on your device.")
        verdict = "approved" if action == "approve" else "denied"
        return _page(
            200, f"Device {verdict} for {html.escape(user.name)}. You can close this page."
        )

    app.router.add_post("/token", token)
    app.router.add_post("/device/code", device_code)
    app.router.add_get("/device", device_page)
    app.router.add_post("/device", device_decision)


_PAGE = "<!doctype html><title>dask-platform local sign-in</title><body>{body}</body>"


def _page(status: int, message: str) -> Any:
    from aiohttp import web

    return web.Response(
        status=status, content_type="text/html", text=_PAGE.format(body=f"<p>{message}</p>")
    )
