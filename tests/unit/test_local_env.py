"""`dask-platform local env --user U`: the scratch prefix of the team the gateway gives U's
clusters by default, and one clear error for a user in no team (issue 14). The state directory
is written as `local up` writes it (outputs.json, dask/<user>/gateway.yaml)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from dask_gateway_server.models import User
from typer.testing import CliRunner

from dask_platform.cli import app
from dask_platform.project import project_root

USERS = {"alice": ["hydrology"], "dave": ["hydrology", "climate"], "carol": []}
"""Teams per user in the stack's order (hydrology before climate, as local/platform.yaml)."""


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    (tmp_path / "outputs.json").write_text(
        json.dumps({"users": USERS, "scratch_bucket": "scratch"})
    )
    for user in USERS:
        directory = tmp_path / "dask" / user
        directory.mkdir(parents=True)
        (directory / "gateway.yaml").write_text("gateway: {}\n")
    return tmp_path


def local_env(state_dir: Path, user: str) -> Any:
    return CliRunner().invoke(app, ["local", "env", "--user", user, "--state-dir", str(state_dir)])


def gateway_default_team(groups: list[str]) -> str:
    path = project_root() / "helm/dask-gateway/gateway_config.py"
    spec = importlib.util.spec_from_file_location("rev_gateway_config", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    settings = {
        "teams": {
            "hydrology": {"groups": ["dask-hydrology"]},
            "climate": {"groups": ["dask-climate"]},
        }
    }
    teams: list[str] = module.teams_of(User("dave", groups=groups), settings)
    return teams[0]


def test_a_user_in_two_teams_gets_the_gateways_default_teams_prefix(state_dir: Path) -> None:
    team = gateway_default_team(["dask-hydrology", "dask-climate"])
    assert team == "climate"
    result = local_env(state_dir, "dave")
    assert result.exit_code == 0, result.output
    assert f"export SCRATCH_URL=s3://scratch/{team}/dave/" in result.output.splitlines()
    assert f"export PANGEO_SCRATCH=s3://scratch/{team}/dave/" in result.output.splitlines()


def test_a_user_in_no_team_is_one_clear_error_and_no_exports(state_dir: Path) -> None:
    result = local_env(state_dir, "carol")
    assert result.exit_code == 1
    assert "export" not in result.output
    message = " ".join(result.output.split())  # rich wraps long lines
    assert "'carol' is in no team" in message
    assert message.endswith("users with a team: alice, dave")
    assert result.exception is None or isinstance(result.exception, SystemExit)
