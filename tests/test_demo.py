"""End to end: ``gt-secure demo`` (slow: Flower simulation with the real DP release)."""

from __future__ import annotations

import json

import pytest

from gt_secure.cli.main import main
from gt_secure.data.organizations import ORGANIZATIONS


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path) -> None:
    # Default: dp-sgd-secagg (example-level DP-SGD eps=1 only), 512 texts x 32 steps per org.
    assert main(["demo", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "demo.json").read_text())
    assert result["ledgers_ok"]
    for org, ledger in result["ledgers"].items():
        assert ledger["entries"] == 1, org  # example unit only: no organization-level DP
        assert set(ledger["epsilon"]) == {"example"}, org
        assert 0 < ledger["epsilon"]["example"] <= 1.0 + 1e-6
    assert (tmp_path / "provider" / "round1" / "adapter" / "adapter_config.json").exists()
    ppl = result["perplexity"]
    assert set(ppl) >= {"base_tinylm", "tinylm_aggregated", "base_llm", "generated_llm"}
    # Measured -25% to -40% per organization in every run at these settings (docs/benchmarks.md,
    # Demo utility); asserted with margin: the DP mean update helps every organization.
    for org in ORGANIZATIONS:
        assert ppl["tinylm_aggregated"][org] < 0.9 * ppl["base_tinylm"][org], org
    assert result["change_vs_base"]["tinylm_aggregated"] < -0.1
    verdict = " ".join(result["verdict"])
    assert "NOT protected" in verdict and "--protocol dp-secagg" in verdict
    # Released models under DP: the loss attack must not separate members from non-members.
    for name, metrics in result["audit"].items():
        assert metrics["auc_low"] < 0.5 < metrics["auc_high"] or metrics["auc"] < 0.62, name
