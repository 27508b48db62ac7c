"""Image sizes: worker, notebook, gateway, and whether worker and notebook agree on versions.

The images are this lock's builds (``make images``), reused by build key - built here if
missing. Sizes come from :mod:`dask_platform.images.sizes` (uncompressed as the engine stores
them, compressed as gzip layer totals, what a node pulls); versions from each image's own
Python (:func:`dask_platform.images.drift.image_versions`). The result is also written to
``bench/images/sizes.json``, the file the images work records with ``images sizes --record``.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Mapping
from typing import Any

from bench import BENCH_DIR, REPO_DIR
from bench.report import Row
from bench.runner import Context
from bench.stats import ratio

TITLE = "Image sizes"
SIZES_FILE = BENCH_DIR / "images" / "sizes.json"


def shared_versions(a: Mapping[str, str], b: Mapping[str, str]) -> dict[str, Any]:
    """Packages both images have, and those whose versions differ (must be none)."""
    from dask_platform.images.drift import PYTHON

    shared = sorted((set(a) & set(b)) - {PYTHON})
    differing = {name: [a[name], b[name]] for name in shared if a[name] != b[name]}
    return {
        "shared": len(shared),
        "identical": len(shared) - len(differing),
        "differing": differing,
        "python": [a.get(PYTHON), b.get(PYTHON)],
    }


def run(context: Context) -> dict[str, Any]:
    import platform

    from rich.console import Console

    from dask_platform.images import IMAGES, PARENT_IMAGE
    from dask_platform.images import engine as engine_module
    from dask_platform.images.build import BuildRequest, build_images, default_cache_dir
    from dask_platform.images.drift import client_versions, image_versions
    from dask_platform.images.progress import Reporter
    from dask_platform.images.sizes import measure, record

    cache = default_cache_dir()
    # podman and debootstrap, as `make test` installs them (a no-op when present).
    subprocess.run([str(REPO_DIR / "scripts" / "install-system-deps")], check=True)
    with engine_module.connect() as engine:
        engine_name = engine.describe().split(" at ")[0]
        started = time.monotonic()
        with Reporter(Console(stderr=True), cache / "build.log") as reporter:
            built = build_images(engine.client, BuildRequest(images=IMAGES), reporter)
        build_seconds = time.monotonic() - started
        references = {item.image: item.reference for item in built}
        with context.task("exporting and gzip-compressing every layer"):
            measured = measure(engine.client, references, PARENT_IMAGE)
        versions = {}
        with context.task("reading installed versions in each image", len(references)) as step:
            for image, reference in references.items():
                versions[image] = image_versions(engine.client, reference)
                step(image)
        first = engine.client.images.get(built[0].reference)
        facts = {
            "lock": built[0].tags[0],
            "lock_sha256": built[0].lock_sha256,
            "base": first.labels.get("org.opencontainers.image.base.name", "unknown"),
            "engine": engine_name,
            "machine": platform.machine(),
            "measured": time.strftime("%Y-%m-%d", time.gmtime()),
        }
    sizes = record(measured, facts)
    # The images work's record, kept identical to what `images sizes --record` writes.
    SIZES_FILE.parent.mkdir(parents=True, exist_ok=True)
    SIZES_FILE.write_text(json.dumps(sizes, indent=2) + "\n")
    by_image = sizes["images"]
    client = client_versions()
    figures = {
        "sizes": by_image,
        "worker_to_notebook": sizes.get("worker_to_notebook"),
        "gateway_to_worker": {
            kind: ratio(
                by_image["gateway"][f"{kind}_bytes"], by_image["worker"][f"{kind}_bytes"], 3
            )
            for kind in ("uncompressed", "compressed")
        },
        "worker_vs_notebook": shared_versions(versions["worker"], versions["notebook"]),
        "worker_vs_gateway": shared_versions(versions["worker"], versions["gateway"]),
        "client_vs_worker": shared_versions(client, versions["worker"]),
        "build": {
            "seconds": round(build_seconds, 1),
            "reused": sorted(item.image for item in built if item.reused),
            "built": sorted(item.image for item in built if not item.reused),
        },
    }
    notes = [
        "Compressed = gzip (level 6) of every layer as the engine exports it: what a node pulls "
        "from a registry. A node that already has the worker pulls only the notebook's layers "
        "beyond it.",
        "Shared packages are compared by each image's own `importlib.metadata`; the notebook is "
        "built FROM the worker, so every package they share must be the same version.",
    ]
    return {
        "parameters": {"images": list(IMAGES), "lock": facts["lock"], "base": facts["base"]},
        "figures": figures,
        "notes": notes,
    }


def _mb(value: float) -> str:
    return f"{value / 1e6:,.0f} MB"


def rows(document: Mapping[str, Any]) -> list[Row]:
    figures = document["figures"]
    sizes = figures["sizes"]
    result = []
    for image in ("worker", "notebook", "gateway"):
        if image not in sizes:
            continue
        item = sizes[image]
        beyond = item.get("compressed_beyond_parent_bytes")
        extra = f" ({_mb(beyond)} beyond the worker)" if beyond else ""
        result.append(
            Row(
                f"{image} image: uncompressed / compressed (pull)",
                f"{_mb(item['uncompressed_bytes'])} / {_mb(item['compressed_bytes'])}{extra}",
                "",
            )
        )
    ratio_wn = figures.get("worker_to_notebook") or {}
    if ratio_wn:
        result.append(
            Row(
                "worker / notebook size",
                "uncompressed / compressed",
                f"**{ratio_wn['uncompressed']:.2f}** / **{ratio_wn['compressed']:.2f}**",
            )
        )
    gw = figures.get("gateway_to_worker") or {}
    if gw.get("uncompressed") is not None:
        result.append(
            Row(
                "gateway / worker size",
                "uncompressed / compressed",
                f"{gw['uncompressed']:.2f} / {gw['compressed']:.2f}",
            )
        )
    for key, label in (
        ("worker_vs_notebook", "worker and notebook"),
        ("worker_vs_gateway", "worker and gateway"),
        ("client_vs_worker", "client environment and worker"),
    ):
        shared = figures.get(key)
        if not shared:
            continue
        differing = ", ".join(f"{n} {a}≠{b}" for n, (a, b) in shared["differing"].items())
        result.append(
            Row(
                f"packages shared by {label}: identical versions",
                f"{shared['identical']} of {shared['shared']}"
                + (f" (differ: {differing})" if differing else ""),
                f"**{shared['identical'] / shared['shared']:.2f}**" if shared["shared"] else "",
            )
        )
    build = figures.get("build")
    if build:
        how = "all reused by build key" if not build["built"] else f"built {build['built']}"
        result.append(Row("`make images` in this run", f"{build['seconds']} s ({how})", ""))
    return result
