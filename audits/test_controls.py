"""Positive and negative controls: the audit must flag a leaky model and pass a private one."""

from __future__ import annotations

import copy

import pytest
from audit_settings import CLAIMED_EPSILON, DELTA

from gt_secure.audit.attacks import LossAttack, MinKProbAttack, ReferenceAttack, ZlibAttack
from gt_secure.audit.canary import (
    audit_model,
    insert_canaries,
    make_manifest,
    run_canary_audit,
)
from gt_secure.audit.empirical_epsilon import one_run_epsilon
from gt_secure.audit.finetune import finetune_causal_lm
from gt_secure.audit.report import build_report


def test_positive_control_memorising_model_is_flagged(base, nonprivate_train):
    _, tokenizer = base
    result = run_canary_audit(nonprivate_train, [], LossAttack(tokenizer),
                              claimed_epsilon=CLAIMED_EPSILON, delta=DELTA, n_canaries=48,
                              organization="positive-control")
    ceiling = one_run_epsilon(48, 48, 48, delta=DELTA, beta=0.05)
    assert result.metrics.auc >= 0.95
    assert CLAIMED_EPSILON < result.eps_lb <= ceiling  # a band, not a floor
    assert result.verdict == "FAIL"


def test_negative_control_untrained_model_passes(base):
    model, tokenizer = base
    manifest = make_manifest(48, canary_seed=0, split_seed=0)
    result = audit_model(model, manifest, LossAttack(tokenizer),
                         claimed_epsilon=CLAIMED_EPSILON, delta=DELTA)
    assert 0.25 <= result.metrics.auc <= 0.75
    assert result.eps_lb <= 0.5 and result.verdict == "PASS"


def test_negative_control_model_trained_without_canaries_passes(base, public_texts):
    model, tokenizer = base

    def public_only(texts):  # drops everything but public data: a perfectly private trainer
        kept = [t for t in texts if t in set(public_texts)]
        return finetune_causal_lm(copy.deepcopy(model), kept, tokenizer, epochs=3, lr=3e-3)

    result = run_canary_audit(public_only, public_texts, LossAttack(tokenizer),
                              claimed_epsilon=CLAIMED_EPSILON, delta=DELTA, n_canaries=48)
    assert result.eps_lb <= 0.5 and result.verdict == "PASS"


@pytest.mark.slow
def test_full_audit_all_attacks_with_report(base, public_texts, tmp_path):
    """128 canaries inside public data, every attack including reference models, HTML report."""
    model, tokenizer = base
    refs = [finetune_causal_lm(copy.deepcopy(model), public_texts, tokenizer, epochs=10,
                               lr=5e-3, batch_size=4, seed=s) for s in range(2)]
    manifest = make_manifest(128, canary_seed=7, split_seed=7)
    trained = finetune_causal_lm(copy.deepcopy(model),
                                 insert_canaries(public_texts, manifest, seed=7), tokenizer,
                                 epochs=30, lr=5e-3, batch_size=4)
    attacks = [LossAttack(tokenizer), ZlibAttack(tokenizer), MinKProbAttack(tokenizer),
               ReferenceAttack(refs, tokenizer)]
    results = [audit_model(trained, manifest, a, claimed_epsilon=CLAIMED_EPSILON, delta=DELTA,
                           organization="nonprivate") for a in attacks]
    json_path, html_path = build_report(results).write(tmp_path)
    assert html_path.read_text().count("data:image/png;base64,") == 2
    for r in results:
        assert r.metrics.auc >= 0.9 and r.verdict == "FAIL", r.attack
