"""End to end: ``gt-secure demo`` (slow: Flower simulation with the real DP release)."""

from __future__ import annotations

import json

import pytest

from gt_secure.cli.main import main


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path) -> None:
    assert main(["demo", "--out", str(tmp_path), "--local-steps", "4"]) == 0
    result = json.loads((tmp_path / "demo.json").read_text())
    assert result["ledgers_ok"]
    for org, ledger in result["ledgers"].items():
        assert ledger["entries"] == 2, org  # one entry per privacy unit
        assert 0 < ledger["epsilon"]["example"] <= 1.0 + 1e-6
    assert (tmp_path / "provider" / "round1" / "adapter" / "adapter_config.json").exists()
    assert set(result["perplexity"]) >= {"base_llm", "generated_llm", "tinylm_aggregated"}
    # Released models under DP: the loss attack must not separate members from non-members.
    for name, metrics in result["audit"].items():
        assert metrics["auc_low"] < 0.5 < metrics["auc_high"] or metrics["auc"] < 0.62, name
