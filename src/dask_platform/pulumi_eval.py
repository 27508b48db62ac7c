"""Evaluate the Pulumi program for a committed stack under Pulumi's unit-test mocks.

The Pulumi CLI and provider plugins cannot run here (nor in CI), so this is the one stand-in in
the project: the whole of ``infra/__main__.py`` runs for real, every resource it declares is
recorded with its resolved inputs, and the stack exports are resolved. The unit tests, the
offline policy gate (``dask-platform plan``) and the benchmarks all use this one harness.

This module drives the program (its stack config as Pulumi's runtime config, the program's
modules run afresh, stack references answered from the referenced stacks' evaluations); what the
mocks record and answer is :mod:`dask_platform.pulumi_mocks`.
"""

from __future__ import annotations

import contextvars
import json
import runpy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from dask_platform.config.models import ImageRefs
from dask_platform.config.sources import NAMESPACE, read_stack_file
from dask_platform.object_store_deploy import offline_object_store_keys
from dask_platform.project import project_root
from dask_platform.pulumi_mocks import (
    ACCOUNT_ID,
    UNDECRYPTED_SECRET,
    Evaluation,
    RecordingMocks,
)


def pulumi_config_for_stack(
    project_dir: Path, stack: str, secrets: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """The stack file as the engine would hand it to the program: see :func:`pulumi_config`."""
    return pulumi_config(read_stack_file(project_dir, stack), secrets)


def pulumi_config(
    raw: Mapping[str, Any], secrets: Mapping[str, str] | None = None
) -> tuple[dict[str, str], list[str]]:
    """A stack's raw ``config:`` mapping (namespaced keys) as the engine hands it to the
    program: every value a string (objects as JSON) and the list of secret keys. A secure value
    (``{"secure": ...}``) is ``secrets[key]`` when given (its decrypted text, e.g. from a test),
    else the placeholder :data:`UNDECRYPTED_SECRET`."""
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in raw.items():
        if isinstance(value, dict) and set(value) == {"secure"}:
            secret_keys.append(key)
            config[key] = (secrets or {}).get(key, UNDECRYPTED_SECRET)
            if key == f"{NAMESPACE}:object_store_keys" and key not in (secrets or {}):
                # structured: one entry per store
                config[key] = offline_object_store_keys(raw, NAMESPACE)
        elif isinstance(value, str):
            config[key] = value
        else:
            config[key] = json.dumps(value)
    return config, secret_keys


def _project_name(project_dir: Path) -> str:
    document = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    return str(document["name"])


def _program_dir(project_dir: Path) -> Path:
    document = yaml.safe_load((project_dir / "Pulumi.yaml").read_text())
    return project_dir / str(document.get("main", "."))


def _forget_program_modules(program: Path) -> None:
    """Drop the program directory's top-level modules and packages from ``sys.modules``."""
    names = {p.stem for p in program.glob("*.py")} | {
        p.name for p in program.iterdir() if p.is_dir() and any(p.glob("*.py"))
    }
    names.discard("__main__")
    for module in list(sys.modules):
        if module.split(".", 1)[0] in names:
            del sys.modules[module]


def ensure_event_loop() -> None:
    """Give the calling thread a current asyncio event loop if it has none (or a closed one).

    Pulumi's mocks (``set_mocks``, every resource's outputs) create futures on the thread's
    current loop; ``asyncio.run()`` anywhere earlier in the process leaves the main thread
    without one, and the evaluation would then fail with "There is no current event loop".
    ref: https://docs.python.org/3/library/asyncio-eventloop.html#asyncio.get_event_loop
    """
    import asyncio
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "no current event loop" (3.12+)
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_event_loop()
        except RuntimeError:
            loop = None
    if loop is None or loop.is_closed():
        asyncio.set_event_loop(asyncio.new_event_loop())


def _evaluate(
    project_dir: Path,
    stack: str,
    raw: Mapping[str, Any],
    secrets: Mapping[str, str] | None,
    referenced_outputs: dict[str, dict[str, Any]],
    oidc_issuer: str | None,
) -> Evaluation:
    import pulumi
    from pulumi.runtime import mocks as pulumi_mocks
    from pulumi.runtime import settings as pulumi_settings
    from pulumi.runtime.sync_await import _sync_await

    config, secret_keys = pulumi_config(raw, secrets)
    project = _project_name(project_dir)
    region_raw = config.get(f"{project}:region", "us-east-1")
    account_raw = config.get(f"{project}:account_id", ACCOUNT_ID)
    mocks = RecordingMocks(
        region=region_raw,
        account_id=account_raw,
        stack_outputs=referenced_outputs,
        oidc_issuer=oidc_issuer,
    )

    class _Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):  # type: ignore[no-untyped-def]
            return mocks.new_resource(args)

        def call(self, args):  # type: ignore[no-untyped-def]
            # MockMonitor iterates the failures: None (no failure) must reach it as [].
            result, failures = mocks.call(args)
            return result, failures or []

    pulumi_settings.set_root_resource(None)  # type: ignore[arg-type]  # a fresh root Stack for this evaluation
    pulumi.runtime.set_all_config(config, secret_keys)

    class _Monitor(pulumi_mocks.MockMonitor):
        # The mock interface sees only inputs; resource options (protect, parent, ignoreChanges)
        # arrive on the request, which the policy rules also need.
        def RegisterResource(self, request):  # type: ignore[no-untyped-def]
            mocks.requests[(request.type, request.name)] = request
            mocks.urns[(request.type, request.name)] = self.make_urn(
                request.parent, request.type, request.name
            )
            return super().RegisterResource(request)

        def ReadResource(self, request):  # type: ignore[no-untyped-def]
            mocks.urns[(request.type, request.name)] = self.make_urn(
                request.parent, request.type, request.name
            )
            return super().ReadResource(request)

    mock_impl = _Mocks()
    ensure_event_loop()
    pulumi_mocks.set_mocks(
        mock_impl,
        project=_project_name(project_dir),
        stack=stack,
        preview=False,
        monitor=_Monitor(mock_impl),
    )

    program = _program_dir(project_dir)
    evaluation = Evaluation(stack=stack, secret_values={config[k] for k in secret_keys})
    root = pulumi_settings.get_root_resource()
    added_path = str(program)
    sys.path.insert(0, added_path)
    # The program's own modules (infra/components) are imported afresh for each evaluation, so
    # evaluating another checkout's program in the same process never runs a cached copy.
    _forget_program_modules(program)
    try:

        def run_program() -> None:
            runpy.run_path(str(program / "__main__.py"), run_name="__main__")

        _sync_await(pulumi.runtime.stack.run_pulumi_func(run_program))
        assert root is not None
        exported: dict[str, Any] = root.outputs  # type: ignore[attr-defined]
        names = list(exported)
        values = [pulumi.Output.from_input(exported[n]) for n in names]
        resolved = _sync_await(pulumi.Output.all(*values).future(with_unknowns=True))
        secret_flags = [_sync_await(value.is_secret()) for value in values]
        evaluation.outputs = dict(zip(names, resolved or [], strict=True))
        evaluation.secret_outputs = {n for n, s in zip(names, secret_flags or [], strict=True) if s}
    finally:
        sys.path.remove(added_path)
        _forget_program_modules(program)
    evaluation.resources = list(mocks.records)
    return evaluation


def evaluate_stack(
    stack: str, project_dir: Path | None = None, secrets: Mapping[str, str] | None = None
) -> Evaluation:
    """Run the Pulumi program for ``Pulumi.<stack>.yaml`` under mocks; return what it declared.

    ``project_dir`` defaults to :func:`dask_platform.project.project_root`. ``secrets`` maps
    secure config keys (``dask-platform:gateway_simple_password``) to their decrypted text;
    without it the program receives :data:`UNDECRYPTED_SECRET` for each.
    Raises :class:`dask_platform.config.errors.StackConfigError` (listing every problem) if the
    stack config is invalid - before any resource is recorded, as in a real ``pulumi up``.
    """
    directory = project_dir if project_dir is not None else project_root()
    return evaluate_config(read_stack_file(directory, stack), stack, directory, secrets)


def evaluate_config(
    raw: Mapping[str, Any],
    stack: str,
    project_dir: Path | None = None,
    secrets: Mapping[str, str] | None = None,
    oidc_issuer: str | None = None,
) -> Evaluation:
    """Run the Pulumi program on a raw ``config:`` mapping (namespaced keys, secure values as
    ``{"secure": ...}``) as stack ``stack``; see :func:`evaluate_stack`.

    ``oidc_issuer``: the URL the mocks answer for the EKS cluster's OIDC issuer (default: one
    shaped like EKS's); the local platform passes its own issuer, so the program's OIDC
    provider and trust policies name it.
    """
    directory = project_dir if project_dir is not None else project_root()
    referenced = {
        name: evaluate_stack(target_stack, target_dir).outputs
        for name, target_dir, target_stack in _stack_references(directory, raw)
    }
    # Pulumi's runtime settings live in context variables: a copied context keeps one
    # evaluation's engine, root stack and config from leaking into the next.
    return contextvars.copy_context().run(
        _evaluate, directory, stack, raw, secrets, referenced, oidc_issuer
    )


def _stack_references(project_dir: Path, raw: Mapping[str, Any]) -> list[tuple[str, Path, str]]:
    """(fully qualified name, project directory, stack) of each stack the program references:
    the bootstrap stack named by ``images.bootstrap_stack``, evaluated first like `up` needs it
    applied first."""
    from dask_platform.bootstrap_config import split_stack_name

    if _project_name(project_dir) != NAMESPACE:
        return []
    config, _ = pulumi_config(raw)
    try:
        images = json.loads(config.get(f"{NAMESPACE}:images", "{}"))
    except ValueError:
        return []  # the program reports the malformed key
    name = images.get("bootstrap_stack") if isinstance(images, dict) else None
    if not isinstance(name, str):
        return []
    try:
        _, _, target = split_stack_name(name)
    except ValueError:
        return []  # the program reports it
    # infra/bootstrap: beside the platform program's own directory (infra/). A program without
    # one (a test's own) references nothing; if it did, the mocks say the stack is unknown.
    bootstrap_dir = _program_dir(project_dir) / "bootstrap"
    if not (bootstrap_dir / "Pulumi.yaml").is_file():
        return []
    return [(name, bootstrap_dir, target)]


def stack_images(stack: str, project_dir: Path | None = None) -> ImageRefs:
    """The images a committed platform stack runs, offline: its referenced bootstrap stack
    evaluated under mocks (what the program reads through its stack reference), or the images
    its config names."""
    from dask_platform.config.sources import load_stack_file

    project_dir = project_dir if project_dir is not None else project_root()
    config = load_stack_file(project_dir, stack)
    explicit = config.explicit_images()
    if explicit is not None:
        return explicit
    (reference,) = _stack_references(project_dir, read_stack_file(project_dir, stack))
    _, target_dir, target = reference
    images = evaluate_stack(target, target_dir).outputs["images"]
    return ImageRefs(
        worker=images["worker"], gateway=images["gateway"], worker_gpu=images.get("worker-gpu")
    )
