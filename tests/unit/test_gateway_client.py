"""The dask-gateway client fix (dask_platform.gateway_client): a closed client is collected
silently, and close_quietly closes what it is given even when one part fails.

The Gateway objects are real dask-gateway clients (their IO-loop threads start and stop); they
talk to no server: closing needs none.
"""

from __future__ import annotations

import gc
import importlib.util
import sys
from types import ModuleType
from typing import Any

import pytest

from dask_platform import gateway_client

ADDRESS = "http://127.0.0.1:9"  # never contacted: nothing here makes a request


@pytest.fixture
def unpatched() -> ModuleType:
    """A fresh copy of dask_gateway.client, as upstream ships it (the .pth patched the real one)."""
    import dask_gateway.client

    spec = importlib.util.spec_from_file_location(
        "dask_gateway._unpatched_client", dask_gateway.client.__file__
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert not getattr(module.Gateway, "_dask_platform_fixed", False)
    return module


@pytest.fixture
def unraisable(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What finalizers raise (and CPython would print as "Exception ignored in ...")."""
    seen: list[str] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda u: seen.append(f"{type(u.exc_value).__name__}: {u.exc_value}")
    )
    return seen


def _collect_closed(module: Any) -> None:
    gateway = module.Gateway(ADDRESS)
    gateway.close()
    del gateway
    gc.collect()


def test_upstream_complains_when_a_closed_client_is_collected(
    unpatched: ModuleType, unraisable: list[str]
) -> None:
    # The defect the fix exists for: without it this is what every closed client prints.
    _collect_closed(unpatched)
    assert unraisable == [
        "RuntimeError: Accessing the loop property while the loop is not running is not supported"
    ]


def test_a_closed_client_is_collected_silently_once_patched(
    unpatched: ModuleType, unraisable: list[str]
) -> None:
    assert gateway_client.install(unpatched) is True
    assert gateway_client.install(unpatched) is False  # once only
    _collect_closed(unpatched)
    assert unraisable == []


def test_the_installed_client_is_the_patched_one(unraisable: list[str]) -> None:
    import dask_gateway.client

    # The wheel's .pth patched it on import: no caller needs to keep closed clients alive.
    assert getattr(dask_gateway.client.Gateway, "_dask_platform_fixed", False) is True
    _collect_closed(dask_gateway.client)
    assert unraisable == []


def test_close_quietly_closes_the_rest_when_one_part_fails() -> None:
    from dask_gateway import Gateway

    gone = Gateway(ADDRESS)
    gone.close()
    with pytest.raises(RuntimeError, match="loop is not running"):
        gone.close()  # upstream: a second close raises
    open_gateway = Gateway(ADDRESS)
    assert open_gateway._loop_runner.is_started() is True
    # `gone` stands in the client's place: its close() raises, the gateway is still closed.
    gateway_client.close_quietly(gone, None, open_gateway)
    assert open_gateway._loop_runner.is_started() is False
