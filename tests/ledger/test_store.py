"""Append-only store: chain, budget refusal, post-processing, lineage, torn tails, crashes."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from gt_secure.errors import BudgetExceededError, InvalidFieldError, LedgerIntegrityError
from gt_secure.ledger import (
    DpSgdMechanism,
    VectorGaussianMechanism,
    _files,
    check_budget,
    compute_epsilon,
    verify_ledger,
)
from gt_secure.ledger.entry import GENESIS_HASH, sha256_hex
from gt_secure.ledger.header import LedgerHeader
from gt_secure.ledger.signing import sign
from gt_secure.ledger.store import Ledger
from tests.ledger.conftest import BASE_HASH, DELTA, DPSGD, VECTOR, World, make_world, post, release


def test_chain_and_composition(populated: World) -> None:
    entries = populated.ledger.entries()
    lines = populated.ledger.read_bytes().split(b"\n")
    assert entries[0].prev_hash == sha256_hex(lines[0]) != GENESIS_HASH  # line 1: the header
    assert all(e.prev_hash == sha256_hex(lines[i + 1]) for i, e in enumerate(entries[1:]))
    assert entries[0].epsilon_spent == compute_epsilon([DPSGD], DELTA)
    again = release(populated, "org-a", "r2-org-a", [DPSGD])
    assert again.epsilon_total == pytest.approx(compute_epsilon([DPSGD, DPSGD], DELTA))
    assert populated.ledger.spent("org-a", "example") == again.epsilon_total
    assert populated.ledger.spent("org-a", "organization") == pytest.approx(
        compute_epsilon([VECTOR, VECTOR], DELTA))
    assert populated.ledger.spent("org-c", "example") == 0.0


def test_post_processing_adds_no_epsilon(populated: World) -> None:
    entries = populated.ledger.entries()
    derived = [e for e in entries if e.kind == "post_processing"]
    assert [p.epsilon_spent for p in derived] == [0.0, 0.0]
    assert derived[1].parents == ["agg-1"]
    before = {(o, u): populated.ledger.spent(o, u) for o in ("org-a", "org-b")
              for u in ("example", "organization")}
    post(populated, "adapter-2", ["agg-1"])
    after = {key: populated.ledger.spent(*key) for key in before}
    assert after == before


def test_budget_refusal_leaves_file_byte_identical(populated: World) -> None:
    before = populated.ledger.read_bytes()
    greedy = DpSgdMechanism(sample_rate=0.1, noise_multiplier=0.7, steps=500, clip_norm=1.0)
    with pytest.raises(BudgetExceededError) as err:
        check_budget(populated.ledger, "org-a", [greedy], DELTA)
    assert err.value.field == "epsilon_total" and "budget_epsilon=10.0" in str(err.value)
    with pytest.raises(BudgetExceededError):
        release(populated, "org-a", "r2-org-a", [greedy])
    assert populated.ledger.read_bytes() == before
    projected = check_budget(populated.ledger, "org-a", [DPSGD], DELTA)
    assert projected == pytest.approx(compute_epsilon([DPSGD, DPSGD], DELTA))


def test_budget_refusal_on_fresh_ledger_writes_nothing(world: World) -> None:
    before = world.ledger.read_bytes(), world.ledger.checkpoint_path.read_bytes()
    no_noise = VectorGaussianMechanism(noise_multiplier=0.0, clip_norm=1.0)
    with pytest.raises(BudgetExceededError, match="inf"):
        release(world, "org-a", "r1", [no_noise])
    assert (world.ledger.read_bytes(), world.ledger.checkpoint_path.read_bytes()) == before


@pytest.mark.parametrize(("changes", "match"), [
    (dict(release_id="agg-1", mechanisms=[DPSGD]), "release_id='agg-1' already has an entry"),
    (dict(delta=1e-6), "delta must be 1e-05"),
    (dict(accountant="prv"), "accountant must be 'rdp'"),
    (dict(mechanisms=[DPSGD, VECTOR]), "single privacy unit"),
    (dict(org_id="org-b"), "org_id must be the ledger owner 'org-a'"),
    (dict(signing_key="org-b"), "log_key must be the ledger owner's key"),
])
def test_invalid_releases_are_refused_before_writing(populated: World, changes: dict,
                                                     match: str) -> None:
    before = populated.ledger.read_bytes(), populated.ledger.checkpoint_path.read_bytes()
    fields = dict(org_id="org-a", release_id="r3-org-a", mechanisms=[VECTOR], delta=DELTA,
                  base_model_hash=BASE_HASH, update_vector_hash=BASE_HASH,
                  data_fingerprint=BASE_HASH, signing_key=populated.keys["org-a"])
    if "signing_key" in changes:
        changes = dict(signing_key=populated.keys[changes["signing_key"]])
    with pytest.raises(InvalidFieldError, match=match):
        populated.ledger.append_release(**(fields | changes))
    after = populated.ledger.read_bytes(), populated.ledger.checkpoint_path.read_bytes()
    assert after == before


def test_lineage_rules(populated: World) -> None:
    before = populated.ledger.read_bytes()
    for release_id, parents, match in [("agg-2", ["nope"], "do not name earlier entries"),
                                       ("agg-1", ["r1-org-a"], "already used")]:
        with pytest.raises(InvalidFieldError, match=match):
            post(populated, release_id, parents)
    with pytest.raises(InvalidFieldError, match="already has an entry for unit='example'"):
        release(populated, "org-a", "r1-org-a", [DPSGD])
    assert populated.ledger.read_bytes() == before


def test_budget_lives_in_the_signed_header_and_cannot_be_raised(populated: World) -> None:
    ledger = populated.ledger
    assert ledger.header().budget == {"example": 10.0, "organization": 10.0}
    assert all(e.budget_epsilon == 10.0 for e in ledger.entries() if e.kind == "release")
    with pytest.raises(TypeError, match="budget_epsilon"):
        ledger.append_release(budget_epsilon=1000.0)  # type: ignore[call-arg]
    with pytest.raises(InvalidFieldError, match="written once and never rewritten"):
        Ledger.create(ledger.path, owner="org-a", budget={"example": 1000.0},
                      signing_key=populated.keys["org-a"])
    # The owner re-signs a header with budget 1000: every checkpoint root changes.
    lines = ledger.read_bytes().split(b"\n")
    header = LedgerHeader.model_validate_json(lines[0])
    raised = header.model_copy(update={"budget": {"example": 1000.0, "organization": 1000.0}})
    raised = raised.model_copy(update={"signature": sign(populated.keys["org-a"],
                                                         raised.signing_payload())})
    ledger.path.write_bytes(b"\n".join([raised.canonical_line(), *lines[1:]]))
    with pytest.raises(LedgerIntegrityError, match="do not hash to the checkpoint's root"):
        release(populated, "org-a", "r3-org-a", [VECTOR])


def test_a_unit_without_budget_accepts_no_release(tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = make_world(tmp_path, {"example": 5.0})
    with pytest.raises(InvalidFieldError, match=r"unit must be one of \['example'\]"):
        release(world, "org-a", "r1", [VECTOR])
    assert len(world.ledger.read_bytes().split(b"\n")) == 2  # the header alone


@pytest.mark.parametrize("keep", [0, 1, 3])
def test_a_truncated_ledger_refuses_appends(populated: World, keep: int) -> None:
    lines = populated.ledger.read_bytes().split(b"\n")
    populated.ledger.path.write_bytes(b"".join(line + b"\n" for line in lines[:keep]))
    with pytest.raises(LedgerIntegrityError, match="no header line|were dropped"):
        release(populated, "org-a", "r3-org-a", [VECTOR])


def test_uncommitted_tail_is_ignored_then_dropped(populated: World) -> None:
    intact = populated.ledger.read_bytes()
    with open(populated.ledger.path, "ab") as handle:
        handle.write(b'{"accountant":"rdp","base_mo')
    entries, torn = populated.ledger.scan()
    assert len(entries) == 5 and torn is not None and torn.line == 7
    assert populated.ledger.entries() == entries
    assert populated.ledger.repair() == torn  # dry run
    assert populated.ledger.read_bytes() != intact
    assert populated.ledger.repair(confirm=True) == torn
    assert populated.ledger.read_bytes() == intact
    assert populated.ledger.repair(confirm=True) is None


def test_corruption_of_committed_lines_is_not_repairable(populated: World) -> None:
    data = bytearray(populated.ledger.read_bytes())
    data[10] ^= 0x20
    populated.ledger.path.write_bytes(bytes(data))
    with pytest.raises(LedgerIntegrityError, match="line 1"):
        populated.ledger.repair(confirm=True)
    assert populated.ledger.read_bytes() == bytes(data)


class Crash(Exception):
    """Raised where a crash is simulated."""


def test_crash_between_entry_and_checkpoint_is_rolled_back(populated: World,
                                                           monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ledger = populated.ledger
    before = ledger.read_bytes(), ledger.checkpoint_path.read_bytes()

    def crash(self: Ledger, signed: object) -> None:
        raise Crash

    monkeypatch.setattr(Ledger, "_write_checkpoint", crash)
    with pytest.raises(Crash):
        release(populated, "org-a", "r3-org-a", [VECTOR])
    monkeypatch.undo()
    assert ledger.read_bytes() != before[0]  # the line was written ...
    assert ledger.checkpoint_path.read_bytes() == before[1]  # ... but never committed
    assert len(ledger.entries()) == 5 and ledger.scan()[1] is not None
    report = verify_ledger(ledger.path, populated.trusted)
    assert [(i.line, i.check) for i in report.issues] == [(7, "uncommitted")]
    again = release(populated, "org-a", "r3-org-a", [VECTOR])  # rolls the tail back first
    assert [e.release_id for e in ledger.entries()][-1] == again.release_id == "r3-org-a"
    assert len(ledger.entries()) == 6 and verify_ledger(ledger.path, populated.trusted).ok


def test_crash_while_replacing_the_checkpoint_keeps_the_old_one(populated: World,
                                                                monkeypatch) -> None:  # type: ignore[no-untyped-def]
    ledger = populated.ledger
    before = ledger.checkpoint_path.read_bytes()

    def crash(src: object, dst: object) -> None:
        raise Crash

    monkeypatch.setattr(_files.os, "replace", crash)
    with pytest.raises(Crash):
        release(populated, "org-a", "r3-org-a", [VECTOR])
    monkeypatch.undo()
    assert ledger.checkpoint_path.read_bytes() == before
    assert len(ledger.entries()) == 5
    release(populated, "org-a", "r3-org-a", [VECTOR])
    assert verify_ledger(ledger.path, populated.trusted).ok


def test_interrupted_creation_is_completed_by_the_first_append(world: World) -> None:
    world.ledger.checkpoint_path.unlink()  # crash after the header, before its checkpoint
    assert world.ledger.entries() == []
    release(world, "org-a", "r1", [VECTOR])
    assert world.ledger.checkpoint().checkpoint.size == 2
    assert verify_ledger(world.ledger.path, world.trusted).ok


def _append_forever(world: World, progress: int) -> None:
    """Child process body: append releases until killed, one byte of progress per append."""
    mechanism = VectorGaussianMechanism(noise_multiplier=5.0, clip_norm=1.0)
    for i in range(100_000):
        release(world, "org-a", f"r{i}", [mechanism])
        os.write(progress, b".")


def test_sigkill_mid_append_leaves_verifiable_prefix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    world = make_world(tmp_path, {"organization": 1e6})
    # A forked writer (inherits the imported accountants, so no interpreter start-up cost).
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_end)
            _append_forever(world, write_end)
        finally:
            os._exit(0)
    os.close(write_end)
    done = 0
    while done < 8:
        chunk = os.read(read_end, 64)
        assert chunk, "writer died before appending"
        done += len(chunk)
    time.sleep(0.003)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(read_end)
    entries, torn = world.ledger.scan()
    assert len(entries) >= 8
    report = verify_ledger(world.ledger.path, world.trusted)
    assert [i.check for i in report.issues] in ([], ["uncommitted"])
    release(world, "org-a", "after-crash", [VECTOR])
    assert verify_ledger(world.ledger.path, world.trusted).ok
    assert world.ledger.entries()[-1].release_id == "after-crash"


def test_concurrent_writers_keep_one_chain(world: World) -> None:
    def write(prefix: str) -> None:
        for i in range(4):
            release(world, "org-a", f"{prefix}-{i}", [VECTOR])

    world = make_world(world.ledger.path.parent / "big", {"organization": 100.0})
    threads = [threading.Thread(target=write, args=(p,)) for p in ("t1", "t2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = verify_ledger(world.ledger.path, world.trusted)
    assert report.ok and report.entries == 8
    assert world.ledger.checkpoint().checkpoint.size == 9
