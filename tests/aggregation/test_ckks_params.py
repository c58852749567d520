"""CKKS parameter validation and the least-expansion chooser."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gt_secure.aggregation.ckks_params import (
    DEFAULT_CKKS_PARAMS,
    CkksParams,
    choose_ckks_params,
)
from gt_secure.errors import InvalidFieldError


def test_default_is_the_chooser_design_point() -> None:
    assert choose_ckks_params(max_abs=64.0, max_vectors=100, target_error=1e-4) == (
        DEFAULT_CKKS_PARAMS
    )
    assert DEFAULT_CKKS_PARAMS.error_bound(100) <= 1e-4


@pytest.mark.parametrize(
    ("max_abs", "n", "target"), [(1.0, 10, 1e-3), (64.0, 100, 1e-3), (8.0, 20, 1e-6)]
)
def test_chooser_meets_target_with_minimal_data_prime(
    max_abs: float, n: int, target: float
) -> None:
    p = choose_ckks_params(max_abs, n, target)
    assert p.error_bound(n) <= target and p.capacity(n) >= n * max_abs
    smaller = p.coeff_mod_bit_sizes[0] - 1
    for degree in (2048, 4096, 8192, 16384):
        for scale in range(10, smaller - 2):
            try:
                cand = CkksParams(
                    poly_modulus_degree=degree,
                    coeff_mod_bit_sizes=(smaller, 20),
                    global_scale_bits=scale,
                )
            except ValidationError:
                continue
            assert not (cand.error_bound(n) <= target and cand.capacity(n) >= n * max_abs)


def test_chooser_refuses_unreachable_target() -> None:
    with pytest.raises(InvalidFieldError) as info:
        choose_ckks_params(1e6, 1000, 1e-12)
    assert info.value.field == "target_error"


def test_params_enforce_128_bit_security_and_scale() -> None:
    with pytest.raises(ValidationError, match="at most 109 bits in total"):
        CkksParams(poly_modulus_degree=4096, coeff_mod_bit_sizes=(60, 60), global_scale_bits=40)
    with pytest.raises(ValidationError, match="global_scale_bits must be in"):
        CkksParams(poly_modulus_degree=4096, coeff_mod_bit_sizes=(40, 30), global_scale_bits=39)
    with pytest.raises(ValidationError, match="one of"):
        CkksParams(poly_modulus_degree=3000, coeff_mod_bit_sizes=(40, 30), global_scale_bits=30)
    with pytest.raises(InvalidFieldError, match="num_vectors must be >= 1"):
        DEFAULT_CKKS_PARAMS.error_bound(0)


def test_bound_grows_as_sqrt_of_count() -> None:
    ratio = DEFAULT_CKKS_PARAMS.error_bound(100) / DEFAULT_CKKS_PARAMS.error_bound(1)
    assert 9.9 < ratio < 10.1
