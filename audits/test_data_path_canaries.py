"""Data-path canary audit of the organization's DP-SGD: canaries enter as records.

256 rare-token canary records (4 tokens each, ids no record uses), "in" with a fair coin, are
appended to the hospital's training records (N = 256 examples, B = 32, q = 1/8, 24 steps, C = 0.1,
claim epsilon 1 at delta 1e-5); the organization's Opacus DP-SGD
(`train_dp_sgd`, unchanged: Poisson loader, step loop, clip, noise, accountant) trains the TinyLM's
untied input embedding, so each canary's gradient lives on its own rows
(:mod:`gt_secure.audit.data_path`). The audit checks the recorded mechanism in closed form (noise
on untouched rows, mean "in" signal) and bounds epsilon with the one-run estimator. It must pass
the correct pipeline and fail the bugs that run other than recorded: more steps, a higher
sampling rate, clipping off, noise off. The 20-seed grid is ``slow``.
"""

from __future__ import annotations

import pytest

from gt_secure.audit.data_path import audit_org_data_path
from gt_secure.audit.gradient_canary import PlantedBug


@pytest.fixture(scope="module")
def _checkpoint(shipped):  # skips without the shipped TinyLM
    return shipped


def _check_pass(seed: int) -> None:
    result, check = audit_org_data_path(seed=seed)
    assert result.claimed_epsilon == pytest.approx(1.0, abs=0.01)
    assert result.verdict == "PASS", (check, result.empirical_epsilon)
    assert 0.9 < check.noise_ratio < 1.1


def _check_fail(bug: PlantedBug, seed: int) -> None:
    result, check = audit_org_data_path(bug=bug, seed=seed)
    assert result.verdict == "FAIL", (check, result.empirical_epsilon)
    if bug in ("steps_x2", "steps_x4"):  # the floor carries 2x / 4x the recorded noise
        factor = 2 if bug == "steps_x2" else 4
        assert check.noise_ratio == pytest.approx(factor, rel=0.05)
    else:  # more signal per unit of noise than (q, T, z, C) allow
        assert check.signal_p < check.alpha


@pytest.mark.parametrize("seed", [0, 1])
def test_data_path_audit_passes_correct_dp_sgd(_checkpoint, seed: int):
    _check_pass(seed)


@pytest.mark.parametrize("bug", ["steps_x2", "sample_rate_x4"])
def test_data_path_audit_flags_bug(_checkpoint, bug: PlantedBug):
    _check_fail(bug, seed=0)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2, 20))
def test_data_path_audit_passes_correct_dp_sgd_grid(_checkpoint, seed: int):
    _check_pass(seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(1, 5))
@pytest.mark.parametrize("bug", ["steps_x2", "steps_x4", "sample_rate_x4", "noise_off",
                                 "clipping_off"])
def test_data_path_audit_flags_bug_grid(_checkpoint, bug: PlantedBug, seed: int):
    _check_fail(bug, seed)
