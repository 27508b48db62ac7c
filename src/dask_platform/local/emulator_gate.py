"""The emulator's gate: WSGI middleware in front of moto's server app that closes moto's IAM
gaps. :mod:`dask_platform.local.emulator_server` runs it.

With enforcement on, moto authorizes every signed call by the caller's IAM policies (Action
and Resource). The gate in front of it adds exactly what moto lacks and real AWS does:

* Expired STS sessions are refused. moto compares a session's token but never its
  ``Expiration``; the gate refuses a request signed with a session whose expiration has passed
  (on the emulator's clock) with AWS's answer for the request's protocol: S3 ``400
  ExpiredToken`` "The provided token has expired."; query APIs (STS, IAM) ``403 ExpiredToken``;
  JSON APIs (ECS, ECR, Secrets Manager, ...) ``400 ExpiredTokenException``; REST-JSON APIs
  ``403 ExpiredTokenException``; EC2 ``400 RequestExpired``. botocore neither retries these
  nor refreshes on them (it refreshes ahead of ``Expiration`` on its own clock), so a client
  meets them exactly as on AWS.
* ``sts:AssumeRoleWithWebIdentity`` is an unsigned call in AWS (the token is the credential),
  but moto crashes on it under enforcement. The gate verifies the token as STS does - the
  issuer must be a registered OIDC provider, the signature must verify against the issuer's
  JWKS, ``aud`` must be one of the provider's client IDs, ``exp`` must lie ahead - evaluates the
  role's trust policy (Federated principal, ``<issuer>:sub``/``:aud`` conditions), checks
  ``DurationSeconds``, and only then lets moto mint the session, with authentication skipped
  for that one request (:func:`dask_platform.local.emulator_moto.unauthenticated`). Every
  exchange, accepted or refused, goes into the STS call log (``/dask-platform/sts-log``).
* moto skips ``Condition`` blocks. The list operations (``s3:ListBucket`` and its variants) are
  where the team policies rely on one (``s3:prefix``), so the gate evaluates the caller's
  policies for them with the request's condition keys and refuses with ``AccessDenied``.
* Anonymous requests are refused (the platform has no public data), and moto's admin API
  (``/moto-api/``) plus the gate's own (``/dask-platform/``) need the admin token, so a worker
  cannot switch enforcement off.

Requests are served concurrently (werkzeug's threaded server); no process-wide moto setting is
changed per request. The gate's admin API: ``GET stats`` (counters, requests in flight and
their peak), ``GET sts-log``, ``GET|POST clock`` (the emulator's clock; POST
``{"advance_seconds": n}`` moves it forward - it never goes back), ``GET|POST sts-settings``
(``minimum_session_seconds``, ``web_identity_session_seconds``).

ref: https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList
ref: https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRoleWithWebIdentity.html
"""

from __future__ import annotations

import contextlib
import io
import json
import secrets
import threading
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from typing import Any

from dask_platform.local import emulator_moto
from dask_platform.local.emulator_errors import (
    expired_token_error,
    request_protocol,
    s3_access_denied,
    sts_error,
)
from dask_platform.local.emulator_s3_lists import list_denied
from dask_platform.local.emulator_settings import (
    STS_MINIMUM_SESSION_SECONDS,
    BadSetting,
    EmulatorClock,
    StsSettings,
)
from dask_platform.local.emulator_web_identity import (
    WebIdentityRejected,
    WebIdentityVerifier,
    issued_credentials,
)

STS_LOG_LIMIT = 10000

StartResponse = Callable[..., Any]


class Gate:
    """WSGI middleware in front of moto's app (see the module docstring)."""

    def __init__(
        self,
        app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
        admin_token: str,
        account_id: str,
        web_identity_duration: int | None,
        minimum_session_seconds: int = STS_MINIMUM_SESSION_SECONDS,
        clock: EmulatorClock | None = None,
    ) -> None:
        self.app = app
        self.admin_token = admin_token
        self.account_id = account_id
        self.clock = clock or EmulatorClock()
        self.sts_settings = StsSettings()
        self.sts_settings.update(
            {
                "minimum_session_seconds": minimum_session_seconds,
                "web_identity_session_seconds": web_identity_duration,
            }
        )
        # Guards the counters and the log only; moto is never called under it.
        self.lock = threading.Lock()
        self.stats: Counter[str] = Counter()
        self.web_identity_by_role: Counter[str] = Counter()
        self.sts_log: list[dict[str, Any]] = []
        self.in_flight = 0
        self.peak_in_flight = 0
        self.web_identity = WebIdentityVerifier(account_id, self.sts_settings)

    # ------------------------------------------------------------------ WSGI entry

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.startswith(("/moto-api", "/dask-platform/")):
            if not secrets.compare_digest(
                environ.get("HTTP_X_DASK_PLATFORM_ADMIN_TOKEN", ""), self.admin_token
            ):
                return self._respond(start_response, 403, "text/plain", b"admin token required\n")
            if path.startswith("/dask-platform/"):
                return self._admin(environ, start_response, path.removeprefix("/dask-platform/"))
            return self._forward(environ, start_response, authenticate=True)

        query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        credential = _credential_scope(authorization, query)
        if credential is None:
            return self._unsigned(environ, start_response, query)

        access_key_id, service = credential
        session = emulator_moto.session(self.account_id, access_key_id)
        form = _form(_read_body(environ), query) if service != "s3" else {}
        if session is not None and self.clock.now() >= session.expiration:
            self._count(f"{service}:expired-token")
            token = (
                environ.get("HTTP_X_AMZ_SECURITY_TOKEN")
                or query.get("X-Amz-Security-Token", [""])[0]
            )
            return self._respond(
                start_response,
                *expired_token_error(request_protocol(service, environ, form), token),
            )
        if service == "sts":
            self._count(f"sts:{form.get('Action') or 'unknown'}")
        elif service == "s3":
            denied = list_denied(self.account_id, environ, query, session)
            if denied is not None:
                self._count("s3:denied-by-condition")
                return self._respond(start_response, *s3_access_denied(denied))
        return self._forward(environ, start_response, authenticate=True)

    def _count(self, key: str) -> None:
        with self.lock:
            self.stats[key] += 1

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "counters": dict(self.stats),
                "web_identity_by_role": dict(self.web_identity_by_role),
                "in_flight": self.in_flight,
                "peak_in_flight": self.peak_in_flight,
            }

    # ------------------------------------------------------------------ the gate's admin API

    def _admin(
        self, environ: dict[str, Any], start_response: StartResponse, name: str
    ) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        try:
            body = json.loads(_read_body(environ) or b"{}") if method == "POST" else {}
            if name == "stats" and method == "GET":
                result: Any = self.snapshot()
            elif name == "sts-log" and method == "GET":
                with self.lock:
                    result = list(self.sts_log)
            elif name == "clock":
                if method == "POST":
                    self.clock.advance(float(body.get("advance_seconds", 0)))
                result = {"now": self.clock.now(), "offset_seconds": self.clock.offset}
            elif name == "sts-settings":
                if method == "POST":
                    self.sts_settings.update(body)
                result = asdict(self.sts_settings)
            else:
                return self._respond(
                    start_response,
                    404,
                    "text/plain",
                    f"no such admin endpoint: {method} /dask-platform/{name}; known: GET stats, "
                    "GET sts-log, GET|POST clock, GET|POST sts-settings\n".encode(),
                )
        except (BadSetting, ValueError, TypeError, AttributeError) as exc:
            return self._respond(start_response, 400, "text/plain", f"{exc}\n".encode())
        return self._respond(start_response, 200, "application/json", json.dumps(result).encode())

    # ------------------------------------------------------------------ unsigned requests

    def _unsigned(
        self, environ: dict[str, Any], start_response: StartResponse, query: dict[str, list[str]]
    ) -> Iterable[bytes]:
        body = _read_body(environ) if environ.get("REQUEST_METHOD") == "POST" else b""
        params = _form(body, query)
        if params.get("Action") != "AssumeRoleWithWebIdentity":
            self._count("anonymous:denied")
            return self._respond(
                start_response,
                *s3_access_denied("Anonymous requests are refused; sign the request."),
            )
        self._count("sts:AssumeRoleWithWebIdentity")
        entry: dict[str, Any] = {
            "time": self.clock.now(),
            "action": "AssumeRoleWithWebIdentity",
            "role_arn": params.get("RoleArn", ""),
            "session_name": params.get("RoleSessionName", ""),
        }
        try:
            role_arn, duration = self.web_identity.verify(params)
        except WebIdentityRejected as exc:
            self._count("sts:AssumeRoleWithWebIdentity:rejected")
            self._log({**entry, "error": exc.code, "message": exc.message})
            return self._respond(start_response, *sts_error(exc.code, exc.message))
        if "DurationSeconds" not in params:
            params["DurationSeconds"] = str(duration)
            encoded = urllib.parse.urlencode(params).encode()
            environ["wsgi.input"] = io.BytesIO(encoded)
            environ["CONTENT_LENGTH"] = str(len(encoded))
            environ["QUERY_STRING"] = ""
            environ["REQUEST_METHOD"] = "POST"
            environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded; charset=utf-8"
        with self.lock:
            self.web_identity_by_role[role_arn] += 1
        chunks = self._forward(environ, start_response, authenticate=False)
        self._log({**entry, **issued_credentials(b"".join(chunks)), "duration_seconds": duration})
        return chunks

    def _log(self, entry: dict[str, Any]) -> None:
        with self.lock:
            self.sts_log.append(entry)
            del self.sts_log[:-STS_LOG_LIMIT]

    # ------------------------------------------------------------------ plumbing

    def _forward(
        self, environ: dict[str, Any], start_response: StartResponse, authenticate: bool
    ) -> list[bytes]:
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        bypass = contextlib.nullcontext() if authenticate else emulator_moto.unauthenticated()
        with bypass, self._in_moto():
            result = self.app(environ, capture)
            try:
                chunks = list(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        start_response(captured["status"], captured["headers"])
        return chunks

    @contextlib.contextmanager
    def _in_moto(self) -> Iterator[None]:
        """Counts the requests inside moto's app at this moment (and the peak), as close to
        the app call as possible, so any serialization in front of it would show as 1."""
        with self.lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self.lock:
                self.in_flight -= 1

    @staticmethod
    def _respond(
        start_response: StartResponse,
        status: int,
        content_type: str,
        body: bytes,
        headers: list[tuple[str, str]] | None = None,
    ) -> list[bytes]:
        reason = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found"}.get(
            status, "Error"
        )
        start_response(
            f"{status} {reason}",
            [
                ("Content-Type", content_type),
                ("Content-Length", str(len(body))),
                *(headers or []),
            ],
        )
        return [body]


def _credential_scope(authorization: str, query: dict[str, list[str]]) -> tuple[str, str] | None:
    """(access key id, service) of a SigV4-signed request, header or presigned URL."""
    scope = ""
    if "Credential=" in authorization:
        scope = authorization.split("Credential=", 1)[1].split(",", 1)[0].strip()
    elif "X-Amz-Credential" in query:
        scope = query["X-Amz-Credential"][0]
    parts = scope.split("/")
    if len(parts) < 4:
        return None
    return parts[0], parts[3]


def _read_body(environ: dict[str, Any]) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _form(body: bytes, query: dict[str, list[str]]) -> dict[str, str]:
    values = {k: v[0] for k, v in query.items()}
    if body[:1] not in (b"{", b""):  # form-encoded (query protocol), never a JSON document
        values.update(
            {k: v[0] for k, v in urllib.parse.parse_qs(body.decode(errors="replace")).items()}
        )
    return values
