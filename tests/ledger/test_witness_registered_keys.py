"""A witness holding the owners' registered keys cosigns no ledger signed by another key,
first contact included (no trust on first use); the aggregator loads them from a directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from gt_secure.app.config import AppConfig
from gt_secure.app.receipts import aggregator_witness
from gt_secure.errors import InvalidFieldError
from gt_secure.ledger import Ledger, Witness, generate_key, witness_ledger
from gt_secure.ledger.note import verified_signers
from tests.ledger.conftest import BUDGET, World


def test_registered_keys_refuse_an_impostor_on_first_contact(populated: World,
                                                             tmp_path: Path) -> None:
    # Prepare: an impostor's ledger claims owner org-a but is signed by a key of its own
    impostor_key = generate_key()
    impostor = Ledger.create(tmp_path / "impostor.jsonl", owner="org-a",
                             budget=BUDGET,  # type: ignore[arg-type]
                             signing_key=impostor_key)
    only_org_b = {k: t for k, t in populated.trusted.items() if t.owner == "org-b"}
    # Execute / Assert: trust on first use cosigns the impostor, registered keys do not
    assert witness_ledger(Witness("agg", generate_key(), tmp_path / "tofu"),
                          impostor).checkpoint.size == 1
    registered = Witness("agg", generate_key(), tmp_path / "reg", populated.trusted)
    with pytest.raises(InvalidFieldError, match="owner_key must be a key registered for 'org-a'"):
        witness_ledger(registered, impostor)
    assert registered.last_seen(impostor.state().header.origin) is None  # nothing remembered
    receipt = witness_ledger(registered, populated.ledger)  # the registered org-a key
    assert verified_signers(receipt, populated.trusted)["org-a"] == "signature"
    with pytest.raises(InvalidFieldError, match=r"witness trusts keys of \['org-b'\]"):
        witness_ledger(Witness("agg", generate_key(), tmp_path / "b", only_org_b),
                       populated.ledger)


def test_a_key_registered_for_another_owner_is_refused(world: World, tmp_path: Path) -> None:
    # Prepare: org-b's registered key signs a ledger whose owner is org-a
    ledger = Ledger.create(tmp_path / "swapped.jsonl", owner="org-a",
                           budget=BUDGET,  # type: ignore[arg-type]
                           signing_key=world.keys["org-b"])
    witness = Witness("agg", generate_key(), tmp_path / "w", world.trusted)
    # Execute / Assert
    with pytest.raises(InvalidFieldError, match="registered for 'org-a'"):
        witness_ledger(witness, ledger)


def test_aggregator_witness_loads_the_registered_keys(world: World, tmp_path: Path) -> None:
    # Execute
    witness = aggregator_witness(tmp_path / "out", str(world.key_dir))
    cfg = AppConfig.from_run_config({"org-keys-dir": str(world.key_dir)})
    # Assert
    assert witness.trusted is not None
    assert {t.owner for t in witness.trusted.values()} == {"org-a", "org-b", "provider"}
    assert cfg.org_keys_dir == str(world.key_dir)
    assert aggregator_witness(tmp_path / "out").trusted is None  # default: first contact
    with pytest.raises(InvalidFieldError, match="org_keys_dir must be an existing directory"):
        aggregator_witness(tmp_path / "out", str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidFieldError, match="trusted_keys"):
        aggregator_witness(tmp_path / "out", str(tmp_path / "empty"))
