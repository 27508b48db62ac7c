"""The offline gate: run the pack's policies over recorded resources, without the Pulumi engine.

The resources come from :func:`dask_platform.pulumi_eval.evaluate_stack` (the whole program under
Pulumi's mocks) or from a small fixture file. Each is turned into pulumi_policy's own argument
classes - ``ResourceValidationArgs`` with the resource's inputs, ``StackValidationArgs`` with
``PolicyResource`` outputs and parents - after the same deserialisation and unknown-checking
proxies the pack applies to what the engine sends, so a rule behaves the same in both places.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import _NotApplicableError  # what args.not_applicable() raises
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from dask_platform.guard.policies import policies as all_policies
from dask_platform.guard.policies import policy_config
from dask_platform.guard.rules import STACK_TYPE

if TYPE_CHECKING:
    from dask_platform.pulumi_mocks import Evaluation


@dataclass(frozen=True)
class GuardResource:
    """One declared resource, as the gate sees it (engine property names, camelCase)."""

    type: str
    name: str
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    urn: str
    parent_urn: str = ""
    protect: bool = False
    read: bool = False
    ignore_changes: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.type} {self.name}"


@dataclass(frozen=True)
class Violation:
    policy: str
    level: EnforcementLevel
    message: str
    resource: str  # "<type> <name>", or the stack

    @property
    def mandatory(self) -> bool:
        return self.level == EnforcementLevel.MANDATORY


@dataclass
class GateResult:
    stack: str
    policies: list[tuple[str, EnforcementLevel]] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    resources_checked: int = 0

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.mandatory]

    @property
    def passed(self) -> bool:
        return not self.mandatory

    def of(self, policy: str) -> list[Violation]:
        return [v for v in self.violations if v.policy == policy]


# --------------------------------------------------------------------------- building resources


def stack_urn(stack: str, project: str) -> str:
    return f"urn:pulumi:{stack}::{project}::{STACK_TYPE}::{project}-{stack}"


def child_urn(parent_urn: str, type_: str, name: str) -> str:
    """A URN as Pulumi's mock monitor forms it - the parent's own type, '$', the type - so the
    parent URNs recorded by :mod:`dask_platform.pulumi_eval` resolve to the resources built
    here. (The engine leaves the stack's type out of top-level URNs; these URNs only identify
    resources inside the gate.)"""
    stack_part, project, parent_type, _ = parent_urn.split("::", 3)
    qualified = f"{parent_type.split('$')[-1]}${type_}"
    return f"{stack_part}::{project}::{qualified}::{name}"


def resources_from_evaluation(evaluation: Evaluation, project: str) -> list[GuardResource]:
    out = []
    stack = evaluation.stack
    root = stack_urn(stack, project)
    for record in evaluation.resources:
        parent = record.parent or root
        outputs = dict(record.outputs)
        out.append(
            GuardResource(
                type=record.type,
                name=record.name,
                inputs=dict(record.inputs),
                outputs=outputs,
                urn=child_urn(parent, record.type, record.name),
                parent_urn=parent,
                protect=record.protect,
                read=record.read,
                ignore_changes=tuple(record.ignore_changes),
            )
        )
    return out


def _options(resource: GuardResource) -> PolicyResourceOptions:
    return PolicyResourceOptions(
        protect=resource.protect,
        ignore_changes=list(resource.ignore_changes),
        delete_before_replace=None,
        aliases=[],
        custom_timeouts=PolicyCustomTimeouts(0, 0, 0),
        additional_secret_outputs=[],
        parent=resource.parent_urn or None,
    )


def _props(values: Mapping[str, Any]) -> Any:
    # As the pack does with the engine's properties: secrets unwrapped, unknowns guarded.
    return unknown_checking_proxy(deserialize_properties(dict(values)))


def _policy_resources(
    resources: list[GuardResource], stack_outputs: Mapping[str, Any], stack: str, project: str
) -> list[PolicyResource]:
    root_urn = stack_urn(stack, project)
    root_options = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [])
    root = PolicyResource(
        STACK_TYPE,
        _props(stack_outputs),
        root_urn,
        f"{project}-{stack}",
        root_options,
        None,
        None,
        [],
        {},
    )
    by_urn: dict[str, PolicyResource] = {root_urn: root}
    built = [root]
    for resource in resources:
        policy_resource = PolicyResource(
            resource.type,
            _props(resource.outputs),
            resource.urn,
            resource.name,
            _options(resource),
            None,
            None,
            [],
            {},
        )
        by_urn[resource.urn] = policy_resource
        built.append(policy_resource)
    for resource, policy_resource in zip(resources, built[1:], strict=True):
        policy_resource.parent = by_urn.get(resource.parent_urn, root)
    return built


# --------------------------------------------------------------------------- running


class _Collector:
    """Receives ``report_violation`` calls for one policy, as the pack's servicer does."""

    def __init__(
        self, result: GateResult, policy: Policy, level: EnforcementLevel, labels: dict[str, str]
    ) -> None:
        self.result, self.policy, self.level, self.labels = result, policy, level, labels

    def for_stack(self, message: str, urn: str | None = None) -> None:
        self._add(message, self.labels.get(urn or "", "stack"))

    def for_resource(self, resource: GuardResource) -> Callable[..., None]:
        # A resource policy's violations always belong to the resource being validated.
        def report(message: str, urn: str | None = None) -> None:
            self._add(message, resource.label)

        return report

    def _add(self, message: str, where: str) -> None:
        self.result.violations.append(Violation(self.policy.name, self.level, message, where))


def _call(validate: Callable[..., Any], args: Any, report: Callable[..., None]) -> None:
    # The pack's servicer treats these two as "not applicable" rather than as failures.
    try:
        validate(args, report)
    except (UnknownValueError, _NotApplicableError):
        return


def run_policies(
    resources: list[GuardResource],
    *,
    stack: str,
    project: str,
    stack_outputs: Mapping[str, Any] | None = None,
    pack_config: Mapping[str, Any] | None = None,
    policies: list[Policy] | None = None,
) -> GateResult:
    """Run every policy: resource policies on each declared resource, stack policies once."""
    selected = policies if policies is not None else all_policies()
    result = GateResult(stack=stack)
    labels = {r.urn: r.label for r in resources}
    stack_resources = _policy_resources(resources, stack_outputs or {}, stack, project)
    declared = [r for r in resources if not r.read]  # `get`s are not the program's to validate

    for policy in selected:
        level, properties = policy_config(pack_config or {}, policy)
        result.policies.append((policy.name, level))
        if level == EnforcementLevel.DISABLED:
            continue
        collector = _Collector(result, policy, level, labels)
        if isinstance(policy, ResourceValidationPolicy):
            for resource in declared:
                args = ResourceValidationArgs(
                    resource.type,
                    _props(resource.inputs),
                    resource.urn,
                    resource.name,
                    _options(resource),
                    None,
                    properties,
                )
                _call(policy.validate, args, collector.for_resource(resource))
        elif isinstance(policy, StackValidationPolicy):
            stack_args = StackValidationArgs(stack_resources, properties)
            _call(policy.validate, stack_args, collector.for_stack)
    result.resources_checked = len(declared)
    return result


def run_evaluation(
    evaluation: Evaluation, project: str, pack_config: Mapping[str, Any]
) -> tuple[list[GuardResource], GateResult]:
    resources = resources_from_evaluation(evaluation, project)
    result = run_policies(
        resources,
        stack=evaluation.stack,
        project=project,
        stack_outputs=evaluation.outputs,
        pack_config=pack_config,
    )
    return resources, result
