"""Statistically valid lower bounds on epsilon from a membership guessing game.

Two estimators, each a lower bound that holds with probability >= ``1 - beta``:

* :func:`clopper_pearson_epsilon` — for *independent* trials (one training run per trial, or a
  mechanism simulated directly). (eps, delta)-DP implies ``TPR <= e^eps FPR + delta`` for every
  decision rule, so ``eps >= log((TPR_lo - delta) / FPR_hi)`` with exact Clopper-Pearson bounds.
  Searching thresholds on the same data would invalidate the bound, so the threshold is either
  chosen on a held-out split, or taken from a data-independent grid with a Bonferroni correction.
  Both directions are tried (``score >= t`` guesses member; ``score < t`` guesses non-member).
* :func:`one_run_audit` — Steinke, Nasr & Jagielski, "Privacy Auditing with One (1) Training
  Run", NeurIPS 2023 (Theorem 3.1 and their Algorithm for delta > 0). Canaries are included
  independently with probability 1/2 in a *single* training run; the auditor guesses the
  ``k_pos`` top-scoring as in and the ``k_neg`` bottom-scoring as out; under (eps, delta)-DP
  the number of correct guesses is stochastically dominated by ``Binomial(r, e^eps/(1+e^eps))``
  up to a delta term. The (k_pos, k_neg) grid is fixed before scoring and Bonferroni-corrected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict
from scipy.special import bdtrc, expit, gammaln

from gt_secure.audit.metrics import split_scores
from gt_secure.audit.stats import cp_lower_array, cp_upper_array
from gt_secure.errors import InvalidFieldError


class EpsilonBound(BaseModel):
    """An empirical lower bound on epsilon and the evidence behind it."""

    model_config = ConfigDict(frozen=True)
    method: str
    epsilon: float
    delta: float
    beta: float
    n_members: int
    n_nonmembers: int
    threshold: float | None = None
    direction: int | None = None
    k_pos: int | None = None
    k_neg: int | None = None
    guesses: int | None = None
    correct: int | None = None
    mu: float | None = None  # the Gaussian-DP bound's mu (gt_secure.audit.gdp_one_run)


def _check(delta: float, beta: float) -> None:
    if not 0.0 <= delta < 1.0:
        raise InvalidFieldError("delta", delta, "in [0, 1)")
    if not 0.0 < beta < 1.0:
        raise InvalidFieldError("beta", beta, "in (0, 1)")


def _rule_epsilons(hit_in: np.ndarray, n_in: int, hit_out: np.ndarray, n_out: int,
                   delta: float, alpha: float) -> np.ndarray:
    """``max(0, log((P_in_lo - delta) / P_out_hi))`` with one-sided CP bounds at ``alpha``."""
    lo = cp_lower_array(hit_in, n_in, alpha) - delta
    hi = cp_upper_array(hit_out, n_out, alpha)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.log(np.where(lo > 0, lo, 1.0) / hi)
    return np.where(lo > 0, np.maximum(eps, 0.0), 0.0)


def _best_rule(pos: np.ndarray, neg: np.ndarray, thresholds: np.ndarray, delta: float,
               alpha: float, direction: int | None = None) -> tuple[float, float, int]:
    """``(eps, threshold, direction)`` of the best rule over ``thresholds`` and directions."""
    tp = pos.size - np.searchsorted(np.sort(pos), thresholds, side="left")
    fp = neg.size - np.searchsorted(np.sort(neg), thresholds, side="left")
    up = _rule_epsilons(tp, pos.size, fp, neg.size, delta, alpha)  # guess in when s >= t
    down = _rule_epsilons(neg.size - fp, neg.size, pos.size - tp, pos.size, delta, alpha)
    if direction == 1:
        down = np.full_like(down, -1.0)
    elif direction == -1:
        up = np.full_like(up, -1.0)
    i_up, i_down = int(np.argmax(up)), int(np.argmax(down))
    if up[i_up] >= down[i_down]:
        return float(up[i_up]), float(thresholds[i_up]), 1
    return float(down[i_down]), float(thresholds[i_down]), -1


def clopper_pearson_epsilon(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    delta: float,
    beta: float = 0.05,
    thresholds: Sequence[float] | None = None,
    selection_fraction: float = 0.5,
    seed: int = 0,
) -> EpsilonBound:
    """Lower bound on epsilon from independent trials, valid with probability >= 1 - beta.

    With ``thresholds`` (which must not depend on the scores) every threshold and direction is
    evaluated with a Bonferroni correction. Without, a seeded random ``selection_fraction`` of
    the trials picks the best rule and the remaining trials bound it.
    """
    _check(delta, beta)
    pos, neg = split_scores(scores, labels)
    if thresholds is not None:
        grid = np.asarray(thresholds, dtype=np.float64).reshape(-1)
        if grid.size == 0:
            raise InvalidFieldError("thresholds", [], "non-empty")
        alpha = beta / (4 * grid.size)  # 2 directions x 2 one-sided bounds per threshold
        eps, t, d = _best_rule(pos, neg, grid, delta, alpha)
        method = "clopper_pearson_bonferroni"
    else:
        if not 0.0 < selection_fraction < 1.0:
            raise InvalidFieldError("selection_fraction", selection_fraction, "in (0, 1)")
        rng = np.random.default_rng(seed)
        sel_pos = rng.random(pos.size) < selection_fraction
        sel_neg = rng.random(neg.size) < selection_fraction
        if sel_pos.all() or sel_neg.all() or not sel_pos.any() or not sel_neg.any():
            raise InvalidFieldError("trials", (pos.size, neg.size),
                                    "enough members and non-members for both splits")
        cand = np.unique(np.concatenate([pos[sel_pos], neg[sel_neg]]))
        _, t, d = _best_rule(pos[sel_pos], neg[sel_neg], cand, delta, beta / 2)
        pos, neg = pos[~sel_pos], neg[~sel_neg]
        eps, t, d = _best_rule(pos, neg, np.array([t]), delta, beta / 2, direction=d)
        method = "clopper_pearson_split"
    return EpsilonBound(method=method, epsilon=eps, delta=delta, beta=beta,
                        n_members=int(pos.size), n_nonmembers=int(neg.size),
                        threshold=t, direction=d)


def one_run_p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[>= v of r guesses correct] under (epsilon, delta)-DP with m randomized canaries."""
    if not 0 <= v <= r <= m:
        raise InvalidFieldError("(m, r, v)", (m, r, v), "0 <= v <= r <= m")
    if epsilon < 0:
        raise InvalidFieldError("epsilon", epsilon, ">= 0")
    if v == 0:
        return 1.0
    q = float(expit(epsilon))
    tail = float(bdtrc(v - 1, r, q))  # P[Binomial(r, q) >= v]
    if delta == 0.0:
        return min(1.0, tail)
    j = np.arange(v - 1, -1, -1, dtype=float)  # v-1, ..., 0
    log_pmf = (gammaln(r + 1) - gammaln(j + 1) - gammaln(r - j + 1)
               + j * np.log(q) + (r - j) * np.log1p(-q))
    below = np.cumsum(np.exp(log_pmf))  # P[v > Binomial(r, q) >= v - i], i = 1..v
    alpha = float(np.max(below / np.arange(1, v + 1)))
    return min(1.0, tail + alpha * delta * 2 * m)


def one_run_epsilon(m: int, r: int, v: int, *, delta: float, beta: float,
                    tolerance: float = 1e-6) -> float:
    """Largest epsilon rejected at level ``beta`` by ``v`` correct of ``r`` guesses (0 if none).

    The p-value increases with epsilon, so a bisection to ``tolerance`` finds the boundary;
    the returned value is on the rejected side.
    """
    _check(delta, beta)
    if one_run_p_value(m, r, v, 0.0, delta) >= beta:
        return 0.0
    lo, hi = 0.0, 1.0
    while one_run_p_value(m, r, v, hi, delta) < beta:
        lo, hi = hi, 2 * hi
        if hi > 1e3:
            return lo
    while hi - lo > tolerance:
        mid = (lo + hi) / 2
        if one_run_p_value(m, r, v, mid, delta) < beta:
            lo = mid
        else:
            hi = mid
    return lo


def default_guess_grid(m: int) -> list[tuple[int, int]]:
    """Data-independent ``(k_pos, k_neg)`` grid: r in {.1, .25, .5, .75, 1} x m, even or all-in."""
    grid: list[tuple[int, int]] = []
    for frac in (0.1, 0.25, 0.5, 0.75, 1.0):
        r = max(1, round(frac * m))
        for pair in ((r - r // 2, r // 2), (r, 0)):
            if pair not in grid:
                grid.append(pair)
    return grid


def guess_outcomes(scores: ArrayLike, labels: ArrayLike,
                   guess_grid: Sequence[tuple[int, int]] | None = None
                   ) -> list[tuple[int, int, int]]:
    """``(k_pos, k_neg, correct)`` per grid entry: the top ``k_pos`` guessed in, bottom out.

    ``guess_grid`` (default :func:`default_guess_grid`) must be fixed before scoring.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)  # (m,)
    y = np.asarray(labels, dtype=bool).reshape(-1)  # (m,)
    m = s.size
    grid = list(guess_grid) if guess_grid is not None else default_guess_grid(m)
    for k_pos, k_neg in grid:
        if k_pos < 0 or k_neg < 0 or k_pos + k_neg > m or k_pos + k_neg == 0:
            raise InvalidFieldError("guess_grid", (k_pos, k_neg), f"k_pos + k_neg in [1, m={m}]")
    order = np.argsort(-s, kind="stable")
    return [(k_pos, k_neg,
             int(y[order[:k_pos]].sum()) + int((~y[order[m - k_neg:]]).sum() if k_neg else 0))
            for k_pos, k_neg in grid]


def best_guess(
    scores: ArrayLike, labels: ArrayLike, guess_grid: Sequence[tuple[int, int]] | None,
    beta: float, bound: Callable[[int, int, int, float], float],
) -> tuple[float, int, int, int, int, int]:
    """Largest ``bound(m, guesses, correct, beta / len(grid))`` over the guess grid (Bonferroni):
    ``(value, k_pos, k_neg, correct, members, non-members)``."""
    pos, neg = split_scores(scores, labels)
    outcomes = guess_outcomes(scores, labels, guess_grid)
    best: tuple[float, int, int, int] = (-1.0, 0, 0, 0)
    for k_pos, k_neg, v in outcomes:
        value = bound(pos.size + neg.size, k_pos + k_neg, v, beta / len(outcomes))
        if value > best[0]:
            best = (value, k_pos, k_neg, v)
    return (*best, int(pos.size), int(neg.size))


def one_run_audit(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    delta: float,
    beta: float = 0.05,
    guess_grid: Sequence[tuple[int, int]] | None = None,
) -> EpsilonBound:
    """One-run lower bound on epsilon, valid with probability >= 1 - beta over the canary coins.

    ``labels[i]`` is canary i's coin (True = inserted); every canary must have been inserted
    independently with probability 1/2, and ``guess_grid`` fixed before looking at scores.
    """
    _check(delta, beta)
    eps, k_pos, k_neg, v, n_in, n_out = best_guess(
        scores, labels, guess_grid, beta,
        lambda m, r, correct, b: one_run_epsilon(m, r, correct, delta=delta, beta=b))
    return EpsilonBound(method="one_run", epsilon=eps, delta=delta, beta=beta,
                        n_members=n_in, n_nonmembers=n_out,
                        k_pos=k_pos, k_neg=k_neg, guesses=k_pos + k_neg, correct=v)
