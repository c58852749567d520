"""The Flower app end to end in Flower's simulation engine (Ray), with real local training.

Each test runs the production ServerApp and the production ClientApp mods; faults are injected
per (organization, round) by ``faulty_app``. The expected means are recomputed here, in the test
process, from the same organization step (an obviously-correct slow reference).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.simulation import run_simulation

from gt_secure.app.config import AppConfig
from gt_secure.app.server_app import make_server_app
from gt_secure.app.task import organization_step
from tests.app.faulty_app import Faults, make_faulty_client_app

REPO = Path(__file__).resolve().parents[2]
BACKEND = {"client_resources": {"num_cpus": 1},
           "init_args": {"num_cpus": 2, "logging_level": "ERROR"}}


@pytest.fixture(autouse=True)
def _ray_workers_import_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))


def simulate(tmp_path: Path, overrides: dict[str, Any], faults: Faults,
             num_nodes: int) -> dict[str, Any]:
    overrides = overrides | {"output-dir": str(tmp_path), "round-timeout": 300.0}
    run_simulation(make_server_app(overrides), make_faulty_client_app(overrides, faults),
                   num_supernodes=num_nodes, backend_config=BACKEND)
    summary: dict[str, Any] = json.loads((tmp_path / "summary.json").read_text())
    return summary


def global_after(tmp_path: Path, round_idx: int, dim: int) -> np.ndarray:
    if round_idx == 0:
        return np.zeros(dim, dtype=np.float32)
    return np.load(tmp_path / f"tinylm_update_round{round_idx}.npz")["flat"]


def reference_mean(overrides: Mapping[str, Any], orgs: list[str], round_idx: int,
                   start: np.ndarray) -> np.ndarray:
    cfg = AppConfig.from_run_config({}, overrides).resolve()
    updates = [organization_step(cfg, org, round_idx, start)[0] for org in orgs]
    return np.mean(np.stack(updates).astype(np.float64), axis=0)


def rejected(record: dict[str, Any]) -> dict[str, str]:
    return {r["org_id"]: r["field"] for r in record["rejections"]}


def test_plain_rounds_refuse_bad_updates_and_continue(tmp_path: Path) -> None:
    # Prepare: 4 organizations; three send bad updates in round 1, one crashes in round 2.
    overrides = {"protocol": "plain", "num-rounds": 2, "min-orgs": 4, "clip-norm": 1.0,
                 "noise-multiplier": 0.0}
    faults = {("bank", 1): "nan", ("law", 1): "norm", ("org-3", 1): "base-hash",
              ("org-3", 2): "crash"}

    # Execute
    summary = simulate(tmp_path, overrides, faults, num_nodes=4)

    # Assert: each refusal names the organization and the field; the round went on.
    first, second = summary["rounds"]
    assert first["accepted"] == ["hospital"]
    assert rejected(first) == {
        "bank": "update[bank].flat.non_finite_count",
        "law": "update[law].l2_norm",
        "org-3": "update[org-3].layout.base_model_hash",
    }
    for rejection in first["rejections"]:
        assert rejection["org_id"] in rejection["message"]
        assert rejection["field"] in rejection["message"]
    assert second["accepted"] == ["bank", "hospital", "law"]
    assert [r["field"] for r in second["rejections"]] == ["reply"]
    assert "organization process died" in second["rejections"][0]["message"]
    # Assert: the aggregate is exactly the mean of the accepted updates, round after round.
    dim = global_after(tmp_path, 1, 0).size
    for record, orgs in ((first, ["hospital"]), (second, ["bank", "hospital", "law"])):
        start = global_after(tmp_path, record["round"] - 1, dim)
        expected = (start + reference_mean(overrides, orgs, record["round"], start))
        got = global_after(tmp_path, record["round"], dim)
        np.testing.assert_allclose(got, expected.astype(np.float32), rtol=0, atol=1e-7)


def test_secagg_mean_matches_plain_mean_with_dropout_guard_and_screen(tmp_path: Path) -> None:
    # Prepare: 3 organizations, SecAgg+ with a majority threshold (one dropout tolerated).
    # Round 1: law dies after the key exchange. Round 2: bank's own guard refuses its
    # over-norm update. Round 3: hospital bypasses its guard with a foreign base-model hash and
    # the provider screens it out of the sum on the plaintext metadata.
    overrides = {"protocol": "dp-secagg", "num-rounds": 3, "min-orgs": 3, "clip-norm": 1.0,
                 "noise-multiplier": 0.0, "secagg-params": "auto"}
    faults = {("law", 1): "crash", ("bank", 2): "guarded-norm", ("hospital", 3): "base-hash"}

    # Execute
    summary = simulate(tmp_path, overrides, faults, num_nodes=3)

    # Assert: who was dropped, and why, per round.
    rounds = summary["rounds"]
    assert [r["accepted"] for r in rounds] == [
        ["bank", "hospital"], ["hospital", "law"], ["bank", "law"]]
    assert [r["field"] for r in rounds[0]["rejections"]] == ["reply"]
    assert rejected(rounds[1]) == {"bank": "update[bank].l2_norm"}
    assert rejected(rounds[2]) == {"hospital": "update[hospital].layout.base_model_hash"}
    # Assert: the decoded SecAgg+ mean equals the plain mean within the documented bound.
    dim = global_after(tmp_path, 1, 0).size
    for record in rounds:
        assert record["aggregation"] == "secagg"
        start = global_after(tmp_path, record["round"] - 1, dim)
        exact = reference_mean(overrides, record["accepted"], record["round"], start)
        got = global_after(tmp_path, record["round"], dim).astype(np.float64) - start
        float32_rounding = 2.0**-23 * float(np.max(np.abs(start + exact)))
        bound = record["mean_error_bound"] + float32_rounding
        assert 0 < record["mean_error_bound"] < 1e-6
        assert float(np.max(np.abs(got - exact))) <= bound
        assert float(np.max(np.abs(exact))) > 100 * bound  # the check is not vacuous


@pytest.mark.slow
def test_real_dp_release_through_secagg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare: the packaged dp-secagg protocol as specified (DP-SGD, sigma = 1 vector noise,
    # pinned SecAgg+ parameters), with the organizations' real release step.
    monkeypatch.setenv("GT_SECURE_STATE_DIR", str(tmp_path / "orgs"))
    overrides = {"protocol": "dp-secagg", "local-step": "dp-release", "num-rounds": 1}

    # Execute
    summary = simulate(tmp_path / "out", overrides, {}, num_nodes=3)

    # Assert: everyone contributed, each organization's ledger recorded its release, and the
    # mean's norm sits in the band the noise implies (sqrt(D / 3) for sigma = 1).
    (record,) = summary["rounds"]
    assert record["accepted"] == ["bank", "hospital", "law"] and record["rejections"] == []
    assert record["provider"]["tinylm_update_hash"]
    dim = 2048
    assert 0.7 * (dim / 3) ** 0.5 < record["mean_l2_norm"] < 1.3 * (dim / 3) ** 0.5
    for org in ("bank", "hospital", "law"):
        lines = (tmp_path / "orgs" / org / "ledger.jsonl").read_text().splitlines()
        assert {json.loads(line)["round"] for line in lines} == {1}
