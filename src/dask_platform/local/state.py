"""The local platform's state directory: where each file is, reading and writing them.

Layout (``.dask-platform/`` by default, gitignored)::

    state.json          which components run (pids, logs); written by `up`, removed by `down`
    outputs.json        the Pulumi program's exports plus the local overlay (local/outputs.py)
    emulator.json       endpoint + admin credentials of the AWS emulator (0600)
    issuer.json         issuer URL, admin token, token files (0600)
    sites/<site>.json   one outputs file per site (a site's `pulumi stack output --json`)
    users.json          users: groups + scrypt hashes; passwords.json (0600) the passwords
    tokens/<team>/token the projected ServiceAccount tokens (rotated by the issuer)
    gateway/<site>/     per site: overlay, SQLite state, cluster dirs, and etc-dask-gateway/:
                        the chart's rendered gateway ConfigMap files (as the API pod mounts
                        them at /etc/dask-gateway/), its dask_gateway_config.py with the local
                        overlay appended (local/gateway_files.py)
    object-stores/, aws/ the object stores' stand-ins and the platform AWS config
    dask/<user>/        a DASK_CONFIG directory per user
    logs/               one log per component
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dask_platform.gateway_pods import CONFIG_FILE
from dask_platform.local.issuer_server import READY_FILE as ISSUER_READY
from dask_platform.local.processes import ComponentError, Spawned, read_json, write_json_atomic

RUN_FILES = ("state.json", "outputs.json", "emulator.json", ISSUER_READY, "passwords.json")
"""Files of one run, removed by `down` (users.json and logs/ stay for a post-mortem)."""
RUN_DIRECTORIES = ("gateway", "sites", "tokens", "issuer", "object-stores", "aws", "dask")
"""Directories of one run, removed by `down`."""


class NotRunningError(ComponentError):
    pass


class StateDir:
    """Paths under the state directory ``root`` and the run's state files."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    @property
    def state_file(self) -> Path:
        return self.root / "state.json"

    @property
    def outputs_file(self) -> Path:
        return self.root / "outputs.json"

    @property
    def users_file(self) -> Path:
        return self.root / "users.json"

    @property
    def passwords_file(self) -> Path:
        return self.root / "passwords.json"

    @property
    def issuer_file(self) -> Path:
        """The issuer's facts (URL, token files), copied from its own directory when ready."""
        return self.root / ISSUER_READY

    @property
    def issuer_dir(self) -> Path:
        return self.root / "issuer"

    @property
    def tokens_dir(self) -> Path:
        return self.root / "tokens"

    @property
    def gateway_dir(self) -> Path:
        return self.root / "gateway"

    def site_dir(self, site: str) -> Path:
        return self.gateway_dir / site

    def config_dir(self, site: str) -> Path:
        """A site's /etc/dask-gateway/: the rendered gateway ConfigMap's files."""
        return self.site_dir(site) / "etc-dask-gateway"

    def config_file(self, site: str) -> Path:
        """The file a site's gateway runs: the chart's rendered dask_gateway_config.py (as the
        API pod runs it) with the local overlay appended."""
        return self.config_dir(site) / CONFIG_FILE

    def overlay_file(self, site: str) -> Path:
        return self.site_dir(site) / "overlay.json"

    def site_outputs_file(self, site: str) -> Path:
        return self.root / "sites" / f"{site}.json"

    def dask_config_dir(self, user: str) -> Path:
        """The directory to point ``DASK_CONFIG`` at to be ``user`` on the first site."""
        return self.root / "dask" / user

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"

    def make_directories(self) -> None:
        for sub in ("logs", "tokens", "gateway", "sites"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ reading

    def state(self) -> dict[str, Any] | None:
        if not self.state_file.is_file():
            return None
        data: dict[str, Any] = read_json(self.state_file)
        return data

    def outputs(self) -> dict[str, Any]:
        if not self.outputs_file.is_file():
            raise NotRunningError(
                f"the local platform is not running ({self.outputs_file} is missing); "
                "start it with `dask-platform local up`"
            )
        data: dict[str, Any] = read_json(self.outputs_file)
        return data

    def passwords(self) -> dict[str, str]:
        data: dict[str, str] = read_json(self.passwords_file)
        return data

    def issuer_info(self) -> dict[str, Any]:
        data: dict[str, Any] = read_json(self.issuer_file)
        return data

    def overlay(self, site: str) -> dict[str, Any]:
        data: dict[str, Any] = read_json(self.overlay_file(site))
        return data

    # ------------------------------------------------------------------ writing

    def save_state(self, config_source: str, started: Mapping[str, Spawned]) -> None:
        write_json_atomic(
            self.state_file,
            {
                "config": config_source,
                "started": time.time(),
                "components": {n: {"pid": s.pid, "log": str(s.log)} for n, s in started.items()},
            },
        )

    def save_component(self, name: str, spawned: Spawned) -> None:
        state = self.state()
        if state is None:
            raise NotRunningError("the local platform is not running")
        state["components"][name] = {"pid": spawned.pid, "log": str(spawned.log)}
        write_json_atomic(self.state_file, state)

    def remove_run_files(self) -> None:
        """Remove what one run wrote (see :data:`RUN_FILES`, :data:`RUN_DIRECTORIES`)."""
        for name in RUN_FILES:
            (self.root / name).unlink(missing_ok=True)
        for name in RUN_DIRECTORIES:
            shutil.rmtree(self.root / name, ignore_errors=True)
