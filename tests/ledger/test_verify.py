"""verify_ledger: a clean ledger passes; any tampering is named by line and release id."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gt_secure.ledger import LedgerEntry, Tolerance, generate_key, load_trusted_keys, verify_ledger
from gt_secure.ledger.signing import key_id, save_keypair, sign
from tests.ledger.conftest import DPSGD, World, make_world, populate, release


def _resign(entry: LedgerEntry, key, **changes) -> bytes:  # type: ignore[no-untyped-def]
    """An entry with ``changes``, validly re-signed by ``key`` (a lying but authentic writer)."""
    changed = entry.model_copy(update=changes)
    return changed.model_copy(update={"signature": sign(key, changed.signing_payload())}
                              ).canonical_line()


def _prv_world(directory: Path) -> World:
    world = make_world(directory)
    release(world, "org-a", "r1", [DPSGD], accountant="prv")
    release(world, "org-a", "r2", [DPSGD], accountant="prv")
    return world


def test_clean_ledger_verifies_with_both_accountants(populated: World, tmp_path: Path) -> None:
    report = verify_ledger(populated.ledger.path, populated.trusted)
    assert report.ok, report.issues
    assert report.entries == 5 and len(report.epsilon_checks) == 3
    prv = _prv_world(tmp_path / "prv")
    prv_report = verify_ledger(prv.ledger.path, prv.trusted)
    assert prv_report.ok, prv_report.issues
    for check in report.epsilon_checks + prv_report.epsilon_checks:
        assert Tolerance().agree(check.opacus_total, check.reference_total)
        assert check.recorded_total == check.opacus_total


def test_understated_epsilon_is_caught_even_when_validly_signed(populated: World) -> None:
    lines = populated.ledger.read_bytes().split(b"\n")
    first = LedgerEntry.model_validate_json(lines[1])
    lines[1] = _resign(first, populated.keys["org-a"], epsilon_spent=0.01, epsilon_total=0.01)
    populated.ledger.path.write_bytes(b"\n".join(lines))
    report = verify_ledger(populated.ledger.path, populated.trusted)
    first_issues = [str(i) for i in report.issues if i.line == 2]
    assert any("[epsilon] epsilon_spent=0.01 but Opacus rdp" in s for s in first_issues)
    assert all("release_id='r1-org-a'" in s for s in first_issues)
    assert any(i.line == 3 and i.check == "chain" for i in report.issues)
    assert report.issues[-1].check == "fork"  # and the owner's checkpoint no longer matches


def test_signature_by_another_organization_is_rejected(populated: World) -> None:
    lines = populated.ledger.read_bytes().split(b"\n")
    entry = LedgerEntry.model_validate_json(lines[3])
    lines[3] = _resign(entry, populated.keys["org-b"],
                       signer=key_id(populated.keys["org-b"].public_key()))
    populated.ledger.path.write_bytes(b"\n".join(lines))
    report = verify_ledger(populated.ledger.path, populated.trusted)
    assert [(i.line, i.check) for i in report.issues][:2] == [(4, "signature"), (5, "chain")]
    assert "belongs to 'org-b'" in report.issues[0].message


def test_unknown_signer_is_rejected(populated: World, tmp_path: Path) -> None:
    stranger = generate_key()
    save_keypair(stranger, tmp_path / "other", "org-a")
    trusted = load_trusted_keys([tmp_path / "other"])  # only a different org-a key
    report = verify_ledger(populated.ledger.path, trusted)
    assert {i.check for i in report.issues} == {"signature"}
    assert "not a trusted key" in report.issues[0].message
    assert key_id(stranger.public_key()) in trusted


def test_reference_disagreement_is_flagged_beyond_tolerance(tmp_path: Path) -> None:
    prv = _prv_world(tmp_path)
    strict = verify_ledger(prv.ledger.path, prv.trusted, Tolerance(0.0, 0.0))
    assert any(i.check == "reference" and i.line == 3 for i in strict.issues)


def test_reordered_lines_break_the_chain(populated: World) -> None:
    lines = populated.ledger.read_bytes().split(b"\n")
    lines[2], lines[3] = lines[3], lines[2]
    populated.ledger.path.write_bytes(b"\n".join(lines))
    report = verify_ledger(populated.ledger.path, populated.trusted)
    assert report.issues[0].line == 3 and report.issues[0].check == "chain"


def test_deleted_header_or_first_entry_is_detected(populated: World) -> None:
    lines = populated.ledger.read_bytes().split(b"\n")
    populated.ledger.path.write_bytes(b"\n".join(lines[1:]))
    report = verify_ledger(populated.ledger.path, populated.trusted)
    assert (report.issues[0].line, report.issues[0].check) == (1, "header")
    populated.ledger.path.write_bytes(b"\n".join(lines[:1] + lines[2:]))
    report = verify_ledger(populated.ledger.path, populated.trusted)
    assert (report.issues[0].line, report.issues[0].check) == (2, "chain")
    assert ("truncated" in {i.check for i in report.issues})


class _Fixture:
    """One populated ledger shared by every hypothesis example (built once)."""

    data: bytes = b""
    checkpoint: bytes = b""
    trusted: dict = {}


def _fixture() -> _Fixture:
    if not _Fixture.data:
        world = make_world(Path(tempfile.mkdtemp(prefix="gt-ledger-fuzz-")))
        populate(world)
        _Fixture.data = world.ledger.read_bytes()
        _Fixture.checkpoint = world.ledger.checkpoint_path.read_bytes()
        _Fixture.trusted = world.trusted
    return _Fixture()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(position=st.floats(0.0, 1.0, exclude_max=True), mask=st.integers(1, 255))
def test_any_single_byte_flip_is_detected(position: float, mask: int) -> None:
    fixture = _fixture()
    data = bytearray(fixture.data)
    index = int(position * len(data))
    data[index] ^= mask
    line = fixture.data[:index].count(b"\n") + 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "l.jsonl"
        path.write_bytes(bytes(data))
        (Path(tmp) / "l.jsonl.checkpoint").write_bytes(fixture.checkpoint)
        report = verify_ledger(path, fixture.trusted)
    assert not report.ok
    assert report.issues[0].line == line  # the first issue names the flipped entry's line
