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
    check_budget,
    compute_epsilon,
    verify_ledger,
)
from gt_secure.ledger.entry import GENESIS_HASH, sha256_hex
from tests.ledger.conftest import BASE_HASH, DELTA, DPSGD, VECTOR, World, release


def test_chain_and_composition(populated: World) -> None:
    entries = populated.ledger.entries()
    lines = populated.ledger.read_bytes().split(b"\n")
    assert entries[0].prev_hash == GENESIS_HASH
    assert all(e.prev_hash == sha256_hex(lines[i]) for i, e in enumerate(entries[1:]))
    assert entries[0].epsilon_spent == compute_epsilon([DPSGD], DELTA)
    again = release(populated, "org-a", "r2-org-a", [DPSGD])
    assert again.epsilon_total == pytest.approx(compute_epsilon([DPSGD, DPSGD], DELTA))
    assert populated.ledger.spent("org-a", "example") == again.epsilon_total
    assert populated.ledger.spent("org-a", "organization") == compute_epsilon([VECTOR], DELTA)
    assert populated.ledger.spent("org-c", "example") == 0.0


def test_post_processing_adds_no_epsilon(populated: World) -> None:
    entries = populated.ledger.entries()
    post = [e for e in entries if e.kind == "post_processing"]
    assert [p.epsilon_spent for p in post] == [0.0, 0.0]
    assert post[1].parents == ["agg-1"]
    before = {(o, u): populated.ledger.spent(o, u) for o in ("org-a", "org-b")
              for u in ("example", "organization")}
    populated.ledger.append_post_processing(
        org_id="provider", release_id="adapter-2", parents=["agg-1"], base_model_hash=BASE_HASH,
        update_vector_hash=BASE_HASH, signing_key=populated.keys["provider"])
    after = {key: populated.ledger.spent(*key) for key in before}
    assert after == before


def test_budget_refusal_leaves_file_byte_identical(populated: World) -> None:
    before = populated.ledger.read_bytes()
    greedy = DpSgdMechanism(sample_rate=0.1, noise_multiplier=0.7, steps=500, clip_norm=1.0)
    with pytest.raises(BudgetExceededError) as err:
        check_budget(populated.ledger, "org-a", [greedy], DELTA, 10.0)
    assert err.value.field == "epsilon_total" and "budget_epsilon=10.0" in str(err.value)
    with pytest.raises(BudgetExceededError):
        release(populated, "org-a", "r2-org-a", [greedy], budget=10.0)
    assert populated.ledger.read_bytes() == before
    projected = check_budget(populated.ledger, "org-a", [DPSGD], DELTA, 10.0)
    assert projected == pytest.approx(compute_epsilon([DPSGD, DPSGD], DELTA))


def test_budget_refusal_on_empty_ledger_creates_nothing(world: World) -> None:
    no_noise = VectorGaussianMechanism(noise_multiplier=0.0, clip_norm=1.0)
    with pytest.raises(BudgetExceededError, match="inf"):
        release(world, "org-a", "r1", [no_noise])
    assert not world.ledger.path.exists()


@pytest.mark.parametrize(("changes", "match"), [
    (dict(release_id="r1-org-a"), "already belongs to org_id='org-a'"),
    (dict(delta=1e-6), "delta must be 1e-05"),
    (dict(accountant="prv"), "accountant must be 'rdp'"),
    (dict(mechanisms=[DPSGD, VECTOR]), "single privacy unit"),
    (dict(budget_epsilon=-1.0), "budget_epsilon"),
])
def test_invalid_releases_are_refused_before_writing(populated: World, changes: dict,
                                                     match: str) -> None:
    before = populated.ledger.read_bytes()
    fields = dict(org_id="org-b", release_id="r2-org-b", mechanisms=[VECTOR], delta=DELTA,
                  budget_epsilon=10.0, base_model_hash=BASE_HASH, update_vector_hash=BASE_HASH,
                  data_fingerprint=BASE_HASH, signing_key=populated.keys["org-b"])
    if "release_id" in changes:
        fields["mechanisms"] = [DPSGD]
    with pytest.raises(InvalidFieldError, match=match):
        populated.ledger.append_release(**(fields | changes))
    assert populated.ledger.read_bytes() == before


def test_lineage_rules(populated: World) -> None:
    before = populated.ledger.read_bytes()
    for release_id, parents, match in [("agg-2", ["nope"], "do not name earlier entries"),
                                       ("agg-1", ["r1-org-a"], "already used")]:
        with pytest.raises(InvalidFieldError, match=match):
            populated.ledger.append_post_processing(
                org_id="provider", release_id=release_id, parents=parents,
                base_model_hash=BASE_HASH, update_vector_hash=BASE_HASH,
                signing_key=populated.keys["provider"])
    with pytest.raises(InvalidFieldError, match="already has an entry for unit='example'"):
        release(populated, "org-a", "r1-org-a", [DPSGD])
    assert populated.ledger.read_bytes() == before


def test_torn_tail_is_reported_and_repaired_only_on_confirmation(populated: World) -> None:
    intact = populated.ledger.read_bytes()
    with open(populated.ledger.path, "ab") as handle:
        handle.write(b'{"accountant":"rdp","base_mo')
    entries, torn = populated.ledger.scan()
    assert len(entries) == 5 and torn is not None and torn.line == 6
    with pytest.raises(LedgerIntegrityError, match="line 6: torn last line"):
        populated.ledger.entries()
    with pytest.raises(LedgerIntegrityError, match="torn"):
        release(populated, "org-a", "r2-org-a", [DPSGD])
    assert populated.ledger.repair() == torn  # dry run
    assert populated.ledger.read_bytes() != intact
    assert populated.ledger.repair(confirm=True) == torn
    assert populated.ledger.read_bytes() == intact
    assert populated.ledger.repair(confirm=True) is None


def test_corruption_before_the_tail_is_not_repairable(populated: World) -> None:
    data = bytearray(populated.ledger.read_bytes())
    data[10] ^= 0x20
    populated.ledger.path.write_bytes(bytes(data))
    with pytest.raises(LedgerIntegrityError, match="line 1"):
        populated.ledger.repair(confirm=True)
    assert populated.ledger.read_bytes() == bytes(data)


def _append_forever(world: World, progress: int) -> None:
    """Child process body: append releases until killed, one byte of progress per append."""
    mechanism = VectorGaussianMechanism(noise_multiplier=5.0, clip_norm=1.0)
    for i in range(100_000):
        release(world, "org-a", f"r{i}", [mechanism], budget=1e6)
        os.write(progress, b".")


def test_sigkill_mid_append_leaves_verifiable_prefix(world: World) -> None:
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
    assert [i.check for i in report.issues] in ([], ["torn"])
    assert report.entries == len(entries)
    if torn is not None:
        world.ledger.repair(confirm=True)
    assert verify_ledger(world.ledger.path, world.trusted).ok
    release(world, "org-a", "after-crash", [VECTOR], budget=1e6)
    assert verify_ledger(world.ledger.path, world.trusted).ok


def test_concurrent_writers_keep_one_chain(world: World) -> None:
    def write(org: str) -> None:
        for i in range(4):
            release(world, org, f"{org}-{i}", [VECTOR], budget=100.0)

    threads = [threading.Thread(target=write, args=(org,)) for org in ("org-a", "org-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = verify_ledger(world.ledger.path, world.trusted)
    assert report.ok and report.entries == 8
