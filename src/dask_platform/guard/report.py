"""Rich output for ``dask-platform plan``: the resources a stack declares (type, name, the
properties a reviewer looks at), its IAM documents, its Kubernetes objects, and the verdict."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text

from dask_platform.guard import rules
from dask_platform.guard.documents import IamDocument
from dask_platform.guard.lint import LintFinding
from dask_platform.guard.manifests import ManifestReport
from dask_platform.guard.runner import GateResult, GuardResource
from dask_platform.guard.values import as_list, get_path, policy_document

if TYPE_CHECKING:  # imported on use: building pods loads dask-gateway-server
    from dask_platform.guard.pods import PodReport


def short_type(type_: str) -> str:
    """aws:s3/bucketPolicy:BucketPolicy -> s3:BucketPolicy."""
    package, _, rest = type_.partition(":")
    module, _, kind = rest.partition(":")
    module = module.split("/")[0]
    if package == "aws":
        return f"{module}:{kind}"
    if package == "kubernetes":
        return f"k8s:{module}/{kind}"
    return f"{package}:{kind}" if kind else type_


def _fmt(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _pairs(props: Mapping[str, Any], *paths: str) -> str:
    out = []
    for path in paths:
        value = get_path(props, *path.split("."))
        if value not in (None, "", [], {}):
            out.append(f"{path.rsplit('.', 1)[-1]}={_fmt(value)}")
    return " ".join(out)


def _ingress(props: Mapping[str, Any]) -> str:
    rules_ = []
    for rule in as_list(props.get("ingress")):
        if isinstance(rule, Mapping):
            ports = f"{_fmt(rule.get('fromPort'))}-{_fmt(rule.get('toPort'))}"
            sources = as_list(rule.get("cidrBlocks")) + as_list(rule.get("securityGroups"))
            if rule.get("self"):
                sources.append("self")
            rules_.append(f"{rule.get('protocol')} {ports} from {_fmt(sources)}")
    return "ingress: " + ("; ".join(rules_) or "none")


def _trust(props: Mapping[str, Any]) -> str:
    document = policy_document(props.get("assumeRolePolicy")) or {}
    out = []
    for statement in as_list(document.get("Statement")):
        principal = statement.get("Principal") if isinstance(statement, Mapping) else None
        if isinstance(principal, Mapping):
            for kind, value in principal.items():
                text = _fmt(value)
                out.append(f"{kind}: {text.rsplit('/', 1)[-1] if kind == 'Federated' else text}")
        conditions = statement.get("Condition", {}) if isinstance(statement, Mapping) else {}
        for block in conditions.values() if isinstance(conditions, Mapping) else []:
            for key, value in block.items():
                if key.endswith(":sub"):
                    out.append(f"sub={_fmt(value)}")
    return "trust " + ", ".join(out)


def _helm(props: Mapping[str, Any]) -> str:
    values = props.get("values") if isinstance(props.get("values"), Mapping) else {}
    auth = get_path(values, "gateway", "auth", "type") or f"{rules.CHART_DEFAULT_AUTH} (default)"
    return f"chart={props.get('chart')}@{props.get('version')} auth={auth}"


def _container_definitions(props: Mapping[str, Any]) -> str:
    try:
        containers = json.loads(str(props.get("containerDefinitions") or "[]"))
    except ValueError:
        containers = []
    names = [c.get("name") for c in containers if isinstance(c, dict)]
    return (
        _pairs(props, "family", "cpu", "memory", "networkMode", "taskRoleArn")
        + f" containers={_fmt(names)}"
    )


SUMMARIES: dict[str, Callable[[Mapping[str, Any]], str]] = {
    **{t: lambda p: _pairs(p, "bucket") for t in rules.BUCKET_TYPES},
    **{
        t: lambda p: _pairs(p, *(f for f in rules.PUBLIC_ACCESS_FLAGS))
        for t in rules.PUBLIC_ACCESS_BLOCK_TYPES
    },
    **{
        t: lambda p: (
            "sse="
            + _fmt(
                [
                    get_path(r, "applyServerSideEncryptionByDefault", "sseAlgorithm")
                    for r in as_list(p.get("rules"))
                ]
            )
        )
        for t in rules.ENCRYPTION_TYPES
    },
    **{t: lambda p: _pairs(p, "rule.objectOwnership") for t in rules.OWNERSHIP_TYPES},
    **{
        t: lambda p: "rules=" + _fmt([r.get("id") for r in as_list(p.get("rules"))])
        for t in rules.LIFECYCLE_TYPES
    },
    **{t: lambda p: _pairs(p, "versioningConfiguration.status") for t in rules.VERSIONING_TYPES},
    rules.LAUNCH_TEMPLATE: lambda p: _pairs(
        p, "metadataOptions.httpTokens", "metadataOptions.httpPutResponseHopLimit"
    ),
    rules.EKS_CLUSTER: lambda p: _pairs(
        p,
        "name",
        "version",
        "vpcConfig.endpointPublicAccess",
        "vpcConfig.publicAccessCidrs",
        "encryptionConfig.resources",
    ),
    rules.EKS_NODE_GROUP: lambda p: _pairs(
        p, "capacityType", "instanceTypes", "scalingConfig.minSize", "scalingConfig.maxSize"
    ),
    rules.ROLE: _trust,
    **{t: lambda p: _pairs(p, "description") for t in rules.IDENTITY_POLICY_TYPES},
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": lambda p: _pairs(p, "policyArn"),
    rules.ECR_REPOSITORY: lambda p: _pairs(
        p, "name", "imageTagMutability", "imageScanningConfiguration.scanOnPush"
    ),
    "aws:ecs/taskDefinition:TaskDefinition": _container_definitions,
    "aws:ecs/cluster:Cluster": lambda p: _pairs(p, "name"),
    "aws:cloudwatch/logGroup:LogGroup": lambda p: _pairs(p, "name", "retentionInDays"),
    "aws:kms/key:Key": lambda p: _pairs(p, "enableKeyRotation", "deletionWindowInDays"),
    **{t: _ingress for t in rules.SECURITY_GROUP_TYPES},
    "aws:ec2/vpc:Vpc": lambda p: _pairs(p, "cidrBlock"),
    "aws:ec2/subnet:Subnet": lambda p: _pairs(
        p, "cidrBlock", "availabilityZone", "mapPublicIpOnLaunch"
    ),
    **{t: _helm for t in rules.HELM_RELEASE_TYPES},
    "kubernetes:core/v1:ServiceAccount": lambda p: (
        _pairs(p, "metadata.name")
        + " role="
        + _fmt(get_path(p, "metadata", "annotations", "eks.amazonaws.com/role-arn"))
    ),
    "kubernetes:core/v1:Namespace": lambda p: _pairs(p, "metadata.name"),
}


def key_properties(resource: GuardResource) -> str:
    summary = SUMMARIES.get(resource.type)
    if summary is not None:
        try:
            return summary(resource.inputs)
        except (AttributeError, TypeError, KeyError):
            pass
    scalars = [
        f"{k}={_fmt(v)}"
        for k, v in resource.inputs.items()
        if isinstance(v, str | int | float | bool) and k not in {"tags"}
    ]
    return " ".join(scalars[:3])


def resources_table(resources: Iterable[GuardResource]) -> Table:
    table = Table(title="Resources", show_lines=False, expand=False)
    table.add_column("type", style="cyan", overflow="fold", min_width=16)
    table.add_column("name", overflow="fold", min_width=16)
    table.add_column("key properties", overflow="fold", min_width=40)
    ordered = sorted(resources, key=lambda r: (r.type.startswith("dask-platform"), r.type, r.name))
    for resource in ordered:
        # Text, not markup: property values contain brackets ("[secrets]").
        name = Text(resource.name)
        if resource.protect:
            name.append(" protected", style="bold")
        if resource.read:
            name.append(" read (existing)", style="dim")
        table.add_row(short_type(resource.type), name, Text(key_properties(resource)))
    return table


def documents_group(documents: Iterable[IamDocument]) -> Group:
    panels = [
        Panel(
            Syntax(document.text, "json", theme="ansi_dark", background_color="default"),
            title=f"[bold]{document.source}[/bold] [dim]({document.kind})[/dim]",
            title_align="left",
            expand=False,
        )
        for document in documents
    ]
    return Group(*panels)


def verdict(
    console: Console,
    result: GateResult,
    lint_findings: list[LintFinding] | None,
) -> None:
    table = Table(title=f"Policy gate: {result.stack}", show_lines=False)
    table.add_column("policy", no_wrap=True)
    table.add_column("level")
    table.add_column("result")
    for name, level in result.policies:
        found = result.of(name)
        outcome = (
            Text("✓ pass", style="green")
            if not found
            else Text(f"✗ {len(found)} violation(s)", style="red")
        )
        table.add_row(name, level.value, outcome)
    if lint_findings is not None:
        outcome = (
            Text("✓ no findings", style="green")
            if not lint_findings
            else Text(f"✗ {len(lint_findings)} finding(s)", style="red")
        )
        table.add_row("iam-lint (parliament, cloudsplaining)", "mandatory", outcome)
    console.print(table)
    for violation in result.violations:
        style = "red" if violation.mandatory else "yellow"
        console.print(
            Text.assemble(
                ("✗ " if violation.mandatory else "! ", style),
                (f"[{violation.policy}] ", "bold"),
                (f"{violation.resource}: ", "cyan"),
                violation.message,
            )
        )
    for finding in lint_findings or []:
        console.print(Text.assemble(("✗ ", "red"), str(finding)))


def manifests_verdict(console: Console, report: ManifestReport, checkov: bool) -> None:
    """The rendered releases (chart, release, objects) and every manifest problem / checkov
    finding, one line per object."""
    table = Table(title=f"Kubernetes objects (schemas of Kubernetes {report.kubernetes_version})")
    table.add_column("source", no_wrap=True)
    table.add_column("chart")
    table.add_column("namespace")
    table.add_column("objects", justify="right")
    table.add_column("CRDs", justify="right")
    for release in report.releases:
        table.add_row(
            f"release {release.release}",
            f"{release.chart}@{release.version}",
            release.namespace,
            str(len(release.objects)),
            str(len(release.crds)),
        )
    table.add_row("declared by the program", "", "", str(len(report.declared)), "")
    console.print(table)
    rows: list[tuple[str, list[Any]]] = [
        ("kubernetes-schemas (built-in kinds, CRDs)", list(report.problems))
    ]
    if checkov:
        rows.append(("checkov-kubernetes (less reviewed waivers)", list(report.findings)))
    for label, found in rows:
        outcome = (
            Text("✓ pass", style="green")
            if not found
            else Text(f"✗ {len(found)} problem(s)", style="red")
        )
        console.print(Text.assemble(f"{label}: ", outcome))
    for problem in report.problems:
        console.print(Text.assemble(("✗ ", "red"), ("[kubernetes-schemas] ", "bold"), str(problem)))
    for finding in report.findings:
        console.print(Text.assemble(("✗ ", "red"), str(finding)))


def pods_verdict(console: Console, report: PodReport) -> None:
    """Where the gateway's controller-built pods can run (NodePool: instance types that fit),
    and every pod problem, one line each."""
    table = Table(title=f"Dask pods built by dask-gateway's controller ({report.pods_built})")
    table.add_column("pod", no_wrap=True)
    table.add_column("requests")
    table.add_column("NodePool: instance types that fit")
    for placement in report.placements:
        pools = "; ".join(
            f"{pool}: {len(types)} ({', '.join(types[:3])}{', ...' if len(types) > 3 else ''})"
            for pool, types in placement.pools.items()
        )
        table.add_row(placement.label, str(placement.requests), pools or Text("none", style="red"))
    if report.placements:
        console.print(table)
    outcome = (
        Text("✓ pass", style="green")
        if not report.problems
        else Text(f"✗ {len(report.problems)} problem(s)", style="red")
    )
    console.print(Text.assemble("gateway-pods (controller-built, on the NodePools): ", outcome))
    for problem in report.problems:
        console.print(Text.assemble(("✗ ", "red"), ("[gateway-pods] ", "bold"), problem))
