"""Parallel prefetch of a cold verification: same values as the sequential path, bit for bit."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gt_secure.ledger import DpSgdMechanism, accountant
from gt_secure.ledger.prefetch import prefetch
from gt_secure.ledger.verify import verify_ledger
from tests.ledger.conftest import VECTOR, World, release

STEP = DpSgdMechanism(sample_rate=0.02, noise_multiplier=1.2, steps=20, clip_norm=1.0)


@pytest.fixture(autouse=True)
def _fresh_accountants() -> Iterator[None]:
    def clear() -> None:
        accountant.PREFETCHED.clear()
        accountant._opacus_epsilon.cache_clear()
        accountant._reference_epsilon.cache_clear()

    clear()
    yield
    clear()


def _prv_ledger(world: World, releases: int) -> None:
    for i in range(releases):
        release(world, "org-a", f"r{i}", [STEP], accountant="prv", round=i + 1)
    release(world, "org-a", "r-org", [VECTOR], accountant="prv", round=releases + 1)


FORK_CHECK = """
import sys
from gt_secure.ledger import accountant
from gt_secure.ledger.prefetch import prefetch, release_jobs
from gt_secure.ledger.store import Ledger
assert "torch" not in sys.modules and "grpc" not in sys.modules  # the CLI's case: forked workers
entries = Ledger(sys.argv[1]).entries()
jobs = [job for i, e in enumerate(entries) if e.kind == "release"
        for job in release_jobs(entries[:i], e)]
assert {job[3] for job in jobs} == {"prv", "pld"}, jobs
assert prefetch(jobs, workers=2) == len(set(jobs)) >= 16
parallel = dict(accountant.PREFETCHED)
accountant.PREFETCHED.clear()
for (name, history, delta, method), value in parallel.items():
    fresh = (accountant._opacus_epsilon(history, delta, method) if name == "opacus"
             else accountant._reference_epsilon(history, delta, method))
    assert fresh == value, (name, history, fresh, value)  # bit-identical
print("identical", len(parallel))
"""


def test_forked_prefetch_equals_sequential(world: World) -> None:
    _prv_ledger(world, 9)
    done = subprocess.run([sys.executable, "-c", FORK_CHECK, str(world.ledger.path)],
                          capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.startswith("identical")


def test_verify_with_and_without_prefetch_agree(world: World,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    _prv_ledger(world, 9)
    parallel = verify_ledger(world.ledger.path, world.trusted)
    assert parallel.ok and accountant.PREFETCHED  # the pool ran
    accountant.PREFETCHED.clear()
    accountant._opacus_epsilon.cache_clear()
    accountant._reference_epsilon.cache_clear()
    monkeypatch.setattr("gt_secure.ledger.verify.prefetch", lambda jobs: 0)  # sequential path
    sequential = verify_ledger(world.ledger.path, world.trusted)
    assert not accountant.PREFETCHED
    assert sequential.epsilon_checks == parallel.epsilon_checks
    assert len(parallel.epsilon_checks) == 10


def test_prefetch_skips_small_and_single_core_work() -> None:
    job = ("opacus", ((1.0, 0.01, 10),), 1e-5, "prv")
    assert prefetch([job] * 10, workers=2) == 0  # one distinct job: not worth a pool
    assert prefetch([job, ("reference", ((1.0, 0.01, 10),), 1e-5, "pld")], workers=1) == 0
    assert not accountant.PREFETCHED
