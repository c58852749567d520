"""Statistics of bench/org_dp.py's distributed-vs-central comparison over independent noise draws:
standard errors of the means and a bootstrap confidence interval of the relative gap."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MARGIN, LEVEL, RESAMPLES = 0.10, 0.95, 10_000


def se(values: list[float]) -> float:
    """Standard error of the mean of ``values`` (0 for fewer than two)."""
    return float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def gap_ci(distributed: list[float], central: list[float],
           seed: int = 0) -> tuple[float, float] | None:
    """Percentile bootstrap ``LEVEL`` interval of ``1 - mean(distributed) / mean(central)``,
    each side resampled on its own (independent draws); None with fewer than two draws."""
    if len(distributed) < 2 or len(central) < 2:
        return None
    rng = np.random.default_rng(seed)
    d, c = np.asarray(distributed), np.asarray(central)
    d_means = d[rng.integers(0, d.size, (RESAMPLES, d.size))].mean(axis=1)  # (RESAMPLES,)
    c_means = c[rng.integers(0, c.size, (RESAMPLES, c.size))].mean(axis=1)  # (RESAMPLES,)
    gaps = 1.0 - d_means / c_means
    tail = (1.0 - LEVEL) / 2
    return float(np.quantile(gaps, tail)), float(np.quantile(gaps, 1.0 - tail))


def resolved(ci: tuple[float, float] | None) -> str:
    """Where the interval lies against the 10% margin."""
    if ci is None:
        return "-"
    if ci[1] <= MARGIN:
        return f"CI below {MARGIN:.0%}"
    if ci[0] > MARGIN:
        return f"CI above {MARGIN:.0%}"
    return f"CI straddles {MARGIN:.0%}"


def comparison(d_draws: list[float], c_draws: list[float]) -> dict[str, Any]:
    """The fields of one distributed-vs-central target row computed from the draws."""
    central = float(np.mean(c_draws))
    defined = central > 0
    ci = gap_ci(d_draws, c_draws) if defined else None
    gap = 1 - float(np.mean(d_draws)) / central if defined else None
    pairs = min(len(d_draws), len(c_draws))
    diffs = np.subtract(d_draws[:pairs], c_draws[:pairs])  # draw i of each (independent noise)
    return {"distributed_se": se(d_draws), "central_se": se(c_draws),
            "relative_gap": gap,
            # delta method: s.e. of 1 - D/C with independent D, C
            "relative_gap_se": math.hypot(se(d_draws) / central,
                                          float(np.mean(d_draws)) * se(c_draws) / central ** 2)
            if defined else 0.0,
            "relative_gap_ci95": list(ci) if ci is not None else None,
            "ci_vs_margin": resolved(ci), "pairs": pairs,
            "paired_diff": float(diffs.mean()), "paired_diff_se": se(list(diffs)),
            "met": None if gap is None else gap <= MARGIN}
