"""The aggregator witnesses every organization's ledger each round and returns a receipt.

The fast tests drive both sides of the two ``query.ledger`` exchanges with the very message
contents the app sends (no engine); the slow one runs the production ServerApp and ClientApp in
Flower's simulation engine.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flwr.app import ConfigRecord, RecordDict

from gt_secure.app.receipts import (
    RECORD,
    WITNESS_NAME,
    aggregator_witness,
    answer,
    cosign_answer,
)
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger import LogConsistencyError, load_trusted_keys, verify_ledger
from gt_secure.ledger.witness import receipts_dir
from tests.ledger.conftest import VECTOR, World, make_world, populate, release

REPO = Path(__file__).resolve().parents[2]


def _round(world: World, witness: Any, round_idx: int) -> str:
    """One exchange: checkpoint answer, cosignature, receipt stored; the stored receipt."""
    state = world.ledger.path.parent
    asked = answer(RecordDict({RECORD: ConfigRecord({"action": "checkpoint",
                                                     "round": round_idx})}), "org-a", state)
    reply = {k: str(v) for k, v in asked.config_records[RECORD].items()}
    receipt = cosign_answer(witness, reply)
    key = witness.key.public_key().public_bytes_raw().hex()
    stored = answer(RecordDict({RECORD: ConfigRecord({
        "action": "receipt", "receipt": receipt.text(), "witness": witness.name,
        "witness-key": key})}), "org-a", state).config_records[RECORD]
    assert "error" not in stored, stored
    return (receipts_dir(world.ledger) / f"{WITNESS_NAME}.txt").read_text()


def test_receipts_each_round_and_a_dropped_tail_is_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path / "org-a")
    populate(world)
    witness = aggregator_witness(tmp_path / "out")
    first = _round(world, witness, 1)
    release(world, "org-a", "r3-org-a", [VECTOR])
    second = _round(world, witness, 2)
    trusted = dict(world.trusted) | load_trusted_keys([tmp_path / "out" / "witness"])
    assert verify_ledger(world.ledger.path, trusted, receipt=second).ok
    assert "\n6\n" in first and "\n7\n" in second
    # The organization drops its last entry (and re-creates a consistent local state):
    # the aggregator refuses to cosign, and the kept receipt still exposes the truncation.
    lines = world.ledger.read_bytes().split(b"\n")
    world.ledger.path.write_bytes(b"\n".join(lines[:-2]) + b"\n")
    world.ledger.checkpoint_path.write_text(first.split("\n\u2014 aggregator")[0] + "\n")
    with pytest.raises(LogConsistencyError, match="rollback or truncation"):
        _round(world, witness, 3)
    report = verify_ledger(world.ledger.path, trusted, receipt=second)
    assert [i.check for i in report.issues] == ["truncated"]


def test_an_organization_keeps_only_receipts_of_its_own_ledger(tmp_path: Path) -> None:
    world = make_world(tmp_path / "org-a")
    populate(world)
    witness = aggregator_witness(tmp_path / "out")
    receipt = _round(world, witness, 1)
    impostor = aggregator_witness(tmp_path / "other")
    key = impostor.key.public_key().public_bytes_raw().hex()
    reply = answer(RecordDict({RECORD: ConfigRecord({
        "action": "receipt", "receipt": receipt, "witness": WITNESS_NAME,
        "witness-key": key})}), "org-a", world.ledger.path.parent).config_records[RECORD]
    assert "witness-key must be the pinned key" in str(reply["error"])
    asked = answer(RecordDict({RECORD: ConfigRecord({"action": "checkpoint", "round": 2})}),
                   "org-b", tmp_path / "nobody")
    assert "ledger must be an existing ledger" in str(asked.config_records[RECORD]["error"])
    with pytest.raises(InvalidFieldError, match="old_size must be 6"):
        cosign_answer(witness, {"org-id": "org-a", "checkpoint": receipt, "old-size": "0",
                                "proof": "", "public-key": "00" * 32})


def test_a_release_left_out_of_the_ledger_is_refused(tmp_path: Path) -> None:
    """An organization whose update was aggregated must show a grown ledger; one that rolled
    back to exactly the size the aggregator last cosigned is refused (same size passes only
    when it released nothing)."""
    world = make_world(tmp_path / "org-a")
    populate(world)
    witness = aggregator_witness(tmp_path / "out")
    _round(world, witness, 1)
    state = world.ledger.path.parent
    asked = answer(RecordDict({RECORD: ConfigRecord({"action": "checkpoint", "round": 2})}),
                   "org-a", state)
    reply = {k: str(v) for k, v in asked.config_records[RECORD].items()}
    with pytest.raises(InvalidFieldError, match="checkpoint.size must be > 6"):
        cosign_answer(witness, reply, must_grow=True)  # released, yet nothing new recorded
    assert cosign_answer(witness, reply).checkpoint.size == 6  # no release: may stay the same
    release(world, "org-a", "r3-org-a", [VECTOR])
    asked = answer(RecordDict({RECORD: ConfigRecord({"action": "checkpoint", "round": 3})}),
                   "org-a", state)
    reply = {k: str(v) for k, v in asked.config_records[RECORD].items()}
    assert cosign_answer(witness, reply, must_grow=True).checkpoint.size == 7


def test_a_ledger_key_not_registered_is_refused_on_first_contact(tmp_path: Path) -> None:
    """With ``org-keys-dir`` the aggregator's witness refuses a ledger whose key is not the one
    registered for its owner, from the first round (no trust on first use)."""
    world = make_world(tmp_path / "org-a")
    populate(world)
    registered = tmp_path / "registered"
    registered.mkdir()
    for owner in ("org-b", "provider"):  # org-a's key is not registered
        name = f"{owner}.pub.pem"
        (registered / name).write_bytes((world.key_dir / name).read_bytes())
    witness = aggregator_witness(tmp_path / "out", str(registered))
    asked = answer(RecordDict({RECORD: ConfigRecord({"action": "checkpoint", "round": 1})}),
                   "org-a", world.ledger.path.parent)
    reply = {k: str(v) for k, v in asked.config_records[RECORD].items()}
    with pytest.raises(InvalidFieldError, match="a key registered for 'org-a'"):
        cosign_answer(witness, reply)
    (registered / "org-a.pub.pem").write_bytes((world.key_dir / "org-a.pub.pem").read_bytes())
    assert _round(world, aggregator_witness(tmp_path / "out", str(registered)), 1)


@pytest.mark.slow
def test_simulation_returns_a_receipt_every_round(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from flwr.simulation import run_simulation

    from gt_secure.app.client_app import make_client_app
    from gt_secure.app.server_app import make_server_app
    from gt_secure.data.organizations import ORGANIZATIONS
    from gt_secure.organization.policy import policy_for, write_policy

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("GT_SECURE_STATE_DIR", str(tmp_path / "orgs"))
    # The provider's documented no-translator path: receipts do not depend on the translator.
    monkeypatch.setattr("gt_secure.provider.service.SHIPPED_TRANSLATOR", tmp_path / "none")
    for org in ORGANIZATIONS:
        write_policy(policy_for("dp-secagg", budget_epsilon=50.0), tmp_path / "orgs" / org /
                     "policy.toml")
    run = {"local-steps": 2, "num-texts": 64, "round-timeout": 300.0, "num-rounds": 2,
           "protocol": "dp-secagg", "output-dir": str(tmp_path / "out")}
    run_simulation(make_server_app(run), make_client_app(run), num_supernodes=3,
                   backend_config={"client_resources": {"num_cpus": 1},
                                   "init_args": {"num_cpus": 2, "logging_level": "ERROR"}})
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    sizes = [{org: r["receipts"][org]["size"] for org in r["accepted"]}
             for r in summary["rounds"]]
    assert [sorted(s) for s in sizes] == [sorted(ORGANIZATIONS)] * 2
    for org in ORGANIZATIONS:
        assert sizes[1][org] > sizes[0][org] > 1
        assert summary["rounds"][1]["receipts"][org]["stored"] is True
        state = tmp_path / "orgs" / org
        trusted = load_trusted_keys([state / f"{org}.pub.pem", tmp_path / "out" / "witness"])
        receipt = (state / "ledger.jsonl.receipts" / "aggregator.txt").read_text()
        assert verify_ledger(state / "ledger.jsonl", trusted, receipt=receipt).ok


@pytest.mark.slow
def test_an_organization_whose_ledger_is_refused_leaves_the_federation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Round 2: the bank loses its receipt (as when its ledger is replaced), so the aggregator's
    witness refuses to cosign; round 3 runs without the bank and the adapter is not sent to it."""
    from flwr.simulation import run_simulation

    import gt_secure.app.server_app as server_app
    from gt_secure.app.client_app import make_client_app
    from gt_secure.data.organizations import ORGANIZATIONS
    from gt_secure.organization.policy import policy_for, write_policy

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("GT_SECURE_STATE_DIR", str(tmp_path / "orgs"))
    for org in ORGANIZATIONS:
        write_policy(policy_for("plain", budget_epsilon=50.0), tmp_path / "orgs" / org /
                     "policy.toml")
    real_exchange = server_app.exchange_receipts

    def exchange(grid: Any, nodes: list[int], witness: Any, round_idx: int, timeout: float,
                 released: frozenset[str]) -> dict[str, dict[str, Any]]:
        if round_idx == 2:  # the bank's kept receipt is gone: it answers old-size 0
            (tmp_path / "orgs" / "bank" / "ledger.jsonl.receipts" / "aggregator.txt").unlink()
        return real_exchange(grid, nodes, witness, round_idx, timeout, released)

    monkeypatch.setattr(server_app, "exchange_receipts", exchange)
    run = {"local-steps": 2, "num-texts": 32, "round-timeout": 300.0, "num-rounds": 3,
           "protocol": "plain", "min-orgs": 2, "output-dir": str(tmp_path / "out")}
    run_simulation(server_app.make_server_app(run), make_client_app(run), num_supernodes=3,
                   backend_config={"client_resources": {"num_cpus": 1},
                                   "init_args": {"num_cpus": 2, "logging_level": "ERROR"}})
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    first, second, third = summary["rounds"]
    assert sorted(first["accepted"]) == sorted(second["accepted"]) == sorted(ORGANIZATIONS)
    assert "old_size must be" in second["receipts"]["bank"]["refused"]
    assert first["excluded"] == [] and second["excluded"] == third["excluded"] == ["bank"]
    assert third["num_nodes"] == 2 and sorted(third["accepted"]) == ["hospital", "law"]
    assert "bank" not in third["receipts"]
    assert summary["delivery"]["round"] == 3
    assert sorted(summary["delivery"]["evaluations"]) == ["hospital", "law"]


@pytest.mark.slow
def test_an_organization_with_an_unregistered_key_leaves_the_federation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``org-keys-dir`` holds the hospital's and the law firm's keys only: the bank's ledger is
    refused at the first round's receipts, and the bank takes no part in round 2."""
    from flwr.simulation import run_simulation

    import gt_secure.app.server_app as server_app
    from gt_secure.app.client_app import make_client_app
    from gt_secure.data.organizations import ORGANIZATIONS
    from gt_secure.ledger import generate_key, save_keypair
    from gt_secure.organization.policy import policy_for, write_policy

    monkeypatch.setenv("PYTHONPATH", str(REPO))
    monkeypatch.setenv("GT_SECURE_STATE_DIR", str(tmp_path / "orgs"))
    registered = tmp_path / "registered"
    for org in ORGANIZATIONS:
        write_policy(policy_for("plain", budget_epsilon=50.0), tmp_path / "orgs" / org /
                     "policy.toml")
        if org != "bank":  # the two others registered their ledger keys out of band
            save_keypair(generate_key(), tmp_path / "orgs" / org, org)
            (registered / f"{org}.pub.pem").parent.mkdir(exist_ok=True)
            (registered / f"{org}.pub.pem").write_bytes(
                (tmp_path / "orgs" / org / f"{org}.pub.pem").read_bytes())
    run = {"local-steps": 2, "num-texts": 32, "round-timeout": 300.0, "num-rounds": 2,
           "protocol": "plain", "min-orgs": 2, "output-dir": str(tmp_path / "out"),
           "org-keys-dir": str(registered)}
    run_simulation(server_app.make_server_app(run), make_client_app(run), num_supernodes=3,
                   backend_config={"client_resources": {"num_cpus": 1},
                                   "init_args": {"num_cpus": 2, "logging_level": "ERROR"}})
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    first, second = summary["rounds"]
    assert "a key registered for 'bank'" in first["receipts"]["bank"]["refused"]
    assert first["excluded"] == second["excluded"] == ["bank"]
    assert sorted(second["accepted"]) == ["hospital", "law"]
    assert all("refused" not in first["receipts"][org] for org in ("hospital", "law"))
