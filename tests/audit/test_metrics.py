"""ROC metrics vs closed forms, and empirical coverage of the confidence intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from gt_secure.audit.metrics import attack_metrics, delong_ci, roc_auc, roc_curve, tpr_at_fpr
from gt_secure.audit.plot import epsilon_png, roc_png
from gt_secure.audit.stats import clopper_pearson, cp_lower, cp_lower_array, cp_upper
from gt_secure.errors import InvalidFieldError


def _gauss(mu: float, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (np.r_[rng.normal(mu, 1, n), rng.normal(0, 1, n)],
            np.r_[np.ones(n, bool), np.zeros(n, bool)])


def test_auc_closed_forms():
    labels = np.array([1, 1, 1, 0, 0, 0], bool)
    assert roc_auc([4, 5, 6, 1, 2, 3], labels) == 1.0
    assert roc_auc([1, 2, 3, 4, 5, 6], labels) == 0.0
    assert roc_auc(np.zeros(6), labels) == 0.5
    assert roc_auc(*_gauss(0.0, 5000, 0)) == pytest.approx(0.5, abs=0.015)
    # Binormal: AUC = Phi(mu / sqrt(2)).
    assert roc_auc(*_gauss(1.0, 5000, 1)) == pytest.approx(norm.cdf(1 / np.sqrt(2)), abs=0.015)


def test_roc_curve_is_monotone_and_its_area_is_the_auc():
    scores, labels = _gauss(0.7, 300, 2)
    curve = roc_curve(scores, labels)
    assert curve.fpr[0] == curve.tpr[0] == 0.0 and curve.fpr[-1] == curve.tpr[-1] == 1.0
    assert np.all(np.diff(curve.fpr) >= 0) and np.all(np.diff(curve.tpr) >= 0)
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(roc_auc(scores, labels))


def test_delong_interval_coverage():
    truth = float(norm.cdf(0.8 / np.sqrt(2)))
    hits = []
    for seed in range(300):
        auc, (lo, hi) = delong_ci(*_gauss(0.8, 80, seed), level=0.95)
        assert lo <= auc <= hi
        hits.append(lo <= truth <= hi)
    assert 0.91 <= np.mean(hits) <= 0.99


def test_clopper_pearson_closed_forms_and_coverage():
    assert cp_lower(0, 10, 0.05) == 0.0 and cp_upper(10, 10, 0.05) == 1.0
    assert cp_upper(0, 10, 0.05) == pytest.approx(1 - 0.05 ** (1 / 10))
    assert cp_lower(10, 10, 0.05) == pytest.approx(0.05 ** (1 / 10))
    lo, hi = clopper_pearson(5, 20)
    assert lo < 0.25 < hi
    # One-sided bound is violated at about its nominal rate (CP is exact up to discreteness).
    rng = np.random.default_rng(0)
    p, n, alpha = 0.3, 1000, 0.05
    k = rng.binomial(n, p, size=20000)
    rate = float((cp_lower_array(k, n, alpha) > p).mean())
    assert 0.03 <= rate <= alpha


def test_tpr_at_fpr():
    labels = np.array([1] * 50 + [0] * 50, bool)
    perfect = tpr_at_fpr(np.r_[np.arange(50) + 100.0, np.arange(50)], labels, 0.01)
    assert perfect.tpr == 1.0 and perfect.fpr == 0.0
    scores, labels = _gauss(1.0, 2000, 3)
    point = tpr_at_fpr(scores, labels, 0.01)
    assert point.fpr <= 0.01
    assert point.tpr_ci[0] <= point.tpr <= point.tpr_ci[1]
    # Binormal TPR at FPR f: Phi(mu + Phi^-1(f)).
    assert point.tpr == pytest.approx(norm.cdf(1.0 + norm.ppf(0.01)), abs=0.04)


def test_attack_metrics_and_validation():
    metrics = attack_metrics(*_gauss(1.0, 200, 4))
    assert metrics.n_members == metrics.n_nonmembers == 200
    assert [t.target_fpr for t in metrics.tpr_at_fpr] == [0.001, 0.01]
    assert metrics.auc_ci[0] <= metrics.auc <= metrics.auc_ci[1]
    with pytest.raises(InvalidFieldError, match="labels"):
        roc_auc([1.0, 2.0], [True, True])
    with pytest.raises(InvalidFieldError, match="scores must be finite"):
        roc_auc([np.nan, 2.0], [True, False])


def test_plots_are_png():
    curve = roc_curve(*_gauss(1.0, 50, 5))
    assert roc_png({"loss": curve}).startswith(b"\x89PNG")
    assert epsilon_png(["org"], [0.5], [float("inf")]).startswith(b"\x89PNG")
