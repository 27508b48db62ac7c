"""Canary for the moto internals the emulator touches (dask_platform.local.emulator_moto).

A moto upgrade that moves any of them fails here, in-process and in seconds, before the
integration tests meet a gate that silently stopped enforcing something.
"""

from __future__ import annotations

import inspect
import json
from typing import Any

import pytest

from dask_platform.local import emulator_moto

ACCOUNT = "123456789012"
FIXED_NOW = 2_000_000_000.0


@pytest.fixture
def hooked(monkeypatch: pytest.MonkeyPatch) -> Any:
    """moto with the emulator's hooks, restored afterwards (moto is process-global)."""
    import moto.sts.models
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.test import Client

    monkeypatch.setattr(
        ActionAuthenticatorMixin,
        "_authenticate_and_authorize_action",
        ActionAuthenticatorMixin._authenticate_and_authorize_action,
    )
    monkeypatch.setattr(moto.sts.models, "utcnow", moto.sts.models.utcnow)
    monkeypatch.setattr(settings, "INITIAL_NO_AUTH_ACTION_COUNT", 0)
    emulator_moto.install(lambda: FIXED_NOW)
    return Client(DomainDispatcherApplication(create_backend_app))


def test_the_hooked_moto_internals_have_the_expected_shape() -> None:
    import moto
    import moto.sts.models
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.iam.models import IAMBackend

    assert moto.__version__.startswith("5.2.")
    parameters = list(
        inspect.signature(ActionAuthenticatorMixin._authenticate_and_authorize_action).parameters
    )
    assert parameters == ["self", "iam_request_cls", "resource"]
    assert callable(moto.sts.models.utcnow)
    # That AssumedRole reads moto.sts.models.utcnow and STSBackend keeps assumed_roles is what
    # test_sessions_are_stamped_with_the_emulator_clock_and_found_by_key runs.
    for method in (
        "get_role_by_arn",
        "list_role_policies",
        "get_role_policy",
        "list_attached_role_policies",
        "create_user",
        "attach_user_policy",
        "create_access_key",
    ):
        assert callable(getattr(IAMBackend, method)), method


def test_unsigned_requests_are_refused_unless_marked_unauthenticated(hooked: Any) -> None:
    form = "Action=GetCallerIdentity&Version=2011-06-15"
    headers = {
        "Host": "sts.amazonaws.com",
        "Content-Type": "application/x-www-form-urlencoded",
        "Authorization": (
            "AWS4-HMAC-SHA256 Credential=AKIAUNKNOWN/20260101/us-east-1/sts/aws4_request, "
            "SignedHeaders=host, Signature=0"
        ),
    }
    refused = hooked.post("/", data=form, headers=headers)
    assert refused.status_code == 403
    with emulator_moto.unauthenticated():
        served = hooked.post("/", data=form, headers=headers)
    assert served.status_code == 200
    # The mark ends with its context.
    assert hooked.post("/", data=form, headers=headers).status_code == 403


def test_sessions_are_stamped_with_the_emulator_clock_and_found_by_key(hooked: Any) -> None:
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    iam = iam_backends[ACCOUNT]["aws"]
    trust = {"Version": "2012-10-17", "Statement": []}
    iam.create_role(
        role_name="canary",
        assume_role_policy_document=json.dumps(trust),
        path="/",
        permissions_boundary=None,
        description="",
        tags=[],
        max_session_duration="3600",
    )
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/canary"
    minted = sts_backends[ACCOUNT]["aws"].assume_role_with_web_identity(
        region_name="us-east-1",
        role_session_name="canary-session",
        role_arn=role_arn,
        policy=None,
        duration=900,
        external_id=None,
    )
    found = emulator_moto.session(ACCOUNT, minted.access_key_id)
    assert found == emulator_moto.Session(
        access_key_id=minted.access_key_id,
        role_arn=role_arn,
        session_name="canary-session",
        expiration=FIXED_NOW + 900,
        policy=None,
    )
    assert emulator_moto.session(ACCOUNT, "ASIANOTISSUED") is None
    described = emulator_moto.role(ACCOUNT, role_arn)
    assert described is not None
    assert described.trust_policy == trust
    assert described.max_session_duration == 3600
    assert emulator_moto.role(ACCOUNT, f"arn:aws:iam::{ACCOUNT}:role/absent") is None
    assert emulator_moto.role_policies(ACCOUNT, role_arn) == []
