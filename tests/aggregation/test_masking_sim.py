"""Flower's SecAgg+ masking, run in process: the masked mean matches the plain mean."""

from __future__ import annotations

import numpy as np
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen

from gt_secure.aggregation.masking_sim import flower_masked_mean
from gt_secure.aggregation.quantization import choose_secagg_params


def test_masked_mean_matches_plain_mean() -> None:
    # Prepare
    rng = np.random.default_rng(0)
    vecs = [rng.uniform(-1, 1, 3000).astype(np.float32) for _ in range(5)]
    params = choose_secagg_params(1.0, 5, 1e-4, num_shares=3)
    # Execute
    result = flower_masked_mean(vecs, params)
    # Assert
    exact = np.mean(np.stack(vecs).astype(np.float64), axis=0)
    assert np.max(np.abs(result.mean - exact)) <= params.error_bound(5) / 5
    assert 8 * 3001 <= result.upload_bytes_per_client < 8 * 3001 + 512  # int64 on the wire
    assert result.client_seconds > 0 and result.server_seconds > 0


def test_flower_mask_seeds_have_only_32_bits() -> None:
    # Known limitation documented in SECURITY.md and protocols/dp-secagg.md: two different
    # 32-byte seeds whose 4-byte words XOR to the same value give the same mask. If this test
    # fails, Flower fixed it: update both documents.
    seed = bytes(range(32))
    twin = bytes(b ^ m for b, m in zip(seed, b"\x01\x02\x03\x04" * 2 + b"\x00" * 24, strict=True))
    assert twin != seed
    mask = pseudo_rand_gen(seed, 2**32, [(8,)])[0]
    np.testing.assert_array_equal(mask, pseudo_rand_gen(twin, 2**32, [(8,)])[0])
