"""One-run audit of a Gaussian-DP claim: the f-DP bound of Mahloujifar, Melis & Chaudhuri.

"Auditing f-Differential Privacy in One Run" (ICML 2025, arXiv 2410.22235): the bound of
:mod:`gt_secure.audit.fdp_one_run` with the Gaussian trade-off curve
``G_mu(a) = Phi(Phi^-1(1 - a) - mu)`` (Dong, Roth & Su, JRSS-B 2022). ``m`` canaries are each
"in" with a fair coin in one run; the auditor makes ``r`` guesses (the others abstain) of which
``v`` are right; when ``v`` is too many for mu-GDP at level ``tau`` the run rejects mu-GDP. The
largest mu rejected is the empirical mu, reported as ``gdp_epsilon(mu, delta)``.

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

from gt_secure.audit.empirical_epsilon import EpsilonBound
from gt_secure.audit.fdp_one_run import (
    fdp_consistent,
    fdp_one_run_audit,
    fdp_strength_lower_bound,
)
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


class GaussianFamily:
    """The Gaussian trade-off curves ``G_mu``, strength ``mu``."""

    method = "gdp_one_run"
    max_strength = MU_MAX

    def inverse_blowup(self, strengths: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``G_mu^-1(1 - y) = Phi(Phi^-1(y) - mu)`` (G_mu is symmetric), (K,)."""
        return np.asarray(ndtr(ndtri(y) - strengths))  # Phi, Phi^-1 (fast ufuncs)

    def epsilon(self, strength: float, delta: float) -> float:
        """:func:`gdp_epsilon`."""
        return gdp_epsilon(strength, delta)


GAUSSIAN = GaussianFamily()


def gdp_consistent(mus: np.ndarray, m: int, guesses: int, correct: int,
                   tau: float) -> np.ndarray:
    """Whether ``correct`` of ``guesses`` right can happen w.p. >= ``tau`` under mu-GDP, (K,).

    :func:`~gt_secure.audit.fdp_one_run.fdp_consistent` with the Gaussian curves.
    """
    return fdp_consistent(GAUSSIAN, mus, m, guesses, correct, tau)


def gdp_mu_lower_bound(m: int, guesses: int, correct: int, tau: float,
                       tolerance: float = 1e-4) -> float:
    """Largest mu that ``correct`` of ``guesses`` rejects at level ``tau`` (0 if none)."""
    return fdp_strength_lower_bound(GAUSSIAN, m, guesses, correct, tau, tolerance)


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
    return fdp_one_run_audit(scores, labels, GAUSSIAN, delta=delta, beta=beta,
                             guess_grid=guess_grid)
