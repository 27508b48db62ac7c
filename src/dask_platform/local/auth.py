"""Password authentication for the local gateway: users and groups from a file.

Stands in for the identity provider on the local platform (the OIDC issue adds tokens). The
users file holds scrypt hashes (:mod:`dask_platform.local.passwords`) and groups.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

from dask_gateway_server.auth import Authenticator, unauthorized
from dask_gateway_server.models import User
from traitlets import Unicode

from dask_platform.local.passwords import hash_password, verify_password


class LocalPasswordAuthenticator(Authenticator):
    """HTTP Basic auth against the local users file (hashed passwords, groups per user)."""

    users_file = Unicode(help="JSON file: {user: {groups, password_hash}}.", config=True)

    def _users(self) -> dict[str, Any]:
        users: dict[str, Any] = json.loads(Path(self.users_file).read_text())
        return users

    async def authenticate(self, request: Any) -> User:
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme != "Basic" or not encoded:
            raise unauthorized("Basic")
        try:
            name, _, password = base64.b64decode(encoded).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise unauthorized("Basic") from None
        record = self._users().get(name)
        # Hash even for an unknown user so the response time does not reveal who exists.
        stored = record["password_hash"] if record else hash_password(secrets.token_hex(8))
        if not verify_password(password, stored) or record is None:
            self.log.warning("Failed login for %r", name)
            raise unauthorized("Basic")
        return User(name, groups=record["groups"])
