"""local/platform.yaml: validated by the same StackConfig model; every problem at once."""

from __future__ import annotations

import pytest

from dask_platform.config.errors import StackConfigError
from dask_platform.local.config import load_local_config


def test_the_committed_config_is_valid() -> None:
    config = load_local_config()
    assert config.teams_of("alice") == ["hydrology"]
    assert config.teams_of("bob") == ["climate"]
    assert config.teams_of("carol") == []


def test_every_problem_is_reported_with_its_key_path() -> None:
    with pytest.raises(StackConfigError) as raised:
        load_local_config(
            overrides={
                "stack": {"scratch": {"bucket_name": "Not_A_Bucket"}, "gatway": {}},
                "local": {
                    "web_identity_session_seconds": 60,
                    "passwords": {},
                },
                "extra": 1,
            }
        )
    problems = "\n".join(raised.value.problems)
    assert "extra: unknown top-level key; allowed: local, stack" in problems
    assert "stack.scratch.bucket_name" in problems
    assert "stack.gatway: unknown key" in problems
    assert "local.web_identity_session_seconds" in problems
    assert "local.passwords: unknown key" in problems


def test_a_user_group_that_maps_to_no_team_is_an_error() -> None:
    with pytest.raises(StackConfigError) as raised:
        load_local_config(overrides={"local": {"users": {"dave": {"groups": ["no-such-group"]}}}})
    assert raised.value.problems == [
        "local.users.dave.groups: no-such-group belong(s) to no team; team groups: "
        "dask-climate, dask-hydrology"
    ]
