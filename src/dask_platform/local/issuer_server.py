"""The local OIDC issuer's process: ``python -m dask_platform.local.issuer_server`` serves
``/.well-known/openid-configuration`` and the JWKS over HTTP on a free loopback port and runs
the projector (:mod:`dask_platform.local.issuer`); with an ``identity_provider`` in its spec
also ``/token``, ``/device/code`` and ``/device`` (password, refresh-token and device-code
grants); ``/admin/*`` (bearer admin token) mints tokens, rotates the signing key (waiting, if
need be, until the next key has been published for the lead time), forces a token rotation
or reports how often the JWKS was fetched. Its facts go to ``issuer.json``
(:data:`READY_FILE`).

ref: https://openid.net/specs/openid-connect-discovery-1_0.html
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

from dask_platform.local.issuer import (
    NEXT_KEY_LEAD_SECONDS,
    Issuer,
    NextKeyNotReady,
    SigningKeys,
    TokenProjector,
    team_projections,
)
from dask_platform.local.processes import write_json_atomic

READY_FILE = "issuer.json"


async def _serve(state_dir: Path, host: str, port: int, spec: dict[str, Any]) -> None:
    from aiohttp import web

    from dask_platform.local import idp, idp_web

    admin_token = secrets.token_urlsafe(32)
    runner_holder: dict[str, Any] = {}
    app = web.Application()
    context: dict[str, Any] = {}

    def authorized(request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        return secrets.compare_digest(header, f"Bearer {admin_token}")

    async def discovery(request: web.Request) -> web.Response:
        return web.json_response(context["issuer"].discovery(context.get("idp_discovery")))

    async def keys(request: web.Request) -> web.Response:
        context["jwks_requests"] = context.get("jwks_requests", 0) + 1
        return web.json_response(context["issuer"].keys.jwks())

    async def stats(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": "admin token required"}, status=403)
        return web.json_response(
            {
                "jwks_requests": context.get("jwks_requests", 0),
                # 0: a rotation now promotes the next key at once.
                "seconds_until_rotation": context["issuer"].keys.seconds_until_rotation(),
            }
        )

    async def rotate_key(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": "admin token required"}, status=403)
        keys: SigningKeys = context["issuer"].keys
        waited = keys.seconds_until_rotation()
        # A scheduled rotation: the next key signs once every verifier can have fetched it.
        await asyncio.sleep(waited)
        while True:
            try:
                key = keys.rotate()
                break
            except NextKeyNotReady as exc:
                await asyncio.sleep(exc.seconds_left)
        return web.json_response(
            {"kid": key.kid, "next_kid": keys.next.kid, "waited_seconds": waited}
        )

    async def rotate_tokens(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": "admin token required"}, status=403)
        return web.json_response({"written": context["projector"].refresh(force=True)})

    async def mint(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": "admin token required"}, status=403)
        body = await request.json()
        lifetime = int(body.get("lifetime", 600))
        token = context["issuer"].mint(dict(body["claims"]), lifetime)
        return web.json_response({"token": token})

    app.router.add_get("/.well-known/openid-configuration", discovery)
    app.router.add_get("/keys", keys)
    app.router.add_post("/admin/rotate-signing-key", rotate_key)
    app.router.add_post("/admin/rotate-tokens", rotate_tokens)
    app.router.add_post("/admin/tokens", mint)
    app.router.add_get("/admin/stats", stats)

    async def revoke_sessions(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": "admin token required"}, status=403)
        if "idp" not in context:
            return web.json_response({"error": "no identity provider"}, status=404)
        user = str((await request.json())["user"])
        return web.json_response({"revoked": context["idp"].revoke_sessions(user)})

    app.router.add_post("/admin/revoke-sessions", revoke_sessions)

    idp_spec = spec.get("identity_provider")
    if idp_spec:
        idp_web.add_routes(app, lambda: context["idp"])

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    runner_holder["runner"] = runner
    bound = runner.addresses[0][1]
    url = f"http://{host}:{bound}"
    lifetime = int(spec["token_seconds"])
    # A retired key stays in the JWKS until the longest-lived token it signed has expired.
    longest = max(lifetime, int(idp_spec["access_token_seconds"]) if idp_spec else 0)
    signing_keys = SigningKeys(
        state_dir / "signing-keys.json",
        max_token_lifetime=longest,
        next_key_lead_seconds=spec.get("next_key_lead_seconds"),
    )
    issuer = Issuer(url, signing_keys)
    if idp_spec:
        settings = idp.IdpSettings.from_spec(idp_spec)
        context["idp"] = idp.make_server(settings, url, issuer.mint)
        context["idp_discovery"] = idp_web.discovery_fields(url, settings)
    projector = TokenProjector(
        issuer,
        team_projections(Path(spec["tokens_dir"]), spec["namespace"], spec["teams"], lifetime),
    )
    context.update(issuer=issuer, projector=projector)
    projector.refresh(force=True)
    write_json_atomic(
        state_dir / READY_FILE,
        {
            "url": url,
            "port": bound,
            "pid": os.getpid(),
            "admin_token": admin_token,
            "jwks_uri": f"{url}/keys",
            "token_files": {p.service_account: str(p.path) for p in projector.projections},
            "started": time.time(),
        },
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    while not stop.is_set():
        projector.refresh()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
    await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="The local OIDC issuer and token projector.")
    parser.add_argument("--state-dir", type=Path, required=True, help="Where issuer.json goes.")
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (loopback).")
    parser.add_argument("--port", type=int, default=0, help="Port; 0 picks a free one.")
    parser.add_argument(
        "--spec",
        type=Path,
        required=True,
        help="JSON: {tokens_dir, namespace, teams, token_seconds, identity_provider?, "
        f"next_key_lead_seconds? (default {NEXT_KEY_LEAD_SECONDS})}}.",
    )
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    asyncio.run(_serve(args.state_dir, args.host, args.port, spec))


if __name__ == "__main__":
    main()
