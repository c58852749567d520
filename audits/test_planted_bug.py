"""Planted DP bug: with the noise silently off, the audit must contradict the claimed epsilon.

The DP pipeline is the organization's Opacus DP-SGD (``dp_hook`` in conftest; override with
``GT_SECURE_AUDIT_DP_HOOK``). The contract test runs the auditor's non-private trainer in the
role of ``make_train(0.0)``; the pipeline tests (slow) use 128 canaries, each inserted once (a
repeated canary would be a group of examples, whose epsilon is larger than the claim). Clipping
switched off with the noise still calibrated to the nominal clip norm is *not* detected by this
black-box loss attack at this scale (docs/benchmarks.md, "## Audit"; ``python audits/measure.py``);
the white-box gradient-canary audit detects it (``audits/test_white_box_canaries.py``).
"""

from __future__ import annotations

import pytest
from audit_settings import CLAIMED_EPSILON, DELTA, HOOK_CANARIES, HOOK_SEED

from gt_secure.audit.attacks import LossAttack
from gt_secure.audit.canary import run_canary_audit
from gt_secure.audit.hooks import DPTrainingHook


def _audit(hook: DPTrainingHook, noise_multiplier: float, tokenizer, public_texts):
    return run_canary_audit(hook.make_train(noise_multiplier), public_texts,
                            LossAttack(tokenizer), claimed_epsilon=hook.claimed_epsilon,
                            delta=hook.delta, n_canaries=HOOK_CANARIES, canary_seed=HOOK_SEED,
                            split_seed=HOOK_SEED, organization=f"noise={noise_multiplier:g}")


def test_hook_contract_flags_disabled_noise(base, nonprivate_train):
    """A hook whose 'DP' trainer ignores the noise (the bug) fails its claimed epsilon."""
    _, tokenizer = base
    hook = DPTrainingHook(make_train=lambda _noise: nonprivate_train, noise_multiplier=1.0,
                          claimed_epsilon=CLAIMED_EPSILON, delta=DELTA)
    result = run_canary_audit(hook.make_train(0.0), [], LossAttack(tokenizer),
                              claimed_epsilon=hook.claimed_epsilon, delta=hook.delta,
                              n_canaries=48)
    assert result.verdict == "FAIL"


@pytest.mark.slow
def test_dp_pipeline_with_noise_passes(dp_hook, base, public_texts):
    result = _audit(dp_hook, dp_hook.noise_multiplier, base[1], public_texts)
    assert result.verdict == "PASS", result.empirical_epsilon


@pytest.mark.slow
def test_dp_pipeline_without_noise_is_flagged(dp_hook, base, public_texts):
    result = _audit(dp_hook, 0.0, base[1], public_texts)
    assert result.metrics.auc >= 0.9
    assert result.verdict == "FAIL", result.empirical_epsilon
