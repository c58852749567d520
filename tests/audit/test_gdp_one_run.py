"""Gaussian-DP one-run bound vs closed forms and the Gaussian mechanism simulated on numbers."""

from __future__ import annotations

import numpy as np
import pytest
from audit_helpers import gaussian_delta, gaussian_epsilon
from scipy.optimize import brentq
from scipy.stats import binom, norm

from gt_secure.audit.empirical_epsilon import one_run_audit
from gt_secure.audit.gdp_one_run import (
    gdp_consistent,
    gdp_delta,
    gdp_epsilon,
    gdp_mu_lower_bound,
    gdp_one_run_audit,
)
from gt_secure.audit.tightness import fraction_guess_grid
from gt_secure.errors import InvalidFieldError

DELTA = 1e-5
BETA = 0.05
REPS = 100
MAX_VIOLATIONS = int(binom.ppf(0.999, REPS, BETA))


def _game(mu: float, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """m canaries with fair coins; an "in" canary's score is shifted by mu noise stds."""
    rng = np.random.default_rng(seed)
    coins = rng.random(m) < 0.5
    return mu * coins + rng.normal(0.0, 1.0, m), coins


def test_gdp_epsilon_is_the_gaussian_mechanism_closed_form():
    for sigma in (0.5, 1.0, 3.0):
        assert gdp_epsilon(1 / sigma, DELTA) == pytest.approx(gaussian_epsilon(sigma, DELTA),
                                                              abs=1e-6)
        assert gdp_delta(1 / sigma, 2.0) == pytest.approx(gaussian_delta(2.0, sigma), rel=1e-9)
    assert gdp_epsilon(0.0, DELTA) == 0.0


def test_two_guesses_right_match_the_recursion_in_closed_form():
    # r = v = 2 unrolls to: consistent iff a + G(a) + G(a + G(a)) <= 2/m, a = 2 tau/m,
    # G(x) = Phi(Phi^-1(x) - mu). At mu = 0 that is tau <= 1/4 (both right w.p. 1/4).
    m = 50
    assert gdp_consistent(np.array([0.0]), m, 2, 2, 0.2)[0]
    assert not gdp_consistent(np.array([0.0]), m, 2, 2, 0.3)[0]
    a = 2 * 0.3 / m

    def g(x: float, u: float) -> float:
        return float(norm.cdf(norm.ppf(x) - u))

    expected = brentq(lambda u: a + g(a, u) + g(a + g(a, u), u) - 2 / m, 0.0, 20.0)
    assert gdp_mu_lower_bound(m, 2, 2, 0.3) == pytest.approx(expected, abs=2e-4)


def test_consistency_is_monotone_in_mu_and_zero_right_never_rejects():
    mus = np.linspace(0, 6, 61)
    ok = gdp_consistent(mus, 1000, 100, 97, 0.01)
    assert not ok[0] and ok[-1] and np.all(np.diff(ok.astype(int)) >= 0)
    assert gdp_mu_lower_bound(1000, 100, 0, 0.01) == 0.0
    assert gdp_mu_lower_bound(1000, 100, 50, 0.01) == 0.0  # chance level rejects nothing
    with pytest.raises(InvalidFieldError, match="guesses"):
        gdp_consistent(mus, 10, 20, 5, 0.05)


@pytest.mark.parametrize("mu", [0.7, 1.5, 2.5])
def test_bound_never_exceeds_the_true_epsilon_of_a_gaussian_mechanism(mu):
    truth = gdp_epsilon(mu, DELTA)
    bounds = np.array([gdp_one_run_audit(*_game(mu, 1000, s), delta=DELTA, beta=BETA,
                                         guess_grid=fraction_guess_grid(1000)).epsilon
                       for s in range(REPS)])
    assert int((bounds > truth).sum()) <= MAX_VIOLATIONS
    assert bounds.max() <= truth  # measured: the bound stays well inside
    assert np.median(bounds) > 0.35 * truth  # informative, not vacuous


def test_bound_near_zero_for_huge_noise_and_above_a_false_claim_for_a_planted_bug():
    grid = fraction_guess_grid(1000)
    quiet = np.array([gdp_one_run_audit(*_game(0.01, 1000, s), delta=DELTA,
                                        guess_grid=grid).epsilon for s in range(REPS)])
    assert int((quiet > gdp_epsilon(0.01, DELTA)).sum()) <= MAX_VIOLATIONS
    assert quiet.max() < 0.2
    claim = gaussian_epsilon(2.0, DELTA)  # claimed sigma 2 (mu 0.5), run with sigma 1/3
    caught = [gdp_one_run_audit(*_game(3.0, 1000, s), delta=DELTA, guess_grid=grid).epsilon
              for s in range(10)]
    assert min(caught) > claim


def test_gdp_bound_is_tighter_than_eps_delta_one_run_at_large_epsilon():
    # The Gaussian mechanism at epsilon 8 (mu 1.666): with 4000 canaries the (epsilon, delta)
    # one-run bound is stuck near 3 (its 2 m delta term and the binomial tail), GDP is not.
    scores, coins = _game(1.666, 4000, 0)
    grid = fraction_guess_grid(4000)
    gdp = gdp_one_run_audit(scores, coins, delta=DELTA, guess_grid=grid)
    eps_delta = one_run_audit(scores, coins, delta=DELTA, guess_grid=grid)
    assert gdp.epsilon > 4.0 > eps_delta.epsilon
    assert gdp.mu is not None and gdp.epsilon == pytest.approx(gdp_epsilon(gdp.mu, DELTA))


@pytest.mark.slow
def test_gdp_bound_approaches_half_the_claim_at_epsilon_8_over_seeds():
    """Simulation of the tightness audit's statistics: 8000 canaries, RDP claim 8 (mu 1.567)."""
    grid = fraction_guess_grid(8000)
    bounds = [gdp_one_run_audit(*_game(1.567, 8000, s), delta=DELTA, guess_grid=grid).epsilon
              for s in range(10)]
    assert np.median(bounds) >= 4.0 and max(bounds) <= gdp_epsilon(1.567, DELTA)
