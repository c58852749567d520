"""The audit's strength (largest detectable epsilon) and the audits/ suite's summary files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_secure.audit.canary import audit_model, make_manifest
from gt_secure.audit.empirical_epsilon import default_guess_grid, one_run_epsilon
from gt_secure.audit.strength import largest_detectable_epsilon, strength
from gt_secure.audit.summary import summary_row, write_summary

ROOT = Path(__file__).resolve().parents[2]


class _Fixed:
    """An attack whose scores are given (the model is ignored)."""

    name = "fixed"

    def __init__(self, scores: list[float]) -> None:
        self.scores = scores

    def score(self, model: object, texts: list[str]) -> list[float]:
        return self.scores


def _result(scores: list[float], n: int, claim: float = 1.0):
    manifest = make_manifest(n, 0, 0)
    return audit_model(None, manifest, _Fixed(scores), claimed_epsilon=claim,  # type: ignore[arg-type]
                       delta=1e-5, beta=0.05)


def test_ceiling_is_the_best_grid_cell_with_every_guess_right() -> None:
    n = 32
    result = _result([0.0] * n, n)
    grid = default_guess_grid(n)
    expected = max(one_run_epsilon(n, kp + kn, kp + kn, delta=1e-5, beta=0.05 / len(grid))
                   for kp, kn in grid
                   if kp <= sum(result.is_member) and kn <= n - sum(result.is_member))
    assert abs(largest_detectable_epsilon(result) - expected) < 1e-5
    assert result.eps_lb == 0.0
    info = strength(result)
    assert info["claim_within_reach"] == (1.0 < expected) and info["n_canaries"] == n


@settings(max_examples=15, deadline=None)
@given(st.integers(8, 48), st.integers(0, 2**31 - 1))
def test_ceiling_bounds_every_audit_and_grows_with_canaries(n: int, seed: int) -> None:
    scores = np.random.default_rng(seed).normal(size=n).tolist()
    result = _result(scores, n)
    assert result.eps_lb <= largest_detectable_epsilon(result) + 1e-9
    perfect = _result([float(y) for y in make_manifest(n, 0, 0).is_member], n)
    assert abs(perfect.eps_lb - largest_detectable_epsilon(perfect)) < 1e-9


def test_write_summary(tmp_path: Path) -> None:
    result = _result([float(y) for y in make_manifest(16, 0, 0).is_member], 16, claim=0.1)
    json_path, html_path = write_summary([summary_row("t::x", result)], tmp_path)
    row = json.loads(json_path.read_text())["audits"][0]
    assert row["test"] == "t::x" and row["verdict"] == "FAIL" and row["auc"] == 1.0
    assert row["eps_lower_bound"] == result.eps_lb > 0.1
    assert "no evidence of a violation" in html_path.read_text()


def test_audit_suite_leaves_a_summary(tmp_path: Path) -> None:
    env = {**os.environ, "GT_SECURE_AUDIT_SUMMARY": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    run = subprocess.run([sys.executable, "-m", "pytest", "audits/test_controls.py", "-q",
                          "-p", "no:cacheprovider", "-k", "untrained"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"{tmp_path / 'summary.json'}" in run.stdout
    rows = json.loads((tmp_path / "summary.json").read_text())["audits"]
    assert [r["test"] for r in rows] == [
        "audits/test_controls.py::test_negative_control_untrained_model_passes"]
    assert rows[0]["verdict"] == "PASS" and 0 < rows[0]["largest_detectable_epsilon"]
    assert (tmp_path / "summary.html").is_file()
