"""Incremental verification: reuse only for byte-identical prefixes, same verdicts as a full run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gt_secure.ledger import LedgerEntry, verify_cache, verify_ledger
from gt_secure.ledger import verify as verify_module
from gt_secure.ledger.signing import sign
from tests.ledger.conftest import DPSGD, World, make_world, release


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    """Release ids whose epsilons were recomputed (not taken from the cache)."""
    monkeypatch.setenv("GT_SECURE_CACHE_DIR", str(tmp_path / "cache"))
    calls: list[str] = []
    real = verify_module._recompute

    def spy(previous, entry):  # type: ignore[no-untyped-def]
        calls.append(entry.release_id)
        return real(previous, entry)

    monkeypatch.setattr(verify_module, "_recompute", spy)
    return calls


def _world(directory: Path, releases: int) -> World:
    world = make_world(directory)
    for i in range(releases):
        release(world, "org-a", f"r{i}", [DPSGD], accountant="prv")
    return world


def test_second_run_reuses_and_agrees_with_a_full_run(counted: list[str], tmp_path: Path) -> None:
    world = _world(tmp_path / "w", 3)
    full = verify_ledger(world.ledger.path, world.trusted)
    first = verify_ledger(world.ledger.path, world.trusted, cache=True)
    assert counted == ["r0", "r1", "r2"] * 2
    second = verify_ledger(world.ledger.path, world.trusted, cache=True)
    assert counted == ["r0", "r1", "r2"] * 2  # nothing recomputed
    assert full.ok and first.ok and second.ok
    assert full.epsilon_checks == first.epsilon_checks == second.epsilon_checks


def test_appended_lines_are_the_only_ones_recomputed(counted: list[str], tmp_path: Path) -> None:
    world = _world(tmp_path / "w", 2)
    verify_ledger(world.ledger.path, world.trusted, cache=True)
    release(world, "org-a", "r2", [DPSGD], accountant="prv")
    counted.clear()
    report = verify_ledger(world.ledger.path, world.trusted, cache=True)
    assert report.ok and counted == ["r2"]


def test_a_changed_line_recomputes_it_and_everything_after(counted: list[str],
                                                           tmp_path: Path) -> None:
    # A lying but authentic writer re-signs line 2 with an understated epsilon: its prefix key
    # changes, so line 2 and every later line are recomputed and the lie is caught.
    world = _world(tmp_path / "w", 3)
    verify_ledger(world.ledger.path, world.trusted, cache=True)
    lines = world.ledger.read_bytes().split(b"\n")
    entry = LedgerEntry.model_validate_json(lines[1])
    changed = entry.model_copy(update={"epsilon_spent": 0.01})
    lines[1] = changed.model_copy(update={
        "signature": sign(world.keys["org-a"], changed.signing_payload())}).canonical_line()
    world.ledger.path.write_bytes(b"\n".join(lines))
    counted.clear()
    report = verify_ledger(world.ledger.path, world.trusted, cache=True)
    assert counted == ["r0", "r1", "r2"]
    assert any(i.line == 2 and i.check == "epsilon" for i in report.issues)


def test_other_accountant_versions_do_not_reuse(counted: list[str], tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    world = _world(tmp_path / "w", 2)
    verify_ledger(world.ledger.path, world.trusted, cache=True)
    monkeypatch.setattr(verify_cache, "_versions", lambda: "opacus=0.0")
    counted.clear()
    verify_ledger(world.ledger.path, world.trusted, cache=True)
    assert counted == ["r0", "r1"]


def test_no_cache_recomputes_what_a_poisoned_cache_would_hide(tmp_path: Path) -> None:
    # The cache holds this machine's own recomputations; whoever can write it can make the
    # default verify trust its numbers, and --no-cache is the full recomputation.
    world = _world(tmp_path / "w", 2)
    cache_dir = tmp_path / "cache"
    env = {"GT_SECURE_CACHE_DIR": str(cache_dir), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    cmd = [sys.executable, "-m", "gt_secure.cli.main", "ledger", "verify", "--ledger",
           str(world.ledger.path), "--trusted-keys", str(world.key_dir)]
    assert subprocess.run(cmd, env=env, capture_output=True).returncode == 0
    (stored,) = (cache_dir / "verified-accounting").glob("*.json")
    assert stored.stat().st_mode & 0o777 == 0o600
    values = json.loads(stored.read_text())
    assert len(values) == 2
    stored.write_text(json.dumps({k: [9.0, 9.0, 9.0, 9.0] for k in values}))
    poisoned = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert poisoned.returncode == 1, poisoned.stdout
    full = subprocess.run(cmd + ["--no-cache"], env=env, capture_output=True, text=True)
    assert full.returncode == 0, full.stdout + full.stderr
