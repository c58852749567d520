"""Distributed-DP grid and bit width: the documented no-wrap bound, exact transport through
Flower's quantizer, decoding, and refusals naming the field."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from flwr.common.secure_aggregation.quantization import quantize
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gt_secure.aggregation.ddp import DdpParams, decode_sum, rounding_sensitivity
from gt_secure.errors import InvalidFieldError
from gt_secure.organization.ddp_share import noise_share
from gt_secure.organization.secure_rng import InsecureRandomnessWarning


def _worst_case_shares(p: DdpParams, rng: np.random.Generator) -> list[np.ndarray]:
    """Every organization puts its whole clip norm on coordinate 0 (largest signal sum)."""
    out = []
    for _ in range(p.organizations):
        vec = np.zeros(p.dim)
        vec[0] = p.clip_norm * 5  # clipped to clip_norm
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", InsecureRandomnessWarning)
            out.append(noise_share(vec, p, rng, secure_mode=False))
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(orgs=st.integers(3, 30), dim=st.integers(1, 600), z=st.floats(0.05, 4.0),
       bits=st.integers(10, 24), clip=st.floats(0.01, 10.0), seed=st.integers(0, 2**32 - 1),
       drop=st.floats(0.0, 0.5), colluders=st.integers(0, 3))
def test_decoded_sum_is_exact_and_within_the_no_wrap_bound(
        orgs: int, dim: int, z: float, bits: int, clip: float, seed: int, drop: float,
        colluders: int) -> None:
    survivors = max(1, orgs - int(drop * orgs))
    colluders = min(colluders, survivors - 1)
    try:
        p = DdpParams.choose(clip, dim, z, orgs, survivors, colluders, bits)
    except InvalidFieldError as err:  # too few bits for the noise share: refused, by name
        assert err.field == "bits"
        return
    half = p.modulus // 2
    assert p.no_wrap_bound() <= half - 1 and p.sigma >= 0.5
    shares = _worst_case_shares(p, np.random.default_rng(seed))
    integers = sum(s.rounded + s.noise for s in shares)
    assert int(np.max(np.abs(integers))) <= p.no_wrap_bound()  # (holds but w.p. 2**-40)
    for s in shares:
        assert np.all(s.wire >= -half) and np.all(s.wire < half)
        assert float(np.linalg.norm(s.rounded)) <= p.sensitivity
    # What Flower's server computes: sum of (u + T/2), then (S - n T/2) / n.
    flower = sum(s.wire + half for s in shares)
    mean = (flower - p.organizations * half) / p.organizations
    decoded = decode_sum(mean, p.organizations, p)
    assert np.array_equal(decoded, integers * p.scale)


def test_a_sum_beyond_the_modulus_wraps_so_the_bound_matters() -> None:
    p = DdpParams.choose(1.0, 4, 1.0, 3, 2, 0, 12)
    half = p.modulus // 2
    ints = np.array([half - 1, half, -half, 3 * half])  # sums as integers; beyond [-T/2, T/2)
    wire = np.mod(ints + half, p.modulus) - half
    decoded = decode_sum(wire / 3 * 3 / 3, 3, p) / p.scale  # Flower's mean of one vector + zeros
    assert decoded.tolist() == [half - 1, -half, -half, -half]


def test_flowers_quantizer_carries_the_integer_shares_exactly() -> None:
    p = DdpParams.choose(1.0, 1000, 1.0, 10, 6, 1, 16)
    secagg = p.secagg_params(num_shares=5, reconstruction_threshold=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureRandomnessWarning)
        share = noise_share(np.full(1000, 0.1), p, np.random.default_rng(1), secure_mode=False)
    (q,) = quantize([share.wire], secagg.clipping_range, secagg.quantization_range)
    assert np.array_equal(q.astype(np.int64), share.wire.astype(np.int64) + p.modulus // 2)
    assert secagg.max_clients() >= 10


def test_noise_shares_add_up_to_the_target_over_the_fewest_honest_survivors() -> None:
    p = DdpParams.choose(2.0, 10_000, 1.5, 10, 7, 2, 20)
    # 5 honest shares of sigma reach (z C)^2 / scale^2 in variance
    assert 5 * p.sigma**2 * p.scale**2 == pytest.approx((1.5 * 2.0) ** 2)
    shares = noise_share(np.zeros(10_000), p).noise  # OS CSPRNG
    assert float(np.std(shares)) == pytest.approx(p.sigma, rel=0.04)
    # rounding adds < 1 unit per coordinate: the sensitivity grows by well under 1%
    assert p.sensitivity <= 1.01 * 2.0 / p.scale
    # KLS21 eq. (15) with beta = e^-0.5: min((c + sqrt d)^2, c^2 + d/4 + (c + sqrt(d)/2))
    assert rounding_sensitivity(0.0, 4) == pytest.approx(math.sqrt(2.0))
    assert rounding_sensitivity(3.0, 1) == pytest.approx(math.sqrt(9 + 0.25 + 3.5))


def test_refusals_name_the_field() -> None:
    with pytest.raises(InvalidFieldError, match="bits must be large enough for 30"):
        DdpParams.choose(1.0, 2048, 1.0, 30, 20, 0, 6)
    with pytest.raises(InvalidFieldError, match="max_colluders must be in \\[0, min_survivors=2"):
        DdpParams.choose(1.0, 10, 1.0, 3, 2, 2, 16)
    with pytest.raises(InvalidFieldError, match="min_survivors must be in \\[1, organizations=3"):
        DdpParams.choose(1.0, 10, 1.0, 3, 4, 0, 16)
    p = DdpParams.choose(1.0, 10, 1.0, 3, 2, 0, 16)
    with pytest.raises(InvalidFieldError, match="num_summands must be >= min_survivors=2"):
        decode_sum(np.zeros(10), 1, p)
    with pytest.raises(InvalidFieldError, match="bits must be <= 28 for 10 organizations"):
        DdpParams.choose(1.0, 10, 1.0, 10, 6, 0, 30).secagg_params(5, 3)
    with pytest.raises(InvalidFieldError, match="update.dim must be 10"):
        noise_share(np.zeros(11), p)


@pytest.mark.parametrize(("epsilon", "survivors"), [(8.0, 3), (2.0, 2)])
def test_for_epsilon_meets_the_target_with_little_slack(epsilon: float,
                                                           survivors: int) -> None:
    from gt_secure.aggregation.ddp import ORG_DELTA
    from gt_secure.ledger.accountant import compute_epsilon

    params = DdpParams.for_epsilon(epsilon, 0.65, 16, 3, survivors, 0, 16)
    # within Opacus's epsilon tolerance (0.01) of the target, never above it
    assert epsilon - 0.011 <= compute_epsilon([params.mechanism()], ORG_DELTA, "rdp") <= epsilon
