"""The local issuer rotates keys as real OIDC issuers do: publish the next key first, sign with
it only after the lead time, keep the old key until its tokens have expired."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest

from dask_platform.local.issuer import Issuer, NextKeyNotReady, SigningKeys

LIFETIME = 600
LEAD = 10.0


def _kids(keys: SigningKeys) -> list[str]:
    return [k["kid"] for k in keys.jwks()["keys"]]


def _age_next_key(keys: SigningKeys, seconds: float) -> None:
    """As if the next key had been published ``seconds`` ago."""
    keys.next.published = time.time() - seconds


def test_the_jwks_holds_the_next_key_before_it_signs(tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path / "keys.json", LIFETIME, next_key_lead_seconds=LEAD)
    issuer = Issuer("http://127.0.0.1:1", keys)
    current, upcoming = keys.current.kid, keys.next.kid
    assert _kids(keys) == [current, upcoming]
    token = issuer.mint({"sub": "s", "aud": "a"}, 60)
    assert jwt.get_unverified_header(token)["kid"] == current

    _age_next_key(keys, LEAD + 1)
    promoted = keys.rotate()
    assert promoted.kid == upcoming  # the key that was already published
    assert jwt.get_unverified_header(issuer.mint({"sub": "s"}, 60))["kid"] == upcoming
    # The old key stays for its tokens; a new next key is published at once.
    assert _kids(keys)[:2] == [current, upcoming]
    assert len(_kids(keys)) == 3
    assert keys.next.kid not in (current, upcoming)


def test_a_next_key_younger_than_the_lead_is_not_promoted(tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path / "keys.json", LIFETIME, next_key_lead_seconds=LEAD)
    _age_next_key(keys, LEAD / 2)
    before = keys.current.kid
    with pytest.raises(NextKeyNotReady) as raised:
        keys.rotate()
    assert 0 < raised.value.seconds_left <= LEAD / 2 + 1
    assert keys.current.kid == before
    assert keys.seconds_until_rotation() > 0


def test_a_retired_key_leaves_once_its_last_token_expired(tmp_path: Path) -> None:
    keys = SigningKeys(tmp_path / "keys.json", LIFETIME, next_key_lead_seconds=LEAD)
    first = keys.current.kid
    _age_next_key(keys, LEAD + 1)
    keys.rotate()
    assert first in _kids(keys)
    retired = next(k for k in keys.keys if k.kid == first)
    retired.retired = time.time() - LIFETIME - 1  # its last token expired a second ago
    _age_next_key(keys, LEAD + 1)
    keys.rotate()
    assert first not in _kids(keys)


def test_keys_survive_an_issuer_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    keys = SigningKeys(path, LIFETIME, next_key_lead_seconds=LEAD)
    _age_next_key(keys, LEAD + 1)
    keys.rotate()
    again = SigningKeys(path, LIFETIME, next_key_lead_seconds=LEAD)
    assert _kids(again) == _kids(keys)
    assert again.current.kid == keys.current.kid
    assert again.next.kid == keys.next.kid
    assert path.stat().st_mode & 0o777 == 0o600
