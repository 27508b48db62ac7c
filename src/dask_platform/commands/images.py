"""`dask-platform images ...`: lock, build, push, compare and measure the container images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from dask_platform.images import IMAGES, all_images
from dask_platform.runbooks import options as site_options

app = typer.Typer(
    help="Container images pinned to the notebook environment (images/).", no_args_is_help=True
)


def _fail(console: Console, message: str, code: int = 2) -> typer.Exit:
    console.print(f"[red]✗ {message}[/red]")
    return typer.Exit(code)


@app.command("lock")
def lock_command(
    upgrade: bool = typer.Option(
        False,
        "--upgrade",
        help="Move every package the client does not pin to its newest version.",
    ),
    check: bool = typer.Option(
        False,
        "--check",
        help="Only verify: images/uv.lock is current and agrees with uv.lock (exit 1 if not).",
    ),
) -> None:
    """Regenerate images/uv.lock, pinned to the client's uv.lock (what `make images-lock` runs)."""
    from dask_platform.images import lock

    console = Console()
    try:
        if check:
            current, detail = lock.lock_is_current()
            mismatches = lock.client_mismatches()
            for m in mismatches:
                console.print(f"[red]✗ {m.package}: images {m.images}, client {m.client}[/red]")
            if not current:
                console.print(f"[red]✗ images/uv.lock is stale:[/red] {detail}")
            if mismatches or not current:
                raise typer.Exit(1)
            tag = lock.lock_tag(lock.lock_sha256())
            console.print(f"[green]✓ images/uv.lock is current ({tag})[/green]")
            return
        changed = lock.relock(upgrade=upgrade)
    except lock.LockError as exc:
        raise _fail(console, str(exc)) from exc
    tag = lock.lock_tag(lock.lock_sha256())
    console.print(
        f"[green]✓ images/uv.lock {'updated' if changed else 'unchanged'}[/green]: images tag {tag}"
    )


@app.command("build")
def build_command(
    image: list[str] = typer.Option(
        None,
        "--image",
        "-i",
        help=f"Image(s) to build, one of {{{', '.join(all_images())}}}; default: "
        f"{', '.join(IMAGES)}. A notebook or GPU worker also builds its worker.",
    ),
    base_image: str | None = typer.Option(
        None,
        "--base-image",
        envvar="BASE_IMAGE",
        help="Base for the worker and gateway images (a Python 3.11 image); default "
        "python:3.11-slim-bookworm, or a Debian-built base if that cannot be pulled.",
    ),
    base_fallback: bool = typer.Option(
        True,
        "--base-fallback/--no-base-fallback",
        help="Build a base with debootstrap when the default base image cannot be pulled.",
    ),
    refresh_base: bool = typer.Option(
        False, "--refresh-base", help="Rebuild the Debian-built base (new Debian updates)."
    ),
    rebuild: bool = typer.Option(
        False, "--rebuild", help="Build even when an image with the same build key exists."
    ),
    docker_host: str | None = typer.Option(
        None,
        "--docker-host",
        help="Engine API URL (default: DOCKER_HOST, a running Docker/podman socket, or a "
        "private podman service started for this run).",
    ),
    cache_dir: Path | None = typer.Option(
        None,
        "--cache-dir",
        help="Wheelhouse, contexts and base tarball (default: DASK_PLATFORM_IMAGES_CACHE or "
        ".images-cache/).",
    ),
    push: bool = typer.Option(
        False, "--push", help="Push the images to the ECR repositories of --outputs."
    ),
    outputs: Path | None = typer.Option(
        None,
        "--outputs",
        "-o",
        help="`pulumi stack output --json` file with ecr_repositories (needed with --push).",
    ),
) -> None:
    """Build the worker, notebook and gateway images from the lock (what `make images` runs)."""
    from dask_platform.images import engine as engine_module
    from dask_platform.images.base import BaseImageError
    from dask_platform.images.build import (
        BuildRequest,
        ImageBuildError,
        build_images,
        default_cache_dir,
    )
    from dask_platform.images.lock import LockError
    from dask_platform.images.progress import Reporter

    console = Console()
    if push and outputs is None:
        raise _fail(console, "--push needs --outputs <file from `pulumi stack output --json`>")
    if push and outputs is not None:
        from dask_platform.images.push import PushError, read_repositories

        try:
            read_repositories(outputs, image or IMAGES)
        except PushError as exc:
            raise _fail(console, str(exc)) from exc
    cache = cache_dir or default_cache_dir()
    request = BuildRequest(
        images=tuple(image or IMAGES),
        base_image=base_image,
        allow_base_fallback=base_fallback,
        refresh_base=refresh_base,
        rebuild=rebuild,
        cache_dir=cache,
    )
    log_file = cache / "build.log"
    try:
        with engine_module.connect(docker_host) as engine:
            console.print(f"engine: {engine.describe()}; full log: {log_file}")
            with Reporter(Console(stderr=True), log_file) as reporter:
                built = build_images(engine.client, request, reporter)
            table = Table(title="images")
            for column in ("image", "reference", "build tag", "size", "", "seconds"):
                table.add_column(column)
            for item in built:
                size = engine.client.images.get(item.image_id).attrs.get("Size", 0)
                table.add_row(
                    item.image,
                    item.reference,
                    item.tags[1],
                    f"{size / 1e6:,.0f} MB",
                    "reused" if item.reused else "built",
                    f"{item.seconds:.0f}",
                )
            console.print(table)
            if push and outputs is not None:
                from dask_platform.images.push import push_images

                with Reporter(Console(stderr=True), log_file, append=True) as reporter:
                    pushed = push_images(engine.client, built, outputs, reporter)
                for line in pushed:
                    console.print(f"[green]✓ pushed[/green] {line}")
    except (
        engine_module.EngineError,
        BaseImageError,
        ImageBuildError,
        LockError,
    ) as exc:
        raise _fail(console, str(exc), code=1) from exc


@app.command("drift")
def drift_command(
    image: list[str] = typer.Option(
        None,
        "--image",
        "-i",
        help="An image to compare: a name of {worker, notebook, gateway} (this lock's build, "
        "localhost/dask-platform/<name>:lock-<hash>) or any image reference. Repeatable.",
    ),
    scheduler: str | None = typer.Option(
        None, "--scheduler", help="A running cluster's scheduler address, e.g. tcp://host:8786."
    ),
    gateway_cluster: str | None = typer.Option(
        None,
        "--gateway-cluster",
        help="A running dask-gateway cluster's name, on the site chosen with --site/--outputs/"
        "--user (as for `dask-platform clusters`); without them, the gateway address and auth "
        "come from the dask config, as `Gateway()` reads them.",
    ),
    docker_host: str | None = typer.Option(
        None, "--docker-host", help="Engine API URL for --image (default: as `images build`)."
    ),
    outputs: list[Path] = site_options.OUTPUTS,
    state_dir: Path = site_options.STATE_DIR,
    site: str | None = site_options.SITE,
    user: str | None = site_options.USER,
    password_stdin: bool = site_options.PASSWORD_STDIN,
) -> None:
    """Compare package versions of this environment, images and a running cluster.

    Exits 1 if any shared package differs (or one of Dask's required packages is missing).
    """
    from dask_platform.images import IMAGES, local_name
    from dask_platform.images import drift as drift_module
    from dask_platform.images.lock import LockError, lock_sha256, lock_tag

    console = Console()
    if not (image or scheduler or gateway_cluster):
        raise _fail(console, "nothing to compare: give --image, --scheduler or --gateway-cluster")
    if scheduler and gateway_cluster:
        raise _fail(console, "--scheduler and --gateway-cluster: give one cluster, not both")
    sources: dict[str, dict[str, str]] = {drift_module.CLIENT: drift_module.client_versions()}
    if image:
        from dask_platform.images import engine as engine_module

        try:
            tag = lock_tag(lock_sha256())
        except LockError as exc:
            raise _fail(console, str(exc)) from exc
        references = [f"{local_name(i)}:{tag}" if i in IMAGES else i for i in image]
        try:
            with engine_module.connect(docker_host) as engine:
                for reference in references:
                    sources[reference] = drift_module.image_versions(engine.client, reference)
        except engine_module.EngineError as exc:
            raise _fail(console, str(exc), code=1) from exc
        except Exception as exc:  # the engine's errors: image missing, container failed
            raise _fail(console, f"cannot read the versions of an image: {exc}", code=1) from exc
    if scheduler or gateway_cluster:
        from dask_platform.runbooks.access import gateway_from_options
        from dask_platform.sites import SiteError

        packages = [name for name in sources[drift_module.CLIENT] if name != drift_module.PYTHON]
        try:
            gateway = (
                gateway_from_options(outputs, state_dir, site, user, password_stdin)
                if gateway_cluster and (outputs or site or user)
                else None
            )
            sources.update(_cluster_sources(scheduler, gateway_cluster, packages, gateway))
        except SiteError as exc:
            raise _fail(console, str(exc)) from exc
        except (OSError, ValueError) as exc:
            raise _fail(console, f"cannot reach the cluster: {exc}", code=1) from exc
    report = drift_module.compare(sources)
    table = Table(title="package versions")
    table.add_column("package")
    for source in report.sources:
        table.add_column(source)
    table.add_column("")
    for row in report.rows:
        cells = [row.versions[s] or "[dim]missing[/dim]" for s in report.sources]
        mark = "[red]✗ drift[/red]" if row.drifted else "[green]✓[/green]"
        table.add_row(row.package, *cells, mark)
    console.print(table)
    if report.drifted:
        names = ", ".join(row.package for row in report.drifted)
        raise _fail(console, f"{len(report.drifted)} package(s) drifted: {names}", code=1)
    console.print(f"[green]✓ {len(report.rows)} shared packages, no drift[/green]")


def _cluster_sources(
    scheduler: str | None, gateway_cluster: str | None, packages: list[str], gateway: Any = None
) -> dict[str, dict[str, str]]:
    from distributed import Client

    from dask_platform.images import drift as drift_module

    if scheduler is not None:
        with Client(scheduler, timeout="20s") as client:
            return drift_module.cluster_versions(client, packages)
    from dask_gateway import Gateway

    with gateway or Gateway() as connected:
        cluster = connected.connect(str(gateway_cluster))
        try:
            with cluster.get_client(set_as_default=False) as client:
                return drift_module.cluster_versions(client, packages)
        finally:
            # Attached, not owned: close the handle, never the cluster.
            cluster.close(shutdown=False)


@app.command("sizes")
def sizes_command(
    image: list[str] = typer.Option(
        None,
        "--image",
        "-i",
        help=f"Image(s) to measure, of {{{', '.join(all_images())}}}; default: "
        f"{', '.join(IMAGES)} (this lock's builds).",
    ),
    record: Path | None = typer.Option(
        None,
        "--record",
        help="Write the measurement as JSON here (the committed one is bench/images/sizes.json).",
    ),
    docker_host: str | None = typer.Option(
        None, "--docker-host", help="Engine API URL (default: as `images build`)."
    ),
) -> None:
    """Measure the built images: uncompressed, gzip-compressed, and the worker/notebook ratio."""
    import json
    import platform
    from datetime import UTC, datetime

    from dask_platform.images import PARENT_IMAGE, local_name
    from dask_platform.images import engine as engine_module
    from dask_platform.images.lock import LockError, lock_sha256, lock_tag
    from dask_platform.images.sizes import measure
    from dask_platform.images.sizes import record as record_document

    console = Console()
    names = list(image or IMAGES)
    unknown = sorted(set(names) - set(all_images()))
    if unknown:
        raise _fail(console, f"unknown image(s) {', '.join(unknown)}; one of {all_images()}")
    try:
        sha = lock_sha256()
    except LockError as exc:
        raise _fail(console, str(exc)) from exc
    tag = lock_tag(sha)
    references = {name: f"{local_name(name)}:{tag}" for name in names}
    try:
        with engine_module.connect(docker_host) as engine:
            with console.status("exporting and compressing every layer"):
                measured = measure(engine.client, references, PARENT_IMAGE)
            first = engine.client.images.get(next(iter(references.values())))
            facts = {
                "lock": tag,
                "lock_sha256": sha,
                "base": first.labels.get("org.opencontainers.image.base.name", "unknown"),
                "engine": engine.describe().split(" at ")[0],
                "machine": platform.machine(),
                "measured": datetime.now(UTC).strftime("%Y-%m-%d"),
            }
    except engine_module.EngineError as exc:
        raise _fail(console, str(exc), code=1) from exc
    except Exception as exc:  # the engine's errors: an image of this lock is not built
        raise _fail(
            console, f"cannot measure {', '.join(references.values())}: {exc}", code=1
        ) from exc
    document = record_document(measured, facts)
    table = Table(title=f"image sizes ({tag})")
    for column in ("image", "uncompressed", "compressed (pull)", "beyond parent", "layers"):
        table.add_column(column)
    for item in measured:
        beyond = item.compressed_beyond_parent_bytes
        table.add_row(
            item.image,
            f"{item.uncompressed_bytes / 1e6:,.0f} MB",
            f"{item.compressed_bytes / 1e6:,.0f} MB",
            "" if beyond is None else f"{beyond / 1e6:,.0f} MB",
            str(item.layers),
        )
    console.print(table)
    ratio = document.get("worker_to_notebook")
    if ratio:
        console.print(
            f"worker/notebook: {ratio['uncompressed']:.2f} uncompressed, "
            f"{ratio['compressed']:.2f} compressed"
        )
    if record is not None:
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_text(json.dumps(document, indent=2) + "\n")
        console.print(f"[green]✓ recorded {record}[/green]")
