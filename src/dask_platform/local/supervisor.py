"""The local platform's processes: start the issuer and the gateways and wait until they are
ready, check their health, stop everything a run started (schedulers and workers included).

Every wait is a declared setting (:class:`dask_platform.local.settings.LocalTimeouts`).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from dask_platform.local.config import LocalConfig
from dask_platform.local.processes import (
    MARKER_ENV,
    ComponentError,
    Spawned,
    clean_environment,
    is_alive,
    log_tail,
    marked_processes,
    port_in_use,
    spawn,
    terminate,
    wait_for,
    write_json_atomic,
)
from dask_platform.local.settings import LocalTimeouts
from dask_platform.local.state import StateDir

COMPONENTS = ("emulator", "issuer", "gateway")
"""The fixed components; a second site's gateway is ``gateway-<site>`` (after these)."""


@dataclass
class ComponentStatus:
    name: str
    pid: int | None
    alive: bool
    address: str
    log: Path
    detail: str = ""


@dataclass
class DownReport:
    stopped: list[str]
    leftovers: list[int]


def ordered(components: Mapping[str, Any]) -> list[str]:
    """Start order: the fixed components, then the further sites' gateways as started."""
    fixed = [name for name in COMPONENTS if name in components]
    return fixed + [name for name in components if name not in COMPONENTS]


def start_issuer(state: StateDir, config: LocalConfig, timeouts: LocalTimeouts) -> Spawned:
    """The OIDC issuer, identity provider and token projector; its facts go to issuer.json."""
    from dask_platform.local.issuer_server import READY_FILE

    spec = state.issuer_dir / "spec.json"
    oidc = config.local.oidc
    write_json_atomic(
        spec,
        {
            "tokens_dir": str(state.tokens_dir),
            "namespace": config.stack.gateway.namespace,
            "teams": config.stack.team_names,
            "token_seconds": config.local.service_account_token_seconds,
            "identity_provider": {
                "users_file": str(state.users_file),
                "client_id": oidc.client_id,
                "audience": oidc.audience,
                "groups_claim": oidc.groups_claim,
                "access_token_seconds": oidc.access_token_seconds,
                "refresh_token_seconds": oidc.refresh_token_seconds,
                "device_code_seconds": oidc.device_code_seconds,
                "device_poll_seconds": oidc.device_poll_seconds,
            },
        },
    )
    state.issuer_file.unlink(missing_ok=True)
    spawned = spawn(
        "issuer",
        [
            sys.executable,
            "-m",
            "dask_platform.local.issuer_server",
            "--state-dir",
            str(state.issuer_dir),
            "--spec",
            str(spec),
        ],
        clean_environment(os.environ, {MARKER_ENV: str(state.root)}),
        state.log("issuer"),
        cwd=state.root,
    )
    info = wait_for(
        spawned,
        state.issuer_dir / READY_FILE,
        timeouts.issuer_ready_seconds,
        lambda d: d["pid"] == spawned.pid,
    )
    write_json_atomic(state.issuer_file, info)
    return spawned


def health_problem(address: str, timeouts: LocalTimeouts) -> str | None:
    """None if the gateway at ``address`` answers /api/health with 200, else why not."""
    try:
        requests.get(
            address + "/api/health", timeout=timeouts.health_request_seconds
        ).raise_for_status()
    except requests.RequestException as exc:
        return str(exc)
    return None


def start_gateway(state: StateDir, site: str, component: str, timeouts: LocalTimeouts) -> Spawned:
    """dask-gateway-server on the site's config file; returns once /api/health answers."""
    overlay = state.overlay(site)
    if port_in_use(overlay["proxy_port"]):
        raise ComponentError(f"gateway port {overlay['proxy_port']} on 127.0.0.1 is already in use")
    bin_dir = str(Path(sys.executable).parent)
    env = clean_environment(
        os.environ,
        {
            # The API container's env from the rendered Deployment (gateway.env).
            **overlay["gateway_env"],
            "DASK_GATEWAY_ENCRYPT_KEYS": (state.site_dir(site) / "encrypt-key").read_text(),
            MARKER_ENV: str(state.root),
            # `dask scheduler` / `dask worker` come from this virtualenv.
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
        },
    )
    spawned = spawn(
        component,
        [sys.executable, "-m", "dask_gateway_server", "-f", str(state.config_file(site))],
        env,
        state.log(component),
        cwd=state.site_dir(site),
    )
    address = f"http://127.0.0.1:{overlay['proxy_port']}"
    deadline = time.monotonic() + timeouts.gateway_ready_seconds
    while time.monotonic() < deadline:
        if not is_alive(spawned.pid):
            raise ComponentError(
                f"{component} exited while starting (pid {spawned.pid}); last lines of "
                f"{spawned.log}:\n{log_tail(spawned.log)}"
            )
        if health_problem(address, timeouts) is None:
            return spawned
        time.sleep(timeouts.health_poll_seconds)
    terminate([spawned.pid], timeout=timeouts.stop_grace_seconds)
    raise ComponentError(
        f"{component} did not answer {address}/api/health within "
        f"{timeouts.gateway_ready_seconds:g}s (DASK_PLATFORM_LOCAL_GATEWAY_READY_SECONDS); "
        f"last lines of {spawned.log}:\n{log_tail(spawned.log)}"
    )


def component_statuses(
    state: StateDir, addresses: Mapping[str, str], timeouts: LocalTimeouts
) -> list[ComponentStatus]:
    """Each component of the run: alive, and for gateways, answering /api/health."""
    run = state.state()
    if run is None:
        return []
    result = []
    for name in ordered(run["components"]):
        entry = run["components"][name]
        alive = is_alive(entry["pid"])
        detail = "" if alive else f"exited; last lines of its log:\n{log_tail(Path(entry['log']))}"
        address = addresses.get(name, "")
        if alive and name.startswith("gateway") and address:
            problem = health_problem(address, timeouts)
            if problem is not None:
                alive, detail = False, f"process runs but /api/health fails: {problem}"
        result.append(
            ComponentStatus(name, entry["pid"], alive, address, Path(entry["log"]), detail)
        )
    return result


def stop_run(state: StateDir, timeouts: LocalTimeouts) -> DownReport:
    """Stop the run's components (gateways first, so nothing starts new workers), then the
    schedulers and workers (their own sessions, found by the marker), then the containers."""
    from dask_platform.local.containers import remove_containers

    run = state.state()
    stopped: list[str] = []
    if run is not None:
        for name in reversed(ordered(run["components"])):
            terminate([run["components"][name]["pid"]], timeout=timeouts.stop_grace_seconds)
            stopped.append(name)
    leftovers: list[int] = []
    for _ in range(3):
        procs = marked_processes(state.root)
        if not procs:
            leftovers = []
            break
        leftovers = terminate([p.pid for p in procs], timeout=timeouts.stop_grace_seconds)
    remove_containers(str(state.root))
    return DownReport(stopped=stopped, leftovers=leftovers)
