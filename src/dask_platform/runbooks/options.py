"""The command-line options every runbook shares: which sites, and as whom."""

from __future__ import annotations

import typer

from dask_platform.local.config import DEFAULT_STATE_DIR

OUTPUTS = typer.Option(
    None,
    "--outputs",
    "-o",
    help="A site's `pulumi stack output --json` file; repeat for several sites. Default: the "
    "local platform's sites (see --state-dir).",
)
STATE_DIR = typer.Option(
    DEFAULT_STATE_DIR,
    "--state-dir",
    help="The local platform's state directory, used when no --outputs is given.",
)
SITE = typer.Option(
    None, "--site", "-s", help="The site to act on (its stack's site.name); default: the first."
)
ALL_SITES = typer.Option(False, "--all-sites", help="Act on every site given.")
USER = typer.Option(
    None,
    "--user",
    "-u",
    help="Log in as this user. On the local platform its generated password is used; "
    "elsewhere give --password-stdin, or leave it out for an OIDC device-code login.",
)
PASSWORD_STDIN = typer.Option(
    False,
    "--password-stdin",
    help="Read the password from stdin (used to log in, never stored).",
)
