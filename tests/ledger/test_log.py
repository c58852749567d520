"""Signed checkpoints, witnesses and receipts, proof bundles (API level)."""

from __future__ import annotations

import base64
import hashlib
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from gt_secure.errors import InvalidFieldError, LedgerIntegrityError
from gt_secure.ledger import (
    Ledger,
    LogConsistencyError,
    ProofBundle,
    SignedCheckpoint,
    Witness,
    check_bundle,
    generate_key,
    make_bundle,
    store_receipt,
    witness_ledger,
)
from gt_secure.ledger.merkle import MerkleTree
from gt_secure.ledger.note import Checkpoint, cosignature, sign_checkpoint, verified_signers
from tests.ledger.conftest import BUDGET, VECTOR, World, release


def _raw(key) -> bytes:  # type: ignore[no-untyped-def]
    return key.public_key().public_bytes(serialization.Encoding.Raw,
                                         serialization.PublicFormat.Raw)


def test_checkpoint_note_format_and_signatures(populated: World) -> None:
    signed = populated.ledger.checkpoint()
    lines = signed.text().split("\n")
    root = MerkleTree.of_lines(populated.ledger.read_bytes().split(b"\n")[:-1]).root()
    assert lines[:4] == ["gt-secure/ledger/org-a", "6", base64.b64encode(root).decode(), ""]
    assert lines[4].startswith("\u2014 org-a ") and lines[5] == ""
    # C2SP key hash: SHA-256(name || "\n" || 0x01 || raw public key)[:4]
    key = populated.keys["org-a"]
    expected = hashlib.sha256(b"org-a\n\x01" + _raw(key)).digest()[:4]
    assert base64.b64decode(lines[4].split(" ")[2])[:4] == expected
    assert SignedCheckpoint.parse(signed.text()) == signed
    assert verified_signers(signed, populated.trusted) == {"org-a": "signature"}
    forged = SignedCheckpoint(Checkpoint(signed.checkpoint.origin, 7, signed.checkpoint.root),
                              signed.signatures)
    assert verified_signers(forged, populated.trusted) == {}
    cosigned = signed.with_signature(cosignature(signed.checkpoint, "org-b",
                                                 populated.keys["org-b"], timestamp=1700000000))
    assert verified_signers(cosigned, populated.trusted) == {"org-a": "signature",
                                                             "org-b": "cosignature"}
    stamp = base64.b64decode(cosigned.text().split("\n")[5].split(" ")[2])[4:12]
    assert int.from_bytes(stamp, "big") == 1700000000
    with pytest.raises(InvalidFieldError, match="checkpoint.size"):
        SignedCheckpoint.parse(signed.text().replace("\n6\n", "\n06\n"))


def test_witness_cosigns_growth_and_refuses_rollback_and_fork(populated: World,
                                                              tmp_path: Path) -> None:
    witness = Witness("org-b", populated.keys["org-b"], tmp_path / "witness")
    first = witness_ledger(witness, populated.ledger)
    assert verified_signers(first, populated.trusted)["org-b"] == "cosignature"
    old_note = populated.ledger.checkpoint().text()
    release(populated, "org-a", "r3-org-a", [VECTOR])
    second = witness_ledger(witness, populated.ledger)
    assert second.checkpoint.size == first.checkpoint.size + 1
    seen = witness.last_seen("gt-secure/ledger/org-a")
    assert seen is not None and seen.size == 7
    with pytest.raises(LogConsistencyError, match="rollback or truncation"):
        witness.cosign(old_note, [], owner="org-a")
    # A fork: org-a re-creates its ledger (same key, same origin) with another history.
    fork = Ledger.create(tmp_path / "fork.jsonl", owner="org-a", budget=BUDGET,  # type: ignore[arg-type]
                         signing_key=populated.keys["org-a"])
    forked = World(populated.keys, populated.key_dir, populated.trusted, fork)
    release(forked, "org-a", "f0", [VECTOR])
    for i in range(6):
        fork.append_post_processing(org_id="org-a", release_id=f"p{i}", parents=["f0"],
                                    base_model_hash="a" * 64, update_vector_hash="b" * 64,
                                    signing_key=populated.keys["org-a"])
    with pytest.raises(LogConsistencyError, match="fork or rewritten history"):
        witness_ledger(witness, fork)
    with pytest.raises(InvalidFieldError, match="owner_key must be the key pinned"):
        witness.cosign(fork.checkpoint().text(), [], owner="org-a",
                       owner_key=populated.keys["org-b"].public_key())
    stranger = Witness("org-c", populated.keys["provider"], tmp_path / "stranger")
    with pytest.raises(InvalidFieldError, match="owner_key must be given on first contact"):
        stranger.cosign(old_note, [], owner="org-a")


def test_receipts_are_checked_before_they_are_kept(populated: World, tmp_path: Path) -> None:
    witness = Witness("org-b", populated.keys["org-b"], tmp_path / "w")
    receipt = witness_ledger(witness, populated.ledger).text()
    path = store_receipt(populated.ledger, receipt, "org-b", populated.keys["org-b"].public_key())
    assert path.read_text() == receipt and path.name == "org-b.txt"
    with pytest.raises(InvalidFieldError, match="cosigned by 'org-b'"):
        store_receipt(populated.ledger, receipt, "org-b",
                      populated.keys["provider"].public_key())
    own = populated.ledger.checkpoint().text()
    with pytest.raises(InvalidFieldError, match="cosigned by 'org-b'"):
        store_receipt(populated.ledger, own, "org-b", populated.keys["org-b"].public_key())


def test_proof_bundle_checks_offline_and_catches_tampering(populated: World,
                                                           tmp_path: Path) -> None:
    bundle = make_bundle(populated.ledger, 2)  # r1-org-a, organization unit
    check = check_bundle(ProofBundle.model_validate_json(bundle.model_dump_json()),
                         populated.trusted)
    assert (check.entry.release_id, check.entry.unit, check.size) == ("r1-org-a",
                                                                      "organization", 6)
    assert check.epsilon_spent == pytest.approx(check.entry.epsilon_spent)
    assert check.budget == BUDGET
    with pytest.raises(LedgerIntegrityError, match="no cosignature"):
        check_bundle(bundle, populated.trusted, require_cosigner=True)
    receipt = witness_ledger(Witness("org-b", populated.keys["org-b"], tmp_path / "w"),
                             populated.ledger).text()
    release(populated, "org-a", "r3-org-a", [VECTOR])  # the receipt now covers a prefix
    cosigned = make_bundle(populated.ledger, 2, receipt)
    assert check_bundle(cosigned, populated.trusted, require_cosigner=True).signers["org-b"] \
        == "cosignature"
    swapped = bundle.model_copy(update={"entry": make_bundle(populated.ledger, 3).entry})
    with pytest.raises(LedgerIntegrityError, match="entry_proof: line 3 is not in"):
        check_bundle(swapped, populated.trusted)
    richer = bundle.header.replace('"organization":10.0', '"organization":1000.0')
    with pytest.raises(LedgerIntegrityError, match="header signature"):
        check_bundle(bundle.model_copy(update={"header": richer}), populated.trusted)
    others = {k: v for k, v in populated.trusted.items() if v.owner != "org-a"}
    with pytest.raises(LedgerIntegrityError, match="not a trusted key of 'org-a'"):
        check_bundle(bundle, others)
    with pytest.raises(InvalidFieldError, match="entry must be in"):
        make_bundle(populated.ledger, 0)
    forged = sign_checkpoint(Checkpoint("gt-secure/ledger/org-a", 6, b"\0" * 32), "org-a",
                             populated.keys["org-a"])
    with pytest.raises(InvalidFieldError, match="receipt must be a checkpoint of this ledger"):
        make_bundle(populated.ledger, 2, forged.text())


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(0, 40), st.data())
def test_witness_accepts_every_extension_and_refuses_every_fork(old: int, grow: int,
                                                               draw: st.DataObject) -> None:
    key = generate_key()
    lines = [b"line %d" % i for i in range(old + grow)]
    tree = MerkleTree.of_lines(lines)

    def note(size: int, root: bytes) -> str:
        return sign_checkpoint(Checkpoint("o", size, root), "org-a", key).text()

    with tempfile.TemporaryDirectory() as tmp:
        witness = Witness("w", generate_key(), tmp)
        witness.cosign(note(old, tree.root(old)), [], owner="org-a", owner_key=key.public_key())
        new = old + grow
        at = draw.draw(st.integers(0, old - 1))  # a history that rewrites a witnessed line
        forked = MerkleTree.of_lines(lines[:at] + [b"fork"] + lines[at + 1:])
        with pytest.raises(LogConsistencyError):
            witness.cosign(note(new, forked.root()), forked.consistency_proof(old, new),
                           owner="org-a")
        receipt = witness.cosign(note(new, tree.root()), tree.consistency_proof(old, new),
                                 owner="org-a")
        assert receipt.checkpoint.size == new
        if new > 1:
            with pytest.raises(LogConsistencyError, match="rollback or truncation"):
                witness.cosign(note(new - 1, tree.root(new - 1)), [], owner="org-a")


def test_an_append_after_a_rollback_below_a_kept_receipt_is_refused(populated: World,
                                                                    tmp_path: Path) -> None:
    ledger = populated.ledger
    older = ledger.read_bytes(), ledger.checkpoint_path.read_bytes()
    release(populated, "org-a", "r3-org-a", [VECTOR])
    receipt = witness_ledger(Witness("org-b", populated.keys["org-b"], tmp_path / "w"),
                             ledger).text()
    store_receipt(ledger, receipt, "org-b", populated.keys["org-b"].public_key())
    ledger.path.write_bytes(older[0])  # the operator restores yesterday's backup of both files
    ledger.checkpoint_path.write_bytes(older[1])
    assert len(ledger.entries()) == 5
    with pytest.raises(LedgerIntegrityError, match="does not extend the receipt org-b.txt"):
        release(populated, "org-a", "r4-org-a", [VECTOR])
    assert ledger.read_bytes() == older[0]
    ledger.path.unlink()  # or deletes the ledger and starts a new one
    ledger.checkpoint_path.unlink()
    fresh = Ledger.create(ledger.path, owner="org-a", budget=BUDGET,  # type: ignore[arg-type]
                          signing_key=populated.keys["org-a"])
    with pytest.raises(LedgerIntegrityError, match="does not extend the receipt org-b.txt"):
        release(World(populated.keys, populated.key_dir, populated.trusted, fresh), "org-a",
                "r1-org-a", [VECTOR])
