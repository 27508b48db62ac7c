"""`dask-platform outputs`: a stack's outputs, readable, and checked.

Reads a `pulumi stack output --json` file (or the local platform's outputs.json, or one of its
sites) and prints every output. Exit 1 on a finding: an output a client needs is missing (the
gateway addresses, the site record, teams, scratch URLs, role ARNs) or an output carries
credential material (the same scan as the policy gate's no-aws-keys-in-stack-outputs).
Exit 2 when the file cannot be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dask_platform.runbooks import options as opt
from dask_platform.sites.outputs import SITE_OUTPUTS, StackOutputsError, read_outputs

REQUIRED = (*SITE_OUTPUTS, "teams", "scratch_urls", "team_role_arns")


def _render(value: Any) -> str:
    if value is None:
        return "[dim]null[/dim]"
    # Values are text, not markup: `pulumi stack output` prints secrets as "[secret]".
    return escape(_text(value))


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return (
            "\n".join(
                f"{k}: {json.dumps(v) if isinstance(v, dict | list) else v}"
                for k, v in value.items()
            )
            or "{}"
        )
    if isinstance(value, list):
        return "\n".join(str(v) for v in value) or "[]"
    return str(value)


def findings_of(outputs: dict[str, Any]) -> list[str]:
    from dask_platform.guard.secrets import scan_value

    findings = [f"{key}: missing (clients need it)" for key in REQUIRED if not outputs.get(key)]
    findings.extend(str(finding) for finding in scan_value("", outputs))
    return findings


def outputs(
    outputs_file: Path | None = typer.Option(
        None,
        "--outputs",
        "-o",
        help="A `pulumi stack output --json` file; default: the local platform's outputs.json.",
    ),
    state_dir: Path = opt.STATE_DIR,
    site: str | None = typer.Option(
        None, "--site", "-s", help="With the local platform: one of its sites (default: first)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the outputs as JSON instead."),
) -> None:
    """Show a stack's outputs; exit 1 if one a client needs is missing or any carries a key."""
    console = Console()
    path = outputs_file
    if path is None:
        path = state_dir / "outputs.json"
        if site is not None:
            path = state_dir / "sites" / f"{site}.json"
    elif site is not None:
        console.print(
            "[red]✗ --site selects a local site; with --outputs, give that site's file[/red]"
        )
        raise typer.Exit(2)
    if outputs_file is None and not path.is_file():
        # The local platform's file: say how to start it, and which sites it has.
        known = sorted(p.stem for p in (state_dir / "sites").glob("*.json")) if site else []
        extra = f" (local sites: {', '.join(known)})" if known else ""
        console.print(
            f"[red]✗ {path}: no such file{extra}; start the local platform with "
            "`dask-platform local up`[/red]"
        )
        raise typer.Exit(2)
    try:
        data = read_outputs(path)
    except StackOutputsError as exc:
        console.print(f"[red]✗ {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
    else:
        name = (
            (data.get("site") or {}).get("name", "?") if isinstance(data.get("site"), dict) else "?"
        )
        table = Table(title=f"Stack outputs: site {name} ({path})", show_lines=False)
        table.add_column("output", style="bold", no_wrap=True)
        table.add_column("value", overflow="fold")
        for key in sorted(data):
            table.add_row(key, _render(data[key]))
        console.print(table)
    findings = findings_of(data)
    report = Console(stderr=True) if as_json else console
    for finding in findings:
        report.print(f"[red]✗ {escape(finding)}[/red]")
    if findings:
        raise typer.Exit(1)
    if not as_json:
        console.print(f"[green]✓ {len(data)} outputs; every output clients need is present[/green]")
