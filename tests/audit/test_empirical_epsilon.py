"""Empirical-epsilon lower bounds vs the Gaussian mechanism simulated directly on numbers."""

from __future__ import annotations

import numpy as np
import pytest
from audit_helpers import gaussian_delta, gaussian_epsilon
from scipy.special import logit
from scipy.stats import binom, norm

from gt_secure.audit.empirical_epsilon import (
    clopper_pearson_epsilon,
    default_guess_grid,
    one_run_audit,
    one_run_epsilon,
    one_run_p_value,
)
from gt_secure.errors import InvalidFieldError

DELTA = 1e-5
BETA = 0.05
REPS = 50
# Allowed violations in REPS runs of a bound valid at 1 - BETA (binomial 99.9% quantile).
MAX_VIOLATIONS = int(binom.ppf(0.999, REPS, BETA))


def _one_run_game(sigma: float, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    coins = rng.random(m) < 0.5
    return coins + rng.normal(0.0, sigma, m), coins


def _independent_game(sigma: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.r_[np.ones(n, bool), np.zeros(n, bool)]
    return labels + rng.normal(0.0, sigma, 2 * n), labels


def test_gaussian_closed_form_pinned_and_round_trips():
    # Analytic Gaussian mechanism (Balle & Wang 2018): sigma=1, delta=1e-5 -> eps ~= 4.3772.
    assert gaussian_epsilon(1.0, DELTA) == pytest.approx(4.37718, abs=1e-4)
    for sigma in (0.3, 1.0, 5.0):
        assert gaussian_delta(gaussian_epsilon(sigma, DELTA), sigma) == pytest.approx(DELTA)


def test_one_run_p_value_without_delta_is_the_binomial_tail():
    for m, r, v, eps in ((100, 50, 40, 1.0), (30, 30, 20, 0.2)):
        q = 1 / (1 + np.exp(-eps))
        assert one_run_p_value(m, r, v, eps, 0.0) == pytest.approx(binom.sf(v - 1, r, q))
    assert one_run_p_value(10, 5, 0, 1.0, 0.0) == 1.0


def test_one_run_p_value_increases_with_epsilon_and_delta():
    eps = np.linspace(0, 5, 26)
    p = [one_run_p_value(200, 100, 80, e, 1e-4) for e in eps]
    assert np.all(np.diff(p) >= -1e-12)
    assert one_run_p_value(200, 100, 80, 1.0, 1e-3) > one_run_p_value(200, 100, 80, 1.0, 0.0)


def test_one_run_epsilon_all_correct_matches_closed_form():
    # delta = 0, v = r: p-value = q^r, so the boundary is q = beta^(1/r).
    for r in (10, 64, 200):
        expected = float(logit(BETA ** (1 / r)))
        assert one_run_epsilon(r, r, r, delta=0.0, beta=BETA) == pytest.approx(expected, abs=1e-5)
    assert one_run_epsilon(100, 100, 50, delta=0.0, beta=BETA) == 0.0


@pytest.mark.parametrize(("sigma", "m"), [(0.5, 200), (1.0, 1000), (2.0, 2000)])
def test_one_run_bound_is_valid_on_gaussian_mechanism(sigma, m):
    truth = gaussian_epsilon(sigma, DELTA)
    bounds = np.array([one_run_audit(*_one_run_game(sigma, m, s), delta=DELTA, beta=BETA).epsilon
                       for s in range(REPS)])
    assert int((bounds > truth).sum()) <= MAX_VIOLATIONS
    assert np.median(bounds) > 0.25 * min(truth, 4.0)  # informative, not vacuous


def test_one_run_bound_near_zero_for_huge_noise():
    bounds = [one_run_audit(*_one_run_game(100.0, 1000, s), delta=DELTA, beta=BETA).epsilon
              for s in range(REPS)]
    assert max(bounds) <= gaussian_epsilon(100.0, DELTA)
    assert np.mean(bounds) < 0.01


@pytest.mark.parametrize("sigma", [0.5, 1.0])
@pytest.mark.parametrize("grid", [None, np.linspace(-2.0, 3.0, 21)])
def test_clopper_pearson_bound_is_valid_on_gaussian_mechanism(sigma, grid):
    truth = gaussian_epsilon(sigma, DELTA)
    bounds = np.array([
        clopper_pearson_epsilon(*_independent_game(sigma, 400, s), delta=DELTA, beta=BETA,
                                thresholds=grid, seed=s).epsilon
        for s in range(REPS)])
    assert int((bounds > truth).sum()) <= MAX_VIOLATIONS
    assert np.median(bounds) > (1.5 if sigma == 0.5 else 0.5)


def test_clopper_pearson_bound_zero_for_huge_noise():
    for grid in (None, np.linspace(-300, 300, 21)):
        bounds = [clopper_pearson_epsilon(*_independent_game(100.0, 400, s), delta=DELTA,
                                          thresholds=grid, seed=s).epsilon for s in range(20)]
        assert max(bounds) == 0.0


def test_fixed_rule_bound_violation_rate_is_at_most_beta():
    # One fixed threshold: the quantity bounded is the rule's own log(TPR / FPR), in closed form.
    beta, t = 0.2, 0.5
    truth = float(np.log(norm.cdf(1 - t) / norm.cdf(-t)))  # both directions are symmetric
    bounds = np.array([clopper_pearson_epsilon(*_independent_game(1.0, 200, s), delta=0.0,
                                               beta=beta, thresholds=[t]).epsilon
                       for s in range(300)])
    rate = float((bounds > truth).mean())
    assert rate <= beta
    assert np.median(bounds) > 0.3 * truth


def test_default_guess_grid_is_valid_and_data_independent():
    grid = default_guess_grid(48)
    assert (24, 24) in grid and (48, 0) in grid
    assert all(1 <= a + b <= 48 for a, b in grid)
    assert len(set(grid)) == len(grid)


def test_perfect_separation_one_run_and_invalid_inputs():
    coins = np.array([True, False] * 32)
    bound = one_run_audit(coins.astype(float), coins, delta=DELTA)
    assert bound.correct == bound.guesses == 64 and bound.epsilon > 2.0
    with pytest.raises(InvalidFieldError, match="delta must be in"):
        one_run_audit(coins.astype(float), coins, delta=1.5)
    with pytest.raises(InvalidFieldError, match="beta must be in"):
        clopper_pearson_epsilon(coins.astype(float), coins, delta=DELTA, beta=0.0)
    with pytest.raises(InvalidFieldError, match="guess_grid"):
        one_run_audit(coins.astype(float), coins, delta=DELTA, guess_grid=[(60, 10)])
    with pytest.raises(InvalidFieldError, match="labels"):
        one_run_audit(np.zeros(4), np.ones(4, bool), delta=DELTA)
