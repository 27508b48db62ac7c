"""Every moto internal the emulator touches, in one place (moto is pinned to a minor version in
pyproject.toml; ``tests/unit/test_emulator_moto.py`` is the canary that fails first when an
upgrade moves any of these).

* :func:`install` puts two hooks into moto, once per process:

  - a per-request authentication bypass: moto authenticates every request against IAM when its
    ``INITIAL_NO_AUTH_ACTION_COUNT`` setting is 0, a process-wide value; the gate needs ONE
    request (an ``AssumeRoleWithWebIdentity`` it has already verified, which is unsigned in AWS)
    served without it. :func:`unauthenticated` marks the current request's context (a
    ``contextvars`` value, so it holds for that thread only) and the wrapped
    ``ActionAuthenticatorMixin._authenticate_and_authorize_action`` skips the check for it.
    Other requests, served concurrently on other threads, stay enforced.
  - the emulator's clock for STS: moto stamps a session's ``Expiration`` with
    ``moto.sts.models.utcnow``; it reads the clock the gate checks expiry against, so a session
    minted after the clock moved expires ``DurationSeconds`` later in that same clock.

* Read-only lookups in moto's IAM/STS backends: sessions by access key id, role policies, the
  OIDC providers, roles by ARN; and the bootstrap of the operator's IAM user.

ref: https://docs.getmoto.org/en/latest/docs/iam.html (IAM enforcement in server mode)
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import functools
import json
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

PARTITION = "aws"
_unauthenticated: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "dask_platform_unauthenticated", default=False
)
_clock: list[Callable[[], float]] = []


@dataclass(frozen=True)
class Session:
    """One STS session moto minted (AssumeRole, AssumeRoleWithWebIdentity)."""

    access_key_id: str
    role_arn: str
    session_name: str
    expiration: float  # epoch seconds, in the emulator's clock
    policy: str | None


def install(clock: Callable[[], float]) -> None:
    """Put the authentication bypass and ``clock`` (epoch seconds) into moto. Idempotent."""
    import moto.sts.models
    from moto.core.authorization import ActionAuthenticatorMixin

    _clock[:] = [clock]
    original = ActionAuthenticatorMixin._authenticate_and_authorize_action
    if not getattr(original, "_dask_platform_hook", False):

        @functools.wraps(original)
        def authenticate(self: Any, iam_request_cls: type, resource: str = "*") -> None:
            if _unauthenticated.get():
                return None
            return original(self, iam_request_cls, resource)

        authenticate._dask_platform_hook = True  # type: ignore[attr-defined]
        ActionAuthenticatorMixin._authenticate_and_authorize_action = authenticate  # type: ignore[method-assign]

    def utcnow() -> datetime.datetime:
        # moto keeps naive UTC datetimes.
        return datetime.datetime.fromtimestamp(_clock[0](), datetime.UTC).replace(tzinfo=None)

    moto.sts.models.utcnow = utcnow  # type: ignore[attr-defined]


@contextlib.contextmanager
def unauthenticated() -> Iterator[None]:
    """moto serves the requests made in this context (this thread) without authenticating."""
    token = _unauthenticated.set(True)
    try:
        yield
    finally:
        _unauthenticated.reset(token)


def session(account_id: str, access_key_id: str) -> Session | None:
    """The STS session whose access key id is ``access_key_id``, or None (an IAM user's key,
    or a key moto never issued)."""
    from moto.sts.models import sts_backends

    # Newest first: the sessions in use are the recent ones.
    for assumed in reversed(list(sts_backends[account_id][PARTITION].assumed_roles)):
        if assumed.access_key_id == access_key_id:
            expiration = assumed.expiration.replace(tzinfo=datetime.UTC).timestamp()
            return Session(
                access_key_id=access_key_id,
                role_arn=assumed.role_arn,
                session_name=assumed.session_name,
                expiration=expiration,
                policy=assumed.policy,
            )
    return None


def policy_document(document: Any) -> Any:
    """A policy document as moto stores it (dict, JSON text or URL-encoded JSON) -> dict."""
    if isinstance(document, dict):
        return document
    text = str(document)
    try:
        return json.loads(text)
    except ValueError:
        return json.loads(urllib.parse.unquote(text))


def role_policies(account_id: str, role_arn: str) -> list[Any]:
    """The inline and attached (default version) policy documents of a role."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id][PARTITION]
    role_name = role_arn.split("/")[-1]
    documents: list[Any] = [
        policy_document(backend.get_role_policy(role_name, name)[1])
        for name in backend.list_role_policies(role_name)
    ]
    attached, _ = backend.list_attached_role_policies(role_name, max_items=1000)
    for policy in attached:
        version = next(v for v in policy.versions if v.is_default)
        documents.append(policy_document(version.document))
    return documents


def oidc_provider_audiences(account_id: str, provider_arn: str) -> list[str] | None:
    """The client IDs (audiences) of a registered OIDC provider, or None if it is not one."""
    from moto.iam.models import iam_backends

    provider = iam_backends[account_id][PARTITION].open_id_providers.get(provider_arn)
    return None if provider is None else list(provider.client_id_list)


@dataclass(frozen=True)
class Role:
    arn: str
    trust_policy: Any
    max_session_duration: int


def role(account_id: str, role_arn: str) -> Role | None:
    from moto.iam.models import iam_backends

    try:
        found = iam_backends[account_id][PARTITION].get_role_by_arn(role_arn)
    except Exception:  # moto raises its IAMNotFoundException (not exported stably)
        return None
    return Role(
        arn=role_arn,
        trust_policy=policy_document(found.assume_role_policy_document),
        max_session_duration=int(found.max_session_duration or 3600),
    )


def bootstrap_admin(account_id: str, user: str, policy_arn: str) -> dict[str, str]:
    """Create ``user`` with ``policy_arn`` attached and one access key; return the key."""
    from moto.iam.models import iam_backends

    backend = iam_backends[account_id][PARTITION]
    backend.create_user("us-east-1", user)
    backend.attach_user_policy(policy_arn, user)
    key = backend.create_access_key(user)
    return {"access_key_id": key.access_key_id, "secret_access_key": key.secret_access_key}
