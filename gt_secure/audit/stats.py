"""Exact binomial (Clopper-Pearson) confidence bounds used by the metrics and epsilon bounds.

The one-sided bounds accept scalars or arrays of counts (vectorized over thresholds).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaincinv

from gt_secure.errors import InvalidFieldError


def _check(k: np.ndarray, n: np.ndarray, alpha: float) -> None:
    if np.any(n < 0):
        raise InvalidFieldError("n", n.tolist(), ">= 0")
    if np.any(k < 0) or np.any(k > n):
        raise InvalidFieldError("k", k.tolist(), "in [0, n]")
    if not 0.0 < alpha < 1.0:
        raise InvalidFieldError("alpha", alpha, "in (0, 1)")


def cp_lower_array(k: ArrayLike, n: ArrayLike, alpha: float) -> np.ndarray:
    """Elementwise one-sided lower bound: ``P[p < bound] <= alpha``, ``k ~ Binomial(n, p)``."""
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    _check(k_arr, n_arr, alpha)
    safe_k = np.maximum(k_arr, 1.0)
    out = betaincinv(safe_k, n_arr - safe_k + 1.0, alpha)
    return np.where(k_arr == 0, 0.0, out)


def cp_upper_array(k: ArrayLike, n: ArrayLike, alpha: float) -> np.ndarray:
    """Elementwise one-sided upper bound: ``P[p > bound] <= alpha``, ``k ~ Binomial(n, p)``."""
    k_arr, n_arr = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(n, dtype=float))
    _check(k_arr, n_arr, alpha)
    return 1.0 - cp_lower_array(n_arr - k_arr, n_arr, alpha)


def cp_lower(k: int, n: int, alpha: float) -> float:
    """One-sided lower bound: ``P[p < cp_lower] <= alpha`` for ``k ~ Binomial(n, p)``."""
    return float(cp_lower_array(k, n, alpha))


def cp_upper(k: int, n: int, alpha: float) -> float:
    """One-sided upper bound: ``P[p > cp_upper] <= alpha`` for ``k ~ Binomial(n, p)``."""
    return float(cp_upper_array(k, n, alpha))


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Two-sided exact interval for a binomial proportion at confidence ``level``."""
    if not 0.0 < level < 1.0:
        raise InvalidFieldError("level", level, "in (0, 1)")
    alpha = (1.0 - level) / 2.0
    return cp_lower(k, n, alpha), cp_upper(k, n, alpha)
