"""Ledger-linked audits of the organization's Opacus DP-SGD (default suite, one run each).

An organization's ledger records a DP-SGD release (epsilon ~1 at delta 1e-5). The auditor re-runs
the recorded mechanism with 64 secret canaries: the real pipeline must PASS the ledger's claim,
the same pipeline with its noise silently switched off must FAIL it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_settings import DP_CANARIES

from gt_secure.audit.canary import make_manifest
from gt_secure.audit.dp_pipeline import AUDIT_DP_SGD, claimed_epsilon, dp_sgd_trainer, with_noise
from gt_secure.audit.ledger_audit import audit_release
from gt_secure.ledger import Ledger, generate_key
from gt_secure.models.loading import base_model_hash

RELEASE = "r1-org-audit"


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory, public_texts: list[str]) -> Ledger:
    """A signed ledger: an earlier small release, then the audited DP-SGD release."""
    n = len(public_texts) + len(make_manifest(DP_CANARIES, 0, 0).members)
    mechanism, _ = claimed_epsilon(AUDIT_DP_SGD, n)
    earlier, _ = claimed_epsilon(with_noise(AUDIT_DP_SGD, 20.0), n)
    key = generate_key()
    ledger = Ledger.create(Path(tmp_path_factory.mktemp("ledger")) / "ledger.jsonl",
                           owner="org-audit", budget={"example": 4.0}, signing_key=key)
    for release_id, mech in (("r0-org-audit", earlier), (RELEASE, mechanism)):
        ledger.append_release(org_id="org-audit", release_id=release_id, mechanisms=[mech],
                              delta=AUDIT_DP_SGD.delta,
                              base_model_hash=base_model_hash("tinylm"),
                              update_vector_hash="a" * 64, data_fingerprint="b" * 64,
                              signing_key=key)
    return ledger


def _audit(ledger, shipped, public_texts, trainer=None):
    model, tokenizer = shipped
    return audit_release(ledger, RELEASE, public_texts, base=model, tokenizer=tokenizer,
                         trainer=trainer, n_canaries=DP_CANARIES)


def test_dp_release_passes_its_ledger_claim(ledger, shipped, public_texts):
    report = _audit(ledger, shipped, public_texts)
    result, entry = report.results[0], ledger.entries()[-1]
    assert result.claimed_epsilon == entry.epsilon_total > entry.epsilon_spent  # composed
    assert 0.9 < result.claimed_epsilon < 1.5
    assert result.verdict == report.verdict == "PASS", result.empirical_epsilon
    assert result.metrics.auc < 0.8
    listed = report.ledger_entries[0]
    assert (listed["release_id"], listed["org_id"]) == (RELEASE, "org-audit")
    assert listed["epsilon"] == entry.epsilon_total
    assert listed["noise_multiplier"] == entry.mechanisms[0].noise_multiplier > 1.0
    assert report.linked_entries(result) == [listed]


def test_planted_bug_noise_off_fails_the_ledger_claim(ledger, shipped, public_texts):
    model, tokenizer = shipped

    def no_noise(cfg):  # the bug: the ledger records cfg's noise, training runs without it
        return dp_sgd_trainer(model, tokenizer, with_noise(cfg, 0.0))

    report = _audit(ledger, shipped, public_texts, trainer=no_noise)
    result = report.results[0]
    assert result.metrics.auc >= 0.9
    assert result.eps_lb > result.claimed_epsilon and report.verdict == "FAIL"
