"""`Gateway()` and `GatewayCluster()` with no arguments against the real local gateway, from the
dask config the platform writes (password auth; OIDC auth on the federation)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from typing import Any

import pytest
from typer.testing import CliRunner

from dask_platform.cli import app
from dask_platform.local.platform import LocalPlatform

pytest_plugins = ("tests.integration.federation",)

ZERO_ARGUMENTS = r"""
import json
from dask_gateway import Gateway, GatewayCluster

gateway = Gateway()
before = [c.name for c in gateway.list_clusters()]
cluster = GatewayCluster()
report = gateway.get_cluster(cluster.name)
result = {
    "address": gateway.address,
    "proxy_address": gateway.proxy_address,
    "auth": type(gateway.auth).__module__ + "." + type(gateway.auth).__name__,
    "before": before,
    "status": cluster.status,
    "listed": cluster.name in [c.name for c in gateway.list_clusters()],
    "dashboard_link": cluster.dashboard_link,
    "options_team": report.options.get("team"),
}
cluster.shutdown()
gateway.close()
print(json.dumps(result))
"""


def run_without_arguments(dask_config: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_GATEWAY", "DASK_CONFIG"))}
    env["DASK_CONFIG"] = dask_config
    done = subprocess.run(
        [sys.executable, "-c", ZERO_ARGUMENTS],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def dask_config_of(platform: LocalPlatform, user: str) -> str:
    result = CliRunner().invoke(
        app, ["local", "env", "--user", user, "--state-dir", str(platform.state_dir)]
    )
    assert result.exit_code == 0, result.output
    line = result.output.strip().splitlines()[0]
    assert line == f"export DASK_CONFIG={platform.dask_config_dir(user)}"
    return line.split("=", 1)[1]


def test_local_env_sets_the_users_scratch_prefix(platform: LocalPlatform) -> None:
    """As in a notebook of the hub: SCRATCH_URL = PANGEO_SCRATCH = the prefix the gateway gives
    the user's workers (their default team's)."""
    outputs = platform.outputs()
    result = CliRunner().invoke(
        app, ["local", "env", "--user", "bob", "--state-dir", str(platform.state_dir)]
    )
    assert result.exit_code == 0, result.output
    done = subprocess.run(
        [
            "sh",
            "-c",
            'eval "$1"; printf "%s|%s" "$SCRATCH_URL" "$PANGEO_SCRATCH"',
            "sh",
            result.output,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    expected = f"s3://{outputs['scratch_bucket']}/climate/bob/"
    assert done.stdout == f"{expected}|{expected}"


@pytest.mark.timeout(300)
def test_zero_argument_clients_with_password_auth(platform: LocalPlatform) -> None:
    outputs = platform.outputs()
    result = run_without_arguments(dask_config_of(platform, "alice"))
    assert result["address"] == outputs["gateway_address"]
    assert result["proxy_address"] == outputs["gateway_proxy_address"]
    assert result["auth"] == "dask_gateway.auth.BasicAuth"
    assert result["status"] == "running"
    assert result["listed"] is True
    assert result["options_team"] == "hydrology"
    assert result["dashboard_link"].startswith(outputs["gateway_address"] + "/clusters/")


@pytest.mark.timeout(300)
def test_zero_argument_clients_with_oidc_auth(federation: LocalPlatform) -> None:
    outputs = federation.outputs()
    result = run_without_arguments(dask_config_of(federation, "bob"))
    assert result["address"] == outputs["gateway_address"]
    assert result["auth"] == "dask_platform.oidc.client.OIDCAuth"
    assert result["status"] == "running"
    assert result["listed"] is True
    assert result["options_team"] == "climate"


def test_the_per_user_config_is_private(platform: LocalPlatform) -> None:
    directory = platform.dask_config_dir("alice")
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE((directory / "gateway.yaml").stat().st_mode) == 0o600


def test_local_env_names_the_users_for_an_unknown_one(platform: LocalPlatform) -> None:
    result = CliRunner().invoke(
        app, ["local", "env", "--user", "mallory", "--state-dir", str(platform.state_dir)]
    )
    assert result.exit_code == 1
    assert "no dask config for 'mallory'" in result.output
    assert "users: alice, bob, carol" in result.output
