"""Update validation: every refusal names the organization and the field."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest

from gt_secure.app.layout import Layout, content_hash
from gt_secure.app.messages import UpdatePayload
from gt_secure.app.validation import (
    Expected,
    Rejection,
    check_sum,
    norm_bound,
    validate_update,
)
from gt_secure.errors import InvalidFieldError, LayoutMismatchError, UpdateVectorError

LAYOUT = Layout(1, "tinylm", "ab" * 32, (("a.q_proj.weight", (4, 3)),
                                                      ("a.v_proj.weight", (2,))))
EXPECTED = Expected(LAYOUT, norm_bound(1.0, 0.0, LAYOUT.dim))


def payload(flat: np.ndarray, layout: Layout = LAYOUT, org: str = "bank") -> UpdatePayload:
    return UpdatePayload(org, flat, layout.to_json(), "{}", content_hash(flat))


def honest() -> np.ndarray:
    flat = np.linspace(-1, 1, LAYOUT.dim).astype(np.float32)
    return (flat / np.linalg.norm(flat)).astype(np.float32)  # norm 1 == the clip bound


def test_honest_update_at_the_clip_bound_passes() -> None:
    validate_update(payload(honest()), EXPECTED)


@pytest.mark.parametrize(("mutate", "error", "field"), [
    (lambda f: np.where(np.arange(f.size) == 3, np.nan, f).astype(np.float32),
     UpdateVectorError, "update[bank].flat.non_finite_count"),
    (lambda f: np.where(np.arange(f.size) == 0, np.inf, f).astype(np.float32),
     UpdateVectorError, "update[bank].flat.non_finite_count"),
    (lambda f: (f * 1.001).astype(np.float32), UpdateVectorError, "update[bank].l2_norm"),
    (lambda f: f[:-1], UpdateVectorError, "update[bank].flat.shape"),
    (lambda f: f.astype(np.float64), UpdateVectorError, "update[bank].flat.dtype"),
])
def test_bad_values_are_refused_with_org_and_field(mutate, error, field) -> None:  # type: ignore[no-untyped-def]
    bad = mutate(honest())
    with pytest.raises(error) as info:
        validate_update(dataclasses.replace(payload(honest()), flat=bad, content_hash=""),
                        EXPECTED)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field} must be")


@pytest.mark.parametrize(("change", "field"), [
    ({"version": 1 + 1}, "update[bank].layout.version"),
    ({"base_model": "llm"}, "update[bank].layout.base_model"),
    ({"base_model_hash": "00" * 32}, "update[bank].layout.base_model_hash"),
    ({"entries": (("a.q_proj.weight", (3, 4)), ("a.v_proj.weight", (2,)))},
     "update[bank].layout.entries"),
])
def test_foreign_layouts_are_refused(change: dict[str, object], field: str) -> None:
    other = dataclasses.replace(LAYOUT, **change)  # type: ignore[arg-type]
    with pytest.raises(LayoutMismatchError) as info:
        validate_update(payload(honest(), other), EXPECTED)
    assert info.value.field == field


def test_malformed_layout_and_wrong_hash_are_refused() -> None:
    broken = dataclasses.replace(payload(honest()), layout_json="{not json")
    with pytest.raises(LayoutMismatchError, match=r"update\[bank\]\.layout must be"):
        validate_update(broken, EXPECTED)
    tampered = dataclasses.replace(payload(honest()), content_hash="0" * 64)
    with pytest.raises(UpdateVectorError, match=r"update\[bank\]\.content_hash"):
        validate_update(tampered, EXPECTED)


def test_norm_bound_covers_gaussian_noise_and_is_exact_without_it() -> None:
    assert norm_bound(2.0, 0.0, 10) == pytest.approx(2.0, rel=2e-5)
    dim, sigma = 5000, 0.5
    bound = norm_bound(1.0, sigma, dim)
    rng = np.random.default_rng(0)
    noisy = [np.linalg.norm(honest_like(dim) + rng.normal(0, sigma, dim)) for _ in range(50)]
    assert max(noisy) < bound < 1 + sigma * (math.sqrt(dim) + 9)


def honest_like(dim: int) -> np.ndarray:
    flat = np.ones(dim)
    return flat / np.linalg.norm(flat)


def test_sum_check_refuses_an_oversized_mean() -> None:
    check_sum(honest().astype(np.float64), 3, EXPECTED)
    with pytest.raises(UpdateVectorError, match=r"update\[sum of 3\]\.l2_norm"):
        check_sum(honest().astype(np.float64) * 2, 3, EXPECTED)


def test_rejection_recovers_org_and_field_from_a_guard_refusal_reason() -> None:
    err = UpdateVectorError("update[law].l2_norm", 3.5, "<= 1")
    reason = f"<class 'ClientAppException'>:<'Message: {err}'>"
    rejection = Rejection.of(reason, "?", 7, "secagg")
    assert (rejection.org_id, rejection.field, rejection.node_id) == (
        "law", "update[law].l2_norm", 7)
    plain = Rejection.of("timed out", "?", 9, "plain")
    assert (plain.org_id, plain.field) == ("?", "reply")
    direct = Rejection.of(InvalidFieldError("update[x].f", 1, "0"), "x", 1, "plain")
    assert json.dumps(dataclasses.asdict(direct))
