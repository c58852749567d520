"""Pairwise masks and the masked integer encoding, against closed forms and NumPy references."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_secure.aggregation.ckks import (
    CkksKeyPair,
    add_ciphertexts,
    decrypt_sum,
    encrypt_values,
)
from gt_secure.aggregation.ckks_masks import (
    MaskedEncoding,
    mask_key_bytes,
    new_mask_key,
    organization_mask,
    pair_seed,
    prg_mask,
)
from gt_secure.aggregation.ckks_params import INTEGER_CKKS_PARAMS
from gt_secure.errors import InvalidFieldError, UpdateVectorError

ENCODING = MaskedEncoding.for_sum(64.0, 100, 29)


def _seeds(orgs: list[str]) -> dict[str, dict[str, bytes]]:
    keys = {o: new_mask_key() for o in orgs}
    return {o: {p: pair_seed(keys[o], mask_key_bytes(keys[p]), b"".join(
        sorted((o.encode(), p.encode())))) for p in orgs if p != o} for o in orgs}


def test_encoding_for_the_dp_ckks_design_point() -> None:
    # 100 organizations * 64 / 2**-15 = 100 * 2**21 < 2**28; 2**-16 would reach 100 * 2**22.
    assert ENCODING.step == 2.0**-15 and ENCODING.modulus == 2**29
    assert 100 * 64 / ENCODING.step < 2**28 <= 100 * 64 / (ENCODING.step / 2)


def test_both_sides_of_a_pair_derive_the_same_seed_and_others_differ() -> None:
    a, b, c = new_mask_key(), new_mask_key(), new_mask_key()
    ab = pair_seed(a, mask_key_bytes(b), b"1|1|a|b")
    assert ab == pair_seed(b, mask_key_bytes(a), b"1|1|a|b")
    assert ab != pair_seed(a, mask_key_bytes(b), b"1|2|a|b")  # bound to the round
    assert ab != pair_seed(a, mask_key_bytes(c), b"1|1|a|b")


def test_prg_is_chacha20_keyed_by_the_seed() -> None:
    seed = bytes(range(32))
    stream = Cipher(algorithms.ChaCha20(seed, bytes(16)), mode=None).encryptor().update(
        bytes(40))
    words = np.frombuffer(stream, dtype="<u4").astype(np.int64)
    np.testing.assert_array_equal(prg_mask(seed, 10, 29), words % 2**29)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 6), dim=st.integers(1, 300), seed=st.integers(0, 2**32 - 1))
def test_masks_of_all_participants_cancel_and_fewer_do_not(n: int, dim: int, seed: int) -> None:
    orgs = [f"org-{i}" for i in range(n)]
    seeds = _seeds(orgs)
    masks = {o: organization_mask(o, seeds[o], dim, 29) for o in orgs}
    assert not np.any(sum(masks.values()) % 2**29)
    partial = sum(masks[o] for o in orgs[1:]) % 2**29
    assert np.count_nonzero(partial) > dim // 2  # uniform residues: zero w.p. 2**-29 each


def test_masked_sum_decodes_to_the_quantized_sum_and_a_single_vector_to_noise() -> None:
    # Prepare: three organizations' vectors, masked and encrypted under one key pair.
    rng = np.random.default_rng(3)
    orgs = ["a", "b", "c"]
    seeds = _seeds(orgs)
    vectors = {o: rng.normal(0, 1, 3000) for o in orgs}
    keys = CkksKeyPair.generate(INTEGER_CKKS_PARAMS)
    public = keys.public_context()
    chunks = {o: encrypt_values(ENCODING.masked(ENCODING.quantize(vectors[o]),
                                                organization_mask(o, seeds[o], 3000, 29)), public)
              for o in orgs}
    bound = INTEGER_CKKS_PARAMS.error_bound(3)

    # Execute / Assert: the sum is exact (NumPy reference on the quantized integers).
    total = ENCODING.decode_sum(decrypt_sum(add_ciphertexts(list(chunks.values()), public),
                                            keys, 3000), bound)
    reference = sum(np.rint(vectors[o] / ENCODING.step) for o in orgs) * ENCODING.step
    np.testing.assert_array_equal(total, reference)
    # Assert: one ciphertext alone decodes to residues uniform on [-2**28, 2**28): uncorrelated
    # with the vector, standard deviation 2**29 / sqrt(12) within 5%.
    alone = ENCODING.decode_sum(decrypt_sum(chunks["a"], keys, 3000), bound) / ENCODING.step
    assert abs(np.corrcoef(alone, vectors["a"])[0, 1]) < 0.1
    assert abs(np.std(alone) / (2**29 / 12**0.5) - 1) < 0.05


def test_encoding_refuses_bad_values_and_non_integer_sums() -> None:
    with pytest.raises(UpdateVectorError, match=r"max\(abs\(flat\)\) must be <= 64.0"):
        ENCODING.quantize(np.array([65.0]))
    with pytest.raises(UpdateVectorError, match="flat.non_finite_count"):
        ENCODING.quantize(np.array([np.nan]))
    with pytest.raises(InvalidFieldError, match=r"ckks_sum\.integer_distance"):
        ENCODING.decode_sum(np.array([1.0, 2.4]), 0.1)
    with pytest.raises(InvalidFieldError, match="modulus_bits must be in"):
        MaskedEncoding.for_sum(64.0, 100, 40)
    with pytest.raises(InvalidFieldError, match="seeds must be peers"):
        organization_mask("a", {"a": bytes(32)}, 4, 29)
