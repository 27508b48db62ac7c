"""The `dask-platform` command: one Typer app; each command group lives in its own module
under dask_platform.commands and is registered here."""

from __future__ import annotations

import typer

from dask_platform.commands import clusters, config, images, local
from dask_platform.commands.demo import demo
from dask_platform.commands.outputs import outputs
from dask_platform.commands.plan import plan
from dask_platform.commands.verify import verify_workers

app = typer.Typer(
    name="dask-platform",
    help="Dask on AWS for Earth-science teams: plans, the local platform, and runbooks.",
    no_args_is_help=True,
    rich_markup_mode="rich",
)
app.add_typer(config.app, name="config")
app.add_typer(local.app, name="local")
app.add_typer(images.app, name="images")
app.add_typer(clusters.app, name="clusters")
app.command("demo")(demo)
app.command("plan")(plan)
app.command("outputs")(outputs)
app.command("verify-workers")(verify_workers)
