"""The runbook CLI against the federated local platform (federation.py): `outputs`,
`verify-workers` (clean site passes; the rogue site, whose gateway pastes a key pair into
clusters, fails), `clusters list | stop --idle-for`, and `images drift --gateway-cluster`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dask_platform.cli import app
from dask_platform.local.platform import LocalPlatform
from dask_platform.runbooks import remote

from ..examples import EXAMPLE_ACCESS_KEY_ID
from .conftest import new_cluster

pytest_plugins = ("tests.integration.federation",)

REPO = Path(__file__).resolve().parents[2]
FIXTURE_OUTPUTS = REPO / "tests" / "fixtures" / "outputs"
runner = CliRunner()


def run(*args: str, input: str | None = None) -> Any:
    # Wide enough that table cells (role ARNs, messages) are not folded in the assertions.
    result = runner.invoke(app, list(args), input=input, env={"COLUMNS": "250"})
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def state(federation: LocalPlatform) -> str:
    return str(federation.state_dir)


# --------------------------------------------------------------------------- outputs


def test_outputs_shows_the_local_sites_outputs(state: str, site_outputs: dict) -> None:
    result = run("outputs", "--state-dir", state, "--site", "hpc")
    assert result.exit_code == 0, result.output
    assert site_outputs["hpc"]["gateway_address"] in result.output
    assert "site hpc" in result.output
    assert "every output clients need is present" in result.output


def test_outputs_json_is_the_file(state: str, site_outputs: dict) -> None:
    result = run("outputs", "--state-dir", state, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == site_outputs["central"]


def test_outputs_of_a_pulumi_stack_file_pass() -> None:
    result = run("outputs", "--outputs", str(FIXTURE_OUTPUTS / "prod.json"))
    assert result.exit_code == 0, result.output
    assert "site prod" in result.output
    assert "https://keycloak.example.org/realms/earth" in result.output
    assert "│ kubeconfig" in result.output
    assert "[secret]" in result.output, "printed as text, not read as markup"


@pytest.mark.parametrize(
    ("mutation", "finding"),
    [
        (
            lambda o: o["site"].update(note=EXAMPLE_ACCESS_KEY_ID),
            "site.note: contains an AWS access key id",
        ),
        (
            lambda o: o.update(default_environment={"AWS_SECRET_ACCESS_KEY": "x" * 40}),
            "default_environment.AWS_SECRET_ACCESS_KEY",
        ),
        (lambda o: o.pop("gateway_address"), "gateway_address: missing (clients need it)"),
    ],
)
def test_outputs_findings_exit_1(tmp_path: Path, mutation: Callable, finding: str) -> None:
    outputs = json.loads((FIXTURE_OUTPUTS / "prod.json").read_text())
    mutation(outputs)
    file = tmp_path / "outputs.json"
    file.write_text(json.dumps(outputs))
    result = run("outputs", "--outputs", str(file))
    assert result.exit_code == 1
    assert finding in result.output


def test_outputs_of_a_missing_file_exit_2(tmp_path: Path) -> None:
    result = run("outputs", "--outputs", str(tmp_path / "nope.json"))
    assert result.exit_code == 2
    assert "no such file" in result.output
    assert "pulumi stack output --json" in result.output


# --------------------------------------------------------------------------- verify-workers


def test_verify_workers_passes_on_a_clean_site(state: str, site_outputs: dict) -> None:
    result = run("verify-workers", "--state-dir", state, "--site", "central", "--user", "alice")
    assert result.exit_code == 0, result.output
    role = site_outputs["central"]["team_role_arns"]["hydrology"].rsplit("/", 1)[-1]
    assert f"2 worker(s) hold no key and act as {role} only" in result.output
    assert result.output.count(role) == 3, "two workers and the verdict name the role"
    assert result.output.count("denied ✓") == 2
    assert result.output.count("write+read ✓") == 2
    assert result.output.count("= client ✓") == 2


def test_verify_workers_fails_on_the_rogue_site(state: str, rogue_key_id: str) -> None:
    result = run(
        "verify-workers", "--state-dir", state, "--site", "rogue", "--user", "alice", "-n", "1"
    )
    assert result.exit_code == 1, result.output
    assert "AWS key variable(s) in the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY" in (
        result.output
    )
    # The pasted key (not valid at the emulator) replaced the team role: no identity at all.
    assert "no AWS identity (ClientError InvalidClientTokenId)" in result.output
    assert rogue_key_id not in result.output, "names only, never values"


def test_verify_workers_attaches_to_a_running_cluster(
    state: str, oidc_gateway_as: Callable[..., Any]
) -> None:
    cluster = new_cluster(oidc_gateway_as("bob", "central"), 1)
    try:
        result = run(
            "verify-workers", "--state-dir", state, "--user", "bob", "--cluster", cluster.name
        )
        assert result.exit_code == 0, result.output
        assert f"verify-workers: {cluster.name} at site central (team climate)" in result.output
        assert "1 worker(s) hold no key" in result.output
        assert cluster.name in {c.name for c in oidc_gateway_as("bob", "central").list_clusters()}
    finally:
        cluster.shutdown()


def test_verify_workers_for_a_user_in_no_team_is_a_clear_error(state: str) -> None:
    result = run("verify-workers", "--state-dir", state, "--user", "carol")
    assert result.exit_code == 2
    assert "belongs to no team" in result.output


def test_verify_workers_names_unknown_sites_and_users(state: str) -> None:
    result = run("verify-workers", "--state-dir", state, "--site", "mars", "--user", "alice")
    assert result.exit_code == 2
    assert "'mars' is not a known site; known sites: central, hpc, rogue" in result.output
    result = run("verify-workers", "--state-dir", state, "--user", "mallory")
    assert result.exit_code == 2
    assert "'mallory' is not a user of the local platform; users: alice, bob, carol" in (
        result.output
    )


def test_probes_travel_by_value(tmp_path: Path) -> None:
    """Production workers do not have this project installed: the probe must unpickle and
    run where `import dask_platform` fails."""
    import cloudpickle

    remote.by_value()
    payload = tmp_path / "probe.pkl"
    payload.write_bytes(cloudpickle.dumps(remote.worker_team))
    script = (
        "import pickle, sys\n"
        "sys.modules['dask_platform'] = None  # importing it now raises ImportError\n"
        f"probe = pickle.loads(open({str(payload)!r}, 'rb').read())\n"
        "print(probe())\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={"DASK_PLATFORM_TEAM": "oceans", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "oceans"


# --------------------------------------------------------------------------- clusters


@pytest.fixture
def three_clusters(oidc_gateway_as: Callable[..., Any]) -> Iterator[dict[str, Any]]:
    """alice: one idle and one busy cluster on central; bob: one idle cluster on central."""
    alice = oidc_gateway_as("alice", "central")
    bob = oidc_gateway_as("bob", "central")
    idle = alice.new_cluster()
    busy = new_cluster(alice, 1)
    other = bob.new_cluster()
    client = busy.get_client()
    running = client.submit(time.sleep, 120, pure=False)
    time.sleep(4)  # the idle clusters have done nothing for a few seconds
    yield {"idle": idle, "busy": busy, "other": other, "running": running, "alice": alice}
    running.cancel()
    for cluster in (idle, busy, other):
        cluster.shutdown()


def test_clusters_list_shows_only_the_callers_clusters(state: str, three_clusters: dict) -> None:
    result = run("clusters", "list", "--state-dir", state, "--user", "alice")
    assert result.exit_code == 0, result.output
    assert three_clusters["idle"].name in result.output
    assert three_clusters["busy"].name in result.output
    assert three_clusters["other"].name not in result.output, "bob's cluster is not alice's"
    assert "busy" in result.output


def test_clusters_list_with_idle_for_flags_idle_clusters(state: str, three_clusters: dict) -> None:
    result = run("clusters", "list", "--state-dir", state, "--user", "alice", "--idle-for", "3s")
    assert result.exit_code == 1, result.output
    assert f"central/{three_clusters['idle'].name} idle for at least 3s" in result.output
    assert f"central/{three_clusters['busy'].name} idle" not in result.output


def test_clusters_stop_idle_for_stops_only_the_callers_idle_clusters(
    state: str, three_clusters: dict, oidc_gateway_as: Callable[..., Any]
) -> None:
    dry = run(
        "clusters", "stop", "--state-dir", state, "--user", "alice", "--idle-for", "3s", "--dry-run"
    )
    assert dry.exit_code == 0, dry.output
    assert "would stop 1 cluster(s)" in dry.output

    result = run("clusters", "stop", "--state-dir", state, "--user", "alice", "--idle-for", "3s")

    assert result.exit_code == 0, result.output
    assert "stopped 1 cluster(s)" in result.output
    remaining_alice = {c.name for c in three_clusters["alice"].list_clusters()}
    assert three_clusters["idle"].name not in remaining_alice
    assert three_clusters["busy"].name in remaining_alice, "a busy cluster is kept"
    assert not three_clusters["running"].done(), "its computation was not interrupted"
    remaining_bob = {c.name for c in oidc_gateway_as("bob", "central").list_clusters()}
    assert three_clusters["other"].name in remaining_bob, "another user's cluster is untouched"


def test_clusters_across_all_sites(
    state: str, oidc_gateway_as: Callable[..., Any], federation: LocalPlatform
) -> None:
    on_hpc = oidc_gateway_as("alice", "hpc").new_cluster()
    try:
        only_central = run("clusters", "list", "--state-dir", state, "--user", "alice")
        assert on_hpc.name not in only_central.output
        every = run("clusters", "list", "--state-dir", state, "--user", "alice", "--all-sites")
        assert every.exit_code == 0, every.output
        assert on_hpc.name in every.output
        stop = run(
            "clusters",
            "stop",
            on_hpc.name,
            "--state-dir",
            state,
            "--user",
            "alice",
            "--site",
            "hpc",
        )
        assert stop.exit_code == 0, stop.output
        assert on_hpc.name not in {c.name for c in oidc_gateway_as("alice", "hpc").list_clusters()}
    finally:
        on_hpc.shutdown()


def test_clusters_usage_errors(state: str) -> None:
    nothing = run("clusters", "stop", "--state-dir", state, "--user", "alice")
    assert nothing.exit_code == 2
    assert "give cluster names or --idle-for DURATION" in nothing.output
    bad = run("clusters", "list", "--state-dir", state, "--user", "alice", "--idle-for", "soon")
    assert bad.exit_code == 2
    assert "'soon' is not a duration; e.g. 90s, 30m, 2h" in bad.output
    both = run("clusters", "list", "--state-dir", state, "--site", "hpc", "--all-sites")
    assert both.exit_code == 2
    assert "--site and --all-sites: give one" in both.output
    missing = run("clusters", "stop", "no-such-cluster", "--state-dir", state, "--user", "alice")
    assert missing.exit_code == 1
    assert "no-such-cluster: not one of your clusters" in missing.output


def test_clusters_list_reports_an_unreachable_site(state: str, federation: LocalPlatform) -> None:
    federation.stop_gateway("rogue")
    try:
        result = run("clusters", "list", "--state-dir", state, "--user", "alice", "--all-sites")
    finally:
        federation.restart_gateway("rogue")
    assert result.exit_code == 1
    # The client environment's dask-gateway fix names the address and what answered there.
    assert "site unreachable: rogue: GatewayAddressError: gateway address http://127.0.0.1:" in (
        result.output
    )
    assert "the connection failed ([Errno 111] Connection refused)" in result.output


# --------------------------------------------------------------------------- images drift


def test_images_drift_on_a_gateway_cluster_of_a_site(
    state: str, oidc_gateway_as: Callable[..., Any]
) -> None:
    cluster = new_cluster(oidc_gateway_as("alice", "hpc"), 1)
    try:
        result = run(
            "images",
            "drift",
            "--gateway-cluster",
            cluster.name,
            "--state-dir",
            state,
            "--site",
            "hpc",
            "--user",
            "alice",
        )
        assert result.exit_code == 0, result.output
        assert "scheduler" in result.output
        assert "worker tls://" in result.output
        assert "shared packages, no drift" in result.output
        assert cluster.name in {c.name for c in oidc_gateway_as("alice", "hpc").list_clusters()}
    finally:
        cluster.shutdown()
