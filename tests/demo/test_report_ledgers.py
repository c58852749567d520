"""The demo's ledger check verifies each organization's ledger against its latest receipt."""

from __future__ import annotations

import shutil
from pathlib import Path

from rich.console import Console

from gt_secure.app.receipts import aggregator_witness
from gt_secure.data.organizations import ORGANIZATIONS
from gt_secure.demo.report import verify_ledgers
from gt_secure.ledger import Ledger, generate_key, save_keypair, store_receipt, witness_ledger
from tests.ledger.conftest import VECTOR, World, release
from tests.ledger.test_unprotected import plain


def test_a_ledger_truncated_below_its_receipt_fails_the_demo_check(tmp_path: Path) -> None:
    witness = aggregator_witness(tmp_path / "provider")
    for org in ORGANIZATIONS:
        state = tmp_path / "organizations" / org
        key = generate_key()
        save_keypair(key, state, org)
        ledger = Ledger.create(state / "ledger.jsonl", owner=org,
                               budget={"organization": 10.0}, signing_key=key)
        world = World({org: key}, state, {}, ledger)
        for i in range(3):
            if org == ORGANIZATIONS[0] and i == 2:  # a backup before the last release
                older = ledger.read_bytes(), ledger.checkpoint_path.read_bytes()
            release(world, org, f"{org}-{i}", [VECTOR])
        receipt = witness_ledger(witness, ledger).text()
        store_receipt(ledger, receipt, witness.name, witness.key.public_key())
    first = tmp_path / "organizations" / ORGANIZATIONS[0] / "ledger.jsonl"
    first.write_bytes(older[0])  # drop the last release, with a matching checkpoint
    Path(str(first) + ".checkpoint").write_bytes(older[1])
    results = verify_ledgers(tmp_path, Console(quiet=True))
    assert results[ORGANIZATIONS[0]]["ok"] is False
    assert "[truncated] the given receipt commits to 4 lines" in \
        results[ORGANIZATIONS[0]]["detail"]
    for org in ORGANIZATIONS[1:]:
        assert results[org]["ok"] is True
        assert "extends the given receipt of size 4" in results[org]["detail"]
    shutil.rmtree(tmp_path / "provider" / "witness")  # no aggregator key: own checkpoint only
    assert verify_ledgers(tmp_path, Console(quiet=True))[ORGANIZATIONS[0]]["ok"] is True


def test_a_plain_run_is_reported_as_unprotected(tmp_path: Path) -> None:
    for org in ORGANIZATIONS:
        state = tmp_path / "organizations" / org
        key = generate_key()
        save_keypair(key, state, org)
        ledger = Ledger.create(state / "ledger.jsonl", owner=org, budget={}, signing_key=key)
        plain(World({org: key}, state, {}, ledger), f"{org}-1", org)
    results = verify_ledgers(tmp_path, Console(quiet=True))
    for org in ORGANIZATIONS:
        assert results[org]["ok"] is True and results[org]["entries"] == 1
        assert results[org]["epsilon"] == {} and results[org]["unprotected_releases"] == 1
    page = (tmp_path / "reports" / f"ledger-{ORGANIZATIONS[0]}.html").read_text()
    assert "UNPROTECTED releases (no differential privacy" in page
