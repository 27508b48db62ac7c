"""The AWS emulator process: moto's server app behind a gate that closes moto's IAM gaps.

Run by :class:`dask_platform.local.emulator.Emulator` as
``python -m dask_platform.local.emulator_server --state-dir DIR``. It binds a free port on
127.0.0.1, bootstraps one IAM user with the AWS-managed ``AdministratorAccess`` policy (the
operator's identity, used only by provisioning and tests), turns moto's IAM enforcement ON and
writes ``emulator.json`` (endpoint, admin credentials, admin token; mode 0600).

The gate in front of moto is :class:`dask_platform.local.emulator_gate.Gate`; its module
docstring says what it adds to moto and what its admin API serves.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dask_platform.local import emulator_moto
from dask_platform.local.emulator_gate import Gate
from dask_platform.local.emulator_settings import (
    LOWEST_SESSION_SECONDS,
    STS_MINIMUM_SESSION_SECONDS,
    BadSetting,
    EmulatorClock,
    StsSettings,
)

ADMIN_USER = "emulator-admin"
ADMIN_POLICY_ARN = "arn:aws:iam::aws:policy/AdministratorAccess"
ADMIN_TOKEN_HEADER = "X-Dask-Platform-Admin-Token"  # noqa: S105 (a header name)
READY_FILE = "emulator.json"


# ---------------------------------------------------------------------- process entry point


def serve(
    state_dir: Path,
    host: str,
    port: int,
    web_identity_duration: int | None,
    minimum_session_seconds: int = STS_MINIMUM_SESSION_SECONDS,
) -> None:
    # AWS-managed policies (AdministratorAccess for the operator user) load only when asked.
    os.environ["MOTO_IAM_LOAD_MANAGED_POLICIES"] = "true"
    from moto import settings
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.moto_server.werkzeug_app import (
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    from dask_platform.local.processes import write_json_atomic

    clock = EmulatorClock()
    emulator_moto.install(clock.now)
    admin = emulator_moto.bootstrap_admin(DEFAULT_ACCOUNT_ID, ADMIN_USER, ADMIN_POLICY_ARN)
    # Object store keys: GetSecretValue authorized against the secret's ARN, as in IAM.
    from dask_platform.local.moto_secrets import enforce_secret_resources

    enforce_secret_resources()
    # Enforcement on from the first request: moto's "number of unauthenticated requests
    # before enforcement" is 0. ref: https://docs.getmoto.org/en/latest/docs/iam.html
    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    admin_token = secrets.token_urlsafe(32)
    gate = Gate(
        DomainDispatcherApplication(create_backend_app),
        admin_token=admin_token,
        account_id=DEFAULT_ACCOUNT_ID,
        web_identity_duration=web_identity_duration,
        minimum_session_seconds=minimum_session_seconds,
        clock=clock,
    )
    server = make_server(host, port, gate, threaded=True, request_handler=MotoRequestHandler)
    bound_port = server.socket.getsockname()[1]

    def stop(signum: int, frame: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    write_json_atomic(
        state_dir / READY_FILE,
        {
            "endpoint": f"http://{host}:{bound_port}",
            "port": bound_port,
            "pid": os.getpid(),
            "account_id": DEFAULT_ACCOUNT_ID,
            "admin": admin,
            "admin_token": admin_token,
            "started": time.time(),
        },
    )
    server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, required=True, help="Where emulator.json goes.")
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind (loopback).")
    parser.add_argument("--port", type=int, default=0, help="Port; 0 picks a free one.")
    parser.add_argument(
        "--web-identity-duration",
        type=int,
        default=None,
        help="Session seconds when AssumeRoleWithWebIdentity names none (STS's default: 3600).",
    )
    parser.add_argument(
        "--minimum-session-seconds",
        type=int,
        default=STS_MINIMUM_SESSION_SECONDS,
        help=f"The least DurationSeconds STS accepts ({STS_MINIMUM_SESSION_SECONDS}, STS's "
        f"minimum; down to {LOWEST_SESSION_SECONDS} so tests can outlive several sessions).",
    )
    args = parser.parse_args(argv)
    try:
        StsSettings().update(
            {
                "minimum_session_seconds": args.minimum_session_seconds,
                "web_identity_session_seconds": args.web_identity_duration,
            }
        )
    except BadSetting as exc:
        parser.error(str(exc))
    try:
        serve(
            args.state_dir,
            args.host,
            args.port,
            args.web_identity_duration,
            args.minimum_session_seconds,
        )
    except OSError as exc:
        print(f"emulator: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
