"""`dask-platform plan --stack NAME`: the offline policy gate.

Evaluates the Pulumi program for a committed stack under Pulumi's mocks (no cloud, no
credentials), prints what it would declare and every IAM document it renders, runs every rule of
the CrossGuard pack on the recorded resources and lints the IAM documents. Exit 0: clean;
1: a mandatory violation or lint finding; 2: the stack name or its config is wrong.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from dask_platform.commands.plan_capacity import print_capacity
from dask_platform.pulumi_eval import REPO_DIR, evaluate_stack
from dask_platform.stack_config import StackConfigError, load_stack_file


def plan(
    stack: str = typer.Option(
        ...,
        "--stack",
        "-s",
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
        help="Lint the stack's IAM documents with parliament and cloudsplaining (dev tools).",
    ),
    project_dir: Path = typer.Option(
        REPO_DIR,
        "--project-dir",
        help="Directory holding Pulumi.yaml and the Pulumi.<stack>.yaml files.",
        file_okay=False,
        exists=True,
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
    console = Console()
    if not console.is_terminal:
        # Piped or in CI: rich would assume 80 columns and squeeze the property column away.
        console = Console(width=160)
    try:
        config = load_stack_file(project_dir, stack)
    except StackConfigError as exc:
        # The error names the key paths, or the committed stacks for an unknown name.
        console.print(f"[red]✗ {exc}[/red]")
        raise typer.Exit(2) from None

    from dask_platform.guard import documents as iam_documents
    from dask_platform.guard import report
    from dask_platform.guard.registry import pack_config as stack_pack_config
    from dask_platform.guard.runner import run_evaluation

    pack = stack_pack_config(config)
    if pack_config is not None:
        pack_config.write_text(json.dumps(pack, indent=2) + "\n")
        console.print(f"pack config for {stack} written to {pack_config}")

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
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
        checked = time.perf_counter()

    if resources:
        console.print(report.resources_table(guard_resources))
    print_capacity(console, config, evaluation)
    if documents:
        console.print(f"\n[bold]IAM documents[/bold] ({len(stack_documents)})")
        console.print(report.documents_group(stack_documents))
    report.verdict(console, result, findings)

    failed = bool(result.mandatory) or bool(findings)
    summary = (
        f"{stack}: {result.resources_checked} resources, {len(result.policies)} policies, "
        f"{len(stack_documents)} IAM documents; evaluated in {evaluated - started:.1f}s, "
        f"checked in {checked - evaluated:.1f}s"
    )
    if failed:
        problems = len(result.mandatory) + len(findings or [])
        console.print(f"[bold red]✗ {summary}: {problems} mandatory problem(s)[/bold red]")
        raise typer.Exit(1)
    console.print(f"[bold green]✓ {summary}: no mandatory violations[/bold green]")
