"""Per-step white-box audit of Poisson-subsampled DP-SGD through the real Opacus pipeline."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gt_secure.audit.gradient_canary import make_gradient_canaries
from gt_secure.audit.step_canary import MARK, canary_records
from gt_secure.audit.tightness import audit_subsampled_tightness
from gt_secure.errors import InvalidFieldError
from gt_secure.provider.adapter import fresh_lora
from gt_secure.update.layout import LoraSpec

SMALL = LoraSpec(r=16)


def test_canary_records_encode_each_member_once():
    model = fresh_lora("tinylm", LoraSpec(r=32))[0]  # 16384 lora_A coordinates
    canaries = make_gradient_canaries(model, 9000, 0, match="lora_A")  # k >= 4000: 2nd token
    rec = canary_records(canaries, 4)
    ids = rec["input_ids"]
    assert len(ids) == sum(canaries.is_member) and (ids[:, 0] == MARK).all()
    assert len({tuple(row[:3].tolist()) for row in ids}) == len(ids)
    assert (rec["attention_mask"].sum(1) == 3).all() and (rec["labels"][:, 3:] == -100).all()


def test_noise_off_steps_are_seen_exactly_and_the_control_fails_the_claim():
    """With z = 0 each observation is 1 if Opacus sampled the canary that step, else 0: every
    score is ``T c0 + n_k (c1 - c0)`` for an integer count ``n_k`` (0 for "out" canaries)."""
    steps, q = 3, 0.5
    result, extra = audit_subsampled_tightness(1.0, n_canaries=300, steps=steps, lora=SMALL,
                                               noise_off=True)
    z = extra["noise_multiplier"]
    c0 = math.log(1 - q + q * math.exp(-1 / (2 * z * z)))
    c1 = math.log(1 - q + q * math.exp(1 / (2 * z * z)))
    counts = (np.array(result.scores) - steps * c0) / (c1 - c0)  # (m,)
    members = np.array(result.is_member)
    assert np.abs(counts - np.round(counts)).max() < 0.05  # the data adds ~nothing there
    assert (np.round(counts[~members]) == 0).all()
    assert np.round(counts[members]).mean() == pytest.approx(steps * q, abs=0.25)
    assert extra["sample_rate"] == q and extra["steps"] == steps
    assert result.verdict == "FAIL" and result.eps_lb > result.claimed_epsilon


def test_refuses_data_that_looks_like_a_canary_and_adam():
    from gt_secure.audit.step_canary import run_step_canary_audit
    from gt_secure.audit.tightness import SUBSAMPLED_DP_SGD

    model = fresh_lora("tinylm", SMALL)[0]
    ids = np.full((4, 4), MARK)
    import torch

    data = {k: torch.as_tensor(ids) for k in ("input_ids", "attention_mask", "labels")}
    with pytest.raises(InvalidFieldError, match="data"):
        run_step_canary_audit(model, data, SUBSAMPLED_DP_SGD, n_canaries=10)
    with pytest.raises(InvalidFieldError, match="optimizer"):
        run_step_canary_audit(model, data, SUBSAMPLED_DP_SGD.model_copy(
            update={"optimizer": "adam"}), n_canaries=10)


@pytest.mark.slow
def test_correct_pipeline_passes_its_claim():
    result, extra = audit_subsampled_tightness(2.0, n_canaries=2000, steps=8, lora=SMALL)
    assert result.verdict == "PASS" and result.eps_lb <= extra["true_epsilon_pld"]
