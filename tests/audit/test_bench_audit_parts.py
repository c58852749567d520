"""bench/audit_parts.py and the audit-power grid built from part files (no training here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.audit_parts import has_part, load_cell, part_path, run_missing, save_part
from bench.audit_power import BUGS, grid_rows
from gt_secure.audit.empirical_epsilon import one_run_audit
from gt_secure.audit.metrics import attack_metrics
from gt_secure.audit.results import AuditResult, verdict

CLAIM = 1.0


def _result(shift: float, seed: int, n: int = 400) -> AuditResult:
    """A one-run audit of a simulated Gaussian mechanism: "in" scores shifted by ``shift``."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.5
    scores = rng.normal(size=n) + shift * labels
    bound = one_run_audit(scores, labels, delta=1e-5)
    return AuditResult(organization="sim", attack="gradient_canary",
                       metrics=attack_metrics(scores, labels), empirical_epsilon=bound,
                       claimed_epsilon=CLAIM, delta=1e-5, verdict=verdict(bound.epsilon, CLAIM),
                       canary_seed=seed, split_seed=seed, n_canaries=n,
                       scores=[float(s) for s in scores], is_member=[bool(x) for x in labels])


def _simulated(bug: str, seed: int) -> tuple[list[dict[str, Any]], float, dict[str, Any]]:
    shift = 12.0 if bug == "noise_off" else 0.0
    return [_result(shift, seed).model_dump(mode="json")], 0.5, {"bug": bug}


def test_part_round_trip_resume_and_missing_seed(tmp_path: Path) -> None:
    # Prepare
    ran: list[tuple[str, int]] = []

    def run(bug: str, seed: int) -> tuple[list[dict[str, Any]], float, dict[str, Any]]:
        ran.append((bug, seed))
        return _simulated(bug, seed)

    save_part(tmp_path, "g-none", 0, [_result(0.0, 0)], 1.0)
    # Execute
    run_missing([("none", s) for s in range(3)], run, lambda t: (f"g-{t[0]}", t[1]),
                tmp_path, jobs=1)
    cell = load_cell(tmp_path, "g-none", 3)
    # Assert: seed 0 was kept, not rerun; results come back as they were
    assert ran == [("none", 1), ("none", 2)]
    assert cell[0]["results"][0] == _result(0.0, 0) and cell[0]["seconds"] == 1.0
    assert cell[2]["extra"] == {"bug": "none"} and has_part(tmp_path, "g-none", 2)
    assert not list(part_path(tmp_path, "g-none", 0).parent.glob("*.tmp*"))
    with pytest.raises(FileNotFoundError, match="g-none.*seed 3"):
        load_cell(tmp_path, "g-none", 4)


def test_grid_rows_count_detected_runs_from_the_parts(tmp_path: Path) -> None:
    # Prepare: a strong "noise_off" signal, none elsewhere
    tasks = [("gradient_canary", bug, seed) for bug in BUGS for seed in range(2)]
    run_missing([t[1:] for t in tasks], _simulated,
                lambda t: (f"gradient_canary-{t[0]}", t[1]), tmp_path, jobs=1)
    # Execute
    rows, power, tightness = grid_rows(tmp_path, ["gradient_canary"], 2)
    # Assert
    by_bug = {r["bug"]: r for r in rows}
    assert by_bug["noise_off"]["detected_runs"] == 2 and by_bug["none"]["detected_runs"] == 0
    assert all(r["runs"] == 2 and r["seconds"] == 0.5 for r in rows)
    assert power[0]["positive_control_noise_off"]["eps_lb"] > CLAIM
    assert tightness[0]["lower_bound"] == max(
        c["results"][0].eps_lb for c in load_cell(tmp_path, "gradient_canary-none", 2))
