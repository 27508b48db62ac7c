"""Run a Pulumi program of this repository under Pulumi's mocks (the one allowed stand-in) with
a recorder the test holds, so a test can see what the program declared even when it raises, and
choose what the mocked AWS answers (the account of the deploying credentials)."""

from __future__ import annotations

import contextvars
import runpy
import sys
from pathlib import Path
from typing import Any

import yaml

from dask_platform.pulumi_eval import ensure_event_loop, pulumi_config_for_stack
from dask_platform.pulumi_mocks import RecordingMocks


def run_program(project_dir: Path, stack: str, recording: RecordingMocks) -> None:
    """Run the program ``project_dir``'s ``Pulumi.yaml`` names for ``Pulumi.<stack>.yaml``;
    ``recording`` answers the resource registrations and calls (``aws.get_caller_identity``
    answers with ``recording.account_id``) and keeps every resource declared. Raises whatever
    the program raises, as ``pulumi up`` would fail with it."""
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime import settings as pulumi_settings
    from pulumi.runtime.sync_await import _sync_await

    project = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    program = project_dir / str(project.get("main", "."))
    config, secret_keys = pulumi_config_for_stack(project_dir, stack)

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args: Any) -> tuple[str, dict[str, Any]]:
            return recording.new_resource(args)

        def call(self, args: Any) -> tuple[dict[str, Any], list[Any]]:
            result, failures = recording.call(args)
            return result, failures or []

    def run() -> None:
        pulumi_settings.set_root_resource(None)  # type: ignore[arg-type]
        pulumi.runtime.set_all_config(config, secret_keys)
        ensure_event_loop()
        pulumi_mocks.set_mocks(Mocks(), project=str(project["name"]), stack=stack, preview=False)
        main = str(program / "__main__.py")
        _sync_await(
            pulumi.runtime.stack.run_pulumi_func(lambda: runpy.run_path(main, run_name="__main__"))
        )

    sys.path.insert(0, str(program))
    try:
        # Pulumi's runtime settings live in context variables: a copy keeps them to this run.
        contextvars.copy_context().run(run)
    finally:
        sys.path.remove(str(program))


def declared(recording: RecordingMocks) -> list[str]:
    """``type name`` of each resource the program declared (providers and stacks left out)."""
    return [f"{r.type} {r.name}" for r in recording.records if not r.type.startswith("pulumi:")]
