"""`dask-platform plan --stack NAME`: the offline policy gate.

Evaluates the Pulumi program for a committed stack under Pulumi's mocks (no cloud, no
credentials), prints what it would declare and every IAM document it renders, runs every rule of
the CrossGuard pack on the recorded resources and lints the IAM documents; renders every Helm
release it declares from the pinned chart and validates every Kubernetes object (rendered or
declared) against the stack's Kubernetes schemas and CRDs, then runs checkov's kubernetes checks
on them. Exit 0: clean; 1: a mandatory violation, lint finding or manifest problem; 2: the stack
name, its config or the chart cache is wrong, or checkov cannot run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer
import yaml
from rich.console import Console

if TYPE_CHECKING:
    from dask_platform.guard.lint import LintFinding
    from dask_platform.guard.manifests import ManifestReport
    from dask_platform.guard.pods import PodReport
    from dask_platform.guard.runner import GateResult

from dask_platform.charts import ChartError
from dask_platform.commands.plan_capacity import print_capacity
from dask_platform.commands.progress import step_progress
from dask_platform.config.errors import StackConfigError
from dask_platform.config.sources import load_stack_file
from dask_platform.project import project_root
from dask_platform.pulumi_eval import evaluate_stack


def plan(
    stack: str = typer.Option(
        ...,
        "--stack",
        help="Committed stack to evaluate: the NAME of Pulumi.NAME.yaml.",
        show_default=False,
    ),
    resources: bool = typer.Option(
        True, "--resources/--no-resources", help="Print the table of declared resources."
    ),
    documents: bool = typer.Option(
        True, "--documents/--no-documents", help="Print every IAM document the stack renders."
    ),
    lint: bool = typer.Option(
        True,
        "--lint/--no-lint",
        help="Lint the stack's IAM documents with parliament and cloudsplaining, and (with "
        "--manifests) its Kubernetes objects with checkov (dev tools).",
    ),
    manifests: bool = typer.Option(
        True,
        "--manifests/--no-manifests",
        help="Render every Helm release from its pinned chart (chart cache: "
        "DASK_PLATFORM_CHART_CACHE) and validate every Kubernetes object against the stack's "
        "eks.kubernetes_version schemas and the CRDs; with --lint also run checkov on them.",
    ),
    as_json: bool = typer.Option(
        False,
        "--json",
        help="Write every declared resource with its inputs, the stack outputs, the rendered "
        "releases and every problem as one JSON document to stdout (secrets redacted); the "
        "report goes to stderr.",
    ),
    project_dir: Path | None = typer.Option(
        None,
        "--project-dir",
        help="Directory holding Pulumi.yaml and the Pulumi.<stack>.yaml files "
        "[default: this checkout].",
        file_okay=False,
        exists=True,
        show_default=False,
    ),
    pack_config: Path | None = typer.Option(
        None,
        "--pack-config",
        help="Also write the CrossGuard pack config for this stack to this JSON file, for "
        "`pulumi preview --policy-pack policies/crossguard --policy-pack-config FILE`.",
        dir_okay=False,
        writable=True,
    ),
) -> None:
    """Evaluate a stack offline, print its resources and IAM documents, run the policy gate."""
    console = Console(stderr=as_json)
    if not console.is_terminal:
        # Piped or in CI: rich would assume 80 columns and squeeze the property column away.
        console = Console(width=160, stderr=as_json)
    if project_dir is None:
        project_dir = project_root()
    try:
        config = load_stack_file(project_dir, stack)
    except StackConfigError as exc:
        # The error names the key paths, or the committed stacks for an unknown name.
        console.print(f"[red]✗ {exc}[/red]")
        raise typer.Exit(2) from None

    from dask_platform.guard import documents as iam_documents
    from dask_platform.guard import report
    from dask_platform.guard.lint import CheckovUnavailable
    from dask_platform.guard.manifests import check_manifests, plan_document
    from dask_platform.guard.policies import pack_config as stack_pack_config
    from dask_platform.guard.runner import run_evaluation

    pack = stack_pack_config(config)
    if pack_config is not None:
        pack_config.write_text(json.dumps(pack, indent=2) + "\n")
        console.print(f"pack config for {stack} written to {pack_config}")

    with step_progress(console, unit=None) as progress:
        task = progress.add_task(f"Evaluating infra/ for {stack} under Pulumi mocks", total=None)
        started = time.perf_counter()
        try:
            evaluation = evaluate_stack(stack, project_dir)
        except StackConfigError as exc:
            console.print(f"[red]✗ {exc}[/red]")
            raise typer.Exit(2) from None
        evaluated = time.perf_counter()
        progress.update(task, description="Running the policy pack")
        project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())["name"]
        guard_resources, result = run_evaluation(evaluation, str(project), pack)
        stack_documents = iam_documents.from_resources(stack, evaluation.resources)
        findings = None
        if lint:
            progress.update(task, description="Linting IAM documents")
            from dask_platform.guard.lint import lint_documents

            findings = lint_documents(stack_documents)
        kube = None
        pods = None
        if manifests:
            progress.update(task, description="Rendering Helm releases, validating manifests")
            try:
                kube = check_manifests(evaluation, config.eks.kubernetes_version, checkov=lint)
            except (ChartError, CheckovUnavailable) as exc:
                # A chart not pinned or not in the cache, or checkov that cannot start: the
                # stack cannot be checked at all (the message says how to fix it).
                console.print(f"[red]✗ {exc}[/red]")
                raise typer.Exit(2) from None
            progress.update(task, description="Building the gateway's pods with its controller")
            from dask_platform.guard.pods import check_release_pods

            pods = check_release_pods(config, evaluation)
        checked = time.perf_counter()

    if as_json:
        sys.stdout.write(
            json.dumps(
                plan_document(evaluation, kube, _problems(result, findings, kube, pods)),
                indent=2,
                sort_keys=True,
            )
            + "\n"
        )
    else:
        if resources:
            console.print(report.resources_table(guard_resources))
        print_capacity(console, config, evaluation)
        if documents:
            console.print(f"\n[bold]IAM documents[/bold] ({len(stack_documents)})")
            console.print(report.documents_group(stack_documents))
    report.verdict(console, result, findings)
    if kube is not None:
        report.manifests_verdict(console, kube, checkov=lint)
    if pods is not None:
        report.pods_verdict(console, pods)

    kube_problems = len(kube.problems) + len(kube.findings) if kube else 0
    kube_problems += len(pods.problems) if pods else 0
    failed = bool(result.mandatory) or bool(findings) or bool(kube_problems)
    summary = (
        f"{stack}: {result.resources_checked} resources, {len(result.policies)} policies, "
        f"{len(stack_documents)} IAM documents"
        + (f", {len(kube.objects)} Kubernetes objects" if kube else "")
        + f"; evaluated in {evaluated - started:.1f}s, checked in {checked - evaluated:.1f}s"
    )
    if failed:
        problems = len(result.mandatory) + len(findings or []) + kube_problems
        console.print(f"[bold red]✗ {summary}: {problems} mandatory problem(s)[/bold red]")
        raise typer.Exit(1)
    console.print(f"[bold green]✓ {summary}: no mandatory violations[/bold green]")


def _problems(
    result: GateResult,
    findings: list[LintFinding] | None,
    kube: ManifestReport | None,
    pods: PodReport | None = None,
) -> dict[str, list[str]]:
    """Every problem of the plan by check, as ``plan --json`` reports them."""
    return {
        "policies": [f"[{v.policy}] {v.resource}: {v.message}" for v in result.mandatory],
        "iam_lint": [str(f) for f in findings or []],
        "kubernetes_schemas": [str(p) for p in kube.problems] if kube else [],
        "checkov_kubernetes": [str(f) for f in kube.findings] if kube else [],
        "gateway_pods": list(pods.problems) if pods else [],
    }
