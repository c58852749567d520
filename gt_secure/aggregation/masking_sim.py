"""In-process run of Flower 1.42's SecAgg+ cryptography, for benchmarks and reference tests.

Drives Flower's own primitives in the order ``secaggplus_mod`` (client) and
``SecAggPlusWorkflow`` (server) call them: ECDH key pairs, Shamir shares of the mask seed and of
the mask key, share encryption, ``quantize``, private and pairwise masks (``pseudo_rand_gen``),
the modular sum, seed reconstruction, unmasking and ``dequantize``. It measures the
cryptographic cost without Flower's messaging; it assumes no dropouts and every weight equal to
``max_weight``, so the result is the unweighted mean, as the workflow returns it. The real
round time (with the network) comes from the Flower app.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from flwr.common import ndarray_to_bytes
from flwr.common.secure_aggregation.crypto.shamir import combine_shares, create_shares
from flwr.common.secure_aggregation.crypto.symmetric_encryption import (
    encrypt,
    generate_shared_key,
)
from flwr.common.secure_aggregation.ndarrays_arithmetic import (
    factor_combine,
    factor_extract,
    parameters_addition,
    parameters_mod,
    parameters_subtraction,
)
from flwr.common.secure_aggregation.quantization import dequantize, quantize
from flwr.common.secure_aggregation.secaggplus_utils import pseudo_rand_gen
from flwr.supercore.primitives.asymmetric import generate_key_pairs, private_key_to_bytes

from gt_secure.aggregation.plain import validate_vectors
from gt_secure.aggregation.quantization import SecAggParams

__all__ = ["MaskedRoundResult", "flower_masked_mean"]


@dataclass(frozen=True)
class MaskedRoundResult:
    """Decoded mean, bytes each client uploads, and CPU time per side (robust to load)."""

    mean: np.ndarray
    upload_bytes_per_client: int
    client_seconds: float  # CPU seconds, all clients together, run one after another
    server_seconds: float  # CPU seconds


def _neighbours(n: int, num_shares: int) -> list[list[int]]:
    half = num_shares >> 1
    return [sorted({(i + off) % n for off in range(-half, half + 1)}) for i in range(n)]


def flower_masked_mean(vectors: Sequence[np.ndarray], params: SecAggParams) -> MaskedRoundResult:
    """One SecAgg+ round over ``vectors`` with Flower's primitives; returns the decoded mean."""
    validate_vectors({f"client-{i}": v for i, v in enumerate(vectors)})
    n, c = len(vectors), params.clipping_range
    t_range, m_range = params.quantization_range, params.modulus_range
    hood = _neighbours(n, min(params.num_shares, n))
    t0 = time.process_time()
    # Stage 0 (setup): two key pairs per client.
    keys = [(generate_key_pairs(), generate_key_pairs()) for _ in range(n)]
    # Stage 1 (share keys): Shamir shares of the seed and of sk1, encrypted for each neighbour.
    seeds = [os.urandom(32) for _ in range(n)]
    seed_shares: list[dict[int, bytes]] = [{} for _ in range(n)]  # owner -> holder -> share
    for i in range(n):
        sk1_bytes = private_key_to_bytes(keys[i][0][0])
        b_sh = create_shares(seeds[i], params.reconstruction_threshold, len(hood[i]))
        sk_sh = create_shares(sk1_bytes, params.reconstruction_threshold, len(hood[i]))
        for idx, j in enumerate(hood[i]):
            seed_shares[i][j] = b_sh[idx]
            if j != i:
                key = generate_shared_key(keys[i][1][0], keys[j][1][1])
                encrypt(key, b_sh[idx] + sk_sh[idx])
    # Stage 2 (collect masked vectors): quantize, add masks, reduce modulo M.
    uploads: list[list[np.ndarray]] = []
    upload_bytes = 0
    for i, vec in enumerate(vectors):
        q = factor_combine(t_range, quantize([vec], c, t_range))
        dims = [a.shape for a in q]
        q = parameters_addition(q, pseudo_rand_gen(seeds[i], m_range, dims))
        for j in hood[i]:
            if j == i:
                continue
            shared = generate_shared_key(keys[i][0][0], keys[j][0][1])
            mask = pseudo_rand_gen(shared, m_range, dims)
            q = parameters_addition(q, mask) if i > j else parameters_subtraction(q, mask)
        q = parameters_mod(q, m_range)
        upload_bytes = sum(len(ndarray_to_bytes(a)) for a in q)
        uploads.append(q)
    t1 = time.process_time()
    # Server: modular sum, reconstruct every seed from threshold shares, unmask, dequantize.
    total = uploads[0]
    for up in uploads[1:]:
        total = parameters_addition(total, up)
    total = parameters_mod(total, m_range)
    dims = [a.shape for a in total]
    for i in range(n):
        shares = list(seed_shares[i].values())[: params.reconstruction_threshold]
        private_mask = pseudo_rand_gen(combine_shares(shares), m_range, dims)
        total = parameters_subtraction(total, private_mask)
    total = parameters_mod(total, m_range)
    q_total, recon = factor_extract(total)
    mean = dequantize(recon, c, t_range)[0]
    mean += -(n - 1) * c
    mean *= t_range / q_total
    t2 = time.process_time()
    return MaskedRoundResult(mean, upload_bytes, t1 - t0, t2 - t1)
