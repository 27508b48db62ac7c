"""The CrossGuard pack as Pulumi sees it: the project file, the installable requirements, and
what the running analyzer (policies/crossguard/__main__.py, started as Pulumi starts it)
announces: exactly the rules of dask_platform.guard, their reasons and config schemas."""

from __future__ import annotations

import json
import tomllib

import pytest
import yaml
from google.protobuf import json_format

from dask_platform.guard.policies import PACK_NAME, policies

from .policy_harness import (
    FIXTURE_STACK,
    PACK_DIR,
    PROJECT,
    REPO,
    PackClient,
    resources_from_fixture,
)

pytestmark = pytest.mark.policy


def test_project_file_is_a_python_pack() -> None:
    project = yaml.safe_load((PACK_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    assert project["runtime"]["options"]["virtualenv"] == "venv"
    assert project["version"]
    assert (PACK_DIR / ".gitignore").read_text().split() == ["venv/"]


def test_requirements_install_this_repository_with_the_pack_dependencies() -> None:
    lines = [
        line.strip()
        for line in (PACK_DIR / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == ["-e ../..[infra]"]
    # Pulumi runs pip in the pack directory: ../.. must be this repository.
    root = (PACK_DIR / "../..").resolve()
    assert root == REPO
    pyproject = tomllib.loads((root / "pyproject.toml").read_text())
    assert pyproject["project"]["name"] == "dask-platform"
    infra = " ".join(pyproject["project"]["optional-dependencies"]["infra"])
    for needed in ("pulumi-policy", "policy-sentry", "pulumi"):
        assert needed in infra


def test_running_pack_announces_every_rule(pack: PackClient) -> None:
    info = pack.info()
    assert info.name == PACK_NAME
    announced = {p.name: p for p in info.policies}
    expected = {p.name: p for p in policies()}
    assert set(announced) == set(expected)
    for name, policy in expected.items():
        assert announced[name].description == policy.description
        assert announced[name].enforcementLevel == 1  # MANDATORY
        schema = json_format.MessageToDict(announced[name].configSchema.properties)
        if policy.config_schema is None:
            assert schema == {}
        else:
            assert schema == json.loads(json.dumps(policy.config_schema.properties))


def test_pack_config_changes_the_verdict(pack: PackClient) -> None:
    group = resources_from_fixture(
        [
            {
                "type": "aws:ec2/securityGroup:SecurityGroup",
                "name": "dashboard",
                "props": {
                    "ingress": [
                        {
                            "protocol": "tcp",
                            "fromPort": 8787,
                            "toPort": 8787,
                            "cidrBlocks": ["0.0.0.0/0"],
                        }
                    ]
                },
            }
        ],
        FIXTURE_STACK,
        PROJECT,
    )
    pack.configure({})
    assert {p for p, _ in pack.violations(group, {})} == {"no-open-ingress"}
    pack.configure({"no-open-ingress": {"ingress_cidrs": ["0.0.0.0/0"]}})
    assert pack.violations(group, {}) == set()
