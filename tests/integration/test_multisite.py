"""The site catalog and MultiSiteCluster on two real local gateways (sites central and hpc,
see federation.py): concurrent starts, routing by location, one site down or hanging, instances
that share nothing."""

from __future__ import annotations

import os
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask.bag as db
import psutil
import pytest
from distributed import get_worker

from dask_platform.local.config import LocalOidc
from dask_platform.local.platform import LocalPlatform
from dask_platform.oidc.client import OIDCAuth
from dask_platform.sites import (
    MultiSiteCluster,
    SiteCatalog,
    SiteError,
    SitesUnavailableError,
)

pytest_plugins = ("tests.integration.federation",)

REPO = Path(__file__).resolve().parents[2]
FIXTURE_OUTPUTS = REPO / "tests" / "fixtures" / "outputs"
TWO_SITES = ["central", "hpc"]


@pytest.fixture(scope="module")
def catalog(federation: LocalPlatform) -> SiteCatalog:
    return SiteCatalog.from_local(federation.state_dir)


@pytest.fixture(scope="module")
def alice(catalog: SiteCatalog, passwords: dict[str, str]) -> OIDCAuth:
    oidc = catalog["central"].auth.oidc
    assert oidc is not None
    return OIDCAuth(
        oidc.issuer, oidc.client_id, flow="password", username="alice", password=passwords["alice"]
    )


@pytest.fixture(scope="module")
def two_sites(catalog: SiteCatalog, alice: OIDCAuth) -> Iterator[MultiSiteCluster]:
    multi = MultiSiteCluster(catalog, auth=alice, timeout=120)
    multi.new_cluster(TWO_SITES, minimum=1, maximum=2)
    yield multi
    multi.shutdown()


def located(location: str, items: int = 4) -> Any:
    """A dask collection with an ``attrs`` mapping (what an xarray object carries), whose tasks
    report which scheduler ran them. (A lambda travels by value; the workers cannot import
    this test module.)"""
    bag = db.from_sequence(range(items), npartitions=2).map(
        lambda _: str(get_worker().scheduler.address)
    )
    bag.attrs = {"location": location, "title": "gauge discharge"}
    return bag


def scheduler_of(multi: MultiSiteCluster, site: str) -> str:
    return str(multi.clients[site].scheduler_info()["address"])


def starting(site: str) -> bool:
    """Whether a MultiSiteCluster start thread for ``site`` is still running."""
    return any(t.name == f"dask-platform-start-{site}" for t in threading.enumerate())


def clusters_at(site_outputs: dict[str, Any], site: str, auth: OIDCAuth) -> set[str]:
    from dask_gateway import Gateway

    outputs = site_outputs[site]
    gateway = Gateway(outputs["gateway_address"], auth=auth)
    try:
        return {c.name for c in gateway.list_clusters()}
    finally:
        gateway.close()


# --------------------------------------------------------------------------- the catalog


def test_the_local_catalog_has_every_site(
    catalog: SiteCatalog, site_outputs: dict[str, Any], issuer: dict[str, Any]
) -> None:
    assert catalog.names == ["central", "hpc", "rogue"]
    for site in catalog:
        assert site.address == site_outputs[site.name]["gateway_address"]
        assert site.proxy_address == site_outputs[site.name]["gateway_proxy_address"]
        assert site.auth.type == "custom"
        assert site.auth.oidc is not None
        assert site.auth.oidc.issuer == issuer["url"]
        assert site.auth.oidc.client_id == LocalOidc().client_id
        assert (site.adaptive.minimum, site.adaptive.maximum) == (0, 4)
    assert len({s.address for s in catalog}) == 3, "three gateways, three addresses"


def test_the_catalog_reads_pulumi_output_files() -> None:
    catalog = SiteCatalog.from_outputs(
        [FIXTURE_OUTPUTS / "prod.json", FIXTURE_OUTPUTS / "dev.json"]
    )
    assert catalog.names == ["prod", "dev"]
    prod, dev = catalog["prod"], catalog["dev"]
    assert prod.auth.type == "custom"
    assert prod.auth.oidc is not None
    assert prod.auth.oidc.issuer == "https://keycloak.example.org/realms/earth"
    assert (prod.adaptive.minimum, prod.adaptive.maximum) == (0, 200)
    # dev: the same realm as prod, its own audience (no TLS: plain http on the NLB).
    assert dev.auth.type == "custom"
    assert dev.auth.oidc is not None
    assert dev.auth.oidc.audience == "dask-gateway-dev"
    assert dev.address.startswith("http://")
    assert prod.address == "https://dask.earth.example.org"
    assert dev.proxy_address.startswith("gateway://")
    assert dev.proxy_address.endswith(":8786")


def test_catalog_errors_name_the_site_or_file(tmp_path: Path) -> None:
    with pytest.raises(SiteError, match=r"'mars' is not a known site; known sites: prod, dev"):
        SiteCatalog.from_outputs([FIXTURE_OUTPUTS / "prod.json", FIXTURE_OUTPUTS / "dev.json"])[
            "mars"
        ]
    with pytest.raises(SiteError, match="site 'prod' appears twice"):
        SiteCatalog.from_outputs([FIXTURE_OUTPUTS / "prod.json", FIXTURE_OUTPUTS / "prod.json"])
    bare = tmp_path / "outputs.json"
    bare.write_text('{"region": "us-west-2"}')
    with pytest.raises(SiteError, match="missing gateway_address, gateway_proxy_address, site"):
        SiteCatalog.from_outputs([bare])
    with pytest.raises(SiteError, match="no such file"):
        SiteCatalog.from_outputs([tmp_path / "missing.json"])
    with pytest.raises(SiteError, match="the local platform is not running"):
        SiteCatalog.from_local(tmp_path / "not-started")


# --------------------------------------------------------------------------- MultiSiteCluster


def test_clusters_start_on_both_sites_with_dashboards(
    two_sites: MultiSiteCluster, site_outputs: dict[str, Any]
) -> None:
    assert two_sites.sites == TWO_SITES
    assert two_sites.failures == {}
    assert set(two_sites.clients) == set(TWO_SITES)
    for site in TWO_SITES:
        cluster = two_sites[site]
        link = two_sites.dashboard_links[site]
        assert link == f"{site_outputs[site]['gateway_address']}/clusters/{cluster.name}/status"
    assert scheduler_of(two_sites, "central") != scheduler_of(two_sites, "hpc")
    assert "dashboard" in two_sites._repr_html_()


def test_compute_runs_where_the_data_lives(two_sites: MultiSiteCluster) -> None:
    for site in TWO_SITES:
        ran_on = two_sites.compute(located(site))
        assert set(ran_on) == {scheduler_of(two_sites, site)}, f"{site}'s data ran elsewhere"


def test_locations_can_be_mapped_to_sites(
    catalog: SiteCatalog, two_sites: MultiSiteCluster
) -> None:
    mapped = MultiSiteCluster(catalog, locations={"ecmwf-archive": "hpc"})
    assert mapped.site_for(located("ecmwf-archive")) == "hpc"
    with pytest.raises(SiteError, match=r"locations: moon are not known sites"):
        MultiSiteCluster(catalog, locations={"x": "moon"})


def test_routing_errors_are_clear(two_sites: MultiSiteCluster) -> None:
    with pytest.raises(SiteError, match=r"attrs\['location'\] = 'atlantis' is not a site"):
        two_sites.compute(located("atlantis"))
    unlabelled = db.from_sequence([1, 2])
    with pytest.raises(SiteError, match=r"no attrs\['location'\]"):
        two_sites.compute(unlabelled)
    with pytest.raises(SiteError, match="site 'rogue' has no running cluster"):
        two_sites.compute(located("rogue"))
    with pytest.raises(SiteError, match="'nowhere' is not a known site"):
        two_sites["nowhere"]


def test_one_login_serves_every_site_of_an_identity_provider(catalog: SiteCatalog) -> None:
    multi = MultiSiteCluster(catalog)
    central, hpc = multi.auth_for(catalog["central"]), multi.auth_for(catalog["hpc"])
    assert central is hpc
    assert isinstance(central, OIDCAuth)
    assert central.flow == "device"


def test_instances_share_no_state(
    catalog: SiteCatalog, alice: OIDCAuth, site_outputs: dict[str, Any]
) -> None:
    assert not any(
        isinstance(value, dict | list | set)
        for name, value in vars(MultiSiteCluster).items()
        if not name.startswith("__")
    ), "no class-level containers"
    first = MultiSiteCluster(catalog, auth=alice).new_cluster(["central"], workers=0)
    second = MultiSiteCluster(catalog, auth=alice).new_cluster(["hpc"], workers=0)
    assert (first.sites, second.sites) == (["central"], ["hpc"])
    assert MultiSiteCluster(catalog).sites == []
    hpc_cluster = second["hpc"].name
    first.shutdown()
    assert second.sites == ["hpc"]
    assert hpc_cluster in clusters_at(site_outputs, "hpc", alice)
    second.shutdown()
    assert hpc_cluster not in clusters_at(site_outputs, "hpc", alice)


def test_shutdown_stops_every_sites_cluster(
    catalog: SiteCatalog, alice: OIDCAuth, site_outputs: dict[str, Any]
) -> None:
    with MultiSiteCluster(catalog, auth=alice).new_cluster(TWO_SITES, workers=0) as multi:
        names = {site: multi[site].name for site in TWO_SITES}
        for site, name in names.items():
            assert name in clusters_at(site_outputs, site, alice)
    for site, name in names.items():
        assert name not in clusters_at(site_outputs, site, alice)


# --------------------------------------------------------------------------- a site down


def test_a_site_that_is_down_does_not_block_the_others(
    catalog: SiteCatalog, alice: OIDCAuth, federation: LocalPlatform
) -> None:
    federation.stop_gateway("hpc")
    try:
        multi = MultiSiteCluster(catalog, auth=alice, timeout=60)
        with pytest.warns(
            RuntimeWarning, match="site hpc is unavailable .*continuing with central"
        ):
            multi.new_cluster(TWO_SITES, minimum=1, maximum=1)
        try:
            assert multi.sites == ["central"]
            assert "gateway address" in multi.failures["hpc"]
            assert "the connection failed" in multi.failures["hpc"]
            assert catalog["hpc"].address in multi.failures["hpc"]
            assert set(multi.compute(located("central"))) == {scheduler_of(multi, "central")}
            with pytest.raises(
                SiteError, match=r"site 'hpc' has no running cluster .*the connection failed"
            ):
                multi.compute(located("hpc"))
            assert "hpc" in repr(multi)
        finally:
            multi.shutdown()
    finally:
        federation.restart_gateway("hpc")


def test_every_site_down_is_one_clear_error(
    catalog: SiteCatalog, alice: OIDCAuth, federation: LocalPlatform
) -> None:
    federation.stop_gateway("hpc")
    federation.stop_gateway("rogue")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            with pytest.raises(SitesUnavailableError) as failed:
                MultiSiteCluster(catalog, auth=alice, timeout=30).new_cluster(["hpc", "rogue"])
        assert set(failed.value.failures) == {"hpc", "rogue"}
        assert "hpc.json: gateway address http://127.0.0.1:" in str(failed.value)
    finally:
        federation.restart_gateway("hpc")
        federation.restart_gateway("rogue")


def test_a_hanging_site_times_out_and_its_late_cluster_is_stopped(
    catalog: SiteCatalog,
    alice: OIDCAuth,
    federation: LocalPlatform,
    site_outputs: dict[str, Any],
) -> None:
    """A gateway that accepts connections but never answers (SIGSTOP: a hung process)."""
    pid = federation.state()["components"]["gateway-hpc"]["pid"]
    before = clusters_at(site_outputs, "hpc", alice)
    os.kill(pid, signal.SIGSTOP)
    try:
        multi = MultiSiteCluster(catalog, auth=alice)
        with pytest.warns(RuntimeWarning, match="site hpc is unavailable"):
            multi.new_cluster(TWO_SITES, workers=0, timeout=10)
        assert multi.sites == ["central"]
        # The outputs file's address is checked first: a hung gateway is named within seconds.
        assert multi.failures["hpc"] == (
            f"{catalog['hpc'].source}: gateway address {catalog['hpc'].address}: no answer "
            "within 5s"
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    multi.shutdown()
    # The hpc start completes once the gateway resumes, and stops the cluster it made.
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and starting("hpc"):
        time.sleep(0.5)
    assert not starting("hpc"), "the abandoned start finished once the gateway resumed"
    while time.monotonic() < deadline and clusters_at(site_outputs, "hpc", alice) != before:
        time.sleep(1)
    assert clusters_at(site_outputs, "hpc", alice) == before
    assert psutil.Process(pid).status() != psutil.STATUS_STOPPED


def test_every_site_is_a_component_with_its_address(
    federation: LocalPlatform, site_outputs: dict[str, Any]
) -> None:
    components = {c.name: c for c in federation.status()}
    # The object stores' stand-ins (local/platform.yaml) are components of their own.
    stand_ins = {f"object-store-{s.name}" for s in federation.config.stack.object_stores}
    assert stand_ins <= set(components)
    assert [c for c in components if c not in stand_ins] == [
        "emulator",
        "issuer",
        "gateway",
        "gateway-hpc",
        "gateway-rogue",
    ]
    assert components["gateway"].address == site_outputs["central"]["gateway_address"]
    assert components["gateway-hpc"].address == site_outputs["hpc"]["gateway_address"]
    assert all(c.alive for c in components.values())


def test_local_site_config_errors_name_the_key(tmp_path: Path) -> None:
    from dask_platform.config.errors import StackConfigError
    from dask_platform.local.config import load_local_config

    with pytest.raises(
        StackConfigError, match=r"local.sites: names must be unique \(repeated: a\)"
    ):
        load_local_config(overrides={"local": {"sites": [{"name": "a"}, {"name": "a"}]}})
    with pytest.raises(
        StackConfigError, match=r"local.sites.0.extra_config: .*nope.py is not a file"
    ):
        load_local_config(
            overrides={
                "local": {"sites": [{"name": "a", "extra_config": [str(tmp_path / "nope.py")]}]}
            }
        )
    with pytest.raises(
        StackConfigError, match=r"local.gateway_auth: Input should be 'password' or 'oidc'"
    ):
        load_local_config(overrides={"local": {"gateway_auth": "kerberos"}})
