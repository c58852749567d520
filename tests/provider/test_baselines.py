"""Baselines against closed forms on synthetic pairs."""

from __future__ import annotations

import numpy as np

from gt_secure.provider.baselines import FamilyMean, KnnMap, MeanUpdate, RidgeMap
from gt_secure.provider.pairs import ShadowPairs
from gt_secure.update import UpdateVector

from ..test_update_vector import make_layout


def _pairs(x: np.ndarray, y: np.ndarray) -> ShadowPairs:
    tiny_layout, llm_layout = make_layout(2, 2), make_layout(2, 3)
    return ShadowPairs(
        tiny=x.reshape(len(x), 2, -1),
        llm=y.reshape(len(y), 2, -1),
        subset=np.arange(len(x)) % 5,
        family=np.arange(len(x)) % 2,
        orgs=np.ones(len(x), dtype=int),
        validation=np.zeros(len(x), dtype=bool),
        tiny_layout=tiny_layout,
        llm_layout=llm_layout,
    )


def test_ridge_recovers_a_linear_map_and_mean_ignores_input() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 32))  # tiny layout: 2 layers x 16
    w = rng.normal(size=(32, 48))  # llm layout: 2 layers x 24
    y = x @ w + 0.5
    pairs = _pairs(x, y)
    ridge, mean = RidgeMap(pairs), MeanUpdate(pairs)
    probe = rng.normal(size=32).astype(np.float32)
    vec = UpdateVector(pairs.tiny_layout, probe)
    expected = probe.astype(np.float64) @ w + 0.5
    predicted = ridge.translate(vec).layer_tokens().reshape(-1)
    assert np.abs(predicted - expected).max() < 0.05 * np.abs(expected).max()
    other = UpdateVector(pairs.tiny_layout, -probe)
    np.testing.assert_array_equal(mean.translate(vec).flat, mean.translate(other).flat)
    np.testing.assert_allclose(mean.translate(vec).layer_tokens().reshape(-1), y.mean(0), rtol=1e-5)


def test_knn_and_family_mean_against_direct_computations() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(40, 32)), rng.normal(size=(40, 48))
    pairs = _pairs(x, y)
    probe = x[7].astype(np.float32)
    knn = KnnMap(pairs, k=3).translate(UpdateVector(pairs.tiny_layout, probe))
    xz = (x - x.mean(0)) / x.std(0)
    nearest = np.argsort(((xz - xz[7]) ** 2).sum(1))[:3]
    assert nearest[0] == 7
    np.testing.assert_allclose(knn.layer_tokens().reshape(-1), y[nearest].mean(0), rtol=1e-5)
    fam = FamilyMean(pairs, 1).translate(UpdateVector(pairs.tiny_layout, probe))
    np.testing.assert_allclose(fam.layer_tokens().reshape(-1), y[1::2].mean(0), rtol=1e-5)
