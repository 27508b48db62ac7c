"""The local platform's waits: declared once, overridable from the environment, a bad
override refused with the variable's name."""

from __future__ import annotations

import pytest

from dask_platform.local.settings import LocalSettingsError, LocalTimeouts


def test_defaults_without_overrides() -> None:
    timeouts = LocalTimeouts.from_environment({})
    assert timeouts == LocalTimeouts()
    assert timeouts.gateway_ready_seconds == 60
    assert timeouts.cluster_start_seconds == 60


def test_an_environment_variable_overrides_its_setting() -> None:
    timeouts = LocalTimeouts.from_environment(
        {"DASK_PLATFORM_LOCAL_GATEWAY_READY_SECONDS": "180", "UNRELATED": "x"}
    )
    assert timeouts.gateway_ready_seconds == 180.0
    assert timeouts.issuer_ready_seconds == LocalTimeouts().issuer_ready_seconds


def test_bad_overrides_are_refused_naming_each_variable() -> None:
    with pytest.raises(LocalSettingsError) as raised:
        LocalTimeouts.from_environment(
            {
                "DASK_PLATFORM_LOCAL_GATEWAY_READY_SECONDS": "0",
                "DASK_PLATFORM_LOCAL_STOP_GRACE_SECONDS": "soon",
            }
        )
    message = str(raised.value)
    assert "DASK_PLATFORM_LOCAL_GATEWAY_READY_SECONDS='0': Input should be greater than 0" in (
        message
    )
    assert "DASK_PLATFORM_LOCAL_STOP_GRACE_SECONDS='soon': Input should be a valid number" in (
        message
    )
