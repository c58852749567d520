"""Canary generation, manifest, insertion, the audit loop with an injected trainer, the report."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pytest
from pydantic import ValidationError
from torch import nn

from gt_secure.audit.attacks import LossAttack
from gt_secure.audit.canary import (
    CanaryManifest,
    audit_model,
    generate_canaries,
    insert_canaries,
    make_manifest,
    run_canary_audit,
)
from gt_secure.audit.report import build_report
from gt_secure.audit.results import verdict


def test_canaries_are_seeded_distinct_secret_records():
    a, b = generate_canaries(20, seed=3), generate_canaries(20, seed=3)
    assert a == b and len(set(a)) == 20
    assert all(c.startswith("Patient ") and "SSN " in c for c in a)
    assert generate_canaries(20, seed=4) != a


def test_manifest_coins_are_fair_seeded_and_round_trip(tmp_path):
    big = make_manifest(1000, canary_seed=0, split_seed=9)
    assert 0.45 < np.mean(big.is_member) < 0.55
    manifest = make_manifest(12, canary_seed=0, split_seed=5)
    assert manifest == make_manifest(12, canary_seed=0, split_seed=5)
    manifest.save(tmp_path / "m.json")
    assert CanaryManifest.load(tmp_path / "m.json") == manifest
    with pytest.raises(ValidationError, match="is_member must be one flag per canary"):
        CanaryManifest(canary_seed=0, split_seed=0, canaries=["a", "b"], is_member=[True])


def test_insert_canaries_adds_only_members():
    manifest = make_manifest(10, 0, 1)
    data = insert_canaries(["public one", "public two"], manifest, repeats=3, seed=2)
    assert data == insert_canaries(["public one", "public two"], manifest, repeats=3, seed=2)
    for canary, member in zip(manifest.canaries, manifest.is_member, strict=True):
        assert data.count(canary) == (3 if member else 0)
    assert len(data) == 2 + 3 * len(manifest.members)


def test_run_canary_audit_calls_the_injected_trainer(tokenizer, random_model):
    seen: list[Sequence[str]] = []

    def train(texts: Sequence[str]) -> nn.Module:
        seen.append(list(texts))
        return random_model  # ignores its data: a perfectly private "training"

    result = run_canary_audit(train, ["public text"], LossAttack(tokenizer), claimed_epsilon=1.0,
                              delta=1e-5, n_canaries=32, canary_seed=2, split_seed=3,
                              organization="hospital", ledger_release_ids=["rel-1"])
    manifest = make_manifest(32, 2, 3)
    assert len(seen) == 1 and set(manifest.members) <= set(seen[0])
    assert not set(manifest.canaries) - set(manifest.members) & set(seen[0])
    assert result.verdict == "PASS" and result.eps_lb <= 1.0
    assert (result.canary_seed, result.split_seed, result.n_canaries) == (2, 3, 32)
    assert result.is_member == manifest.is_member and result.ledger_release_ids == ["rel-1"]


def test_memorised_model_is_detected(tokenizer, memorised):
    model, manifest = memorised
    result = audit_model(model, manifest, LossAttack(tokenizer), claimed_epsilon=0.1, delta=1e-5)
    assert result.metrics.auc >= 0.9
    assert result.eps_lb > 0.1 and result.verdict == "FAIL"


def test_verdict_boundary():
    assert verdict(1.0, 1.0) == "PASS" and verdict(1.01, 1.0) == "FAIL"
    assert verdict(5.0, float("inf")) == "PASS"


def test_report_json_and_self_contained_html(tokenizer, memorised):
    model, manifest = memorised
    results = [audit_model(model, manifest, LossAttack(tokenizer), claimed_epsilon=c, delta=1e-5,
                           organization=org, ledger_release_ids=[rid])
               for c, org, rid in ((0.1, "<script>bank</script>", "r1"), (50.0, "hosp", "r2"))]
    entries = [{"release_id": "r1", "epsilon": 0.1}, {"release_id": "zz", "epsilon": 9}]
    report = build_report(results, entries)
    data = json.loads(report.to_json())
    assert data["verdict"] == "FAIL" and len(data["results"]) == 2
    page = report.to_html()
    assert "<script>bank" not in page and "&lt;script&gt;bank" in page
    assert page.count("data:image/png;base64,") == 3  # epsilon chart + one ROC per org
    assert "&quot;release_id&quot;: &quot;r1&quot;" in page and "&quot;zz&quot;" not in page
    assert "FAIL" in page and "PASS" in page
