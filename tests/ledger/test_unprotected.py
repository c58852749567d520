"""Unprotected releases (the ``plain`` protocol) and the protocol name in ledger entries."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gt_secure.errors import InvalidFieldError, LedgerIntegrityError
from gt_secure.ledger import data_fingerprint, load_trusted_keys, verify_ledger
from gt_secure.ledger.entry import LedgerEntry, sha256_hex
from gt_secure.ledger.proof import check_bundle, make_bundle
from gt_secure.ledger.report import statement, unprotected, view_json, view_of
from tests.ledger.conftest import BASE_HASH, DPSGD, SALT, World, release

OLD_FORMAT = Path(__file__).parent / "data" / "schema1_before_protocol"


def plain(world: World, release_id: str = "plain-1", org: str = "org-a",
          protocol: str | None = "plain") -> LedgerEntry:
    return world.ledger.append_unprotected_release(
        org_id=org, release_id=release_id, base_model_hash=BASE_HASH,
        update_vector_hash=sha256_hex(release_id.encode()),
        data_fingerprint=data_fingerprint([org, "private text"], SALT),
        signing_key=world.keys[org], round=1, protocol=protocol)


def test_unprotected_release_verifies_spends_nothing_and_says_so(world: World) -> None:
    release(world, "org-a", "r1", [DPSGD])
    before = world.ledger.spent("org-a", "example")
    entry = plain(world)
    assert entry.kind == "unprotected_release" and entry.epsilon_spent == 0.0
    assert world.ledger.spent("org-a", "example") == before
    assert world.ledger.spent("org-a", "organization") == 0.0
    report = verify_ledger(world.ledger.path, world.trusted)
    assert report.ok, report.issues
    assert report.entries == 2 and len(report.epsilon_checks) == 1
    text = statement(entry)
    assert text.startswith("no differential privacy: the released update protects neither the "
                           "records nor the dataset of org-a (protocol plain)")
    view = view_of(world.ledger.path, report, {})
    assert unprotected([view]) == [f"org-a plain-1 ({entry.timestamp}): no differential "
                                   "privacy: the released update protects neither the records "
                                   "nor the dataset"]
    data = view_json([view])
    assert [r["unit"] for r in data["rollup"]] == ["example", "example"]  # not in the budget
    assert data["ledgers"][0]["entries"][1]["statement"] == text


def test_unprotected_release_id_is_used_once_and_owner_only(world: World) -> None:
    plain(world)
    with pytest.raises(InvalidFieldError, match="already used"):
        plain(world)
    with pytest.raises(InvalidFieldError, match="already has an entry"):
        release(world, "org-a", "plain-1", [DPSGD])
    with pytest.raises(InvalidFieldError, match="org_id must be the ledger owner"):
        world.ledger.append_unprotected_release(
            org_id="org-b", release_id="plain-2", base_model_hash=BASE_HASH,
            update_vector_hash=BASE_HASH, data_fingerprint=BASE_HASH,
            signing_key=world.keys["org-a"])


def test_unprotected_release_rejects_dp_fields(world: World) -> None:
    good = plain(world).model_dump()
    for change, field in (({"mechanisms": [DPSGD]}, "mechanisms"),
                          ({"epsilon_spent": 0.5}, "epsilon_spent"),
                          ({"unit": "example"}, "unit"), ({"delta": 1e-5}, "delta"),
                          ({"data_fingerprint": None}, "data_fingerprint"),
                          ({"parents": ["r1"]}, "parents")):
        with pytest.raises(InvalidFieldError, match=field):
            LedgerEntry(**(good | change))


def test_protocol_is_signed_and_absent_from_old_lines(world: World) -> None:
    old = release(world, "org-a", "r1", [DPSGD])  # written without a protocol
    new = world.ledger.append_release(
        org_id="org-a", release_id="r2", mechanisms=[DPSGD], delta=1e-5,
        base_model_hash=BASE_HASH, update_vector_hash=sha256_hex(b"r2"),
        data_fingerprint=data_fingerprint(["x"], SALT), signing_key=world.keys["org-a"],
        protocol="dp-sgd-secagg")
    lines = world.ledger.path.read_bytes().splitlines()
    assert b"protocol" not in lines[1] and b'"protocol":"dp-sgd-secagg"' in lines[2]
    assert b"protocol" not in old.signing_payload()
    assert "; protocol dp-sgd-secagg)" in statement(new) and "protocol" not in statement(old)
    assert verify_ledger(world.ledger.path, world.trusted).ok
    # a changed protocol breaks the signature; an explicit null is not canonical
    obj = json.loads(lines[2])
    for value, check in (("plain", "signature"), (None, "canonical")):
        lines[2] = json.dumps(obj | {"protocol": value}, sort_keys=True,
                              separators=(",", ":"), ensure_ascii=False).encode()
        world.ledger.path.write_bytes(b"\n".join(lines) + b"\n")
        report = verify_ledger(world.ledger.path, world.trusted)
        assert check in {i.check for i in report.issues if i.line == 3}, report.issues


def test_unprotected_release_in_a_proof_bundle(world: World) -> None:
    plain(world)
    checked = check_bundle(make_bundle(world.ledger, 1, world.ledger.checkpoint().text()),
                           world.trusted)
    assert checked.entry.kind == "unprotected_release" and checked.epsilon_spent is None
    bad = make_bundle(world.ledger, 1, world.ledger.checkpoint().text())
    with pytest.raises(LedgerIntegrityError):
        check_bundle(bad.model_copy(update={"entry": bad.entry.replace("plain-1", "plain-x")}),
                     world.trusted)


def test_a_ledger_written_before_the_protocol_field_still_verifies(tmp_path: Path) -> None:
    shutil.copytree(OLD_FORMAT, tmp_path / "old")
    path = tmp_path / "old" / "ledger.jsonl"
    report = verify_ledger(path, load_trusted_keys([tmp_path / "old"]))
    assert report.ok, report.issues
    assert report.entries == 3 and len(report.epsilon_checks) == 2
    view = view_of(path, report, {})
    assert all(e.protocol is None for e in view.entries)
    assert not any("protocol" in text for _, _, text in view.numbered())
