"""dp-ckks in Flower's simulation engine: the real ClientApp, the production ServerApp and a
dishonest ServerApp built from the same stage functions.

The key holder is the first participant by id (bank). Expected means are recomputed from the
vectors each organization kept of its own releases.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from flwr.app import Context, Message, MessageType
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from gt_secure.aggregation.ckks import add_ciphertexts, load_public_context
from gt_secure.aggregation.secagg_round import wait_for_nodes
from gt_secure.app.ckks_messages import stage_of
from gt_secure.app.ckks_round import decrypt_stage, encrypt_stage, key_stage, train_stage
from gt_secure.app.config import AppConfig, org_id_of
from gt_secure.app.messages import read_ckks_request
from gt_secure.app.mods import expected_for
from gt_secure.app.server_app import make_server_app
from gt_secure.data.organizations import ORGANIZATIONS
from gt_secure.organization.policy import policy_for, write_policy
from tests.app.faulty_app import Faults, make_faulty_client_app
from tests.app.test_simulation import (
    BACKEND,
    DIM,
    REPO,
    global_after,
    rejected,
    sent_mean,
)

ORGS = ["bank", "hospital", "law"]
SMALL = {"local-steps": 2, "num-texts": 64, "round-timeout": 300.0}


@pytest.fixture(autouse=True)
def _ray_workers_import_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("GT_SECURE_STATE_DIR", str(tmp_path / "orgs"))


def _write_policies(tmp_path: Path) -> None:
    """Each organization's policy: exactly dp-ckks as specified (3 organizations at least)."""
    for org in ORGANIZATIONS:
        write_policy(policy_for("dp-ckks", 100.0), tmp_path / "orgs" / org / "policy.toml")


def _ckks_files(tmp_path: Path, org: str) -> list[str]:
    return sorted(p.name for p in (tmp_path / "orgs" / org / "ckks").iterdir())


def _encrypt_fault_mod(org: str, round_idx: int) -> Mod:
    """Mod under which ``org``'s node dies at the encrypt stage of ``round_idx``."""

    def mod(msg: Message, ctxt: Context, call_next: ClientAppCallable) -> Message:
        if (msg.metadata.message_type == MessageType.TRAIN
                and read_ckks_request(msg.content) == "encrypt"
                and org_id_of(ctxt.node_config) == org
                and stage_of(msg.content).get("round") == round_idx):
            raise RuntimeError("organization process died after the key agreement")
        return call_next(msg, ctxt)

    return mod


def simulate_with_encrypt_fault(tmp_path: Path, overrides: dict[str, Any], faults: Faults,
                                dies: tuple[str, int]) -> dict[str, Any]:
    """Like ``simulate``, plus one organization dying at one round's encrypt stage."""
    for org in ORGANIZATIONS:
        write_policy(policy_for("dp-ckks", 100.0, min_organizations=2),
                     tmp_path / "orgs" / org / "policy.toml")
    overrides = SMALL | overrides | {"output-dir": str(tmp_path / "out")}
    inner = make_faulty_client_app(overrides, faults)
    app = ClientApp(mods=[_encrypt_fault_mod(*dies)])
    app.train()(lambda msg, ctxt: inner(msg, ctxt))
    app.evaluate()(lambda msg, ctxt: inner(msg, ctxt))
    run_simulation(make_server_app(overrides), app, num_supernodes=3, backend_config=BACKEND)
    summary: dict[str, Any] = json.loads((tmp_path / "out" / "summary.json").read_text())
    return summary


def test_ckks_rounds_release_only_the_mean_of_every_signed_contribution(tmp_path: Path) -> None:
    # Prepare: the packaged dp-ckks protocol (DP-SGD, sigma = 1 vector noise). Round 2: bank
    # and law send layouts naming a foreign base model, so 2 of 3 organizations are refused.
    # Round 3: law's node dies after the key agreement, at the encrypt stage.
    overrides = {"protocol": "dp-ckks", "num-rounds": 3}
    faults = {("bank", 2): "base-hash", ("law", 2): "base-hash"}

    # Execute
    summary = simulate_with_encrypt_fault(tmp_path, overrides, faults, ("law", 3))

    # Assert: round 1 is the mean of the three sent vectors, within the quantization bound
    # (the CKKS error is rounded away), and the vector noise is really there.
    first, second, third = summary["rounds"]
    run_id = summary["run_id"]
    assert first["aggregation"] == "ckks" and first["accepted"] == ORGS
    assert first["rejections"] == []
    exact = sent_mean(tmp_path, summary, ORGS, 1)
    got = global_after(tmp_path, 1).astype(np.float64)
    assert first["mean_error_bound"] == 2.0**-15 / 2
    bound = first["mean_error_bound"] + 2.0**-23 * float(np.max(np.abs(exact)))
    assert float(np.max(np.abs(got - exact))) <= bound
    assert 0.7 * (DIM / 3) ** 0.5 < first["mean_l2_norm"] < 1.3 * (DIM / 3) ** 0.5
    # Assert: the key holder decrypted round 1 once and deleted its secret key; every
    # organization encrypted once and deleted its vector copy and mask key.
    assert _ckks_files(tmp_path, "bank")[:1] == [f"{run_id}-1.done"]
    for org in ORGS:
        assert not [f for f in _ckks_files(tmp_path, org) if f.startswith(f"{run_id}-1.")
                    and not f.endswith(".done")]
    # Assert: round 2 (2 of 3 refused) encrypted and decrypted nothing, released nothing.
    assert second["accepted"] == [] and second["mean_l2_norm"] is None
    assert rejected(second) == {"bank": "update[bank].layout.base_model_hash",
                                "law": "update[law].layout.base_model_hash",
                                "sum": "len(participants)"}
    assert not (tmp_path / "out" / "round2").exists()
    assert f"{run_id}-2.vector.npy" in _ckks_files(tmp_path, "hospital")  # never left the node
    assert not {f"{run_id}-2.keys", f"{run_id}-2.done"} & set(_ckks_files(tmp_path, "bank"))
    # Assert: round 3 decrypted nothing: law's masks would not cancel. The others encrypted
    # once (their vector copies are gone); the key holder's round-3 key was never used.
    assert third["accepted"] == [] and third["mean_l2_norm"] is None
    assert rejected(third) == {"?": "reply", "sum": "contributions.missing"}
    assert "died after the key agreement" in third["rejections"][0]["message"]
    assert "['law']" in third["rejections"][1]["message"]
    assert f"{run_id}-3.done" not in _ckks_files(tmp_path, "bank")
    assert f"{run_id}-3.vector.npy" not in _ckks_files(tmp_path, "hospital")
    assert f"{run_id}-3.vector.npy" in _ckks_files(tmp_path, "law")
    assert not (tmp_path / "out" / "round3").exists()
    # Assert: every release is in its organization's ledger; the adapter of round 1 was
    # delivered and scored by every organization.
    for org in ORGS:
        lines = (tmp_path / "orgs" / org / "ledger.jsonl").read_text().splitlines()
        units = {json.loads(line).get("unit") for line in lines} - {None}  # None: the header
        assert units == {"example", "organization"}, org
    delivery = summary["delivery"]
    assert delivery["llm_update_hash"] == first["provider"]["llm_update_hash"]
    assert sorted(delivery["evaluations"]) == ORGS


def make_dishonest_server_app(overrides: dict[str, Any], out: Path) -> ServerApp:
    """A server that runs the stages honestly, then asks the key holder to decrypt forgeries."""
    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = AppConfig.from_run_config(context.run_config, overrides).resolve()
        nodes = wait_for_nodes(grid, 3, 300.0)
        state = train_stage(grid, sorted(nodes), 1, np.zeros(DIM, np.float32), expected_for(cfg),
                            300.0)
        orgs = sorted(state.result.accepted)
        key_stage(grid, state, orgs, 300.0)
        encrypt_stage(grid, state, orgs, 300.0)
        public = load_public_context(state.public_context)
        anns = [state.announcements[o] for o in orgs]
        signed = [state.contributions[o] for o in orgs]
        attempts: dict[str, Any] = {}
        for name, chunks, contributions in (
            # 2 of 3 refused: the server has hospital's ciphertext and statement only.
            ("one-contribution", state.chunks["hospital"], [state.contributions["hospital"]]),
            # One ciphertext (law's) presented with all three signatures.
            ("one-ciphertext", add_ciphertexts([state.chunks["law"]], public), signed),
            # The honest sum, asked for after the forgery was decrypted.
            ("honest-after", add_ciphertexts([state.chunks[o] for o in orgs], public), signed),
        ):
            before = len(state.result.rejections)
            released = decrypt_stage(grid, state, chunks, anns, contributions, 300.0)
            attempts[name] = {"released": released is not None, "reasons": [
                r.message for r in state.result.rejections[before:]]}
        (out / "attempts.json").write_text(json.dumps({"orgs": orgs, "attempts": attempts}))

    return app


def test_key_holder_refuses_a_dishonest_servers_sums(tmp_path: Path) -> None:
    # Prepare
    _write_policies(tmp_path)
    overrides = SMALL | {"protocol": "dp-ckks", "output-dir": str(tmp_path / "out")}
    (tmp_path / "out").mkdir()

    # Execute
    run_simulation(make_dishonest_server_app(overrides, tmp_path / "out"),
                   make_faulty_client_app(overrides, {}), num_supernodes=3,
                   backend_config=BACKEND)

    # Assert: the key holder released nothing, each time for its own reason.
    record = json.loads((tmp_path / "out" / "attempts.json").read_text())
    assert record["orgs"] == ORGS
    attempts = record["attempts"]
    assert not any(a["released"] for a in attempts.values())
    (few,) = attempts["one-contribution"]["reasons"]
    assert "len(contributions) must be >= 3" in few and "signed contributions" in few
    (forged,) = attempts["one-ciphertext"]["reasons"]
    assert "max(abs(mean of 3)) must be <= 64.0" in forged
    (after,) = attempts["honest-after"]["reasons"]
    assert "once per round" in after
    # Assert: the key holder's secret key is gone; nobody else ever held one.
    files = {org: _ckks_files(tmp_path, org) for org in ORGS}
    assert [f for f in files["bank"] if f.endswith(".done")] == [f"{_run(files)}-1.done"]
    assert not any(f.endswith(".keys") for names in files.values() for f in names)


def _run(files: dict[str, list[str]]) -> str:
    return files["bank"][0].split("-")[0]
