"""Plain sum/mean: correct values and errors that name the organization and the field."""

from __future__ import annotations

import numpy as np
import pytest

from gt_secure.aggregation.plain import plain_mean, plain_sum, validate_vectors
from gt_secure.errors import UpdateVectorError


def _vecs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"org-{i}": rng.normal(size=50).astype(np.float32) for i in range(4)}


def test_sum_and_mean_match_numpy() -> None:
    # Prepare
    vecs = _vecs()
    stacked = np.stack(list(vecs.values())).astype(np.float64)
    # Execute
    total, mean = plain_sum(vecs), plain_mean(vecs)
    # Assert
    assert total.dtype == np.float32 and mean.dtype == np.float32
    np.testing.assert_allclose(total, stacked.sum(0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(mean, stacked.mean(0), rtol=1e-6, atol=1e-6)
    assert validate_vectors(vecs) == 50


def test_inputs_are_not_mutated() -> None:
    vecs = _vecs()
    before = {k: v.copy() for k, v in vecs.items()}
    plain_sum(vecs)
    for key, vec in vecs.items():
        np.testing.assert_array_equal(vec, before[key])


@pytest.mark.parametrize(
    ("org", "bad", "field", "shown"),
    [
        ("org-2", np.float32(np.nan), "vectors['org-2'].flat[7]", "=nan."),
        ("org-1", np.float32(np.inf), "vectors['org-1'].flat[7]", "=inf."),
    ],
)
def test_non_finite_names_org_and_index(org: str, bad: np.float32, field: str, shown: str) -> None:
    vecs = _vecs()
    vecs[org][7] = bad
    with pytest.raises(UpdateVectorError) as info:
        plain_sum(vecs)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field} must be finite, got {field}")
    assert str(info.value).endswith(shown)


def test_length_mismatch_names_org() -> None:
    vecs = _vecs()
    vecs["org-3"] = vecs["org-3"][:49]
    with pytest.raises(UpdateVectorError) as info:
        plain_mean(vecs)
    assert info.value.field == "len(vectors['org-3'])"
    assert info.value.value == 49
    assert "len(vectors['org-0'])=50" in str(info.value)


@pytest.mark.parametrize(
    ("vector", "field"),
    [
        (np.zeros(50, dtype=np.float64), "vectors['org-1'].dtype"),
        (np.zeros((5, 10), dtype=np.float32), "vectors['org-1'].ndim"),
        ([0.0] * 50, "type(vectors['org-1'])"),
    ],
)
def test_dtype_shape_and_type_errors(vector: object, field: str) -> None:
    vecs: dict[str, object] = dict(_vecs())
    vecs["org-1"] = vector
    with pytest.raises(UpdateVectorError) as info:
        validate_vectors(vecs)  # type: ignore[arg-type]
    assert info.value.field == field


def test_empty_mapping_is_refused() -> None:
    with pytest.raises(UpdateVectorError, match="vectors must be a non-empty mapping"):
        plain_sum({})
