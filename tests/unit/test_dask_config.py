"""The dask config of a stack's outputs (`dask-platform config dask`), from the committed
outputs fixtures (the keys `pulumi stack output --json` prints)."""

from __future__ import annotations

import json
import stat

import dask.config
import pytest
import yaml
from typer.testing import CliRunner

from dask_platform.cli import app
from dask_platform.dask_config import DaskConfigError, client_auth, dask_config_from_outputs

ADDRESS = "http://gateway-proxy.elb.us-west-2.amazonaws.com"
PROXY = "gateway://gateway-proxy.elb.us-west-2.amazonaws.com:80"


OIDC_AUTH = {
    "type": "dask_platform.oidc.client.OIDCAuth",
    "kwargs": {"issuer": "https://keycloak.example.org/realms/earth", "client_id": "dask-gateway"},
}


@pytest.mark.parametrize(
    ("stack", "address", "proxy", "auth"),
    [
        (
            "dev",
            "http://gateway-proxy.elb.us-west-2.amazonaws.com",
            "gateway://gateway-proxy.elb.us-west-2.amazonaws.com:8786",
            OIDC_AUTH,
        ),
        (
            "prod",
            "https://dask.earth.example.org",
            "gateway://dask.earth.example.org:8786",
            OIDC_AUTH,
        ),
    ],
)
def test_config_dask_writes_what_gateway_reads(repo, tmp_path, stack, address, proxy, auth):
    outputs = repo / "tests/fixtures/outputs" / f"{stack}.json"
    result = CliRunner().invoke(
        app, ["config", "dask", "--outputs", str(outputs), "--out", str(tmp_path / "dask")]
    )
    assert result.exit_code == 0, result.output
    written = tmp_path / "dask" / "gateway.yaml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    config = yaml.safe_load(written.read_text())
    assert config == {
        "gateway": {
            "address": address,
            "proxy-address": proxy,
            "public-address": address,
            "auth": auth,
        }
    }
    # The keys dask-gateway's client reads (dask_gateway/client.py, auth.py).
    collected = dask.config.collect(paths=[str(tmp_path / "dask")], env={})
    assert dask.config.get("gateway.address", config=collected) == address
    assert dask.config.get("gateway.proxy-address", config=collected) == proxy
    assert dask.config.get("gateway.auth.type", config=collected) == auth["type"]


def test_the_oidc_class_is_usable_by_name(monkeypatch):
    from dask_gateway.auth import get_auth

    from dask_platform.oidc.client import OIDCAuth

    kwargs = {"issuer": "https://idp.example.org/realms/earth", "client_id": "dask-gateway"}
    with dask.config.set(
        {"gateway.auth.type": "dask_platform.oidc.client.OIDCAuth", "gateway.auth.kwargs": kwargs}
    ):
        auth = get_auth()
    assert isinstance(auth, OIDCAuth)
    assert (auth.issuer, auth.client_id, auth.flow) == (
        "https://idp.example.org/realms/earth",
        "dask-gateway",
        "device",
    )


def test_simple_auth_sends_the_users_name_and_only_a_given_password():
    assert client_auth({"type": "simple"}) == {"type": "basic", "kwargs": {}}
    assert client_auth({"type": "simple"}, "alice", "pw") == {
        "type": "basic",
        "kwargs": {"username": "alice", "password": "pw"},
    }


def test_outputs_that_are_not_a_stacks_are_refused(tmp_path):
    with pytest.raises(DaskConfigError, match="missing gateway_proxy_address, site"):
        dask_config_from_outputs({"gateway_address": ADDRESS})
    broken = tmp_path / "outputs.json"
    broken.write_text(json.dumps({"gateway_address": ADDRESS}))
    result = CliRunner().invoke(
        app, ["config", "dask", "--outputs", str(broken), "--out", str(tmp_path / "d")]
    )
    assert result.exit_code == 2
    assert "missing gateway_proxy_address, site" in result.output
    assert not (tmp_path / "d").exists()
