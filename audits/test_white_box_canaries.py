"""White-box gradient-canary audit of the organization's DP-SGD (Opacus, TinyLM LoRA adapter).

128 Dirac gradient canaries (norm 100) on the ``lora_A`` coordinates, each "in" with a fair coin
and then Poisson-sampled at every step with the run's sample rate, appended to Opacus's
per-example gradients before its clip-sum-noise step; 64 hospital training texts, q = 1/4, 24
SGD steps, z for epsilon 1 at delta 1e-5; one-run bound at 95% confidence
(:mod:`gt_secure.audit.gradient_canary`). Catches the planted bug the black-box loss audit misses:
clipping switched off (``max_grad_norm = 1e6``) with the noise still calibrated to ``C = 1``.
Validity: the correct pipeline passed on 20 of 20 seeds (docs/benchmarks.md, "## Audit").

Tightness (:mod:`gt_secure.audit.tightness`): full-batch DP-SGD claimed at epsilon 8 (RDP ledger),
8000 canaries on a rank-16 adapter's ``lora_A``, Gaussian-DP one-run bound: the correct pipeline
must PASS with a lower bound >= 4 = 0.5 x 8 (docs/benchmarks.md, "### Audit power").
"""

from __future__ import annotations

import pytest

from gt_secure.audit.gradient_canary import PlantedBug, audit_org_dp_sgd
from gt_secure.audit.tightness import audit_tightness, gdp_ceiling


@pytest.fixture(scope="module")
def _checkpoint(shipped):  # skips without the shipped TinyLM (the LoRA audit needs its BPE)
    return shipped


def test_white_box_audit_passes_correct_dp_sgd(_checkpoint):
    result = audit_org_dp_sgd()
    assert result.claimed_epsilon == pytest.approx(1.0, abs=0.01)
    assert result.verdict == "PASS", result.empirical_epsilon
    assert result.metrics.auc < 0.75


@pytest.mark.parametrize("bug", ["clipping_off", "noise_off"])
def test_white_box_audit_flags_planted_bug(_checkpoint, bug: PlantedBug):
    result = audit_org_dp_sgd(bug=bug)
    assert result.verdict == "FAIL", result.empirical_epsilon
    assert result.eps_lb > result.claimed_epsilon
    assert result.metrics.auc >= (0.99 if bug == "clipping_off" else 0.85)


def test_white_box_audit_is_tight_on_correct_dp_sgd_at_claim_8(_checkpoint):
    result, eps_delta = audit_tightness(8.0)
    assert result.claimed_epsilon == pytest.approx(8.0, abs=0.01)
    assert result.verdict == "PASS", result.empirical_epsilon
    assert result.eps_lb >= 4.0, result.empirical_epsilon
    assert eps_delta.epsilon < result.eps_lb  # the (epsilon, delta) one-run bound is looser
    assert gdp_ceiling(result) > result.claimed_epsilon  # the claim was within reach


@pytest.mark.slow
def test_tight_white_box_audit_fails_noise_off_at_claim_8(_checkpoint):
    result, _ = audit_tightness(8.0, bug="noise_off")
    assert result.verdict == "FAIL", result.empirical_epsilon
