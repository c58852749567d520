"""SecAgg+ parameters chosen for a round of the app."""

from __future__ import annotations

import pytest

from gt_secure.aggregation.quantization import choose_secagg_params
from gt_secure.aggregation.secagg import (
    max_abs,
    mean_error_bound,
    mean_l2_error_bound,
    round_params,
)


def test_auto_params_tolerate_one_dropout_of_three_and_cover_noise() -> None:
    params = round_params(1.0, 0.0, 3)
    assert (params.num_shares, params.reconstruction_threshold) == (3, 2)
    assert params.clipping_range == 1.0
    noisy = round_params(1.0, 0.5, 3)
    assert noisy.clipping_range == max_abs(1.0, 0.5) == 5.0


def test_pinned_params_win() -> None:
    pinned = choose_secagg_params(1.0, 5, 1.0)
    assert round_params(2.0, 1.0, 3, pinned) is pinned


def test_mean_bound_is_one_quantization_step_per_entry() -> None:
    params = round_params(1.0, 0.0, 3)
    step = 2 * params.clipping_range / params.quantization_range
    float64_terms = params.clipping_range * (2.0**-50 + 2.0**-48)
    assert step <= mean_error_bound(params, 2) <= step + float64_terms
    assert mean_l2_error_bound(params, 2, 100) == pytest.approx(10 * mean_error_bound(params, 2))
