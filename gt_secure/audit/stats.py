"""Exact binomial (Clopper-Pearson) confidence bounds used by the metrics and epsilon bounds."""

from __future__ import annotations

from scipy.stats import beta as beta_dist

from gt_secure.errors import InvalidFieldError


def _check(k: int, n: int, alpha: float) -> None:
    if n < 0:
        raise InvalidFieldError("n", n, ">= 0")
    if not 0 <= k <= n:
        raise InvalidFieldError("k", k, f"in [0, n={n}]")
    if not 0.0 < alpha < 1.0:
        raise InvalidFieldError("alpha", alpha, "in (0, 1)")


def cp_lower(k: int, n: int, alpha: float) -> float:
    """One-sided lower bound: ``P[p < cp_lower] <= alpha`` for ``k ~ Binomial(n, p)``."""
    _check(k, n, alpha)
    if k == 0:
        return 0.0
    return float(beta_dist.ppf(alpha, k, n - k + 1))


def cp_upper(k: int, n: int, alpha: float) -> float:
    """One-sided upper bound: ``P[p > cp_upper] <= alpha`` for ``k ~ Binomial(n, p)``."""
    _check(k, n, alpha)
    if k == n:
        return 1.0
    return float(beta_dist.ppf(1.0 - alpha, k + 1, n - k))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided exact interval for a binomial proportion at confidence ``level``."""
    if not 0.0 < level < 1.0:
        raise InvalidFieldError("level", level, "in (0, 1)")
    alpha = (1.0 - level) / 2.0
    return cp_lower(k, n, alpha), cp_upper(k, n, alpha)
