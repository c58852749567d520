"""``ddp-secagg-basis`` through the production ServerApp and ClientApp (Flower simulation engine):
the organizations release the k coordinates of their update in the shipped public basis inside
SecAgg+ and the provider reconstructs ``basis^T mean(coords)``; organizations whose policy does
not list the basis refuse before training and keep nothing. Last: the request, policy and wire
layout without Flower."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.simulation import run_simulation
from safetensors.numpy import load_file

from gt_secure.app.client_app import make_client_app
from gt_secure.app.config import AppConfig
from gt_secure.app.mods import expected_for
from gt_secure.app.policy_mod import release_request
from gt_secure.app.roles import ddp_config
from gt_secure.app.server_app import make_server_app
from gt_secure.data.organizations import ORGANIZATIONS
from gt_secure.errors import PolicyRefusalError
from gt_secure.ledger.store import Ledger
from gt_secure.organization.policy import policy_for, write_policy
from gt_secure.provider.public_basis import load_public_basis

REPO = Path(__file__).resolve().parents[2]
PROTOCOL = "ddp-secagg-basis"
BACKEND = {"client_resources": {"num_cpus": 1},
           "init_args": {"num_cpus": 2, "logging_level": "ERROR"}}
RUN = {"protocol": PROTOCOL, "local-steps": 2, "num-texts": 64, "round-timeout": 120.0,
       "num-rounds": 1}


@pytest.fixture(autouse=True)
def _ray_workers_import_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("GT_SECURE_STATE_DIR", str(tmp_path / "orgs"))


def _run(tmp_path: Path, consents: bool) -> dict[str, Any]:
    for org in ORGANIZATIONS:
        policy = policy_for(PROTOCOL, budget_epsilon=10.0)
        if not consents:  # same protocol, but the organization consents to no public basis
            policy = policy.model_copy(update={"public_bases": ()})
        write_policy(policy, tmp_path / "orgs" / org / "policy.toml")
    out = RUN | {"output-dir": str(tmp_path / "out")}
    run_simulation(make_server_app(out), make_client_app(out),
                   num_supernodes=len(ORGANIZATIONS), backend_config=BACKEND)
    summary: dict[str, Any] = json.loads((tmp_path / "out" / "summary.json").read_text())
    (record,) = summary["rounds"]
    return dict(record)


@pytest.mark.slow
def test_basis_round_reconstructs_the_mean_of_the_decoded_coordinates(tmp_path: Path) -> None:
    basis = load_public_basis(16)
    record = _run(tmp_path, consents=True)

    assert record["accepted"] == sorted(ORGANIZATIONS), record["rejections"]
    kept = [load_file(str(next((tmp_path / "orgs" / org / "releases").glob("*.safetensors"))))
            for org in ORGANIZATIONS]
    wires = [np.concatenate([v.reshape(-1) for v in k.values()]) for k in kept]
    assert all(w.shape == (16,) and np.array_equal(w, np.rint(w)) for w in wires)
    p = ddp_config(AppConfig(protocol=PROTOCOL).resolve())
    coords = np.sum(wires, axis=0) * p.scale / len(wires)  # mean decoded coords (no wrap)
    saved = load_file(str(tmp_path / "out" / "round1" / "tinylm_update.safetensors"))
    mean = np.concatenate([v.reshape(-1) for v in saved.values()]).astype(np.float64)
    assert mean.shape == (2048,)
    assert float(np.max(np.abs(mean - basis.reconstruct(coords)))) < 1e-6
    for org in ORGANIZATIONS:
        entries = Ledger(tmp_path / "orgs" / org / "ledger.jsonl").entries()
        (mech,) = [m for e in entries if e.unit == "organization" for m in e.mechanisms]
        assert mech.basis is not None
        assert (mech.basis.sha256, mech.basis.k, mech.basis.ambient_dim) == (
            basis.sha256(), 16, 2048)
        assert any(e.unit == "example" for e in entries)  # both units recorded


def test_an_organization_that_does_not_list_the_basis_refuses_and_keeps_nothing(
        tmp_path: Path) -> None:
    record = _run(tmp_path, consents=False)

    assert record["accepted"] == [] and record["mean_hash"] is None
    refusals = [r["message"] for r in record["rejections"]]
    assert sum("request.basis_sha256 must be one of [] (policy.public_bases)" in m
               for m in refusals) == len(ORGANIZATIONS), refusals
    for org in ORGANIZATIONS:  # refused before training: no release, no ledger entry
        state = tmp_path / "orgs" / org
        assert not (state / "releases").exists() and not (state / "ledger.jsonl").exists()


def test_basis_request_names_the_basis_and_the_wire_carries_k_coordinates() -> None:
    cfg = AppConfig(protocol=PROTOCOL, local_steps=2, num_texts=64).resolve()
    basis = load_public_basis(16)
    p = ddp_config(cfg)
    assert p.dim == 16 and p.basis is not None and p.basis.sha256 == basis.sha256()
    assert expected_for(cfg).layout.dim == 16
    assert expected_for(AppConfig(protocol="ddp-secagg").resolve()).layout.dim == 2048
    request = release_request(cfg, {}, "secagg+", 3)
    assert request.basis_sha256 == basis.sha256()
    policy = policy_for(PROTOCOL, budget_epsilon=10.0)
    assert policy.public_bases == (basis.sha256(),)
    policy.enforce(request, "hospital")  # consented: accepted
    with pytest.raises(PolicyRefusalError, match="basis_sha256"):
        policy.model_copy(update={"public_bases": ()}).enforce(request, "hospital")
    full = release_request(AppConfig(protocol="ddp-secagg").resolve(), {}, "secagg+", 3)
    assert full.basis_sha256 is None
