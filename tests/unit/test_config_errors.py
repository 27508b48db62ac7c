"""One wording for every pydantic error: the dotted key path, the problem, what is allowed.

The formatter (dask_platform.config.errors) is exercised on small models for each kind of error,
then through every loader that validates a model, with the same two mistakes (a missing key and
an unknown key) that must read the same everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dask_platform.config.errors import FieldProblems, format_validation_error


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Pool(_Strict):
    kind: Literal["pool"]
    size: int = Field(ge=1)
    low: int = 0
    high: int = 10

    @model_validator(mode="after")
    def _check(self) -> Pool:
        problems = []
        if self.low > self.high:
            problems.append(("low", f"must not exceed high ({self.high}) (got {self.low})"))
        if self.size > self.high:
            problems.append(("size", f"must not exceed high ({self.high}) (got {self.size})"))
        if problems:
            raise FieldProblems(problems)
        return self


class Queue(_Strict):
    kind: Literal["queue"]
    name: str
    mode: Literal["fifo", "lifo"] = "fifo"


class Doc(_Strict):
    items: dict[str, Annotated[Pool | Queue, Field(discriminator="kind")]]
    tags: list[Annotated[str, Field(pattern=r"^[a-z]+$")]] = []


def problems(data: object, prefix: str = "") -> list[str]:
    with pytest.raises(ValidationError) as caught:
        Doc.model_validate(data)
    return format_validation_error(caught.value, Doc, prefix=prefix)


def test_union_member_tags_are_not_keys_and_allowed_keys_are_the_members():
    assert problems({"items": {"a": {"kind": "pool", "size": 2, "sise": 3}}}) == [
        "items.a.sise: unknown key; allowed keys: high, kind, low, size"
    ]


def test_a_wrong_or_missing_tag_lists_the_tags():
    assert problems({"items": {"a": {"kind": "heap"}, "b": {}}}) == [
        "items.a.kind: must be one of pool, queue (got 'heap')",
        "items.b.kind: required key is missing; one of pool, queue",
    ]


def test_a_rejected_value_is_echoed_with_what_is_allowed():
    assert problems(
        {"items": {"q": {"kind": "queue", "mode": "random"}}, "tags": ["ok", "No"]}
    ) == [
        "items.q.name: required key is missing",
        "items.q.mode: Input should be 'fifo' or 'lifo' (got 'random')",
        "tags[1]: String should match pattern '^[a-z]+$' (got 'No')",
    ]


def test_a_model_validator_names_each_field_it_refuses_all_at_once():
    assert problems({"items": {"p": {"kind": "pool", "size": 20, "low": 11}}}, prefix="x") == [
        "x.items.p.low: must not exceed high (10) (got 11)",
        "x.items.p.size: must not exceed high (10) (got 20)",
    ]


def test_an_empty_document_is_reported_at_the_top_level():
    assert problems([]) == ["(top level): Input should be a valid dictionary or instance of Doc"]


# --------------------------------------------------------------------------- every loader


def _stack(tmp_path: Path) -> object:
    from dask_platform.config.rules import validate_stack_config

    return validate_stack_config({"regoin": "eu-central-1"})


def _bootstrap(tmp_path: Path) -> object:
    from dask_platform.bootstrap_config import validate_bootstrap_config

    return validate_bootstrap_config({"regoin": "eu-central-1"}, "Pulumi.x.yaml")


def _profiles(tmp_path: Path) -> object:
    from dask_platform.profiles import load_profiles

    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump({"profiles": {"p": {"kind": "local", "n_workerz": 1}}}))
    return load_profiles(path)


def _waivers(tmp_path: Path) -> object:
    from dask_platform.guard.lint import kubernetes_waivers

    path = tmp_path / "waivers.yaml"
    path.write_text(yaml.safe_dump({"waivers": [{"check": "CKV_K8S_16", "resource": ["x"]}]}))
    return kubernetes_waivers(path)


def _sites(tmp_path: Path) -> object:
    from dask_platform.sites import SiteCatalog

    path = tmp_path / "outputs.json"
    outputs = {
        "gateway_address": "http://gw",
        "gateway_proxy_address": "gw:8786",
        "site": {"auth": {"type": "simple"}, "adaptive": {"minimum": 0, "maximum": 2}, "x": 1},
    }
    path.write_text(json.dumps(outputs))
    return SiteCatalog.from_outputs([path])


def _platform_outputs(tmp_path: Path) -> object:
    from dask_platform.cloudprovider import Platform

    return Platform.from_mapping({"region": "eu-central-1"})


@pytest.mark.parametrize(
    ("load", "missing", "unknown"),
    [
        (_stack, "region: required key is missing", "regoin: unknown key; allowed keys: "),
        (_bootstrap, "region: required key is missing", "regoin: unknown key; allowed keys: "),
        (
            _profiles,
            None,
            "profiles.p.n_workerz: unknown key; allowed keys: kind, memory_limit, n_workers, "
            "processes, threads_per_worker",
        ),
        (
            _waivers,
            "waivers[0].resources: required key is missing",
            "waivers[0].resource: unknown key; allowed keys: check, reason, resources",
        ),
        (
            _sites,
            "site.name: required key is missing",
            "site.x: unknown key; allowed keys: adaptive, auth, name",
        ),
        (_platform_outputs, "vpc_id: required key is missing", None),
    ],
    ids=["stack", "bootstrap", "profiles", "waivers", "sites", "stack-outputs"],
)
def test_every_loader_words_its_problems_the_same(
    load: Callable[[Path], object], missing: str | None, unknown: str | None, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r": (required key is missing|unknown key)") as caught:
        load(tmp_path)
    message = str(caught.value)
    for expected in (missing, unknown):
        if expected is not None:
            assert expected in message, message
    assert "Field required" not in message
    assert "Extra inputs are not permitted" not in message
