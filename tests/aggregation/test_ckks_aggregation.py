"""CKKS aggregation: sum vs NumPy within the documented bound, and secret-key hygiene."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tenseal as ts
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gt_secure.aggregation.ckks import (
    PUBLIC_FILE,
    SECRET_FILE,
    CkksKeyPair,
    add_ciphertexts,
    check_ciphertexts,
    decrypt_sum,
    encrypt,
    load_public_context,
)
from gt_secure.aggregation.ckks_params import DEFAULT_CKKS_PARAMS
from gt_secure.errors import InvalidFieldError, SecretKeyExposureError, UpdateVectorError

MAX_ABS = 64.0


@pytest.fixture(scope="module")
def keys() -> CkksKeyPair:
    return CkksKeyPair.generate()


@pytest.fixture(scope="module")
def public(keys: CkksKeyPair) -> ts.Context:
    return keys.public_context()


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num=st.integers(1, 6),
    length=st.integers(1, 4200),  # crosses the 2048-slot ciphertext boundary twice
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-3, 1.0, MAX_ABS]),
)
def test_sum_matches_numpy_within_bound(
    keys: CkksKeyPair, public: ts.Context, num: int, length: int, seed: int, scale: float
) -> None:
    # Prepare
    rng = np.random.default_rng(seed)
    vecs = [rng.uniform(-scale, scale, length).astype(np.float32) for _ in range(num)]
    vecs[0][0] = scale  # an extreme value
    # Execute
    encrypted = [encrypt(v, public, org_id=f"org-{i}") for i, v in enumerate(vecs)]
    total = decrypt_sum(add_ciphertexts(encrypted, public), keys, length)
    # Assert
    exact = np.sum(np.stack(vecs).astype(np.float64), axis=0)
    assert np.max(np.abs(total - exact)) <= DEFAULT_CKKS_PARAMS.error_bound(num)


def test_design_point_100_vectors_at_max_abs(keys: CkksKeyPair, public: ts.Context) -> None:
    # 100 organizations, every coordinate at +/-64: the sum is near the capacity limit.
    rng = np.random.default_rng(1)
    vecs = [rng.choice([-MAX_ABS, MAX_ABS], 64).astype(np.float32) for _ in range(100)]
    vecs = [np.abs(v) for v in vecs[:50]] + vecs[50:]
    total = decrypt_sum(add_ciphertexts([encrypt(v, public) for v in vecs], public), keys, 64)
    exact = np.sum(np.stack(vecs).astype(np.float64), axis=0)
    bound = DEFAULT_CKKS_PARAMS.error_bound(100)
    assert np.max(np.abs(total - exact)) <= bound
    assert DEFAULT_CKKS_PARAMS.capacity(100) >= 100 * MAX_ABS


def test_bound_is_not_vacuous(keys: CkksKeyPair, public: ts.Context) -> None:
    # Metric band: the measured error must reach a sizeable fraction of the bound.
    slots = DEFAULT_CKKS_PARAMS.slots
    zeros = np.zeros(4 * slots, dtype=np.float32)
    enc = [encrypt(zeros, public) for _ in range(4)]
    err = np.max(np.abs(decrypt_sum(add_ciphertexts(enc, public), keys, 4 * slots)))
    assert DEFAULT_CKKS_PARAMS.error_bound(4) / 25 < err < DEFAULT_CKKS_PARAMS.error_bound(4)


def test_public_context_has_no_secret_relin_or_galois_keys(keys: CkksKeyPair) -> None:
    ctx = ts.context_from(keys.public_context_bytes())
    assert not ctx.is_private() and not ctx.has_secret_key()
    assert not ctx.has_relin_keys() and not ctx.has_galois_keys()
    assert ctx.has_public_key()
    assert "secret_key=<held>" in repr(keys)


def test_load_public_context_refuses_secret_key(keys: CkksKeyPair) -> None:
    leaked = keys.secret_context.serialize(save_secret_key=True)
    with pytest.raises(SecretKeyExposureError, match="secret key"):
        load_public_context(leaked)


def test_organization_and_aggregator_refuse_private_context(
    keys: CkksKeyPair, public: ts.Context
) -> None:
    vec = np.ones(10, dtype=np.float32)
    with pytest.raises(SecretKeyExposureError, match="encrypt"):
        encrypt(vec, keys.secret_context)
    enc = [encrypt(vec, public)]
    with pytest.raises(SecretKeyExposureError, match="add_ciphertexts"):
        add_ciphertexts(enc, keys.secret_context)


def test_aggregator_cannot_decrypt(keys: CkksKeyPair, public: ts.Context) -> None:
    total = add_ciphertexts([encrypt(np.ones(10, dtype=np.float32), public)] * 2, public)
    with pytest.raises(ValueError, match="secret_key"):
        ts.ckks_vector_from(public, total[0]).decrypt()
    with pytest.raises(SecretKeyExposureError):
        CkksKeyPair(DEFAULT_CKKS_PARAMS, public)


def test_expansion_band(public: ts.Context) -> None:
    slots = DEFAULT_CKKS_PARAMS.slots
    enc = encrypt(np.ones(8 * slots, dtype=np.float32), public)
    expansion = sum(len(b) for b in enc) / (8 * slots * 4)
    assert 5.5 < expansion < 7.5  # 47-bit data prime; [60, 40, 60] measured 14.4


def test_encrypt_validates_vector(public: ts.Context) -> None:
    bad = np.ones(10, dtype=np.float32)
    bad[3] = np.nan
    with pytest.raises(UpdateVectorError, match=r"vectors\['org-x'\].flat\[3\] must be finite"):
        encrypt(bad, public, org_id="org-x")
    with pytest.raises(UpdateVectorError, match="must be <= 64"):
        encrypt(np.full(4, 65.0, dtype=np.float32), public, org_id="org-x", max_abs=MAX_ABS)


def test_add_refuses_mismatched_shapes(public: ts.Context, keys: CkksKeyPair) -> None:
    slots = DEFAULT_CKKS_PARAMS.slots
    short = encrypt(np.ones(10, dtype=np.float32), public)
    long = encrypt(np.ones(slots + 10, dtype=np.float32), public)
    with pytest.raises(InvalidFieldError, match=r"len\(encrypted\[1\]\) must be 1"):
        add_ciphertexts([short, long], public)
    with pytest.raises(InvalidFieldError, match="size"):
        add_ciphertexts([short, encrypt(np.ones(11, dtype=np.float32), public)], public)
    with pytest.raises(InvalidFieldError, match="length must be equal to the encrypted length"):
        decrypt_sum(short, keys, 11)


def test_saved_keys_reload_and_only_the_secret_file_is_private(
    keys: CkksKeyPair, public: ts.Context, tmp_path: Path
) -> None:
    keys.save(tmp_path)
    assert (tmp_path / SECRET_FILE).stat().st_mode & 0o777 == 0o600
    reloaded = CkksKeyPair.load(tmp_path)
    assert reloaded.params == keys.params
    vector = np.linspace(-1, 1, 100).astype(np.float32)
    blobs = encrypt(vector, load_public_context((tmp_path / PUBLIC_FILE).read_bytes()))
    np.testing.assert_allclose(decrypt_sum(blobs, reloaded, 100), vector,
                               atol=keys.params.error_bound(1))
    (tmp_path / SECRET_FILE).unlink()
    with pytest.raises(InvalidFieldError, match="directory must be"):
        CkksKeyPair.load(tmp_path)


def test_check_ciphertexts_names_the_bad_field(public: ts.Context) -> None:
    blobs = encrypt(np.ones(3000, dtype=np.float32), public)
    check_ciphertexts(blobs, public, 3000)
    with pytest.raises(InvalidFieldError, match=r"len\(update\[bank\].ciphertexts\)"):
        check_ciphertexts(blobs[:1], public, 3000, field="update[bank].ciphertexts")
    with pytest.raises(InvalidFieldError, match=r"update\[bank\].ciphertexts\[0\] must be"):
        check_ciphertexts([b"not a ciphertext", blobs[1]], public, 3000,
                          field="update[bank].ciphertexts")
    with pytest.raises(InvalidFieldError, match=r"ciphertexts\[1\].size"):
        check_ciphertexts([blobs[0], blobs[0]], public, 3000)
