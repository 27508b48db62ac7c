"""What analysts moving a Pangeo / HyTEST notebook type, against the real local gateway
(issue 16): their environment habits are refused or normalised at `new_cluster`, before
anything starts and with no FAILED record; errors name the whole range or every choice; the
gateway's state is private; a refused request never hangs the next one."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from dask_platform.credentials import MAX_VALUE_BYTES
from dask_platform.local.platform import LocalPlatform
from tests.examples import SECRET_HINT

EVERY_STATUS = ["pending", "running", "stopping", "stopped", "failed"]
NAME_RULE = "(letters, digits, '_', '-' or '.', not starting with a digit)"
TYPE_RULE = "a process environment holds strings (str, or bool, int, float, which are converted)"


def every_cluster(gateway: Any) -> set[str]:
    return {report.name for report in gateway.list_clusters(status=EVERY_STATUS)}


def refused(gateway: Any, **options: Any) -> str:
    """The error of ``gateway.new_cluster(**options)``; asserts no record of any status."""
    before = every_cluster(gateway)
    with pytest.raises(ValueError) as caught:  # noqa: PT011 - the exact text is asserted
        gateway.new_cluster(**options)
    assert every_cluster(gateway) == before
    return str(caught.value)


def test_a_notebooks_whole_environment_is_refused_naming_each_token(
    gateway_as: Callable[[str], Any],
) -> None:
    """HyTEST's `options.environment = dict(os.environ)` from a JupyterHub notebook."""
    gateway = gateway_as("alice")
    options = gateway.cluster_options()
    options.environment = {
        "PATH": "/opt/venv/bin:/usr/bin",
        "HOME": "/home/jovyan",
        "JUPYTERHUB_API_TOKEN": "hub-token-value",
        "GITHUB_TOKEN": "ghp_example",
        "JUPYTERHUB_USER": "alice",
    }
    message = refused(gateway, cluster_options=options)
    assert message == f"environment: GITHUB_TOKEN, JUPYTERHUB_API_TOKEN {SECRET_HINT}"


def test_the_hub_token_never_reaches_the_gateways_state(
    platform: LocalPlatform, gateway_as: Callable[[str], Any]
) -> None:
    gateway = gateway_as("alice")
    refused(gateway, environment={"JUPYTERHUB_API_TOKEN": "hub-token-never-stored"})
    for path in platform.gateway_dir.rglob("*"):
        if path.is_file():
            assert b"hub-token-never-stored" not in path.read_bytes(), path


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        (
            {"WORKERS_SEE_THIS": None},
            f"environment: WORKERS_SEE_THIS has a value of type None; {TYPE_RULE}",
        ),
        (
            {"PACKAGES": ["xarray", "zarr"]},
            f"environment: PACKAGES has a value of type list; {TYPE_RULE}",
        ),
        ({"SETTINGS": {"a": 1}}, f"environment: SETTINGS has a value of type dict; {TYPE_RULE}"),
        (
            {"A=B": "1"},
            "environment: 'A=B' is not a valid variable name: '=' separates a name from its "
            f"value in a process environment {NAME_RULE}",
        ),
        ({"": "1"}, f"environment: an empty variable name is not allowed {NAME_RULE}"),
        (
            {"MY_VARIABLE": "before\x00after"},
            "environment: MY_VARIABLE contains a NUL byte, which no process environment can hold",
        ),
        (
            {"BIG": "x" * 200_000},
            f"environment: BIG is 200000 bytes; a value may be at most {MAX_VALUE_BYTES} bytes "
            "(put data in the team's scratch bucket, not in the environment)",
        ),
    ],
    ids=["none", "list", "mapping", "equals-in-name", "empty-name", "nul-byte", "200-kb"],
)
def test_an_environment_no_process_can_hold_is_refused_at_new_cluster(
    environment: dict[str, Any], message: str, gateway_as: Callable[[str], Any]
) -> None:
    assert refused(gateway_as("alice"), environment=environment) == message


def test_several_bad_entries_get_every_problem_not_a_server_error(
    gateway_as: Callable[[str], Any],
) -> None:
    """Found by a reviewer: two bad entries made the gateway answer 500 (an HTTP reason cannot
    hold the newline that joined the problems)."""
    message = refused(gateway_as("alice"), environment={"X": None, "A=B": "1"})
    assert "environment: X has a value of type None" in message
    assert "environment: 'A=B' is not a valid variable name" in message


def test_pangeo_scalar_settings_reach_the_scheduler_as_dask_config(
    gateway_as: Callable[[str], Any],
) -> None:
    """Pangeo's documented `{"DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": False, ...}`."""
    gateway = gateway_as("alice")
    cluster = gateway.new_cluster(
        environment={
            "DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING": False,
            "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": 5,
        }
    )
    try:
        with cluster.get_client() as client:
            seen = client.run_on_scheduler(
                lambda: (
                    __import__("dask").config.get("distributed.scheduler.work-stealing"),
                    __import__("dask").config.get("distributed.scheduler.allowed-failures"),
                    __import__("os").environ["DASK_DISTRIBUTED__SCHEDULER__WORK_STEALING"],
                )
            )
        assert list(seen) == [False, 5, "False"]
    finally:
        cluster.shutdown()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"worker_cores": 3}, "worker_cores: 3 is outside 1 to 2"),
        ({"worker_memory": 4}, "worker_memory: 4 is outside 0.5 to 2"),
        (
            {"team": "climate"},
            "team: 'climate' is not one you may choose; choose one of: hydrology",
        ),
    ],
)
def test_refused_options_name_the_whole_range_or_every_choice(
    options: dict[str, Any], message: str, gateway_as: Callable[[str], Any]
) -> None:
    assert refused(gateway_as("alice"), **options) == message


def test_the_gateways_state_is_private_to_the_operator(
    platform: LocalPlatform, alice_cluster: Any
) -> None:
    site_dir = platform.site_dir(platform.sites[0])
    for directory in (platform.gateway_dir, site_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    database = site_dir / "gateway.sqlite"
    assert database.stat().st_size > 0  # the gateway uses the file it was given
    for path in site_dir.glob("gateway.sqlite*"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


REFUSED_THEN_CLUSTER = r"""
import gc, json, sys, threading

if sys.argv[1] == "without-fix":
    sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != "_PatchOnImport"]

from dask_gateway import BasicAuth, Gateway

address, proxy, user, password = sys.argv[2:6]

def gateway():
    return Gateway(address, proxy_address=proxy, auth=BasicAuth(user, password))

# Where the cyclic collector runs decides whether the defect shows; make it run where it did
# in the analysts' sessions: in the IO-loop thread the next Gateway() starts.
gc.disable()
errors = []
for _ in range(3):
    try:
        gateway().new_cluster(environment={"AWS_SECRET_ACCESS_KEY": "x"})
    except ValueError as error:
        errors.append(str(error).split(".")[0])

def collect_in_new_io_loop(frame, event, arg):
    if threading.current_thread().name == "IO loop":
        threading.settrace(None)  # threads started later: untraced
        sys.settrace(None)  # this thread: once
        gc.collect()
    return None

threading.settrace(collect_in_new_io_loop)
try:
    cluster = gateway().new_cluster()
    started = cluster.status
    cluster.shutdown()
except BaseException as error:
    started = f"{type(error).__name__}: {error}"
print(json.dumps({"errors": errors, "started": started}))
"""


def run_refused_then_cluster(mode: str, platform: LocalPlatform) -> dict[str, Any]:
    outputs = platform.outputs()
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            REFUSED_THEN_CLUSTER,
            mode,
            outputs["gateway_address"],
            outputs["gateway_proxy_address"],
            "alice",
            platform.passwords()["alice"],
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.timeout(300)
def test_three_refused_requests_then_a_cluster_in_one_process(platform: LocalPlatform) -> None:
    """A fresh interpreter, as a notebook kernel is, with the client environment's fix."""
    result = run_refused_then_cluster("with-fix", platform)
    assert result == {
        "errors": ["environment: AWS_SECRET_ACCESS_KEY may not be set"] * 3,
        "started": "running",
    }


@pytest.mark.timeout(300)
def test_without_the_fix_the_next_gateway_cannot_start(platform: LocalPlatform) -> None:
    """The defect the fix removes (dask-gateway 2026.3.0 + distributed 2026.8): proves the
    regression test above can fail."""
    result = run_refused_then_cluster("without-fix", platform)
    assert result["errors"] == ["environment: AWS_SECRET_ACCESS_KEY may not be set"] * 3
    assert result["started"] == "AssertionError: "
