"""Canonical JSON, data fingerprints, entry schema rules and Ed25519 keys."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from gt_secure.errors import InvalidFieldError, LedgerIntegrityError
from gt_secure.ledger import (
    LedgerEntry,
    canonical_json,
    data_fingerprint,
    generate_key,
    key_id,
    load_private_key,
    load_trusted_keys,
    save_keypair,
)
from gt_secure.ledger.signing import sign, verify_signature
from tests.ledger.conftest import World


def test_canonical_json_is_sorted_compact_utf8_and_finite() -> None:
    assert canonical_json({"b": 1, "a": "é"}) == '{"a":"é","b":1}'.encode()
    with pytest.raises(ValueError):
        canonical_json({"x": float("inf")})


def test_data_fingerprint_is_salted_and_order_sensitive() -> None:
    salt = b"s" * 16
    fp = data_fingerprint(["a", "b"], salt)
    assert len(fp) == 64 and int(fp, 16) >= 0
    assert fp != data_fingerprint(["b", "a"], salt)
    assert fp != data_fingerprint(["ab"], salt)  # length-prefixed: no concatenation collisions
    assert fp != data_fingerprint(["a", "b"], b"t" * 16)
    with pytest.raises(InvalidFieldError, match="salt"):
        data_fingerprint(["a"], b"short")


def test_key_files_and_ids(tmp_path: Path) -> None:
    key = generate_key()
    private, public = save_keypair(key, tmp_path, "org-a")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert load_private_key(private).public_key() == key.public_key()
    trusted = load_trusted_keys([tmp_path])
    assert list(trusted) == [key_id(key.public_key())] and len(key_id(key.public_key())) == 16
    assert trusted[key_id(key.public_key())].owner == "org-a"
    assert load_trusted_keys([public]) == trusted
    with pytest.raises(FileExistsError):
        save_keypair(generate_key(), tmp_path, "org-a")  # never overwrite a private key


def test_verify_signature_rejects_unknown_signer_and_wrong_owner(tmp_path: Path) -> None:
    key = generate_key()
    save_keypair(key, tmp_path, "org-a")
    trusted = load_trusted_keys([tmp_path])
    kid, sig = key_id(key.public_key()), sign(key, b"payload")
    verify_signature(trusted, kid, "org-a", b"payload", sig, 1)
    with pytest.raises(LedgerIntegrityError, match="not a trusted key"):
        verify_signature(trusted, "0" * 16, "org-a", b"payload", sig, 3)
    with pytest.raises(LedgerIntegrityError, match="belongs to 'org-a'"):
        verify_signature(trusted, kid, "org-b", b"payload", sig, 1)
    with pytest.raises(LedgerIntegrityError, match="line 2: signature"):
        verify_signature(trusted, kid, "org-a", b"payloaD", sig, 2)


def test_entry_kind_rules(populated: World) -> None:
    entries = populated.ledger.entries()
    release, post = entries[0].model_dump(), entries[3].model_dump()
    with pytest.raises(InvalidFieldError, match="epsilon_spent"):
        LedgerEntry(**(post | {"epsilon_spent": 0.1}))
    with pytest.raises(InvalidFieldError, match="parents"):
        LedgerEntry(**(post | {"parents": []}))
    with pytest.raises(InvalidFieldError, match="mechanisms.unit"):
        LedgerEntry(**(release | {"unit": "organization"}))
    with pytest.raises(InvalidFieldError, match="timestamp"):
        LedgerEntry(**(release | {"timestamp": "2026-01-01T00:00:00+02:00"}))
    line = entries[0].canonical_line()
    assert json.loads(line)["signature"] == entries[0].signature
    assert b"signature" not in entries[0].signing_payload()
