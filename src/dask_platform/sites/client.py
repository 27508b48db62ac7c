"""Several sites, one analyst: :class:`MultiSiteCluster`, and :func:`default_auth` (a login).

:class:`MultiSiteCluster` starts a dask-gateway cluster on every chosen site of a
:class:`~dask_platform.sites.catalog.SiteCatalog` at once (each adaptive, with the site's
defaults), gives ``ms["site"]`` / ``ms.clients`` access, and runs a computation where its data
lives: ``ms.compute(obj)`` sends ``obj`` to the site named by ``obj.attrs["location"]`` (an
xarray object, or any dask collection with an ``attrs`` mapping). A site that is down or slow
does not hold up the others: starts run concurrently with one deadline, a failed site is named
with its reason in ``ms.failures`` (and a warning), and only if every site fails is it an
error. Instances share nothing: each has its own clusters, clients and login sessions.

Importing this module imports neither dask nor dask-gateway.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dask_platform.gateway_client import close_quietly
from dask_platform.sites.catalog import SiteCatalog
from dask_platform.sites.outputs import Site, SiteError


class SitesUnavailableError(RuntimeError):
    """No chosen site could start a cluster; ``failures`` maps each site to its reason."""

    def __init__(self, failures: Mapping[str, str]) -> None:
        self.failures = dict(failures)
        lines = "\n".join(f"  - {site}: {reason}" for site, reason in sorted(failures.items()))
        super().__init__(f"no site could start a cluster:\n{lines}")


def default_auth(site: Site, **credentials: Any) -> Any:
    """The ``GatewayAuth`` a site's outputs call for.

    ``custom`` (the platform's OIDC authenticator): :class:`~dask_platform.oidc.client.OIDCAuth`
    for the site's issuer and client id (device flow unless ``username``/``password`` are given);
    ``simple``: HTTP Basic with ``username``/``password``; ``jupyterhub``: the notebook's
    ``JUPYTERHUB_API_TOKEN``; ``kerberos``: the user's ticket.
    """
    from dask_gateway.auth import BasicAuth, JupyterHubAuth, KerberosAuth

    kind = site.auth.type
    if kind == "custom":
        from dask_platform.oidc.client import OIDCAuth

        oidc = site.auth.oidc
        assert oidc is not None  # the model requires it with custom
        password = credentials.pop("password", None)
        username = credentials.pop("username", None)
        flow = credentials.pop("flow", "password" if password is not None else "device")
        return OIDCAuth(
            oidc.issuer,
            oidc.client_id,
            flow=flow,
            username=username,
            password=password,
            **credentials,
        )
    if kind == "simple":
        return BasicAuth(credentials.get("username"), credentials.get("password"))
    if kind == "jupyterhub":
        return JupyterHubAuth()
    return KerberosAuth()


@dataclass
class _Start:
    """One site's cluster start, run in its own thread."""

    site: Site
    done: threading.Event = field(default_factory=threading.Event)
    abandoned: bool = False
    gateway: Any = None
    cluster: Any = None
    client: Any = None
    error: BaseException | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class MultiSiteCluster:
    """One dask-gateway cluster per site; see the module docstring.

    ``auth``: a ``GatewayAuth`` for every site, or a function ``site -> GatewayAuth``; default:
    :func:`default_auth`, with one login per identity provider shared by the sites that use it
    (within this instance only). ``locations`` maps ``attrs`` location values to site names
    (default: the value is the site name). ``timeout``: seconds a site may take to start or
    stop before it is reported as unavailable.
    """

    def __init__(
        self,
        catalog: SiteCatalog,
        *,
        auth: Any = None,
        locations: Mapping[str, str] | None = None,
        timeout: float = 120.0,
    ) -> None:
        self.catalog = catalog
        self.locations = dict(locations or {})
        self.timeout = float(timeout)
        self._auth = auth
        self._logins: dict[tuple[str, str], Any] = {}
        self._gateways: dict[str, Any] = {}
        self._clusters: dict[str, Any] = {}
        self._clients: dict[str, Any] = {}
        self.failures: dict[str, str] = {}
        unknown = sorted(set(self.locations.values()) - set(catalog.names))
        if unknown:
            raise SiteError(
                f"locations: {', '.join(unknown)} are not known sites; known sites: "
                f"{', '.join(catalog.names)}"
            )

    # ------------------------------------------------------------------ auth

    def auth_for(self, site: Site) -> Any:
        if self._auth is not None:
            return self._auth(site) if callable(self._auth) else self._auth
        oidc = site.auth.oidc
        if site.auth.type == "custom" and oidc is not None:
            key = (oidc.issuer, oidc.client_id)
            if key not in self._logins:
                self._logins[key] = default_auth(site)
            return self._logins[key]
        return default_auth(site)

    # ------------------------------------------------------------------ start

    def new_cluster(
        self,
        sites: Iterable[str] | None = None,
        *,
        adapt: bool = True,
        minimum: int | None = None,
        maximum: int | None = None,
        workers: int | None = None,
        timeout: float | None = None,
        **cluster_options: Any,
    ) -> MultiSiteCluster:
        """Start a cluster on every chosen site (default: all) at once.

        Adaptive with the site's ``minimum``/``maximum`` unless overridden, or ``workers``
        fixed workers (``adapt=False``). ``cluster_options`` (e.g. ``worker_memory=2``) go to
        every site's options form. Sites that fail or exceed ``timeout`` are reported in
        :attr:`failures` and with a warning; if none starts, :class:`SitesUnavailableError`.
        """
        chosen = self.catalog.select(sites)
        already = sorted(s.name for s in chosen if s.name in self._clusters)
        if already:
            raise SiteError(f"a cluster is already running on {', '.join(already)}")
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        starts = [_Start(site) for site in chosen]
        for start in starts:
            thread = threading.Thread(
                target=self._start_site,
                args=(start, adapt, minimum, maximum, workers, cluster_options),
                name=f"dask-platform-start-{start.site.name}",
                # A site that never answers must not keep the interpreter alive.
                daemon=True,
            )
            thread.start()
        for start in starts:
            finished = start.done.wait(max(0.0, deadline - time.monotonic()))
            with start.lock:
                if not finished:
                    start.abandoned = True
                    self.failures[start.site.name] = (
                        f"no answer from {start.site.address} within "
                        f"{timeout if timeout is not None else self.timeout:g}s"
                    )
                elif start.error is not None:
                    self.failures[start.site.name] = _describe(start.error, start.site)
                else:
                    self.failures.pop(start.site.name, None)
                    self._gateways[start.site.name] = start.gateway
                    self._clusters[start.site.name] = start.cluster
                    self._clients[start.site.name] = start.client
        failed = [s.site.name for s in starts if s.site.name in self.failures]
        for name in failed:
            warnings.warn(
                f"site {name} is unavailable ({self.failures[name]}); continuing with "
                f"{', '.join(self.sites) or 'no site'}",
                RuntimeWarning,
                stacklevel=2,
            )
        if failed and not any(s.site.name in self._clusters for s in starts):
            raise SitesUnavailableError({n: self.failures[n] for n in failed})
        return self

    def _start_site(
        self,
        start: _Start,
        adapt: bool,
        minimum: int | None,
        maximum: int | None,
        workers: int | None,
        cluster_options: Mapping[str, Any],
    ) -> None:
        from dask_gateway import Gateway

        from dask_platform.gateway_probe import GatewayAddressError, check_addresses

        site = start.site
        try:
            # The outputs file's addresses, checked before use: a wrong one fails in seconds
            # naming the file, the address and what answered there.
            try:
                check_addresses(site.address, site.proxy_address)
            except GatewayAddressError as exc:
                raise SiteError(f"{site.source}: {exc}") from None
            gateway = Gateway(
                site.address, proxy_address=site.proxy_address, auth=self.auth_for(site)
            )
            start.gateway = gateway
            options = gateway.cluster_options()
            for key, value in cluster_options.items():
                setattr(options, key, value)
            cluster = gateway.new_cluster(options)
            start.cluster = cluster
            if adapt and workers is None:
                cluster.adapt(
                    minimum=site.adaptive.minimum if minimum is None else minimum,
                    maximum=site.adaptive.maximum if maximum is None else maximum,
                )
            elif workers is not None:
                cluster.scale(workers)
            start.client = cluster.get_client(set_as_default=False)
        except BaseException as exc:
            start.error = exc
        with start.lock:
            start.done.set()
            if start.abandoned:
                # The caller gave up on this site: whatever started late is stopped, not leaked.
                close_quietly(start.client, start.cluster, start.gateway)

    # ------------------------------------------------------------------ access

    @property
    def sites(self) -> list[str]:
        """Sites with a running cluster, in catalog order."""
        return [name for name in self.catalog.names if name in self._clusters]

    @property
    def clients(self) -> dict[str, Any]:
        return dict(self._clients)

    @property
    def clusters(self) -> dict[str, Any]:
        return dict(self._clusters)

    @property
    def dashboard_links(self) -> dict[str, str]:
        return {name: self._clusters[name].dashboard_link for name in self.sites}

    def __getitem__(self, site: str) -> Any:
        if site in self._clusters:
            return self._clusters[site]
        self.catalog[site]  # raises for an unknown site, naming the known ones
        reason = self.failures.get(site, "no cluster was started there")
        raise SiteError(f"site {site!r} has no running cluster ({reason})")

    def site_for(self, obj: Any, location_key: str = "location") -> str:
        attrs = getattr(obj, "attrs", None)
        if not isinstance(attrs, Mapping) or location_key not in attrs:
            raise SiteError(
                f"{location_key}: the object has no attrs[{location_key!r}] naming where its "
                f"data lives; one of {', '.join(self.catalog.names)}"
            )
        location = str(attrs[location_key])
        site = self.locations.get(location, location)
        if site not in self.catalog.names:
            raise SiteError(
                f"attrs[{location_key!r}] = {location!r} is not a site; known sites: "
                f"{', '.join(self.catalog.names)} (or map it with locations=)"
            )
        return site

    def compute(self, obj: Any, location_key: str = "location", **kwargs: Any) -> Any:
        """Compute ``obj`` on the site its ``attrs[location_key]`` names; return the result."""
        import dask

        site = self.site_for(obj, location_key)
        if not dask.is_dask_collection(obj):
            raise TypeError(
                f"{type(obj).__name__} is not a dask collection (nothing to compute at {site})"
            )
        self[site]  # raises, with the reason, for a site without a running cluster
        return self._clients[site].compute(obj, sync=True, **kwargs)

    # ------------------------------------------------------------------ stop

    def shutdown(self, timeout: float | None = None) -> dict[str, str]:
        """Shut every cluster down at once; return the sites that did not confirm in time."""
        limit = timeout if timeout is not None else self.timeout
        threads = {}
        for name in list(self._clusters):
            thread = threading.Thread(
                target=close_quietly,
                args=(
                    self._clients.pop(name, None),
                    self._clusters.pop(name),
                    self._gateways.pop(name, None),
                ),
                name=f"dask-platform-stop-{name}",
                daemon=True,
            )
            thread.start()
            threads[name] = thread
        deadline = time.monotonic() + limit
        unconfirmed = {}
        for name, thread in threads.items():
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                unconfirmed[name] = f"no answer within {limit:g}s; the site's idle timeout stops it"
        return unconfirmed

    def close(self) -> None:
        self.shutdown()

    def __enter__(self) -> MultiSiteCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        running = ", ".join(self.sites) or "none"
        down = f"; unavailable: {', '.join(sorted(self.failures))}" if self.failures else ""
        return f"MultiSiteCluster<running: {running}{down}>"

    def _repr_html_(self) -> str:
        import html

        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(str(self._clusters[name].name))}"
            f'</td><td><a href="{html.escape(link)}" target="_blank">dashboard</a></td></tr>'
            for name, link in self.dashboard_links.items()
        )
        rows += "".join(
            f"<tr><td>{html.escape(name)}</td><td colspan=2>unavailable: "
            f"{html.escape(reason)}</td></tr>"
            for name, reason in sorted(self.failures.items())
        )
        return f"<table><tr><th>site</th><th>cluster</th><th>dashboard</th></tr>{rows}</table>"


def _describe(error: BaseException, site: Site) -> str:
    import aiohttp

    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect to {site.address} ({error.os_error.strerror or error})"
    if isinstance(error, aiohttp.ClientResponseError):
        return f"{site.address} answered {error.status} {error.message}"
    if isinstance(error, SiteError):
        return str(error)  # already names the outputs file, the address and what answered
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else 'no detail'}"
