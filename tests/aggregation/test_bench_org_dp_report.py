"""bench/org_dp_report.py: rows per configuration and drop stage, targets judged on the means."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bench.org_dp_report import aggregate, target_rows


def _draw(mode: str, ppl: float, seed: int = 0, k: int = 16, eps: float = 8.0,
          min_survivors: int | None = None, stage: str = "after_masking") -> dict[str, Any]:
    return {"orgs": 10, "epsilon": eps, "mode": mode, "k": k, "seed": seed, "ppl": ppl,
            "llm_ppl": None, "ppl_base": 600.0, "llm_ppl_base": 500.0, "noise_l2": 0.5,
            "min_survivors": min_survivors, "drop_stage": stage,
            "summed": 7 if stage == "before_masking" else 10}


def test_configurations_apart_and_gap_on_means() -> None:
    # Prepare: reference gain 600 -> 400 (200); two draws per setting
    draws = [_draw("none", 400.0, k=2048, eps=math.inf), _draw("none", 480.0, eps=math.inf)]
    draws += [_draw("distributed", p, s, min_survivors=10) for s, p in ((0, 480.0), (1, 500.0))]
    draws += [_draw("distributed", p, s, min_survivors=7) for s, p in ((0, 520.0), (1, 560.0))]
    draws += [_draw("central", p, s) for s, p in ((0, 490.0), (1, 490.0))]
    draws += [_draw("distributed", 520.0, s, min_survivors=7, stage="before_masking")
              for s in (0, 1)]
    draws += [_draw("central", 500.0, s, stage="before_masking") for s in (0, 1)]
    # Execute
    rows = aggregate(draws)
    targets = target_rows(rows, 16)
    # Assert: one row per (configuration, stage); fractions against the full-d reference
    dist = {(r["min_survivors"], r["drop_stage"]): r for r in rows if r["mode"] == "distributed"}
    assert set(dist) == {(10, "after_masking"), (7, "after_masking"), (7, "before_masking")}
    assert dist[10, "after_masking"]["tinylm_gain_fraction"] == pytest.approx(0.55)
    assert dist[10, "after_masking"]["tinylm_gain_fraction_draws"] == pytest.approx([0.6, 0.5])
    gaps = {(t["min_survivors"], t["drop_stage"]): t for t in targets
            if t["target"] == "distributed within 10% of central"}
    assert gaps[10, "after_masking"]["central"] == pytest.approx(0.55)
    assert gaps[10, "after_masking"]["met"] and gaps[10, "after_masking"]["issue_target"]
    assert gaps[7, "after_masking"]["relative_gap"] == pytest.approx(1 - 0.3 / 0.55)
    assert not gaps[7, "after_masking"]["met"]
    assert gaps[7, "after_masking"]["paired_diff"] == pytest.approx(-0.25)
    # before masking: compared with central over the same survivors (0.4 vs 0.5)
    before = gaps[7, "before_masking"]
    assert before["central"] == pytest.approx(0.5) and not before["issue_target"]
    assert before["relative_gap"] == pytest.approx(0.2) and not before["met"]
    gain = {t["min_survivors"]: t for t in targets if t["target"] == "gain_fraction >= 0.5"
            and t["drop_stage"] == "after_masking"}
    assert gain[10]["met"] and not gain[7]["met"]
