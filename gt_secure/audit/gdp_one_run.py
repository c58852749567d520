"""One-run audit of a Gaussian-DP claim: the f-DP bound of Mahloujifar, Melis & Chaudhuri.

"Auditing f-Differential Privacy in One Run" (ICML 2025, arXiv 2410.22235), their bound with
abstention for membership guesses (alphabet size 2), instantiated with the Gaussian trade-off
curve ``G_mu(a) = Phi(Phi^-1(1 - a) - mu)`` (Dong, Roth & Su, JRSS-B 2022). ``m`` canaries are
each "in" with a fair coin in one run; the auditor makes ``r`` guesses (the others abstain) of
which ``v`` are right. For a mu-GDP mechanism their recursion bounds ``P[>= v right]``; when the
observed ``v`` is too many at level ``tau`` the run rejects mu-GDP. The smallest mu not rejected
is the empirical mu, reported as ``gdp_epsilon(mu, delta)``.

The bound is on Gaussian-DP, so its epsilon is a lower bound on a mechanism whose trade-off curve
is Gaussian — full-batch DP-SGD (sample rate 1: T Gaussian steps of noise multiplier z are exactly
``sqrt(T) / z``-GDP); it is not a valid (epsilon, delta) bound for a Poisson-subsampled run,
where :func:`~gt_secure.audit.empirical_epsilon.one_run_audit` applies. Unlike that (epsilon,
delta) bound it has no ``2 m delta`` term, so thousands of canaries help instead of hurting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import brentq
from scipy.special import ndtr, ndtri
from scipy.stats import norm

from gt_secure.audit.empirical_epsilon import EpsilonBound, _check, best_guess
from gt_secure.errors import InvalidFieldError

MU_MAX = 20.0  # beyond this the Gaussian curve is numerically a perfect test


def gdp_delta(mu: float, epsilon: float) -> float:
    """delta(epsilon) of mu-GDP (Dong, Roth & Su 2022, Corollary 2.13)."""
    if mu <= 0:
        return 0.0
    return float(norm.cdf(-epsilon / mu + mu / 2)
                 - np.exp(epsilon + norm.logcdf(-epsilon / mu - mu / 2)))


def gdp_epsilon(mu: float, delta: float) -> float:
    """Smallest epsilon with ``gdp_delta(mu, epsilon) <= delta`` (0 when already at epsilon 0)."""
    if not 0.0 < delta < 1.0:
        raise InvalidFieldError("delta", delta, "in (0, 1)")
    if gdp_delta(mu, 0.0) <= delta:
        return 0.0
    return float(brentq(lambda e: gdp_delta(mu, e) - delta, 0.0, 500.0, xtol=1e-9))


def gdp_consistent(mus: np.ndarray, m: int, guesses: int, correct: int,
                   tau: float) -> np.ndarray:
    """Whether ``correct`` of ``guesses`` right can happen w.p. >= ``tau`` under mu-GDP, (K,).

    The recursion of Mahloujifar et al. (their Algorithm with a cap on guesses), vectorized over
    the candidate ``mus`` (K,): ``h_i = max(h_{i+1}, Gbar^-1(r_{i+1}))``,
    ``r_i = r_{i+1} + i / (r - i) * (h_i - h_{i+1})`` from ``h_v = tau r/m (r-v)/r``,
    ``r_v = tau r/m v/r``; consistent iff ``r_0 + h_0 <= r / m``, where
    ``Gbar^-1(x) = Phi(Phi^-1(x) - mu)`` inverts the Gaussian blow-up function.
    """
    if not 0 <= correct <= guesses <= m or guesses == 0:
        raise InvalidFieldError("(m, guesses, correct)", (m, guesses, correct),
                                "0 <= correct <= guesses <= m and guesses >= 1")
    scale = tau * guesses / m
    r = np.full(mus.shape, scale * correct / guesses)  # (K,)
    h = np.full(mus.shape, scale * (guesses - correct) / guesses)  # (K,)
    for i in range(correct - 1, -1, -1):
        h_next = np.maximum(h, ndtr(ndtri(r) - mus))  # Phi, Phi^-1 (fast ufuncs)
        r = r + i / (guesses - i) * (h_next - h)
        h = h_next
    return np.asarray(r + h <= guesses / m)


def gdp_mu_lower_bound(m: int, guesses: int, correct: int, tau: float,
                       tolerance: float = 1e-4) -> float:
    """Largest mu that ``correct`` of ``guesses`` rejects at level ``tau`` (0 if none).

    Consistency is monotone in mu (a larger mu blows up less), so a grid refined around the
    boundary finds it; the value returned is on the rejected side.
    """
    lo, hi = 0.0, MU_MAX
    if gdp_consistent(np.array([lo]), m, guesses, correct, tau)[0]:
        return 0.0
    if not gdp_consistent(np.array([hi]), m, guesses, correct, tau)[0]:
        return hi
    while hi - lo > tolerance:
        grid = np.linspace(lo, hi, 33)  # (33,)
        ok = gdp_consistent(grid, m, guesses, correct, tau)
        first = int(np.argmax(ok))  # ok[0] is False, ok[-1] is True
        lo, hi = float(grid[first - 1]), float(grid[first])
    return lo


def gdp_one_run_audit(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    delta: float,
    beta: float = 0.05,
    guess_grid: Sequence[tuple[int, int]] | None = None,
) -> EpsilonBound:
    """GDP one-run lower bound: reject mu-GDP at level ``beta`` over the canary coins.

    Guesses the ``k_pos`` top-scoring canaries in and the ``k_neg`` bottom-scoring out for every
    ``(k_pos, k_neg)`` of ``guess_grid`` (fixed before scoring; Bonferroni over it), keeps the
    largest rejected mu and reports ``epsilon = gdp_epsilon(mu, delta)``.
    """
    _check(delta, beta)
    mu, k_pos, k_neg, v, n_in, n_out = best_guess(scores, labels, guess_grid, beta,
                                                  gdp_mu_lower_bound)
    return EpsilonBound(method="gdp_one_run", epsilon=gdp_epsilon(mu, delta), delta=delta,
                        beta=beta, n_members=n_in, n_nonmembers=n_out,
                        k_pos=k_pos, k_neg=k_neg, guesses=k_pos + k_neg, correct=v, mu=mu)
