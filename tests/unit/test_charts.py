"""The chart cache: pinned archives are read from DASK_PLATFORM_CHART_CACHE only, checked against
their sha256 pins, and every way it can be wrong is one ChartError that says how to fix it."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from dask_platform import charts
from dask_platform.charts import CHART_CACHE_ENV, ChartError

REPO = Path(__file__).resolve().parents[2]
GATEWAY = charts.chart_pin("dask-gateway")
# The cache the suite runs with (the Makefile's, or tests/conftest.py's default), before any
# test points the setting elsewhere.
SUITE_CACHE = Path(os.environ.get(CHART_CACHE_ENV, "<unset: no chart cache for the suite>"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty chart cache of the test's own, set as the product's setting."""
    directory = tmp_path / "charts"
    directory.mkdir()
    monkeypatch.setenv(CHART_CACHE_ENV, str(directory))
    return directory


def test_every_pinned_archive_is_in_the_cache_with_its_pinned_bytes() -> None:
    for pin in charts.chart_pins().values():
        path = charts.chart_archive(pin.name)
        assert path.name == f"{pin.name}-{pin.version}.tgz"


def test_values_are_checked_against_the_schema_helm_does_not_apply() -> None:
    """dask-gateway's archive carries values.schema.yaml only, which Helm never reads: a
    misspelled key renders silently, and values_schema_problems is what catches it."""
    names = {m.split("/", 1)[1] for m in _members(charts.chart_archive("dask-gateway"))}
    assert "values.schema.yaml" in names
    assert "values.schema.json" not in names
    misspelled = {"gateway": {"extraconfig": {"oops": "pass"}}}
    assert charts.render("dask-gateway", misspelled, release="r", namespace="n")
    (problem,) = charts.values_schema_problems("dask-gateway", misspelled)
    assert problem.startswith("gateway: Additional properties are not allowed")
    assert "'extraconfig' was unexpected" in problem
    wrong_type = {"gateway": {"replicas": "two"}}
    assert charts.values_schema_problems("dask-gateway", wrong_type) == [
        "gateway.replicas: 'two' is not of type 'integer'"
    ]
    # The chart's own defaults conform; a chart without a schema has nothing to break.
    assert charts.values_schema_problems("dask-gateway", {}) == []
    assert charts.values_schema_problems("karpenter-crd", {"anything": 1}) == []


def _members(archive: Path) -> list[str]:
    import tarfile

    with tarfile.open(archive) as opened:
        return opened.getnames()


def test_unset_cache_is_one_error_naming_the_setting_and_the_pull_commands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(CHART_CACHE_ENV, raising=False)
    with pytest.raises(ChartError) as caught:
        charts.chart_file("dask-gateway", "values.schema.yaml")
    message = str(caught.value)
    assert f"{CHART_CACHE_ENV} is not set" in message
    assert (
        "helm pull dask-gateway --version 2026.3.0 --repo https://helm.dask.org -d <cache>"
        in message
    )
    assert "helm pull oci://public.ecr.aws/karpenter/karpenter --version 1.14.1" in message


def test_cache_that_is_not_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-such-cache"
    monkeypatch.setenv(CHART_CACHE_ENV, str(missing))
    with pytest.raises(ChartError, match=re.escape(f"{CHART_CACHE_ENV}={missing} is not a dir")):
        charts.chart_archive("dask-gateway")


def test_archive_missing_from_the_cache_names_chart_version_and_fetch_command(cache: Path) -> None:
    with pytest.raises(ChartError) as caught:
        charts.chart_file("dask-gateway", "values.yaml")
    assert str(caught.value) == (
        f"chart dask-gateway 2026.3.0: dask-gateway-2026.3.0.tgz is not in the chart cache "
        f"{cache} ({CHART_CACHE_ENV}); fetch it with: helm pull dask-gateway --version 2026.3.0 "
        f"--repo https://helm.dask.org -d {cache}"
    )


def test_corrupted_archive_is_refused_by_its_digest(cache: Path) -> None:
    corrupted = cache / GATEWAY.archive_name
    data = bytearray((SUITE_CACHE / GATEWAY.archive_name).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte
    corrupted.write_bytes(bytes(data))
    for read in (
        lambda: charts.chart_archive("dask-gateway"),
        lambda: charts.chart_file("dask-gateway", "values.schema.yaml"),
        lambda: charts.render("dask-gateway", {}, release="r", namespace="n"),
    ):
        with pytest.raises(ChartError) as caught:
            read()
        message = str(caught.value)
        assert f"{corrupted} has sha256 " in message
        assert f"not the pinned {GATEWAY.sha256}" in message
        assert "helm pull dask-gateway --version 2026.3.0" in message


def test_a_good_copy_in_another_cache_is_accepted(cache: Path) -> None:
    shutil.copy(SUITE_CACHE / GATEWAY.archive_name, cache)
    assert charts.chart_archive("dask-gateway") == cache / GATEWAY.archive_name
    assert charts.values_schema_problems("dask-gateway", {}) == []


def test_unpinned_chart_and_unpinned_version_are_refused() -> None:
    with pytest.raises(ChartError, match=r"chart 'traefik' is not pinned in helm/charts.yaml"):
        charts.chart_pin("traefik")
    with pytest.raises(ChartError, match=r"dask-gateway 2025.4.0 is not the pinned version"):
        charts.chart_pin("dask-gateway", "2025.4.0")
    with pytest.raises(ChartError, match=r"dask-gateway 2025.4.0 is not the pinned version"):
        charts.chart_file("dask-gateway", "values.yaml", "2025.4.0")


def test_release_chart_references_resolve_to_pins() -> None:
    assert charts.pin_of_reference("dask-gateway", "2026.3.0", "https://helm.dask.org") == GATEWAY
    karpenter = charts.pin_of_reference("oci://public.ecr.aws/karpenter/karpenter", "1.14.1")
    assert (karpenter.name, karpenter.version) == ("karpenter", "1.14.1")
    with pytest.raises(
        ChartError, match=re.escape("repository https://example.org/charts is not the pinned")
    ):
        charts.pin_of_reference("dask-gateway", "2026.3.0", "https://example.org/charts")
    with pytest.raises(
        ChartError, match=re.escape("repository oci://ghcr.io/other is not the pinned")
    ):
        charts.pin_of_reference("oci://ghcr.io/other/karpenter", "1.14.1")


def test_chart_crds_are_the_archive_crds_directory() -> None:
    crds = charts.chart_crds("dask-gateway")
    assert sorted(crds) == ["dask-gateway/crds/daskclusters.yaml", "dask-gateway/crds/traefik.yaml"]
    kinds = {o["spec"]["names"]["kind"] for _, o in charts.documents(crds)}
    assert {"DaskCluster", "IngressRoute", "Middleware"} <= kinds


def test_no_product_code_reads_the_workspace_or_a_machine_path() -> None:
    """Only the Makefile and the tests point at the workspace's copy of the charts."""
    offenders = []
    for directory in ("src", "infra", "scripts", "policies", "helm", "bench"):
        for path in (REPO / directory).rglob("*"):
            if not path.is_file() or path.suffix not in {".py", ".yaml", ".yml", ""}:
                continue
            text = path.read_text(errors="replace")
            for needle in ("/" + "work/", "shared/upstream", "DASK_GATEWAY_CHART_DIR"):
                if needle in text:
                    offenders.append(f"{path.relative_to(REPO)}: {needle}")
    assert offenders == []


def test_the_local_platform_without_a_chart_cache_is_one_error_and_starts_nothing(
    tmp_path, monkeypatch
):
    """`local up` (the demo starts the platform the same way) without the chart cache: one
    line naming the setting and the `helm pull` commands, exit 1, and no component started
    (the state directory holds no state)."""
    from typer.testing import CliRunner

    from dask_platform.cli import app

    monkeypatch.delenv(CHART_CACHE_ENV, raising=False)
    state = tmp_path / "state"
    result = CliRunner().invoke(app, ["local", "up", "--state-dir", str(state)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{CHART_CACHE_ENV} is not set" in " ".join(result.output.split())
    assert "helm pull dask-gateway --version" in " ".join(result.output.split())
    assert not (state / "state.json").exists()
