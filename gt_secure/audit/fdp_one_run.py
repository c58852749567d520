"""One-run audit of an f-DP claim: the bound of Mahloujifar, Melis & Chaudhuri, for any curve.

"Auditing f-Differential Privacy in One Run" (ICML 2025, arXiv 2410.22235), their bound with
abstention for membership guesses (alphabet size 2). ``m`` canaries are each "in" with a fair
coin in one run; the auditor makes ``r`` guesses (the others abstain) of which ``v`` are right.
For an f-DP mechanism their recursion bounds ``P[>= v right]``; when the observed ``v`` is too
many at level ``tau`` the run rejects f-DP.

The recursion only needs the inverse of the curve's *blow-up* ``x -> 1 - f(x)`` (the largest
probability an event of probability ``x`` without the canary can have with it):
``B^-1(y) = f^-1(1 - y)``. A :class:`TradeOffFamily` gives it for a one-parameter family of
curves indexed by a *strength* ``s >= 0`` (``s = 0``: perfect privacy, ``f(a) = 1 - a``; a
larger ``s`` is a weaker curve). The audit reports the largest strength its run rejects and the
epsilon of that curve at ``delta``. The Gaussian family (``s = mu``) is
:mod:`gt_secure.audit.gdp_one_run`; the composed Poisson-subsampled Gaussian of DP-SGD
(``s = 1 / z``) is :mod:`gt_secure.audit.subsampled_curve`.

A run rejecting ``f_s`` shows the mechanism is not ``f_s``-DP; the reported epsilon is a lower
bound on the mechanism's epsilon when the mechanism is one of the family (the run's noise is the
unknown), which is what the white-box audit of a recorded DP-SGD plan (q, T known) checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from gt_secure.audit.empirical_epsilon import EpsilonBound, _check, best_guess
from gt_secure.errors import InvalidFieldError


class TradeOffFamily(Protocol):
    """Trade-off curves ``f_s`` indexed by a strength ``s`` in ``[0, max_strength]``.

    ``f_s`` must weaken as ``s`` grows (``f_s >= f_s'`` for ``s <= s'``) so that consistency
    with a run is monotone in ``s``.
    """

    method: str  # the EpsilonBound.method of an audit with this family
    max_strength: float  # beyond it the curve is numerically a perfect test

    def inverse_blowup(self, strengths: np.ndarray, y: np.ndarray) -> np.ndarray:
        """``f_s^-1(1 - y)`` for each strength ``s`` (K,) at its ``y`` (K,), in [0, 1]: (K,)."""
        ...

    def epsilon(self, strength: float, delta: float) -> float:
        """The smallest epsilon with ``delta_{f_s}(epsilon) <= delta``."""
        ...


def fdp_consistent(family: TradeOffFamily, strengths: np.ndarray, m: int, guesses: int,
                   correct: int, tau: float) -> np.ndarray:
    """Whether ``correct`` of ``guesses`` right can happen w.p. >= ``tau`` under ``f_s``, (K,).

    The recursion of Mahloujifar et al. (their Algorithm with a cap on guesses), vectorized over
    the candidate ``strengths`` (K,): ``h_i = max(h_{i+1}, B^-1(r_{i+1}))``,
    ``r_i = r_{i+1} + i / (r - i) * (h_i - h_{i+1})`` from ``h_v = tau r/m (r-v)/r``,
    ``r_v = tau r/m v/r``; consistent iff ``r_0 + h_0 <= r / m``, where ``B^-1`` is the
    family's :meth:`~TradeOffFamily.inverse_blowup`.
    """
    if not 0 <= correct <= guesses <= m or guesses == 0:
        raise InvalidFieldError("(m, guesses, correct)", (m, guesses, correct),
                                "0 <= correct <= guesses <= m and guesses >= 1")
    scale = tau * guesses / m
    r = np.full(strengths.shape, scale * correct / guesses)  # (K,)
    h = np.full(strengths.shape, scale * (guesses - correct) / guesses)  # (K,)
    for i in range(correct - 1, -1, -1):
        h_next = np.maximum(h, family.inverse_blowup(strengths, np.minimum(r, 1.0)))
        r = r + i / (guesses - i) * (h_next - h)
        h = h_next
    return np.asarray(r + h <= guesses / m)


def fdp_strength_lower_bound(family: TradeOffFamily, m: int, guesses: int, correct: int,
                             tau: float, tolerance: float = 1e-4, points: int = 33) -> float:
    """Largest strength that ``correct`` of ``guesses`` rejects at level ``tau`` (0 if none).

    Consistency is monotone in the strength (a weaker curve blows up more), so a grid of
    ``points`` refined around the boundary finds it (``points = 3``: bisection, for families
    whose curves are costly); the value returned is on the rejected side.
    """
    if points < 3:
        raise InvalidFieldError("points", points, ">= 3")
    lo, hi = 0.0, family.max_strength
    if fdp_consistent(family, np.array([lo]), m, guesses, correct, tau)[0]:
        return 0.0
    if not fdp_consistent(family, np.array([hi]), m, guesses, correct, tau)[0]:
        return hi
    while hi - lo > tolerance:
        grid = np.linspace(lo, hi, points)[1:-1]  # (points - 2,) the ends are known
        ok = fdp_consistent(family, grid, m, guesses, correct, tau)
        first = int(np.argmax(ok)) if ok.any() else len(grid)
        lo, hi = (float(grid[first - 1]) if first else lo), (float(grid[first])
                                                            if first < len(grid) else hi)
    return lo


def fdp_one_run_audit(
    scores: ArrayLike,
    labels: ArrayLike,
    family: TradeOffFamily,
    *,
    delta: float,
    beta: float = 0.05,
    guess_grid: Sequence[tuple[int, int]] | None = None,
    points: int = 33,
) -> EpsilonBound:
    """f-DP one-run lower bound: reject ``f_s`` at level ``beta`` over the canary coins.

    Guesses the ``k_pos`` top-scoring canaries in and the ``k_neg`` bottom-scoring out for every
    ``(k_pos, k_neg)`` of ``guess_grid`` (fixed before scoring; Bonferroni over it), keeps the
    largest rejected strength ``s`` (reported as ``mu``) and ``epsilon = family.epsilon(s,
    delta)``.
    """
    _check(delta, beta)
    strength, k_pos, k_neg, v, n_in, n_out = best_guess(
        scores, labels, guess_grid, beta,
        lambda m, r, c, t: fdp_strength_lower_bound(family, m, r, c, t, points=points))
    eps = family.epsilon(strength, delta) if strength > 0 else 0.0
    return EpsilonBound(method=family.method, epsilon=eps, delta=delta, beta=beta,
                        n_members=n_in, n_nonmembers=n_out, k_pos=k_pos, k_neg=k_neg,
                        guesses=k_pos + k_neg, correct=v, mu=strength)
