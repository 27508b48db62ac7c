"""One reader of stack-output files (dask_platform.sites.outputs.read_outputs): every command
and library that takes a `pulumi stack output --json` file reports a bad one the same way."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dask_platform.cli import app
from dask_platform.cloudprovider import Platform, PlatformError
from dask_platform.config.models import StackConfig
from dask_platform.images import IMAGES
from dask_platform.images.push import PushError, read_repositories
from dask_platform.sites import SiteCatalog, SiteError, site_output
from dask_platform.sites.outputs import StackOutputsError, read_outputs

BAD_FILES = [
    # (file content or None for a missing file, the message)
    (
        None,
        r"outputs\.json: no such file \(write it with "
        r"`pulumi stack output --json > outputs\.json`\)",
    ),
    ("{not json", r"outputs\.json: not JSON \(.+\); expected `pulumi stack output --json`"),
    ("[1, 2]", r"outputs\.json: must be a JSON object of stack outputs"),
]


def _file(tmp_path: Path, content: str | None) -> Path:
    path = tmp_path / "outputs.json"
    if content is not None:
        path.write_text(content)
    return path


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "250"})
    assert result.exit_code == 2, result.output
    return " ".join(result.output.split())


CONSUMERS: dict[str, tuple[type[Exception], Callable[[Path], Any]]] = {
    "read_outputs": (StackOutputsError, read_outputs),
    "SiteCatalog.from_outputs": (SiteError, lambda p: SiteCatalog.from_outputs([p])),
    "Platform.from_outputs": (PlatformError, Platform.from_outputs),
    "images push": (PushError, lambda p: read_repositories(p, IMAGES)),
}


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
@pytest.mark.parametrize("consumer", sorted(CONSUMERS))
def test_every_library_reports_a_bad_outputs_file_the_same_way(
    tmp_path: Path, consumer: str, content: str | None, message: str
) -> None:
    error, read = CONSUMERS[consumer]
    with pytest.raises(error, match=message):
        read(_file(tmp_path, content))


@pytest.mark.parametrize(("content", "message"), BAD_FILES)
@pytest.mark.parametrize(
    "command",
    [["outputs"], ["config", "dask", "--out", "OUT"], ["config", "aws", "--out", "OUT/config"]],
)
def test_every_command_reports_a_bad_outputs_file_the_same_way(
    tmp_path: Path, command: list[str], content: str | None, message: str
) -> None:
    args = [a.replace("OUT", str(tmp_path / "out")) for a in command]
    printed = _cli(*args, "--outputs", str(_file(tmp_path, content)))
    assert re.search(message, printed), printed


def test_a_good_file_is_its_outputs(tmp_path: Path) -> None:
    path = _file(tmp_path, '{"gateway_address": "https://gateway.example.org"}')
    assert read_outputs(path) == {"gateway_address": "https://gateway.example.org"}


BAD_SITE_AUTH = [
    # (auth mapping given to site_output, the one-line message naming the key path)
    (
        {"type": "ldap"},
        "site.auth.type: Input should be 'simple', 'kerberos', 'jupyterhub' or 'custom' "
        "(got 'ldap')",
    ),
    (
        {"type": "custom"},
        "site.auth.oidc: required when type is 'custom' (issuer, audience, client_id)",
    ),
    (
        {"type": "simple", "realm": "x"},
        "site.auth.realm: unknown key; allowed keys: jupyterhub_api_url, oidc, type",
    ),
]


@pytest.mark.parametrize(("auth", "message"), BAD_SITE_AUTH)
def test_a_bad_site_auth_is_one_formatted_line(
    auth: dict[str, Any], message: str, config: StackConfig
) -> None:
    with pytest.raises(SiteError) as caught:
        site_output("central", config, auth=auth)
    assert str(caught.value) == message


def test_a_site_output_validates_its_name(config: StackConfig) -> None:
    with pytest.raises(SiteError) as caught:
        site_output("Central_1", config)
    assert str(caught.value) == (
        "site.name: String should match pattern '^[a-z][a-z0-9-]{0,39}$' (got 'Central_1')"
    )
