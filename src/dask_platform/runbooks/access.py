"""Which sites a runbook talks to, and as whom.

Sites come from ``pulumi stack output --json`` files (``--outputs``, one per stack) or, without
any, from the local platform's state directory. The user logs in the way each site's outputs
say: OIDC (password grant when a password is given on stdin, else the device flow, which
prints a code to approve), HTTP Basic for ``simple``, the notebook token for ``jupyterhub``.
On the local platform ``--user NAME`` is enough: its generated password is read from the
state directory's ``passwords.json``. Sites sharing an identity provider share one login.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from dask_platform.gateway_client import close_quietly
from dask_platform.sites import Site, SiteCatalog, SiteError, default_auth, load_catalog


def choose_sites(catalog: SiteCatalog, site: str | None, all_sites: bool) -> list[Site]:
    if site is not None and all_sites:
        raise SiteError("--site and --all-sites: give one")
    if all_sites:
        return list(catalog)
    if site is not None:
        return [catalog[site]]
    return [next(iter(catalog))]


def read_password_stdin() -> str:
    password = sys.stdin.readline().rstrip("\n")
    if not password:
        raise SiteError("--password-stdin: nothing was read from stdin")
    return password


class Credentials:
    """The runbook's identity at every site it touches (one login per identity provider)."""

    def __init__(self, user: str | None = None, password: str | None = None) -> None:
        self.user = user
        self._password = password
        self._logins: dict[tuple[str, str], Any] = {}
        self._gateways: list[Any] = []

    def _password_for(self, site: Site) -> str | None:
        if self._password is not None:
            return self._password
        if self.user and site.local_state_dir is not None:
            file = site.local_state_dir / "passwords.json"
            if file.is_file():
                passwords: dict[str, str] = json.loads(file.read_text())
                if self.user not in passwords:
                    raise SiteError(
                        f"--user: {self.user!r} is not a user of the local platform; users: "
                        f"{', '.join(sorted(passwords))}"
                    )
                return passwords[self.user]
        return None

    def auth_for(self, site: Site) -> Any:
        password = self._password_for(site)
        if site.auth.type == "simple" and (not self.user or password is None):
            raise SiteError(
                f"site {site.name} uses password authentication: give --user (and "
                "--password-stdin unless it is the local platform)"
            )
        oidc = site.auth.oidc
        if site.auth.type != "custom" or oidc is None:
            return default_auth(site, username=self.user, password=password)
        key = (oidc.issuer, oidc.client_id)
        if key not in self._logins:
            if password is not None and self.user:
                self._logins[key] = default_auth(site, username=self.user, password=password)
            else:
                self._logins[key] = default_auth(site, flow="device")
        return self._logins[key]

    def gateway(self, site: Site) -> Any:
        from dask_gateway import Gateway

        gateway = Gateway(site.address, proxy_address=site.proxy_address, auth=self.auth_for(site))
        self._gateways.append(gateway)
        return gateway

    def close(self) -> None:
        """Close every gateway client this opened (their HTTP sessions and IO loops)."""
        while self._gateways:
            close_quietly(gateway=self._gateways.pop())

    def __enter__(self) -> Credentials:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def gateway_from_options(
    outputs: Iterable[Path] | None,
    state_dir: Path,
    site: str | None,
    user: str | None,
    password_stdin: bool,
) -> Any:
    """A gateway client for the site the shared runbook options name."""
    catalog = load_catalog(outputs, state_dir)
    chosen = catalog[site] if site is not None else next(iter(catalog))
    password = read_password_stdin() if password_stdin else None
    # The caller closes the gateway (e.g. `with gateway:`); nothing else stays open.
    return Credentials(user, password).gateway(chosen)
