"""The typed stack config: good stacks load, every bad one fails with the field named.

Table-driven: tests/fixtures/config/<name>.ok.yaml must load; <name>.error.<reason>.yaml must
fail, and every `# expect: <text>` line in its header must appear among the reported problems.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from dask_platform.config.errors import StackConfigError
from dask_platform.config.rules import validate_stack_config
from dask_platform.config.sources import list_stacks, load_stack_file, load_stack_path
from dask_platform.pulumi_eval import evaluate_stack

FIXTURES = Path(__file__).parents[1] / "fixtures" / "config"
OK = sorted(FIXTURES.glob("*.ok.yaml"))
ERRORS = sorted(FIXTURES.glob("*.error.*.yaml"))


def expectations(path: Path) -> list[str]:
    return re.findall(r"^# expect: (.+)$", path.read_text(), flags=re.MULTILINE)


def test_there_are_at_least_twenty_bad_configs():
    assert len(ERRORS) >= 20
    assert all(expectations(p) for p in ERRORS), "every error fixture names what it expects"


@pytest.mark.parametrize("path", OK, ids=lambda p: p.name)
def test_good_config_loads(path):
    config = load_stack_path(path)
    assert config.teams, "a valid stack has at least one team"


@pytest.mark.parametrize("path", ERRORS, ids=lambda p: p.name.split(".error.")[1][:-5])
def test_bad_config_names_the_field(path):
    with pytest.raises(StackConfigError) as caught:
        load_stack_path(path)
    reported = "\n".join(caught.value.problems)
    for expected in expectations(path):
        assert expected in reported, f"{path.name}: expected {expected!r} in:\n{reported}"
    # One clear message per problem: nothing reported twice, no pydantic URLs or internals.
    assert len(caught.value.problems) == len(set(caught.value.problems))
    assert "errors.pydantic.dev" not in str(caught.value)
    assert "function-after" not in reported


def test_every_problem_is_reported_at_once():
    path = FIXTURES / "minimal.error.three-problems-at-once.yaml"
    with pytest.raises(StackConfigError) as caught:
        load_stack_path(path)
    assert len(caught.value.problems) == 3
    assert str(caught.value).startswith("minimal.error.three-problems-at-once.yaml: 3 problem(s)")


def test_unknown_key_lists_the_allowed_keys():
    path = FIXTURES / "minimal.error.gateway-key-misspelled.yaml"
    with pytest.raises(StackConfigError) as caught:
        load_stack_path(path)
    (problem,) = caught.value.problems
    assert "idle_timeout_minutes" in problem, "the allowed keys include the one meant"


def test_defaults_are_the_documented_ones():
    config = load_stack_path(FIXTURES / "minimal.ok.yaml")
    gateway = config.gateway
    assert (gateway.worker_cores.min, gateway.worker_cores.max, gateway.worker_cores.default) == (
        1,
        10,
        2,
    )
    assert (
        gateway.worker_memory_gib.min,
        gateway.worker_memory_gib.max,
        gateway.worker_memory_gib.default,
    ) == (1, 32, 4)
    assert config.scratch.retention_days == 7
    assert gateway.chart_version == "2026.3.0"
    assert config.eks.endpoint.public_access is False
    assert config.eks.endpoint.public_access_cidrs == []
    assert config.eks.access.view_role_arns == []
    assert config.images.bootstrap_stack is None
    assert config.network.ingress_cidrs == []


@pytest.mark.parametrize("stack", list_stacks(Path(__file__).parents[2]))
def test_committed_stacks_are_valid(stack, repo):
    config = load_stack_file(repo, stack)
    assert config.region
    assert len(config.network.availability_zones) >= 2


def test_committed_stacks_differ_only_in_values(repo):
    """dev and prod use the same keys (the differences are values, never structure or code)."""
    import yaml

    keys = {
        stack: set(yaml.safe_load((repo / f"Pulumi.{stack}.yaml").read_text())["config"])
        for stack in list_stacks(repo)
    }
    assert keys["dev"] == keys["prod"]


def test_production_flag_is_what_distinguishes_prod(repo):
    assert load_stack_file(repo, "prod").production is True
    assert load_stack_file(repo, "dev").production is False


def test_unknown_stack_name_lists_the_committed_ones(repo):
    with pytest.raises(StackConfigError, match=r"committed stacks: dev, prod"):
        load_stack_file(repo, "staging")


def test_validate_accepts_plain_mapping():
    with pytest.raises(StackConfigError) as caught:
        validate_stack_config({})
    reported = caught.value.problems
    for key in ("production", "region", "network", "eks", "teams", "scratch", "gateway"):
        assert f"{key}: required key is missing" in reported


NO_RESOURCE_CASES = [
    *[p for p in ERRORS if "password" not in p.name][:5],
    FIXTURES / "minimal.error.simple-password-in-plain-text.yaml",
]


@pytest.mark.parametrize("path", NO_RESOURCE_CASES, ids=lambda p: p.name)
def test_bad_config_creates_nothing(path, repo, tmp_path):
    """The program refuses before declaring a single resource (as `pulumi up` would)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(repo / "Pulumi.yaml", project / "Pulumi.yaml")
    (project / "infra").symlink_to(repo / "infra")
    shutil.copy(path, project / "Pulumi.broken.yaml")
    with pytest.raises(StackConfigError) as caught:
        evaluate_stack("broken", project)
    assert caught.value.problems
    assert caught.value.resources_declared == []
