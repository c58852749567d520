"""The distributed discrete Gaussian mechanism's accounting (KLS21 Theorem 1) against exact Renyi
divergences of summed discrete Gaussians and dp-accounting's discrete Gaussian PLD; its ledger
entry states its condition and verifies."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from dp_accounting.pld import privacy_loss_distribution as pld
from scipy.special import logsumexp

from gt_secure.aggregation.ddp import DdpParams
from gt_secure.cli.main import main
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger.accountant import compute_epsilon
from gt_secure.ledger.ddp_mechanism import (
    DistributedGaussianMechanism,
    condition_text,
    kls_epsilon,
)
from gt_secure.ledger.verify import verify_ledger
from tests.ledger.conftest import DELTA, DPSGD, World, release

HALF = 80


def _log_pmf_of_sum(sigma: float, summands: int) -> np.ndarray:
    """log P(Z = x), x in [-HALF * summands, HALF * summands], Z = sum of N_Z(0, sigma^2)."""
    x = np.arange(-HALF, HALF + 1, dtype=np.float64)
    one = -(x**2) / (2 * sigma**2)
    one -= logsumexp(one)
    out = one
    for _ in range(summands - 1):  # exact convolution in log space
        size = out.size + one.size - 1
        grid = np.full((out.size, size), -np.inf)
        for i in range(out.size):
            grid[i, i:i + one.size] = out[i] + one
        out = logsumexp(grid, axis=0)
    return np.asarray(out)


def renyi(sigma: float, summands: int, shift: int, alpha: float) -> float:
    """D_alpha(Z + shift || Z), computed exactly on the (truncated, negligible-tail) support."""
    logp = _log_pmf_of_sum(sigma, summands)
    logq = np.roll(logp, shift)
    logq[:shift] = -np.inf  # shifted-in mass is 0
    mask = np.isfinite(logp) & np.isfinite(logq)
    return float(logsumexp(alpha * logq[mask] + (1 - alpha) * logp[mask]) / (alpha - 1))


@pytest.mark.parametrize("sigma", [1.0, 2.5])
@pytest.mark.parametrize("alpha", [2.0, 4.0])
def test_one_discrete_gaussian_is_exactly_the_cks20_closed_form(sigma: float,
                                                                alpha: float) -> None:
    # CKS20: D_alpha(N_Z(1, s^2) || N_Z(0, s^2)) = alpha / (2 s^2) for an integer shift.
    eps = kls_epsilon(sigma, 1.0, dim=1, summands=1)
    assert renyi(sigma, 1, 1, alpha) == pytest.approx(alpha * eps**2 / 2, rel=1e-9)


@pytest.mark.parametrize(("sigma", "summands"), [(0.6, 2), (0.8, 3), (1.5, 2), (1.0, 3)])
@pytest.mark.parametrize("alpha", [1.5, 2.0, 4.0])
def test_kls_bound_holds_for_sums_of_discrete_gaussians(sigma: float, summands: int,
                                                        alpha: float) -> None:
    eps = kls_epsilon(sigma, 2.0, dim=1, summands=summands)
    exact = renyi(sigma, summands, 2, alpha)
    assert exact <= alpha * eps**2 / 2
    if sigma >= 1.0:  # tau is negligible: the bound is the Gaussian one and nearly tight
        assert exact >= 0.95 * alpha * eps**2 / 2


def mechanism(sigma: float = 3.0, sensitivity: float = 1.0, organizations: int = 1,
              min_survivors: int = 1, max_colluders: int = 0,
              dim: int = 1) -> DistributedGaussianMechanism:
    return DistributedGaussianMechanism(
        clip_norm=1.0, dim=dim, scale=1.0, sigma=sigma, sensitivity=sensitivity, bits=16,
        organizations=organizations, min_survivors=min_survivors, max_colluders=max_colluders,
        condition=condition_text(organizations, min_survivors, max_colluders))


def test_ledger_epsilon_upper_bounds_dp_accountings_discrete_gaussian_pld() -> None:
    exact = pld.from_discrete_gaussian_mechanism(3.0, sensitivity=1).get_epsilon_for_delta(DELTA)
    ledger = compute_epsilon([mechanism(sigma=3.0)], DELTA, "rdp")
    assert exact <= ledger <= 1.5 * exact


def test_only_the_rdp_accountant_composes_it() -> None:
    with pytest.raises(InvalidFieldError, match="accountant must be 'rdp' with a distributed"):
        compute_epsilon([mechanism()], DELTA, "prv")


def test_colluders_and_dropouts_cost_epsilon_and_the_condition_is_checked() -> None:
    # Each of 5 organizations adds sigma: 4 honest survivors at worst vs all 5.
    all_five = mechanism(sigma=10.0, sensitivity=20.0, organizations=5, min_survivors=5)
    four = mechanism(sigma=10.0, sensitivity=20.0, organizations=5, min_survivors=5,
                     max_colluders=1)
    assert all_five.zcdp_epsilon() == pytest.approx(20.0 / (10.0 * math.sqrt(5)))
    assert four.zcdp_epsilon() == pytest.approx(20.0 / (10.0 * math.sqrt(4)))
    assert "at most 1 of 5 organizations collude" in four.condition
    with pytest.raises(InvalidFieldError, match="condition must be"):
        DistributedGaussianMechanism(**(four.model_dump() | {"condition": "trust me"}))
    with pytest.raises(InvalidFieldError, match="max_colluders must be in \\[0, min_survivors"):
        mechanism(organizations=3, min_survivors=2, max_colluders=2)


def test_release_entry_records_the_mechanism_and_verifies(world: World, tmp_path: Path) -> None:
    mech = mechanism(sigma=200.0, sensitivity=400.0, organizations=3, min_survivors=2,
                     dim=2048)
    entry = release(world, "org-a", "r1-org-a", [mech])

    assert entry.mechanisms[0] == mech and "collude with the server" in mech.condition
    assert entry.epsilon_spent == pytest.approx(compute_epsilon([mech], DELTA, "rdp"))
    report = verify_ledger(world.ledger.path, world.trusted)
    assert report.ok, report


def test_show_composes_both_units_over_rounds(world: World,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # Each round's release records both units: DP-SGD (example) and the distributed share
    # (organization); `ledger show` composes each unit over the two rounds.
    share = DdpParams.choose(1.0, 2048, 1.0, 10, 2, 0, 16).mechanism()
    for r in (1, 2):
        release(world, "org-a", f"r{r}-org-a", [DPSGD], round=r)
        release(world, "org-a", f"r{r}-org-a", [share], round=r)

    assert main(["ledger", "show", "--ledger", str(world.ledger.path),
                 "--trusted-keys", str(world.key_dir)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "org-a" in line]
    totals = {unit: compute_epsilon([m] * 2, DELTA, "rdp") for unit, m in
              (("example", DPSGD), ("organization", share))}
    for unit, total in totals.items():
        (row,) = [line for line in rows if f" {unit} " in line]
        assert " 2 " in row and f"{total:.4f}" in row
    assert totals["organization"] > compute_epsilon([share], DELTA, "rdp")  # composed
