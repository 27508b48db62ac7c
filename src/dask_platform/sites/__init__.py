"""Several sites, one analyst.

* :mod:`.outputs` - a site's stack outputs: the ``site`` output's schema (:func:`site_output`,
  written by the Pulumi program) and :class:`Site`, read from ``pulumi stack output --json``;
* :mod:`.catalog` - :class:`SiteCatalog`: the sites a client knows, from output files or the
  local platform (:func:`load_catalog`);
* :mod:`.client` - :class:`MultiSiteCluster` (one dask-gateway cluster per site, computations
  sent where their data lives) and :func:`default_auth` (the login a site's outputs call for).

Importing this package imports neither dask nor dask-gateway.
"""

from dask_platform.sites.catalog import SiteCatalog, load_catalog
from dask_platform.sites.client import (
    MultiSiteCluster,
    SitesUnavailableError,
    default_auth,
)
from dask_platform.sites.outputs import Site, SiteError, SiteInfo, site_output

__all__ = [
    "MultiSiteCluster",
    "Site",
    "SiteCatalog",
    "SiteError",
    "SiteInfo",
    "SitesUnavailableError",
    "default_auth",
    "load_catalog",
    "site_output",
]
