"""Discrete Gaussian sampler (CKS20 Algorithm 3) against its exact pmf, and its RNG modes."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from gt_secure.errors import InvalidFieldError
from gt_secure.organization.discrete_gaussian import discrete_gaussian, discrete_gaussian_pmf
from gt_secure.organization.secure_rng import InsecureRandomnessWarning


@pytest.mark.parametrize("sigma", [0.6, 1.5, 4.0])
def test_draws_follow_the_exact_pmf(sigma: float) -> None:
    with pytest.warns(InsecureRandomnessWarning):
        draws = discrete_gaussian(40_000, sigma, np.random.default_rng(7), secure_mode=False)
    support = np.arange(-int(4 * sigma) - 1, int(4 * sigma) + 2)
    expected = discrete_gaussian_pmf(support, sigma) * draws.size
    observed = np.array([(draws == x).sum() for x in support])
    tail_obs = draws.size - observed.sum()
    tail_exp = draws.size - expected.sum()
    chi2 = stats.chisquare(np.append(observed, tail_obs), np.append(expected, tail_exp))
    assert chi2.pvalue > 1e-4
    assert draws.dtype == np.int64


def test_secure_mode_variance_matches_sigma_squared() -> None:
    # N_Z(0, s^2) has variance s^2 (1 - O(exp(-2 pi^2 s^2))): exactly s^2 to float precision here.
    draws = discrete_gaussian(50_000, 30.0)  # OS CSPRNG
    assert float(np.var(draws)) == pytest.approx(900.0, rel=0.04)  # 4 standard errors
    assert abs(float(np.mean(draws))) < 4 * 30.0 / np.sqrt(50_000)
    assert discrete_gaussian(5, 0.0).tolist() == [0] * 5


def test_rng_mode_and_bad_input_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidFieldError, match="generator must be None when secure_mode"):
        discrete_gaussian(3, 1.0, np.random.default_rng(0))
    with pytest.raises(InvalidFieldError, match="generator must be a numpy.random.Generator"):
        discrete_gaussian(3, 1.0, secure_mode=False)
    with pytest.raises(InvalidFieldError, match="sigma must be finite and >= 0, got sigma=-1"):
        discrete_gaussian(3, -1.0)
    with pytest.raises(InvalidFieldError, match="n must be >= 0"):
        discrete_gaussian(-1, 1.0)
