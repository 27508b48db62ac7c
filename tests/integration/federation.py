"""A pytest plugin (``pytest_plugins`` in the OIDC, multi-site, runbook and profile tests): one
federated local platform for the session. Tests reach everything through its fixtures (so this
module is imported only by pytest, which rewrites its asserts).

Three gateways - sites ``central``, ``hpc`` and ``rogue`` - share the AWS emulator, the issuer
(also the users' OIDC identity provider) and the teams, and authenticate users with OIDC bearer
tokens (``local.gateway_auth: oidc``). Access tokens live 8 seconds, so every test that talks to
a gateway for more than a few seconds runs across token refreshes. ``rogue`` is a real
misconfiguration: an extra gateway config file, loaded after the platform's (as a further
``gateway.extraConfig`` entry would be on EKS), pastes an AWS key pair into every cluster's
environment - what `verify-workers` must catch.

Everything started here is stopped at the end of the session, and checked to be gone.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from dask_platform.local.config import LocalOidc
from dask_platform.local.platform import LocalPlatform
from dask_platform.local.processes import marked_processes

from ..examples import EXAMPLE_ACCESS_KEY_ID, EXAMPLE_SECRET_ACCESS_KEY
from .conftest import platform_config

SITES = ("central", "hpc", "rogue")
ACCESS_TOKEN_SECONDS = 8
# A made-up key pair in AWS's documented example format: nothing real is ever pasted anywhere.
# ref: https://docs.aws.amazon.com/IAM/latest/UserGuide/security-creds.html
ROGUE_KEY_ID = EXAMPLE_ACCESS_KEY_ID
ROGUE_OVERLAY = """\
# An operator "fixed" S3 access by pasting a key pair into every cluster (the misconfiguration
# the platform exists to prevent; loaded after the platform's own config, so its checks ran).
from dask_gateway_server.options import Options

_platform_options = c.Backend.cluster_options


def _with_pasted_keys(user):
    options = _platform_options(user)
    handler = options.handler

    def handler_with_keys(opts, user):
        config = handler(opts, user)
        config["environment"] = {
            **config["environment"],
            "AWS_ACCESS_KEY_ID": "ROGUE_KEY_ID",
            "AWS_SECRET_ACCESS_KEY": "ROGUE_SECRET",
        }
        return config

    return Options(*options.fields, handler=handler_with_keys)


c.Backend.cluster_options = _with_pasted_keys
""".replace("ROGUE_KEY_ID", ROGUE_KEY_ID).replace("ROGUE_SECRET", EXAMPLE_SECRET_ACCESS_KEY)


@pytest.fixture(scope="session")
def federation(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    state = tmp_path_factory.mktemp("federation")
    rogue = state.parent / "rogue_overlay.py"
    rogue.write_text(ROGUE_OVERLAY)
    config = platform_config(
        gateway_auth="oidc",
        # The client id and audience are the local config's defaults (LocalOidc).
        oidc={
            "access_token_seconds": ACCESS_TOKEN_SECONDS,
            "device_poll_seconds": 1,
            "jwks_refetch_seconds": 2,
        },
        sites=[
            {"name": "central"},
            {"name": "hpc"},
            {"name": "rogue", "extra_config": [str(rogue)]},
        ],
    )
    platform = LocalPlatform(state, config)
    platform.up()
    try:
        yield platform
    finally:
        report = platform.down()
        assert report.leftovers == [], f"processes left after down: {report.leftovers}"
        assert marked_processes(platform.state_dir) == []


@pytest.fixture(scope="session")
def issuer(federation: LocalPlatform) -> dict[str, Any]:
    return federation.issuer_info()


@pytest.fixture(scope="session")
def passwords(federation: LocalPlatform) -> dict[str, str]:
    return federation.passwords()


@pytest.fixture(scope="session")
def site_outputs(federation: LocalPlatform) -> dict[str, dict[str, Any]]:
    import json

    files = federation.outputs()["site_outputs"]
    return {name: json.loads(Path(path).read_text()) for name, path in files.items()}


@pytest.fixture(scope="session")
def oidc_settings(federation: LocalPlatform) -> LocalOidc:
    return federation.config.local.oidc


@pytest.fixture(scope="session")
def rogue_key_id() -> str:
    return ROGUE_KEY_ID


@pytest.fixture(scope="session")
def issuer_admin(issuer: dict[str, Any]) -> Callable[..., Any]:
    """``issuer_admin(path, body=None, method="POST")``: the issuer's admin API."""

    def call(path: str, body: dict[str, Any] | None = None, method: str = "POST") -> Any:
        response = requests.request(
            method,
            issuer["url"] + path,
            json=body if method == "POST" else None,
            headers={"Authorization": f"Bearer {issuer['admin_token']}"},
            timeout=10,
        )
        response.raise_for_status()
        return response.json()

    return call


@pytest.fixture(scope="session")
def mint(issuer_admin: Callable[..., Any]) -> Callable[..., str]:
    """``mint(claims, lifetime=300)``: a token signed by the issuer's current key, with exactly
    these claims (plus iss/iat/nbf/exp/jti unless given)."""

    def mint_token(claims: dict[str, Any], lifetime: int = 300) -> str:
        body = {"claims": claims, "lifetime": lifetime}
        return str(issuer_admin("/admin/tokens", body)["token"])

    return mint_token


@pytest.fixture(scope="session")
def oidc_gateway_as(
    federation: LocalPlatform, passwords: dict[str, str], site_outputs: dict[str, Any]
) -> Iterator[Callable[..., Any]]:
    """``oidc_gateway_as(user, site)``: a Gateway client logged in with the password grant."""
    from dask_gateway import Gateway

    from dask_platform.oidc.client import OIDCAuth

    opened: list[Any] = []
    logins: dict[str, Any] = {}

    def gateway_as(user: str, site: str = "central") -> Any:
        if user not in logins:
            issuer_url = site_outputs[site]["site"]["auth"]["oidc"]["issuer"]
            client_id = site_outputs[site]["site"]["auth"]["oidc"]["client_id"]
            logins[user] = OIDCAuth(
                issuer_url, client_id, flow="password", username=user, password=passwords[user]
            )
        outputs = site_outputs[site]
        gateway = Gateway(
            outputs["gateway_address"],
            proxy_address=outputs["gateway_proxy_address"],
            auth=logins[user],
        )
        opened.append(gateway)
        return gateway

    yield gateway_as
    for gateway in opened:
        with contextlib.suppress(OSError, aiohttp.ClientError, RuntimeError, PermissionError):
            for report in gateway.list_clusters():
                gateway.stop_cluster(report.name)
        with contextlib.suppress(RuntimeError):
            gateway.close()
