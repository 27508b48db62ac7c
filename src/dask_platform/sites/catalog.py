"""The sites a client knows: :class:`SiteCatalog`, from stack output files or a local platform.

The files are ``pulumi stack output --json`` of each stack (one site each), or the local
platform's ``outputs.json`` and its per-site files. Imports neither dask nor dask-gateway.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from dask_platform.sites.outputs import (
    Site,
    SiteError,
    StackOutputsError,
    read_outputs,
    site_from_outputs,
)


class SiteCatalog:
    """Sites by name, in the order given."""

    def __init__(self, sites: Iterable[Site]) -> None:
        self._sites: dict[str, Site] = {}
        for site in sites:
            if site.name in self._sites:
                raise SiteError(
                    f"site {site.name!r} appears twice ({self._sites[site.name].source} and "
                    f"{site.source}); each stack's `site.name` must be unique"
                )
            self._sites[site.name] = site
        if not self._sites:
            raise SiteError("no site given: pass stack output files or a local platform")

    @classmethod
    def from_outputs(cls, paths: Iterable[str | Path]) -> SiteCatalog:
        """From ``pulumi stack output --json`` files, one per stack (site)."""
        return cls(site_from_outputs(_read(p), str(p)) for p in paths)

    @classmethod
    def from_local(cls, state_dir: str | Path) -> SiteCatalog:
        """Every site of a running local platform (its ``outputs.json`` lists them)."""
        main = Path(state_dir) / "outputs.json"
        if not main.is_file():
            raise SiteError(
                f"the local platform is not running ({main} is missing); start it with "
                "`dask-platform local up` or pass stack output files"
            )
        outputs = _read(main)
        files = outputs.get("site_outputs") or {}
        if not files:
            return cls([site_from_outputs(outputs, str(main))])
        return cls.from_outputs(files.values())

    @property
    def names(self) -> list[str]:
        return list(self._sites)

    def __iter__(self) -> Iterator[Site]:
        return iter(self._sites.values())

    def __len__(self) -> int:
        return len(self._sites)

    def __getitem__(self, name: str) -> Site:
        try:
            return self._sites[name]
        except KeyError:
            raise SiteError(
                f"site: {name!r} is not a known site; known sites: {', '.join(self.names)}"
            ) from None

    def select(self, names: Iterable[str] | None) -> list[Site]:
        return [self[n] for n in names] if names is not None else list(self)


def load_catalog(outputs: Iterable[str | Path] | None, state_dir: str | Path) -> SiteCatalog:
    """The sites of the given stack output files, else of the local platform at ``state_dir``."""
    files = list(outputs or [])
    if files:
        return SiteCatalog.from_outputs(files)
    return SiteCatalog.from_local(state_dir)


def _read(path: str | Path) -> dict[str, Any]:
    try:
        return read_outputs(path)
    except StackOutputsError as exc:
        raise SiteError(str(exc)) from None
