"""``ledger verify --receipt/--checkpoint``, ``witness``, ``prove`` and ``check-proof`` through
the real CLI (subprocess): truncation, deletion, rollback and forks are caught."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from gt_secure.ledger import Ledger, verify_ledger
from gt_secure.ledger.merkle import MerkleTree
from gt_secure.ledger.note import Checkpoint, sign_checkpoint
from tests.cli.conftest import Run, cli
from tests.ledger.conftest import BUDGET, VECTOR, World, post, release
from tests.ledger.test_unprotected import plain


def _verify(world: World, ledger: Path, *extra: str) -> Run:
    return cli("ledger", "verify", "--ledger", str(ledger), "--trusted-keys",
               str(world.key_dir), *extra)


def _witness(world: World, state: Path, out: Path, ledger: Path | None = None) -> Run:
    return cli("ledger", "witness", "--ledger", str(ledger or world.ledger.path), "--key",
               str(world.key_dir / "org-b.key.pem"), "--name", "org-b", "--state", str(state),
               "--out", str(out))


def _resign_checkpoint(world: World, path: Path) -> None:
    """What a dishonest owner does after editing its ledger: sign a checkpoint that matches."""
    lines = path.read_bytes().split(b"\n")[:-1]
    cp = Checkpoint("gt-secure/ledger/org-a", len(lines), MerkleTree.of_lines(lines).root())
    signed = sign_checkpoint(cp, "org-a", world.keys["org-a"])
    path.with_name(path.name + ".checkpoint").write_text(signed.text())


def test_truncation_deletion_rollback_and_fork_are_caught(populated: World,
                                                          tmp_path: Path) -> None:
    ledger = populated.ledger.path
    old = tmp_path / "old"
    old.mkdir()
    for path in (ledger, populated.ledger.checkpoint_path):  # a copy of round 1 (size 6)
        shutil.copy(path, old / path.name)
    release(populated, "org-a", "r3-org-a", [VECTOR], round=3)
    receipt = tmp_path / "receipt.txt"
    run = _witness(populated, tmp_path / "witness", receipt)
    assert run.code == 0 and "cosigned gt-secure/ledger/org-a at size 7" in run.out
    ok = _verify(populated, ledger, "--receipt", str(receipt))
    assert ok.code == 0 and "extends the given receipt of size 7" in ok.out
    own = populated.ledger.checkpoint_path.read_text()
    assert verify_ledger(ledger, populated.trusted, checkpoint=own).ok

    # Truncation (head -n 4), with a matching checkpoint re-signed by the owner.
    short = tmp_path / "T.jsonl"
    short.write_bytes(b"".join(line + b"\n" for line in ledger.read_bytes().split(b"\n")[:4]))
    _resign_checkpoint(populated, short)
    assert verify_ledger(short, populated.trusted).ok  # alone, a consistent prefix looks fine
    run = _verify(populated, short, "--receipt", str(receipt))
    assert run.code == 1 and "[truncated] the given receipt commits to 7 lines but the " \
        "ledger has 4" in run.out

    # Deletion of line 4 (entry r2-org-a), checkpoint re-signed.
    deleted = tmp_path / "D.jsonl"
    lines = ledger.read_bytes().split(b"\n")
    deleted.write_bytes(b"\n".join(lines[:3] + lines[4:]))
    _resign_checkpoint(populated, deleted)
    run = _verify(populated, deleted, "--receipt", str(receipt))
    assert run.code == 1 and "FAIL line 4" in run.out and "[chain]" in run.out
    assert "[truncated]" in run.out

    # Rollback: the round-1 copy of ledger and checkpoint, restored together; caught by an
    # owner-signed checkpoint kept elsewhere (--checkpoint) as well as by the receipt.
    rolled = old / ledger.name
    assert verify_ledger(rolled, populated.trusted).ok
    kept = tmp_path / "kept.checkpoint"
    shutil.copy(populated.ledger.checkpoint_path, kept)
    run = _verify(populated, rolled, "--checkpoint", str(kept))
    assert run.code == 1 and "[truncated] the given checkpoint commits to 7" in run.out
    assert "rolled back" in run.out

    # Fork: the owner re-creates its ledger (same key, same origin) with another history.
    forked = World(populated.keys, populated.key_dir, populated.trusted,
                   Ledger.create(tmp_path / "F.jsonl", owner="org-a", budget=BUDGET,  # type: ignore[arg-type]
                                 signing_key=populated.keys["org-a"]))
    release(forked, "org-a", "other-1", [VECTOR])
    for i in range(6):
        post(forked, f"agg-{i}", ["other-1"])
    assert verify_ledger(forked.ledger.path, populated.trusted).ok
    run = _verify(populated, forked.ledger.path, "--receipt", str(receipt))
    assert run.code == 1 and "line 0: [fork]" in run.out
    run = _witness(populated, tmp_path / "witness", tmp_path / "r2.txt", forked.ledger.path)
    assert run.code == 1 and "refused to cosign" in run.out and not (tmp_path / "r2.txt").exists()


def test_prove_and_check_proof_offline(populated: World, tmp_path: Path) -> None:
    receipt = tmp_path / "receipt.txt"
    assert _witness(populated, tmp_path / "w", receipt).code == 0
    bundle = tmp_path / "bundle.json"
    run = cli("ledger", "prove", "--ledger", str(populated.ledger.path), "--entry", "2",
              "--out", str(bundle), "--receipt", str(receipt))
    assert run.code == 0 and "inclusion proof 96 bytes" in run.out
    shutil.rmtree(populated.ledger.path.parent / "witness", ignore_errors=True)
    populated.ledger.path.unlink()  # offline: the officer has the bundle and the public keys
    check = ["ledger", "check-proof", str(bundle), "--trusted-keys", str(populated.key_dir),
             "--require-cosigner"]
    run = cli(*check)
    assert run.code == 0, run.out + run.err
    assert "'r1-org-a'" in run.out and "cosigned by org-b" in run.out
    assert "budget 10.0 from the signed header" in run.out
    data = json.loads(bundle.read_text())
    data["entry"] = data["entry"].replace('"round":1', '"round":9')
    bundle.write_text(json.dumps(data))
    run = cli(*check)
    assert run.code == 1 and "FAIL" in run.out and "entry_proof" in run.out


def test_check_proof_of_an_unprotected_release_says_so(world: World, tmp_path: Path) -> None:
    plain(world)
    bundle = tmp_path / "bundle.json"
    assert cli("ledger", "prove", "--ledger", str(world.ledger.path), "--entry", "1", "--out",
               str(bundle)).code == 0
    run = cli("ledger", "check-proof", str(bundle), "--trusted-keys", str(world.key_dir))
    assert run.code == 0, run.out + run.err
    assert "(unprotected_release 'plain-1' of 'org-a')" in run.out
    assert "UNPROTECTED: no differential privacy: the released update protects neither" in run.out
