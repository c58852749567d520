"""The salted commitment a masked release carries instead of its vector's SHA-256, checked
against Python's standard-library HMAC as the reference implementation."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_secure.organization.commitment import (
    SECRET_FILE,
    commit,
    load_or_create_secret,
    opens,
    release_key,
)
from gt_secure.update.layout import LoraSpec, TensorSpec, UpdateLayout
from gt_secure.update.vector import UpdateVector

LAYOUT = UpdateLayout(base_model="tinylm", base_model_hash="0" * 64, lora=LoraSpec(),
                      entries=(TensorSpec(name="layers.0.self_attn.q_proj.lora_A", shape=(2, 64)),
                               TensorSpec(name="layers.0.self_attn.q_proj.lora_B", shape=(64, 2))))


def vector(seed: int) -> UpdateVector:
    flat = np.random.default_rng(seed).normal(size=256).astype(np.float32)
    return UpdateVector(LAYOUT, flat)


def reference(secret: bytes, release_id: str, update: UpdateVector) -> str:
    key = hmac.new(secret, b"gt-secure/commit/v1\x00" + release_id.encode(), "sha256").digest()
    data = update.layout.layout_hash().encode() + update.flat.astype("<f4").tobytes()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


@settings(max_examples=25, deadline=None)
@given(secret=st.binary(min_size=32, max_size=32), release_id=st.text(min_size=1, max_size=40),
       seed=st.integers(0, 2**16))
def test_commitment_matches_the_stdlib_hmac_reference(secret: bytes, release_id: str,
                                                      seed: int) -> None:
    update = vector(seed)
    key = release_key(secret, release_id)
    assert commit(key, update) == reference(secret, release_id, update)
    assert opens(commit(key, update), update, key)


def test_commitment_hides_the_vector_hash_and_binds_the_vector() -> None:
    secret, update = bytes(range(32)), vector(0)
    key = release_key(secret, "bank-1-1")
    c = commit(key, update)
    assert c != update.content_hash()
    assert c != hashlib.sha256(update.flat.tobytes()).hexdigest()
    # Another release's key, another vector, or a tampered commitment do not open it.
    assert not opens(c, update, release_key(secret, "bank-1-2"))
    assert not opens(c, update.replace(update.flat + np.float32(1e-3)), key)
    assert not opens("0" * 64, update, key) and not opens("zz", update, key)
    # Without the key, a guessed vector cannot be confirmed: another secret gives another c.
    assert commit(release_key(bytes(32), "bank-1-1"), update) != c


def test_secret_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = load_or_create_secret(tmp_path / "bank")
    path = tmp_path / "bank" / SECRET_FILE
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(tmp_path / "bank") == first
    assert load_or_create_secret(tmp_path / "law") != first
