"""Helpers for the policy tests: the fixture cases and a client for the real CrossGuard pack,
spoken to over gRPC the way the Pulumi engine speaks to it. (A module of its own, not conftest,
so test modules can import it by a name no other test directory uses.)"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc

from dask_platform.config.sources import list_stacks
from dask_platform.guard.runner import GuardResource, child_urn, stack_urn

from ..examples import with_example_keys

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "policy"
PACK_DIR = REPO / "policies" / "crossguard"
PROJECT = "dask-platform"
FIXTURE_STACK = "fixture"
COMMITTED_STACKS = list_stacks(REPO)


def resources_from_fixture(
    entries: Iterable[Mapping[str, Any]], stack: str, project: str
) -> list[GuardResource]:
    """Fixture entries: ``{type, name, props, outputs?, parent?, protect?}``; ``parent`` names
    another entry, ``outputs`` adds computed values to the props."""
    entries = list(entries)
    root = stack_urn(stack, project)
    urns: dict[str, str] = {}

    def urn_of(entry: Mapping[str, Any]) -> str:
        name = str(entry["name"])
        if name not in urns:
            parent_name = entry.get("parent")
            parent = root
            if parent_name:
                matches = [e for e in entries if e["name"] == parent_name]
                if len(matches) != 1:
                    raise ValueError(f"fixture resource {name}: parent {parent_name!r} not found")
                parent = urn_of(matches[0])
            urns[name] = child_urn(parent, str(entry["type"]), name)
        return urns[name]

    out = []
    for entry in entries:
        props = dict(entry.get("props") or {})
        outputs = {**props, **dict(entry.get("outputs") or {})}
        parent_name = entry.get("parent")
        out.append(
            GuardResource(
                type=str(entry["type"]),
                name=str(entry["name"]),
                inputs=props,
                outputs=outputs,
                urn=urn_of(entry),
                parent_urn=urns.get(str(parent_name), root) if parent_name else root,
                protect=bool(entry.get("protect", False)),
                read=bool(entry.get("read", False)),
            )
        )
    return out


@dataclass(frozen=True)
class Case:
    policy: str
    name: str
    expect_pass: bool
    violation: str
    config: Mapping[str, Any]
    outputs: Mapping[str, Any]
    entries: list[Mapping[str, Any]]

    @property
    def id(self) -> str:
        return f"{self.policy}/{self.name}"

    def resources(self) -> list[GuardResource]:
        return resources_from_fixture(self.entries, FIXTURE_STACK, PROJECT)


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(FIXTURES.glob("*.yaml")):
        document = yaml.safe_load(with_example_keys(path.read_text()))
        assert document["policy"] == path.stem, f"{path.name}: policy must match the file name"
        for case in document["cases"]:
            assert ("expect" in case) != ("violation" in case), f"{path.name}: {case['name']}"
            cases.append(
                Case(
                    policy=document["policy"],
                    name=case["name"],
                    expect_pass=case.get("expect") == "pass",
                    violation=str(case.get("violation", "")),
                    config=case.get("config") or {},
                    outputs=case.get("outputs") or {},
                    entries=list(case.get("resources") or []),
                )
            )
    return cases


# --------------------------------------------------------------------------- the real pack


class PackClient:
    """Talks to policies/crossguard/__main__.py as the engine does: Configure, Analyze (one
    resource, its inputs), AnalyzeStack (every resource, its outputs)."""

    def __init__(self, port: int) -> None:
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self.stub = analyzer_pb2_grpc.AnalyzerStub(self.channel)

    def info(self) -> Any:
        return self.stub.GetAnalyzerInfo(empty_pb2.Empty())

    def configure(self, pack_config: Mapping[str, Any]) -> None:
        request = analyzer_pb2.ConfigureAnalyzerRequest()
        for policy in (p.name for p in self.info().policies):
            entry = pack_config.get(policy)
            properties = dict(entry) if isinstance(entry, Mapping) else {}
            config = request.policyConfig[policy]
            config.enforcementLevel = analyzer_pb2.MANDATORY
            config.properties.CopyFrom(_struct(properties))
        self.stub.Configure(request)

    def violations(
        self, resources: list[GuardResource], outputs: Mapping[str, Any]
    ) -> set[tuple[str, str]]:
        found: set[tuple[str, str]] = set()
        for resource in resources:
            if resource.read:
                continue
            response = self.stub.Analyze(
                analyzer_pb2.AnalyzeRequest(
                    type=resource.type,
                    properties=_struct(resource.inputs),
                    urn=resource.urn,
                    name=resource.name,
                    options=_options(resource),
                )
            )
            found |= {_violation(d) for d in response.diagnostics}
        root = stack_urn(FIXTURE_STACK, PROJECT)
        stack_resources = [
            analyzer_pb2.AnalyzerResource(
                type="pulumi:pulumi:Stack",
                properties=_struct(outputs),
                urn=root,
                name=f"{PROJECT}-{FIXTURE_STACK}",
            )
        ] + [
            analyzer_pb2.AnalyzerResource(
                type=r.type,
                properties=_struct(r.outputs),
                urn=r.urn,
                name=r.name,
                options=_options(r),
                parent=r.parent_urn,
            )
            for r in resources
        ]
        response = self.stub.AnalyzeStack(
            analyzer_pb2.AnalyzeStackRequest(resources=stack_resources)
        )
        found |= {_violation(d) for d in response.diagnostics}
        return found


def _violation(diagnostic: Any) -> tuple[str, str]:
    # The pack's servicer prefixes each message with the policy's description.
    return diagnostic.policyName, diagnostic.message.removeprefix(f"{diagnostic.description}\n")


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    return json_format.ParseDict(json.loads(json.dumps(values)), struct_pb2.Struct())


def _options(resource: GuardResource) -> analyzer_pb2.AnalyzerResourceOptions:
    return analyzer_pb2.AnalyzerResourceOptions(
        protect=resource.protect, parent=resource.parent_urn
    )
