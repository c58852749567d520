"""ROC analysis of membership scores: ROC curve, AUC with a DeLong interval, TPR at low FPR.

References: DeLong, DeLong & Clarke-Pearson, Biometrics 1988 (AUC variance); Sun & Xu, IEEE SPL
2014 (fast midrank algorithm); Carlini et al. 2022 (report TPR at low FPR, not only AUC).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from pydantic import BaseModel, ConfigDict
from scipy.stats import norm, rankdata

from gt_secure.audit.stats import clopper_pearson
from gt_secure.errors import InvalidFieldError

DEFAULT_FPRS: tuple[float, ...] = (0.001, 0.01)


class RocCurve(BaseModel):
    """ROC points from the strictest threshold (0, 0) to the loosest (1, 1)."""

    model_config = ConfigDict(frozen=True)
    fpr: list[float]
    tpr: list[float]
    thresholds: list[float]


class TprAtFpr(BaseModel):
    """TPR of the loosest threshold whose empirical FPR is <= ``target_fpr``, with CP intervals.

    The interval on ``tpr`` is exact given the threshold; the threshold itself is chosen on
    the same non-members, which the ``fpr`` interval reports.
    """

    model_config = ConfigDict(frozen=True)
    target_fpr: float
    threshold: float
    tpr: float
    tpr_ci: tuple[float, float]
    fpr: float
    fpr_ci: tuple[float, float]


class AttackMetrics(BaseModel):
    """Summary of an attack's membership scores."""

    model_config = ConfigDict(frozen=True)
    n_members: int
    n_nonmembers: int
    auc: float
    auc_ci: tuple[float, float]
    level: float
    tpr_at_fpr: list[TprAtFpr]


def split_scores(scores: ArrayLike, labels: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Validate and return ``(member_scores, nonmember_scores)``."""
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    y = np.asarray(labels, dtype=bool).reshape(-1)
    if s.shape != y.shape:
        raise InvalidFieldError("labels", y.shape, f"the shape of scores {s.shape}")
    if not np.all(np.isfinite(s)):
        raise InvalidFieldError("scores", "non-finite values", "finite")
    if y.all() or not y.any():
        raise InvalidFieldError("labels", f"{int(y.sum())} members of {y.size}",
                                "containing both members and non-members")
    return s[y], s[~y]


def roc_curve(scores: ArrayLike, labels: ArrayLike) -> RocCurve:
    """ROC curve predicting member when ``score >= threshold``, one point per distinct score."""
    pos, neg = split_scores(scores, labels)
    thresholds = np.unique(np.concatenate([pos, neg]))[::-1]
    pos_sorted, neg_sorted = np.sort(pos), np.sort(neg)
    tp = pos.size - np.searchsorted(pos_sorted, thresholds, side="left")
    fp = neg.size - np.searchsorted(neg_sorted, thresholds, side="left")
    return RocCurve(
        fpr=[0.0, *(fp / neg.size).tolist()],
        tpr=[0.0, *(tp / pos.size).tolist()],
        thresholds=[float("inf"), *thresholds.tolist()],
    )


def roc_auc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve, ``P[s_member > s_nonmember] + P[tie] / 2`` (Mann-Whitney)."""
    pos, neg = split_scores(scores, labels)
    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def delong_ci(
    scores: ArrayLike, labels: ArrayLike, level: float = 0.95
) -> tuple[float, tuple[float, float]]:
    """AUC and its two-sided DeLong normal-approximation interval, clipped to [0, 1]."""
    if not 0.0 < level < 1.0:
        raise InvalidFieldError("level", level, "in (0, 1)")
    pos, neg = split_scores(scores, labels)
    m, n = pos.size, neg.size
    combined = rankdata(np.concatenate([pos, neg]))
    v10 = (combined[:m] - rankdata(pos)) / n  # per-member placement values
    v01 = 1.0 - (combined[m:] - rankdata(neg)) / m  # per-non-member placement values
    auc = float(v10.mean())
    var = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    half = float(norm.ppf(0.5 + level / 2.0) * np.sqrt(var))
    return auc, (max(0.0, auc - half), min(1.0, auc + half))


def tpr_at_fpr(
    scores: ArrayLike, labels: ArrayLike, target_fpr: float, level: float = 0.95
) -> TprAtFpr:
    """TPR at the loosest threshold with empirical FPR <= ``target_fpr``."""
    if not 0.0 <= target_fpr <= 1.0:
        raise InvalidFieldError("target_fpr", target_fpr, "in [0, 1]")
    pos, neg = split_scores(scores, labels)
    curve = roc_curve(scores, labels)
    idx = max(i for i, f in enumerate(curve.fpr) if f <= target_fpr)
    threshold = curve.thresholds[idx]
    tp, fp = int((pos >= threshold).sum()), int((neg >= threshold).sum())
    return TprAtFpr(
        target_fpr=target_fpr,
        threshold=threshold,
        tpr=tp / pos.size,
        tpr_ci=clopper_pearson(tp, pos.size, level),
        fpr=fp / neg.size,
        fpr_ci=clopper_pearson(fp, neg.size, level),
    )


def attack_metrics(
    scores: ArrayLike,
    labels: ArrayLike,
    fprs: Sequence[float] = DEFAULT_FPRS,
    level: float = 0.95,
) -> AttackMetrics:
    """AUC with DeLong interval and TPR at each FPR in ``fprs``."""
    pos, neg = split_scores(scores, labels)
    auc, ci = delong_ci(scores, labels, level)
    return AttackMetrics(
        n_members=int(pos.size),
        n_nonmembers=int(neg.size),
        auc=auc,
        auc_ci=ci,
        level=level,
        tpr_at_fpr=[tpr_at_fpr(scores, labels, f, level) for f in fprs],
    )
