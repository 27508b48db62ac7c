"""`dask-platform local up | down | status`: the embedded platform's processes and state.

Layout of the state directory (``.local/``, gitignored)::

    state.json          which components run (pids, logs); written by `up`, removed by `down`
    outputs.json        the same keys as the Pulumi stack outputs, plus local-only extras
    emulator.json       endpoint + admin credentials of the AWS emulator (0600)
    issuer.json         issuer URL, admin token, token files (0600)
    sites/<site>.json   one outputs file per site (a site's `pulumi stack output --json`)
    users.json          users: groups + scrypt hashes; passwords.json (0600) the passwords
    tokens/<team>/token the projected ServiceAccount tokens (rotated by the issuer)
    gateway/<site>/     per site: overlay, SQLite state, cluster dirs, and etc-dask-gateway/:
                        the chart's rendered gateway ConfigMap files (as the API pod mounts
                        them at /etc/dask-gateway/), its dask_gateway_config.py with the local
                        overlay appended
    logs/               one log per component

Order of `up`: emulator -> users -> issuer (also the users' identity provider) -> provisioning
(from the stack config) -> one gateway per site (`local.sites`; they share the emulator, the
issuer and the teams, as the sites of one federation share the identity provider). The first
site's gateway is the component `gateway`, the others `gateway-<site>`; the first site's outputs
are outputs.json. Any failure stops what was started and names the component, with the end of
its log.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from dask_platform.gateway_pods import CONFIG_FILE, render_gateway, write_config_files
from dask_platform.iam import service_account_name
from dask_platform.local.config import (
    DEFAULT_STATE_DIR,
    LocalConfig,
    LocalSite,
    load_local_config,
)
from dask_platform.local.emulator import Emulator
from dask_platform.local.issuer import READY_FILE as ISSUER_READY
from dask_platform.local.object_stores import (
    aws_config_path,
    local_object_store_outputs,
    record_stores,
    start_stand_ins,
    store_key_pairs,
    write_aws_config,
)
from dask_platform.local.object_stores import spawned as stand_in_components
from dask_platform.local.outputs import LocalSiteOverlay, local_outputs
from dask_platform.local.passwords import write_users_file
from dask_platform.local.processes import (
    MARKER_ENV,
    ComponentError,
    Spawned,
    clean_environment,
    free_port,
    is_alive,
    log_tail,
    marked_processes,
    port_in_use,
    read_json,
    spawn,
    terminate,
    wait_for,
    write_json_atomic,
)
from dask_platform.local.provision import LocalOverlay, Provisioned, provision

COMPONENTS = ("emulator", "issuer", "gateway")
"""The fixed components; a second site's gateway is ``gateway-<site>`` (after these)."""
Progress = Callable[[str], None]


class AlreadyRunningError(ComponentError):
    pass


class NotRunningError(ComponentError):
    pass


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


def _quiet(message: str) -> None:
    return None


class LocalPlatform:
    def __init__(
        self,
        state_dir: Path = DEFAULT_STATE_DIR,
        config: LocalConfig | None = None,
        gateway_port: int | None = None,
        container_image: str | None = None,
    ) -> None:
        self.state_dir = Path(state_dir).resolve()
        self._config = config
        self.gateway_port = gateway_port
        # Run schedulers and workers as containers of this image (podman) instead of processes
        # of this virtualenv (dask_platform.local.containers).
        self.container_image = container_image
        self.provisioned: Provisioned | None = None

    # ------------------------------------------------------------------ paths and state

    @property
    def config(self) -> LocalConfig:
        if self._config is None:
            self._config = load_local_config()
        return self._config

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    @property
    def outputs_file(self) -> Path:
        return self.state_dir / "outputs.json"

    @property
    def gateway_dir(self) -> Path:
        return self.state_dir / "gateway"

    def site_dir(self, site: str) -> Path:
        return self.gateway_dir / site

    def config_dir(self, site: str) -> Path:
        """A site's /etc/dask-gateway/: the rendered gateway ConfigMap's files."""
        return self.site_dir(site) / "etc-dask-gateway"

    def config_file(self, site: str) -> Path:
        """The file a site's gateway runs: the chart's rendered dask_gateway_config.py (as the
        API pod runs it) with the local overlay appended."""
        return self.config_dir(site) / CONFIG_FILE

    def site_outputs_file(self, site: str) -> Path:
        return self.state_dir / "sites" / f"{site}.json"

    @property
    def sites(self) -> list[str]:
        return [site.name for site in self.config.local.sites]

    def component_of(self, site: str) -> str:
        """The state-file name of a site's gateway: ``gateway`` for the first site."""
        if site not in self.sites:
            raise NotRunningError(
                f"site: {site!r} is not a site of this platform; sites: {', '.join(self.sites)}"
            )
        return "gateway" if site == self.sites[0] else f"gateway-{site}"

    def log(self, name: str) -> Path:
        return self.state_dir / "logs" / f"{name}.log"

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
        data: dict[str, str] = read_json(self.state_dir / "passwords.json")
        return data

    def emulator(self) -> Emulator:
        return Emulator.attach(self.state_dir, region=self.config.stack.region)

    def issuer_info(self) -> dict[str, Any]:
        data: dict[str, Any] = read_json(self.state_dir / ISSUER_READY)
        return data

    # ------------------------------------------------------------------ up

    def up(self, progress: Progress = _quiet) -> dict[str, Any]:
        state = self.state()
        if state is not None:
            alive = {n: c["pid"] for n, c in state["components"].items() if is_alive(c["pid"])}
            if alive:
                listing = ", ".join(f"{n} (pid {p})" for n, p in alive.items())
                raise AlreadyRunningError(
                    f"the local platform is already running in {self.state_dir}: {listing}. "
                    "See `dask-platform local status`, or stop it with `dask-platform local down`."
                )
            progress("a previous run ended without `local down`; cleaning it up")
            self.down()
        elif marked_processes(self.state_dir):
            # Schedulers/workers of a run whose state file is gone (e.g. removed by hand).
            progress("stopping processes left by a previous run")
            self.down()
        if self.gateway_port is not None and port_in_use(self.gateway_port):
            raise ComponentError(
                f"gateway port {self.gateway_port} on 127.0.0.1 is already in use; choose "
                "another with --gateway-port or free it"
            )
        config = self.config
        for sub in ("logs", "tokens", "gateway", "sites"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        started: dict[str, Spawned] = {}
        try:
            progress("starting the AWS emulator (moto, IAM enforcement on)")
            emulator = Emulator(
                self.state_dir,
                region=config.stack.region,
                web_identity_duration=config.local.web_identity_session_seconds,
                marker=self.state_dir,
            ).start()
            started["emulator"] = emulator.spawned
            self._save_state(started)
            # Object stores: one stand-in emulator per store (dask_platform.local.object_stores).
            stand_ins = start_stand_ins(self.state_dir, config.stack.object_stores, self.state_dir)
            started.update(stand_in_components(stand_ins))
            self._save_state(started)

            # Users first: the issuer is also their identity provider.
            passwords = write_users_file(
                self.state_dir / "users.json",
                {name: list(user.groups) for name, user in config.local.users.items()},
            )
            write_json_atomic(self.state_dir / "passwords.json", passwords)

            progress("starting the OIDC issuer, identity provider and token projector")
            started["issuer"] = self._start_issuer()
            self._save_state(started)
            issuer = self.issuer_info()

            progress("provisioning the emulator: the Pulumi program's S3/IAM/KMS/secrets")
            provisioned = provision(
                config.stack_document,
                emulator,
                LocalOverlay(
                    oidc_issuer=issuer["url"], object_store_keys=store_key_pairs(stand_ins)
                ),
            )
            # What the replay made (the evaluation and its identifiers), for callers in-process.
            self.provisioned = provisioned
            exported = provisioned.translate(provisioned.evaluation.outputs)
            record_stores(
                self.state_dir,
                {n: s["secret_arn"] for n, s in (exported.get("object_stores") or {}).items()},
                stand_ins,
            )
            write_aws_config(config.stack, emulator, self.state_dir)

            site_outputs: dict[str, dict[str, Any]] = {}
            for index, site in enumerate(config.local.sites):
                progress(f"starting dask-gateway-server for site {site.name}")
                proxy_port = (self.gateway_port if index == 0 else None) or free_port()
                self._write_gateway_files(emulator, issuer, provisioned, proxy_port, site)
                started[self.component_of(site.name)] = self._start_gateway(site.name)
                self._save_state(started)
                site_outputs[site.name] = self._outputs(
                    emulator, issuer, provisioned, proxy_port, site.name
                )
            for name, site_output in site_outputs.items():
                write_json_atomic(self.site_outputs_file(name), site_output, mode=0o644)
            outputs = site_outputs[self.sites[0]]
            write_json_atomic(self.outputs_file, outputs, mode=0o644)
            self._write_dask_configs(outputs, passwords)
            return outputs
        except BaseException:
            terminate([s.pid for s in started.values()])
            self.state_file.unlink(missing_ok=True)
            raise

    def dask_config_dir(self, user: str) -> Path:
        """The directory to point ``DASK_CONFIG`` at to be ``user`` on the first site."""
        return self.state_dir / "dask" / user

    def _write_dask_configs(self, outputs: dict[str, Any], passwords: dict[str, str]) -> None:
        from dask_platform.dask_config import dask_config_from_outputs, write_dask_config

        for user, password in passwords.items():
            config = dask_config_from_outputs(outputs, username=user, password=password)
            write_dask_config(self.dask_config_dir(user), config)

    def _save_state(self, started: dict[str, Spawned]) -> None:
        write_json_atomic(
            self.state_file,
            {
                "config": self.config.source,
                "started": time.time(),
                "components": {n: {"pid": s.pid, "log": str(s.log)} for n, s in started.items()},
            },
        )

    def _start_issuer(self) -> Spawned:
        config = self.config
        spec = self.state_dir / "issuer" / "spec.json"
        write_json_atomic(
            spec,
            {
                "tokens_dir": str(self.state_dir / "tokens"),
                "namespace": config.stack.gateway.namespace,
                "teams": config.stack.team_names,
                "token_seconds": config.local.service_account_token_seconds,
                "identity_provider": {
                    "users_file": str(self.state_dir / "users.json"),
                    "client_id": config.local.oidc.client_id,
                    "audience": config.local.oidc.audience,
                    "groups_claim": config.local.oidc.groups_claim,
                    "access_token_seconds": config.local.oidc.access_token_seconds,
                    "refresh_token_seconds": config.local.oidc.refresh_token_seconds,
                    "device_code_seconds": config.local.oidc.device_code_seconds,
                    "device_poll_seconds": config.local.oidc.device_poll_seconds,
                },
            },
        )
        (self.state_dir / ISSUER_READY).unlink(missing_ok=True)
        spawned = spawn(
            "issuer",
            [
                sys.executable,
                "-m",
                "dask_platform.local.issuer",
                "--state-dir",
                str(self.state_dir / "issuer"),
                "--spec",
                str(spec),
            ],
            clean_environment(os.environ, {MARKER_ENV: str(self.state_dir)}),
            self.log("issuer"),
            cwd=self.state_dir,
        )
        info = wait_for(
            spawned, self.state_dir / "issuer" / ISSUER_READY, 30, lambda d: d["pid"] == spawned.pid
        )
        write_json_atomic(self.state_dir / ISSUER_READY, info)
        return spawned

    def _write_gateway_files(
        self,
        emulator: Emulator,
        issuer: dict[str, Any],
        provisioned: Provisioned,
        proxy_port: int,
        site: LocalSite,
    ) -> None:
        config = self.config
        namespace = config.stack.gateway.namespace
        site_dir = self.site_dir(site.name)
        oidc = config.local.oidc
        overlay = {
            "site": site.name,
            "state_dir": str(self.state_dir),
            "gateway_dir": str(site_dir),
            "api_port": free_port(),
            "proxy_port": proxy_port,
            "users_file": str(self.state_dir / "users.json"),
            "aws_endpoint_url": emulator.endpoint,
            # The platform AWS config (default endpoint, object store profiles): what the
            # scheduler and worker pods get mounted on EKS.
            "aws_config_file": str(aws_config_path(self.state_dir)),
            "region": config.stack.region,
            "idle_timeout_seconds": config.local.idle_timeout_seconds,
            "no_client_timeout_seconds": config.local.no_client_timeout_seconds,
            "namespace": namespace,
            # The ServiceAccount annotations: eks.amazonaws.com/role-arn on EKS.
            "service_accounts": {
                service_account_name(team): {
                    "role_arn": arn,
                    "token_file": issuer["token_files"][service_account_name(team)],
                }
                for team, arn in provisioned.translate(
                    provisioned.evaluation.outputs["team_role_arns"]
                ).items()
            },
            "auth": config.local.gateway_auth,
            "container_image": self.container_image,
            "oidc": {
                "issuer": issuer["url"],
                "audience": oidc.audience,
                "groups_claim": oidc.groups_claim,
                "jwks_refetch_seconds": oidc.jwks_refetch_seconds,
            },
        }
        # The gateway's state (SQLite: cluster options, TLS keys) is the operator's alone: 0600
        # files in 0700 directories. SQLite gives its journal the database file's mode.
        for directory in (self.gateway_dir, site_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            directory.chmod(0o700)
        database = site_dir / "gateway.sqlite"
        database.touch(mode=0o600)
        database.chmod(0o600)
        key_file = site_dir / "encrypt-key"
        if not key_file.is_file():
            # Fernet key for the gateway's SQLite state (cluster TLS keys are stored in it).
            key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(key)
        # The file the API pod runs on EKS: the pinned chart rendered with the stack's values
        # (the ConfigMap's files, mounted as the chart mounts them), then a short overlay.
        rendered = render_gateway(config.stack)
        config_file = write_config_files(rendered.gateway_files, self.config_dir(site.name))
        overlay["gateway_env"] = rendered.gateway_env
        write_json_atomic(site_dir / "overlay.json", overlay)
        # Further config files come last and run in this file's namespace (they see `c` as the
        # platform left it), as the chart exec()s further gateway.extraConfig entries on EKS.
        extra = "".join(
            f"exec(compile(open({str(path)!r}).read(), {str(path)!r}, 'exec'))  # noqa: S102\n"
            for path in site.extra_config
        )
        config_file.write_text(
            rendered.gateway_files[CONFIG_FILE].rstrip("\n") + "\n\n"
            "# Appended by `dask-platform local up`. Everything above is the chart's rendered\n"
            "# file, as the API pod runs it. The local overlay (dask_platform.local.webhook):\n"
            "# the local backend and the EKS pod-identity webhook's part; then the site's\n"
            "# extra_config files.\n"
            "from dask_platform.local.webhook import configure_local_gateway\n\n"
            f"configure_local_gateway(c, {str(site_dir / 'overlay.json')!r})  # noqa: F821\n"
            + extra
        )

    def _gateway_overlay(self, site: str) -> dict[str, Any]:
        data: dict[str, Any] = read_json(self.site_dir(site) / "overlay.json")
        return data

    def _start_gateway(self, site: str) -> Spawned:
        overlay = self._gateway_overlay(site)
        site_dir = self.site_dir(site)
        component = self.component_of(site)
        if port_in_use(overlay["proxy_port"]):
            raise ComponentError(
                f"gateway port {overlay['proxy_port']} on 127.0.0.1 is already in use"
            )
        bin_dir = str(Path(sys.executable).parent)
        env = clean_environment(
            os.environ,
            {
                # The API container's env from the rendered Deployment (gateway.env).
                **overlay["gateway_env"],
                "DASK_GATEWAY_ENCRYPT_KEYS": (site_dir / "encrypt-key").read_text(),
                MARKER_ENV: str(self.state_dir),
                # `dask scheduler` / `dask worker` come from this virtualenv.
                "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            },
        )
        spawned = spawn(
            component,
            [
                sys.executable,
                "-m",
                "dask_gateway_server",
                "-f",
                str(self.config_file(site)),
            ],
            env,
            self.log(component),
            cwd=site_dir,
        )
        health = f"http://127.0.0.1:{overlay['proxy_port']}/api/health"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if not is_alive(spawned.pid):
                raise ComponentError(
                    f"{component} exited while starting (pid {spawned.pid}); last lines of "
                    f"{spawned.log}:\n{log_tail(spawned.log)}"
                )
            try:
                if requests.get(health, timeout=2).status_code == 200:
                    return spawned
            except requests.RequestException:
                pass
            time.sleep(0.2)
        terminate([spawned.pid])
        raise ComponentError(
            f"{component} did not answer {health} within 60s; last lines of {spawned.log}:\n"
            f"{log_tail(spawned.log)}"
        )

    def restart_gateway(self, site: str | None = None) -> None:
        """Stop and start one site's gateway only (default: the first site's); its clusters
        keep running, its state is in SQLite."""
        component = self.component_of(site or self.sites[0])
        state = self.state()
        if state is None or component not in state["components"]:
            raise NotRunningError("the local platform is not running")
        terminate([state["components"][component]["pid"]])
        spawned = self._start_gateway(site or self.sites[0])
        state["components"][component] = {"pid": spawned.pid, "log": str(spawned.log)}
        write_json_atomic(self.state_file, state)

    def stop_gateway(self, site: str) -> None:
        """Stop one site's gateway (a site outage; its clusters keep running)."""
        state = self.state()
        component = self.component_of(site)
        if state is None or component not in state["components"]:
            raise NotRunningError("the local platform is not running")
        terminate([state["components"][component]["pid"]])

    def _outputs(
        self,
        emulator: Emulator,
        issuer: dict[str, Any],
        provisioned: Provisioned,
        port: int,
        site: str,
    ) -> dict[str, Any]:
        from dask_platform.sites import site_output

        stack = self.config.stack
        local = self.config.local
        if local.gateway_auth == "oidc":
            auth: dict[str, Any] = {
                "type": "custom",
                "oidc": {
                    "issuer": issuer["url"],
                    "audience": local.oidc.audience,
                    "client_id": local.oidc.client_id,
                    "groups_claim": local.oidc.groups_claim,
                },
            }
        else:
            # Each user's own password over HTTP Basic, as with `simple` auth.
            auth = {"type": "simple"}
        exported_stores = provisioned.translate(provisioned.evaluation.outputs).get("object_stores")
        return local_outputs(
            provisioned,
            LocalSiteOverlay(
                site=site_output(site, stack, auth=auth),
                gateway_port=port,
                aws_endpoint_url=emulator.endpoint,
                service_account_token_files={
                    t: issuer["token_files"][service_account_name(t)] for t in stack.team_names
                },
                users={name: self.config.teams_of(name) for name in local.users},
                state_dir=self.state_dir,
                site_outputs={name: str(self.site_outputs_file(name)) for name in self.sites},
                object_stores=local_object_store_outputs(exported_stores, self.state_dir)
                if exported_stores
                else None,
            ),
        )

    # ------------------------------------------------------------------ status and down

    def status(self) -> list[ComponentStatus]:
        state = self.state()
        if state is None:
            return []
        outputs = read_json(self.outputs_file) if self.outputs_file.is_file() else {}
        addresses = {
            "emulator": outputs.get("aws_endpoint_url", ""),
            "issuer": outputs.get("oidc_issuer_url", ""),
            "gateway": outputs.get("gateway_address", ""),
        }
        for site, path in (outputs.get("site_outputs") or {}).items():
            if Path(path).is_file():
                addresses[f"gateway-{site}"] = read_json(Path(path))["gateway_address"]
        result = []
        for name in _ordered(state["components"]):
            entry = state["components"][name]
            alive = is_alive(entry["pid"])
            detail = (
                "" if alive else f"exited; last lines of its log:\n{log_tail(Path(entry['log']))}"
            )
            address = addresses.get(name, "")
            if alive and name.startswith("gateway") and address:
                try:
                    requests.get(address + "/api/health", timeout=2).raise_for_status()
                except requests.RequestException as exc:
                    alive, detail = False, f"process runs but /api/health fails: {exc}"
            result.append(
                ComponentStatus(name, entry["pid"], alive, address, Path(entry["log"]), detail)
            )
        return result

    def down(self) -> DownReport:
        state = self.state()
        stopped: list[str] = []
        if state is not None:
            # Gateways first, so nothing starts new workers while the rest stops.
            for name in reversed(_ordered(state["components"])):
                terminate([state["components"][name]["pid"]])
                stopped.append(name)
        # Schedulers and workers live in their own sessions; they carry the marker.
        leftovers: list[int] = []
        for _ in range(3):
            procs = marked_processes(self.state_dir)
            if not procs:
                leftovers = []
                break
            leftovers = terminate([p.pid for p in procs])
        from dask_platform.local.containers import remove_containers

        remove_containers(str(self.state_dir))
        for path in ("state.json", "outputs.json", "emulator.json", ISSUER_READY, "passwords.json"):
            (self.state_dir / path).unlink(missing_ok=True)
        shutil.rmtree(self.gateway_dir, ignore_errors=True)
        shutil.rmtree(self.state_dir / "sites", ignore_errors=True)
        shutil.rmtree(self.state_dir / "tokens", ignore_errors=True)
        shutil.rmtree(self.state_dir / "issuer", ignore_errors=True)
        shutil.rmtree(self.state_dir / "object-stores", ignore_errors=True)
        shutil.rmtree(self.state_dir / "aws", ignore_errors=True)
        shutil.rmtree(self.state_dir / "dask", ignore_errors=True)
        return DownReport(stopped=stopped, leftovers=leftovers)


def _ordered(components: dict[str, Any]) -> list[str]:
    """Start order: the fixed components, then the further sites' gateways as started."""
    fixed = [name for name in COMPONENTS if name in components]
    return fixed + [name for name in components if name not in COMPONENTS]
