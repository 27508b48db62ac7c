"""`dask-platform local up | down | status`: the embedded platform, start to stop.

Order of `up`: emulator -> object store stand-ins -> users -> issuer (also the users' identity
provider) -> provisioning (the Pulumi program's resources replayed: local/provision.py) -> one
gateway per site (`local.sites`; they share the emulator, the issuer and the teams, as the
sites of one federation share the identity provider). The first site's gateway is the
component `gateway`, the others `gateway-<site>`; the first site's outputs are outputs.json.
Any failure stops what was started and names the component, with the end of its log.

The jobs live in their own modules: the state directory's layout and files (local/state.py),
the processes (local/supervisor.py), the gateway's generated config file
(local/gateway_files.py), the outputs (local/outputs.py), the waits (local/settings.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from dask_platform.local.config import DEFAULT_STATE_DIR, LocalConfig, load_local_config
from dask_platform.local.emulator import Emulator
from dask_platform.local.gateway_files import gateway_overlay, write_gateway_files
from dask_platform.local.object_stores import (
    local_object_store_outputs,
    record_stores,
    start_stand_ins,
    store_key_pairs,
    write_aws_config,
)
from dask_platform.local.object_stores import spawned as stand_in_components
from dask_platform.local.outputs import LocalSiteOverlay, local_outputs, site_auth
from dask_platform.local.passwords import write_users_file
from dask_platform.local.processes import (
    ComponentError,
    Spawned,
    free_port,
    is_alive,
    marked_processes,
    port_in_use,
    read_json,
    terminate,
    write_json_atomic,
)
from dask_platform.local.provision import LocalOverlay, Provisioned, provision
from dask_platform.local.settings import LocalTimeouts
from dask_platform.local.state import NotRunningError, StateDir
from dask_platform.local.supervisor import (
    COMPONENTS,
    ComponentStatus,
    DownReport,
    component_statuses,
    start_gateway,
    start_issuer,
    stop_run,
)

__all__ = [
    "COMPONENTS",
    "AlreadyRunningError",
    "ComponentStatus",
    "DownReport",
    "LocalPlatform",
    "NotRunningError",
]
Progress = Callable[[str], None]


class AlreadyRunningError(ComponentError):
    pass


def _quiet(message: str) -> None:
    return None


class LocalPlatform:
    def __init__(
        self,
        state_dir: Path = DEFAULT_STATE_DIR,
        config: LocalConfig | None = None,
        gateway_port: int | None = None,
        container_image: str | None = None,
        timeouts: LocalTimeouts | None = None,
    ) -> None:
        self.files = StateDir(state_dir)
        self.state_dir = self.files.root
        self._config = config
        self.gateway_port = gateway_port
        # Run schedulers and workers as containers of this image (podman) instead of processes
        # of this virtualenv (dask_platform.local.containers).
        self.container_image = container_image
        self.timeouts = timeouts if timeouts is not None else LocalTimeouts.from_environment()
        # What the replay made (the evaluation and its identifiers), for callers in-process.
        self.provisioned: Provisioned | None = None

    # ------------------------------------------------------------------ config and state

    @property
    def config(self) -> LocalConfig:
        if self._config is None:
            self._config = load_local_config()
        return self._config

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

    # The state directory's paths and files (dask_platform.local.state.StateDir).
    @property
    def state_file(self) -> Path:
        return self.files.state_file

    @property
    def outputs_file(self) -> Path:
        return self.files.outputs_file

    @property
    def gateway_dir(self) -> Path:
        return self.files.gateway_dir

    def site_dir(self, site: str) -> Path:
        return self.files.site_dir(site)

    def config_dir(self, site: str) -> Path:
        return self.files.config_dir(site)

    def config_file(self, site: str) -> Path:
        return self.files.config_file(site)

    def site_outputs_file(self, site: str) -> Path:
        return self.files.site_outputs_file(site)

    def dask_config_dir(self, user: str) -> Path:
        return self.files.dask_config_dir(user)

    def log(self, name: str) -> Path:
        return self.files.log(name)

    def state(self) -> dict[str, Any] | None:
        return self.files.state()

    def outputs(self) -> dict[str, Any]:
        return self.files.outputs()

    def passwords(self) -> dict[str, str]:
        return self.files.passwords()

    def issuer_info(self) -> dict[str, Any]:
        return self.files.issuer_info()

    def emulator(self) -> Emulator:
        return Emulator.attach(self.state_dir, region=self.config.stack.region)

    # ------------------------------------------------------------------ up

    def _refuse_or_clean_previous_run(self, progress: Progress) -> None:
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

    def up(self, progress: Progress = _quiet) -> dict[str, Any]:
        """Start every component, provision, write the outputs; returns the first site's outputs.

        Raises ChartError (nothing started) when the pinned gateway chart is not in the chart
        cache, StackConfigError / ComponentError naming the problem (what was started is stopped).
        """
        from dask_platform.charts import chart_archive

        chart_archive("dask-gateway")  # the gateway config is the chart's: fail before starting
        self._refuse_or_clean_previous_run(progress)
        config = self.config
        files = self.files
        files.make_directories()
        started: dict[str, Spawned] = {}

        def save() -> None:
            files.save_state(config.source, started)

        try:
            progress("starting the AWS emulator (moto, IAM enforcement on)")
            emulator = Emulator(
                self.state_dir,
                region=config.stack.region,
                web_identity_duration=config.local.web_identity_session_seconds,
                marker=self.state_dir,
            ).start(timeout=self.timeouts.emulator_ready_seconds)
            started["emulator"] = emulator.spawned
            save()
            # Object stores: one stand-in emulator per store (dask_platform.local.object_stores).
            stand_ins = start_stand_ins(self.state_dir, config.stack.object_stores, self.state_dir)
            started.update(stand_in_components(stand_ins))
            save()

            # Users first: the issuer is also their identity provider.
            passwords = write_users_file(
                files.users_file,
                {name: list(user.groups) for name, user in config.local.users.items()},
            )
            write_json_atomic(files.passwords_file, passwords)

            progress("starting the OIDC issuer, identity provider and token projector")
            started["issuer"] = start_issuer(files, config, self.timeouts)
            save()
            issuer = self.issuer_info()

            progress("provisioning the emulator: the Pulumi program's S3/IAM/KMS/secrets")
            provisioned = provision(
                config.stack_document,
                emulator,
                LocalOverlay(
                    oidc_issuer=issuer["url"], object_store_keys=store_key_pairs(stand_ins)
                ),
            )
            self.provisioned = provisioned
            exported = provisioned.translate(provisioned.evaluation.outputs)
            exported_stores = exported.get("object_stores") or {}
            record_stores(
                self.state_dir,
                {name: store["secret_arn"] for name, store in exported_stores.items()},
                stand_ins,
            )
            write_aws_config(config.stack, emulator, self.state_dir)

            site_outputs: dict[str, dict[str, Any]] = {}
            for index, site in enumerate(config.local.sites):
                progress(f"starting dask-gateway-server for site {site.name}")
                proxy_port = (self.gateway_port if index == 0 else None) or free_port()
                overlay = gateway_overlay(
                    files,
                    config,
                    site,
                    aws_endpoint_url=emulator.endpoint,
                    issuer=issuer,
                    team_role_arns=exported["team_role_arns"],
                    proxy_port=proxy_port,
                    container_image=self.container_image,
                    timeouts=self.timeouts,
                )
                write_gateway_files(files, config, site, overlay)
                component = self.component_of(site.name)
                started[component] = start_gateway(files, site.name, component, self.timeouts)
                save()
                site_outputs[site.name] = local_outputs(
                    provisioned,
                    LocalSiteOverlay(
                        site=site_output_of(site.name, config, issuer["url"]),
                        gateway_port=proxy_port,
                        aws_endpoint_url=emulator.endpoint,
                        service_account_token_files={
                            team: issuer["token_files"][account]
                            for team, account in exported["service_accounts"].items()
                        },
                        users={name: config.teams_of(name) for name in config.local.users},
                        state_dir=self.state_dir,
                        site_outputs={n: str(files.site_outputs_file(n)) for n in self.sites},
                        object_stores=local_object_store_outputs(exported_stores, self.state_dir)
                        if exported_stores
                        else None,
                    ),
                )
            for name, site_output in site_outputs.items():
                write_json_atomic(files.site_outputs_file(name), site_output, mode=0o644)
            outputs = site_outputs[self.sites[0]]
            write_json_atomic(files.outputs_file, outputs, mode=0o644)
            self._write_dask_configs(outputs, passwords)
            return outputs
        except BaseException:
            terminate([s.pid for s in started.values()], timeout=self.timeouts.stop_grace_seconds)
            files.state_file.unlink(missing_ok=True)
            raise

    def _write_dask_configs(self, outputs: dict[str, Any], passwords: dict[str, str]) -> None:
        from dask_platform.dask_config import dask_config_from_outputs, write_dask_config

        for user, password in passwords.items():
            config = dask_config_from_outputs(outputs, username=user, password=password)
            write_dask_config(self.dask_config_dir(user), config)

    # ------------------------------------------------------------------ one site's gateway

    def restart_gateway(self, site: str | None = None) -> None:
        """Stop and start one site's gateway only (default: the first site's); its clusters
        keep running, its state is in SQLite."""
        site = site or self.sites[0]
        component = self.component_of(site)
        state = self.state()
        if state is None or component not in state["components"]:
            raise NotRunningError("the local platform is not running")
        terminate([state["components"][component]["pid"]], timeout=self.timeouts.stop_grace_seconds)
        self.files.save_component(
            component, start_gateway(self.files, site, component, self.timeouts)
        )

    def stop_gateway(self, site: str) -> None:
        """Stop one site's gateway (a site outage; its clusters keep running)."""
        state = self.state()
        component = self.component_of(site)
        if state is None or component not in state["components"]:
            raise NotRunningError("the local platform is not running")
        terminate([state["components"][component]["pid"]], timeout=self.timeouts.stop_grace_seconds)

    # ------------------------------------------------------------------ status and down

    def status(self) -> list[ComponentStatus]:
        outputs = read_json(self.outputs_file) if self.outputs_file.is_file() else {}
        addresses = {
            "emulator": outputs.get("aws_endpoint_url", ""),
            "issuer": outputs.get("oidc_issuer_url", ""),
            "gateway": outputs.get("gateway_address", ""),
        }
        for site, path in (outputs.get("site_outputs") or {}).items():
            if Path(path).is_file():
                addresses[f"gateway-{site}"] = read_json(Path(path))["gateway_address"]
        return component_statuses(self.files, addresses, self.timeouts)

    def down(self) -> DownReport:
        report = stop_run(self.files, self.timeouts)
        self.files.remove_run_files()
        return report


def site_output_of(site: str, config: LocalConfig, issuer_url: str) -> dict[str, Any]:
    """The ``site`` output of a local site: its name, how its gateway authenticates."""
    from dask_platform.sites import site_output

    return site_output(site, config.stack, auth=site_auth(config.local, issuer_url))
