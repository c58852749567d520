"""The subsampled Gaussian's PLD-derived trade-off curve and the f-DP one-run bound on it.

Closed forms: for q = 1 the curve is the Gaussian G_mu; for one step at q < 1 it is the convex
hull of the Neyman-Pearson curves of ``(1 - q) N(0, z^2) + q N(1, z^2)`` vs ``N(0, z^2)`` both
ways. Simulations of the exact mechanism (every step observed, the optimal score) never give a
bound above its true epsilon.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, norm

from gt_secure.audit.fdp_one_run import fdp_one_run_audit, fdp_strength_lower_bound
from gt_secure.audit.gdp_one_run import GAUSSIAN, gdp_mu_lower_bound, gdp_one_run_audit
from gt_secure.audit.step_canary import llr_scores
from gt_secure.audit.subsampled_curve import SubsampledGaussianFamily, tradeoff
from gt_secure.audit.tightness import fraction_guess_grid
from gt_secure.errors import InvalidFieldError

DELTA = 1e-5
ALPHA = np.concatenate([np.logspace(-9, -1, 60), np.linspace(0.1, 0.999, 60)])


def _game(q: float, steps: int, z: float, m: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The exact mechanism: each step's canary coordinate, N(0, z^2) + 1 when sampled."""
    rng = np.random.default_rng(seed)
    coins = rng.random(m) < 0.5  # (m,)
    sampled = (rng.random((steps, m)) < q) & coins  # (T, m)
    return llr_scores(sampled + z * rng.standard_normal((steps, m)), q, z), coins


@pytest.mark.parametrize(("steps", "z"), [(8, 2.0), (1, 0.8), (4, 3.0)])
def test_full_batch_curve_is_the_gaussian_curve(steps, z):
    mu = np.sqrt(steps) / z
    found = tradeoff(1.0, steps, z, ALPHA)
    exact = norm.cdf(norm.ppf(1 - ALPHA) - mu)
    assert np.abs(found - exact).max() < 2e-5  # PLD and epsilon-grid discretisation
    assert (found <= exact + 1e-12).all()  # pessimistic: never a stronger curve than the truth


def test_one_subsampled_step_is_the_hull_of_the_neyman_pearson_curves():
    q, z = 0.5, 1.0
    t = np.linspace(-12, 14, 20001)  # reject "out" when x > t
    a = norm.sf(t / z)  # type I under N(0, z^2)
    b = (1 - q) * norm.cdf(t / z) + q * norm.cdf((t - 1) / z)  # type II under the mixture
    pts = np.concatenate([np.stack([a, b], 1), np.stack([b, a], 1)])  # both directions
    pts = pts[np.argsort(pts[:, 0])]
    hull: list[np.ndarray] = []  # lower convex hull (monotone chain)
    for p in pts:
        while len(hull) >= 2 and np.cross(hull[-1] - hull[-2], p - hull[-2]) <= 0:
            hull.pop()
        hull.append(p)
    h = np.array(hull)
    exact = np.interp(ALPHA, h[:, 0], h[:, 1])
    found = tradeoff(q, 1, z, ALPHA)
    assert np.abs(found - exact).max() < 2e-4
    assert (found <= exact + 1e-6).all()


def test_inverse_blowup_is_the_curve_at_one_minus_y_and_weakens_with_strength():
    fam = SubsampledGaussianFamily(0.5, 4)
    y = np.array([1e-4, 1e-2, 0.3, 0.9])
    for s in (0.375, 1.0):  # on the family's strength lattice (k / 512)
        inv = fam.inverse_blowup(np.full(4, s), y)
        assert inv == pytest.approx(tradeoff(0.5, 4, 1 / s, 1 - y), abs=1e-12)
        assert (inv <= y).all()
    weak = fam.inverse_blowup(np.array([0.0, 0.5, 1.0, 2.0]), np.full(4, 0.01))
    assert weak[0] == 0.01 and np.all(np.diff(weak) < 0)  # s = 0: perfect privacy
    with pytest.raises(InvalidFieldError, match="q"):
        SubsampledGaussianFamily(0.0, 4)


def test_full_batch_family_gives_the_gaussian_bound():
    # The same run audited with G_mu and with the PLD curve of q = 1, T = 4: the strengths
    # are 1/z and mu = sqrt(T)/z, and the epsilons agree to the discretisation.
    rng = np.random.default_rng(0)
    coins = rng.random(2000) < 0.5
    scores = 1.5 * coins + rng.normal(size=2000)
    grid = fraction_guess_grid(2000)
    gdp = gdp_one_run_audit(scores, coins, delta=DELTA, guess_grid=grid)
    pld = fdp_one_run_audit(scores, coins, SubsampledGaussianFamily(1.0, 4, 2.0), delta=DELTA,
                            guess_grid=grid, points=3)
    assert pld.mu is not None and gdp.mu is not None
    assert 2 * pld.mu == pytest.approx(gdp.mu, abs=2 * 2 / 512)  # the strength lattice
    assert pld.epsilon == pytest.approx(gdp.epsilon, abs=0.05)


def test_bisection_and_grid_search_agree():
    assert fdp_strength_lower_bound(GAUSSIAN, 1000, 100, 97, 0.01, points=3) == pytest.approx(
        gdp_mu_lower_bound(1000, 100, 97, 0.01), abs=2e-4)


def test_llr_score_is_the_mixture_likelihood_ratio():
    x = np.array([[-1.0, 0.3], [2.0, 0.5], [0.0, 4.0]])  # (T=3, m=2)
    q, z = 0.3, 1.2
    ratio = ((1 - q) * norm.pdf(x, 0, z) + q * norm.pdf(x, 1, z)) / norm.pdf(x, 0, z)
    assert llr_scores(x, q, z) == pytest.approx(np.log(ratio).sum(axis=0), rel=1e-12)
    assert llr_scores(x, 1.0, z) == pytest.approx(((2 * x - 1) / (2 * z * z)).sum(0))


def _never_above(q: float, steps: int, z: float, m: int, reps: int,
                 max_strength: float = 4.0) -> np.ndarray:
    fam = SubsampledGaussianFamily(q, steps, max_strength)
    grid = fraction_guess_grid(m)
    bounds = np.array([fdp_one_run_audit(*_game(q, steps, z, m, s), fam, delta=DELTA,
                                         guess_grid=grid, points=3).epsilon
                       for s in range(reps)])
    truth = fam.epsilon(1 / z, DELTA)
    assert int((bounds > truth).sum()) <= int(binom.ppf(0.999, reps, 0.05))
    assert bounds.max() <= truth  # measured: well inside
    return bounds / truth


def test_simulated_subsampled_mechanism_never_bounded_above_its_epsilon():
    ratios = _never_above(0.5, 2, 0.6, 1000, 3, max_strength=3.0)  # 100 seeds: slow tests
    assert np.median(ratios) > 0.2  # informative, not vacuous


@pytest.mark.slow
@pytest.mark.parametrize(("q", "steps", "z"), [(0.5, 16, 1.5), (0.25, 8, 0.8)])
def test_simulated_subsampled_mechanism_over_many_seeds(q, steps, z):
    assert np.median(_never_above(q, steps, z, 2000, 100)) > 0.25


@pytest.mark.slow
def test_claim_8_design_reaches_half_the_claim_in_simulation():
    """The tightness audit's statistics: q = 1/2, T = 64, z for RDP claim 8, 16000 canaries."""
    fam = SubsampledGaussianFamily(0.5, 64)
    grid = fraction_guess_grid(16000)
    bounds = [fdp_one_run_audit(*_game(0.5, 64, 2.705, 16000, s), fam, delta=DELTA,
                                guess_grid=grid, points=3).epsilon for s in range(3)]
    assert np.median(bounds) >= 4.0 and max(bounds) <= fam.epsilon(1 / 2.705, DELTA)
