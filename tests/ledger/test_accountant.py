"""Epsilon: pinned published values, Opacus vs dp-accounting on a grid, units, edge cases."""

from __future__ import annotations

import itertools
import math

import pytest

from gt_secure.errors import InvalidFieldError
from gt_secure.ledger import (
    DpSgdMechanism,
    VectorGaussianMechanism,
    compute_epsilon,
    epsilon_by_unit,
    noise_multiplier_for,
    reference_epsilon,
)
from gt_secure.ledger.verify import Tolerance

DELTA = 1e-5


def dpsgd(q: float, z: float, steps: int) -> DpSgdMechanism:
    return DpSgdMechanism(sample_rate=q, noise_multiplier=z, steps=steps, clip_norm=1.0)


def test_pinned_opacus_published_values() -> None:
    # Opacus opacus/tests/accountants_test.py (test_rdp_accountant, test_prv_accountant):
    # sigma=1.5, q=0.04, steps=int(90/0.04)=2250, delta=1e-5 -> RDP 7.32911117143,
    # PRV 6.777395712150674 (PRV's stated accuracy is eps_error=0.01).
    mechanism = [dpsgd(0.04, 1.5, 2250)]
    assert compute_epsilon(mechanism, DELTA, "rdp") == pytest.approx(7.32911117143, rel=1e-9)
    assert compute_epsilon(mechanism, DELTA, "prv") == pytest.approx(6.777395712150674, abs=0.01)
    # The independent dp-accounting RDP accountant agrees to 0.01%.
    assert reference_epsilon(mechanism, DELTA, "rdp") == pytest.approx(7.32911117143, rel=1e-3)


@pytest.mark.parametrize(("z", "q", "steps"), [
    *itertools.product([1.0, 2.0], [0.01, 1.0], [1, 100]), (0.8, 0.1, 100), (2.0, 0.1, 1000)])
def test_rdp_matches_dp_accounting_rdp(z: float, q: float, steps: int) -> None:
    mechanism = [dpsgd(q, z, steps)]
    ours, ref = compute_epsilon(mechanism, DELTA, "rdp"), reference_epsilon(mechanism, DELTA, "rdp")
    assert Tolerance().agree(ours, ref), (ours, ref)
    assert ours == pytest.approx(ref, rel=0.01)


@pytest.mark.parametrize(("z", "q", "steps"), [(1.0, 0.01, 1), (2.0, 0.01, 50), (1.0, 1.0, 1),
                                                (2.0, 1.0, 10)])
def test_prv_matches_dp_accounting_pld(z: float, q: float, steps: int) -> None:
    mechanism = [dpsgd(q, z, steps)]
    ours, ref = compute_epsilon(mechanism, DELTA, "prv"), reference_epsilon(mechanism, DELTA, "pld")
    assert Tolerance().agree(ours, ref), (ours, ref)
    assert ours >= ref - 1e-3  # PRV reports an upper bound


def test_vector_gaussian_is_one_full_batch_gaussian_release() -> None:
    vector = VectorGaussianMechanism(noise_multiplier=5.0, clip_norm=2.0)
    assert compute_epsilon([vector], DELTA) == compute_epsilon([dpsgd(1.0, 5.0, 1)], DELTA)
    three = compute_epsilon([vector] * 3, DELTA)
    assert three == compute_epsilon([dpsgd(1.0, 5.0, 3)], DELTA)
    assert compute_epsilon([vector], DELTA) < three < 3 * compute_epsilon([vector], DELTA)
    assert Tolerance().agree(compute_epsilon([vector] * 3, DELTA, "prv"),
                             reference_epsilon([vector] * 3, DELTA, "pld"))


def test_composition_is_order_independent_and_merges_identical_mechanisms() -> None:
    a, b = dpsgd(0.01, 1.0, 100), dpsgd(0.02, 1.2, 50)
    assert compute_epsilon([a, b, a], DELTA) == compute_epsilon([a, a, b], DELTA)
    assert compute_epsilon([a, a], DELTA) == compute_epsilon([dpsgd(0.01, 1.0, 200)], DELTA)


def test_units_are_never_composed_together() -> None:
    vector = VectorGaussianMechanism(noise_multiplier=2.0, clip_norm=1.0)
    example = dpsgd(0.01, 1.0, 100)
    with pytest.raises(InvalidFieldError, match="single privacy unit"):
        compute_epsilon([example, vector], DELTA)
    by_unit = epsilon_by_unit([example, vector], DELTA)
    assert by_unit == {"example": compute_epsilon([example], DELTA),
                       "organization": compute_epsilon([vector], DELTA)}


def test_edge_values() -> None:
    assert compute_epsilon([], DELTA) == 0.0
    assert compute_epsilon([dpsgd(0.1, 1.0, 0)], DELTA) == 0.0
    assert compute_epsilon([dpsgd(0.1, 0.0, 0)], DELTA) == 0.0  # never ran
    for accountant in ("rdp", "prv"):
        assert math.isinf(compute_epsilon([dpsgd(0.1, 0.0, 5)], DELTA, accountant))
    assert math.isinf(reference_epsilon([VectorGaussianMechanism(noise_multiplier=0.0,
                                                                  clip_norm=1.0)], DELTA, "pld"))


@pytest.mark.parametrize(("field", "kwargs"), [
    ("sample_rate", dict(sample_rate=0.0)),
    ("sample_rate", dict(sample_rate=1.5)),
    ("noise_multiplier", dict(noise_multiplier=-0.1)),
    ("noise_multiplier", dict(noise_multiplier=math.inf)),
    ("steps", dict(steps=-1)),
    ("clip_norm", dict(clip_norm=0.0)),
])
def test_mechanism_validation_names_field_and_value(field: str, kwargs: dict) -> None:
    params = dict(sample_rate=0.1, noise_multiplier=1.0, steps=10, clip_norm=1.0) | kwargs
    with pytest.raises(InvalidFieldError) as err:
        DpSgdMechanism(**params)
    assert err.value.field == field
    assert f"got {field}=" in str(err.value)


@pytest.mark.parametrize("delta", [0.0, 1.0, -1e-5, 2.0])
def test_delta_must_be_in_open_unit_interval(delta: float) -> None:
    with pytest.raises(InvalidFieldError, match="delta must be in"):
        compute_epsilon([dpsgd(0.1, 1.0, 1)], delta)
    with pytest.raises(InvalidFieldError, match="delta must be in"):
        reference_epsilon([dpsgd(0.1, 1.0, 1)], delta, "rdp")


def test_noise_multiplier_for_published_value() -> None:
    # Opacus accountants_test.py test_get_noise_multiplier_rdp_steps: 1.3562 (places=4).
    sigma = noise_multiplier_for(8.0, DELTA, 0.04, 2000, "rdp")
    assert sigma == pytest.approx(1.3562, abs=1e-4)


@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha")
@pytest.mark.parametrize(("target", "accountant"), [(0.5, "rdp"), (2.0, "rdp"), (1.0, "prv")])
def test_noise_multiplier_round_trip(target: float, accountant: str) -> None:
    sigma = noise_multiplier_for(target, DELTA, 1.0, 3, accountant, epsilon_tolerance=0.01)
    achieved = compute_epsilon([dpsgd(1.0, sigma, 3)], DELTA, accountant)
    assert achieved <= target
    assert achieved >= target - 0.011


def test_noise_multiplier_for_validates() -> None:
    with pytest.raises(InvalidFieldError, match="target_epsilon"):
        noise_multiplier_for(0.0, DELTA, 0.1, 10)
    with pytest.raises(InvalidFieldError, match="steps"):
        noise_multiplier_for(1.0, DELTA, 0.1, 0)
