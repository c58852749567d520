"""The Flower app end to end in Flower's simulation engine (Ray), with the real organization
and provider steps.

Each test runs the production ServerApp and the production ClientApp mods; faults are injected
per (organization, round) by ``faulty_app``. The expected means are recomputed here, in the test
process, from the update vectors each organization kept of its own releases (what it sent), so
the provider's aggregate is checked against the plain mean of exactly those vectors.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.simulation import run_simulation

from gt_secure.app.roles import release_id_of
from gt_secure.app.server_app import make_server_app
from gt_secure.data.organizations import ORGANIZATIONS
from gt_secure.ledger.store import Ledger
from gt_secure.organization.policy import policy_for, write_policy
from gt_secure.update import UpdateVector
from tests.app.faulty_app import Faults, make_faulty_client_app

REPO = Path(__file__).resolve().parents[2]
BACKEND = {"client_resources": {"num_cpus": 1},
           "init_args": {"num_cpus": 2, "logging_level": "ERROR"}}
DIM = 2048  # TinyLM LoRA update (r=2, q/v of 4 layers)


@pytest.fixture(autouse=True)
def _ray_workers_import_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("GT_SECURE_STATE_DIR", str(tmp_path / "orgs"))


def simulate(tmp_path: Path, overrides: dict[str, Any], faults: Faults,
             num_nodes: int = 3) -> dict[str, Any]:
    out = tmp_path / "out"
    policy = policy_for(overrides["protocol"], budget_epsilon=10.0, min_organizations=2)
    for org in ORGANIZATIONS:  # each organization accepts exactly this protocol, from 2 orgs on
        write_policy(policy, tmp_path / "orgs" / org / "policy.toml")
    overrides = {"local-steps": 2, "num-texts": 64} | overrides | {"output-dir": str(out),
                                                                  "round-timeout": 300.0}
    run_simulation(make_server_app(overrides), make_faulty_client_app(overrides, faults),
                   num_supernodes=num_nodes, backend_config=BACKEND)
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return summary


def global_after(tmp_path: Path, round_idx: int) -> np.ndarray:
    """The provider's cumulative TinyLM update after ``round_idx`` (0: zeros)."""
    if round_idx == 0:
        return np.zeros(DIM, dtype=np.float32)
    path = tmp_path / "out" / f"round{round_idx}" / "tinylm_update.safetensors"
    return UpdateVector.load(path).flat


def sent_mean(tmp_path: Path, summary: dict[str, Any], orgs: list[str],
              round_idx: int) -> np.ndarray:
    """Mean (float64) of the vectors the organizations say they released in ``round_idx``."""
    releases = [UpdateVector.load(tmp_path / "orgs" / org / "releases" /
                                  f"{release_id_of(org, summary['run_id'], round_idx)}"
                                  ".safetensors").flat for org in orgs]
    return np.mean(np.stack(releases).astype(np.float64), axis=0)


def ledger_units(tmp_path: Path, org: str) -> list[str]:
    """Privacy unit of each release entry in ``org``'s ledger (its header excluded)."""
    return [str(e.unit) for e in Ledger(tmp_path / "orgs" / org / "ledger.jsonl").entries()]


def rejected(record: dict[str, Any]) -> dict[str, str]:
    return {r["org_id"]: r["field"] for r in record["rejections"]}


def test_plain_rounds_refuse_bad_updates_and_continue(tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    # Prepare: 3 organizations with the plain protocol (plain LoRA fine-tune, clip only).
    # Round 1: bank sends a NaN and law an over-norm update, both bypassing their guards.
    # Round 2: law names a foreign base model and hospital's process dies. Round 3: all honest.
    caplog.set_level(logging.INFO, logger="flwr")
    overrides = {"protocol": "plain", "num-rounds": 3, "min-orgs": 3, "clip-norm": 1.0,
                 "noise-multiplier": 0.0}
    faults = {("bank", 1): "nan", ("law", 1): "norm", ("law", 2): "base-hash",
              ("hospital", 2): "crash"}

    # Execute
    summary = simulate(tmp_path, overrides, faults)

    # Assert: each refusal names the organization and the field; the round went on.
    rounds = summary["rounds"]
    assert [r["accepted"] for r in rounds] == [["hospital"], ["bank"], ["bank", "hospital", "law"]]
    assert rejected(rounds[0]) == {"bank": "update[bank].flat.non_finite_count",
                                   "law": "update[law].l2_norm"}
    for rejection in rounds[0]["rejections"] + rounds[1]["rejections"]:
        if rejection["field"] != "reply":
            assert rejection["field"] in rejection["message"]
            assert rejection["org_id"] in rejection["message"]
    second = {r["field"]: r["message"] for r in rounds[1]["rejections"]}
    assert set(second) == {"update[law].layout.base_model_hash", "reply"}
    assert "organization process died" in second["reply"]
    # Assert: the aggregate is exactly the mean of the accepted updates, round after round,
    # and each organization records every plain release as unprotected (no DP, no budget).
    for record in rounds:
        start = global_after(tmp_path, record["round"] - 1)
        expected = start + sent_mean(tmp_path, summary, record["accepted"], record["round"])
        got = global_after(tmp_path, record["round"])
        np.testing.assert_allclose(got, expected.astype(np.float32), rtol=0, atol=1e-7)
        assert 0 < record["mean_l2_norm"] <= 1.0 + 1e-5
    for record in rounds:
        for org in record["accepted"]:
            rid = release_id_of(org, summary["run_id"], record["round"])
            (entry,) = [e for e in Ledger(tmp_path / "orgs" / org / "ledger.jsonl").entries()
                        if e.release_id == rid]
            assert entry.kind == "unprotected_release" and entry.protocol == "plain"
            assert entry.unit is None and entry.epsilon_spent == 0.0
    # Assert: Flower's log (what `flwr run --stream` shows) has one line per round and names
    # where the results are.
    out = "\n".join(r.getMessage() for r in caplog.records if r.name == "flwr")
    summary_path = tmp_path / "out" / "summary.json"
    assert f"protocol plain (plain aggregation), 3 round(s); results in {summary_path}" in out
    assert ("round 1/3: heard 3 of 3 organizations, accepted 1 (hospital), refused 2 (bank: "
            "update[bank].flat.non_finite_count, law: update[law].l2_norm); round ") in out
    assert ("round 3/3: heard 3 of 3 organizations, accepted 3 (bank, hospital, law), "
            "refused 0; round ") in out
    assert f"finished: 3 round(s); results in {summary_path}" in out


def test_secagg_mean_matches_plain_mean_with_dropout_guard_and_screen(tmp_path: Path) -> None:
    # Prepare: 3 organizations, dp-sgd-secagg (DP-SGD without vector noise), SecAgg+ with a
    # majority threshold (one dropout tolerated; the organizations accept sums of >= 2).
    # Round 1: law dies after the key exchange. Round 2: bank's own guard refuses its
    # over-norm update. Round 3: hospital bypasses its guard with a foreign base-model hash and
    # the provider screens it out of the sum on the plaintext metadata.
    overrides = {"protocol": "dp-sgd-secagg", "num-rounds": 3, "min-orgs": 3,
                 "secagg-params": "auto"}
    faults = {("law", 1): "crash", ("bank", 2): "guarded-norm", ("hospital", 3): "base-hash"}

    # Execute
    summary = simulate(tmp_path, overrides, faults)

    # Assert: who was dropped, and why, per round.
    rounds = summary["rounds"]
    assert [r["accepted"] for r in rounds] == [
        ["bank", "hospital"], ["hospital", "law"], ["bank", "law"]]
    assert [r["field"] for r in rounds[0]["rejections"]] == ["reply"]
    assert rejected(rounds[1]) == {"bank": "update[bank].l2_norm"}
    assert rejected(rounds[2]) == {"hospital": "update[hospital].layout.base_model_hash"}
    # Assert: the decoded SecAgg+ mean equals the plain mean within the documented bound.
    for record in rounds:
        assert record["aggregation"] == "secagg"
        start = global_after(tmp_path, record["round"] - 1).astype(np.float64)
        exact = sent_mean(tmp_path, summary, record["accepted"], record["round"])
        got = global_after(tmp_path, record["round"]).astype(np.float64) - start
        float32_rounding = 2.0**-23 * float(np.max(np.abs(start + exact)))
        bound = record["mean_error_bound"] + float32_rounding
        assert 0 < record["mean_error_bound"] < 1e-6
        assert float(np.max(np.abs(got - exact))) <= bound
        assert float(np.max(np.abs(exact))) > 100 * bound  # the check is not vacuous
    # Assert: each organization's ledger holds one DP-SGD entry per release it made.
    for org in ("bank", "hospital", "law"):
        assert set(ledger_units(tmp_path, org)) == {"example"}
