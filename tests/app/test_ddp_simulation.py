"""The ``ddp-secagg`` protocol through the production ServerApp and ClientApp (Flower simulation
engine): each organization trains, adds its discrete Gaussian share and records a
``distributed_discrete_gaussian`` ledger entry; the provider decodes the mean of the shares."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.simulation import run_simulation
from safetensors.numpy import load_file

from gt_secure.aggregation.ddp_round import params_for
from gt_secure.app.client_app import make_client_app
from gt_secure.app.server_app import make_server_app
from gt_secure.data.organizations import ORGANIZATIONS
from gt_secure.ledger.store import Ledger
from gt_secure.organization.policy import policy_for, write_policy
from gt_secure.protocols import load_protocol

REPO = Path(__file__).resolve().parents[2]
BACKEND = {"client_resources": {"num_cpus": 1},
           "init_args": {"num_cpus": 2, "logging_level": "ERROR"}}
RUN = {"protocol": "ddp-secagg", "local-steps": 2, "num-texts": 64, "round-timeout": 120.0,
       "num-rounds": 1}


@pytest.fixture(autouse=True)
def _ray_workers_import_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("GT_SECURE_STATE_DIR", str(tmp_path / "orgs"))


@pytest.mark.slow
def test_ddp_secagg_round_decodes_the_mean_of_the_shares_and_records_the_condition(
        tmp_path: Path) -> None:
    for org in ORGANIZATIONS:
        write_policy(policy_for("ddp-secagg", budget_epsilon=10.0),
                     tmp_path / "orgs" / org / "policy.toml")
    out = RUN | {"output-dir": str(tmp_path / "out")}
    run_simulation(make_server_app(out), make_client_app(out),
                   num_supernodes=len(ORGANIZATIONS), backend_config=BACKEND)
    summary: dict[str, Any] = json.loads((tmp_path / "out" / "summary.json").read_text())

    (record,) = summary["rounds"]
    assert record["accepted"] == sorted(ORGANIZATIONS), record["rejections"]
    kept = [load_file(str(next((tmp_path / "orgs" / org / "releases").glob("*.safetensors"))))
            for org in ORGANIZATIONS]
    wires = [np.concatenate([v.reshape(-1) for v in k.values()]) for k in kept]
    p = params_for(load_protocol("ddp-secagg"), wires[0].size)
    assert all(np.array_equal(w, np.rint(w)) for w in wires)  # integer shares left each org
    saved = load_file(str(tmp_path / "out" / "round1" / "tinylm_update.safetensors"))
    mean = np.concatenate([v.reshape(-1) for v in saved.values()]).astype(np.float64)
    expected = np.sum(wires, axis=0) * p.scale / len(ORGANIZATIONS)  # no wrap at this scale
    assert float(np.max(np.abs(mean - expected))) < 1e-6
    for org in ORGANIZATIONS:
        entries = Ledger(tmp_path / "orgs" / org / "ledger.jsonl").entries()
        org_entries = [e for e in entries if e.unit == "organization"]
        assert [m.kind for e in org_entries for m in e.mechanisms] == [
            "distributed_discrete_gaussian"]
        assert "at most 0 of 10 organizations collude" in org_entries[0].mechanisms[0].condition
        assert any(e.unit == "example" for e in entries)  # both units recorded
