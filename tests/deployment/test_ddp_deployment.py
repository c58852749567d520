"""Distributed DP on the deployment engine: a TLS SuperLink with SuperNode authentication, three
SuperNodes and ``flwr run``. ``ddp-secagg``: each organization adds its discrete Gaussian share
inside Flower's SecAgg+ and the provider decodes the mean of the shares. ``ddp-ckks``: each adds
its share on the CKKS grid before encrypting and the key holder releases the noisy mean.

Everything listens on free loopback ports; every process is stopped by the fixture's finalizer.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from gt_secure.aggregation.ddp_round import params_for
from gt_secure.deploy.federation import Federation
from gt_secure.ledger.store import Ledger
from gt_secure.protocols import load_protocol
from tests.deployment.conftest import ORGS, run_one_round

pytestmark = pytest.mark.deployment


def _flat(path: Path) -> np.ndarray:
    return np.concatenate([v.reshape(-1) for v in load_file(str(path)).values()]).astype(
        np.float64)


def _kept_shares(tmp_path: Path) -> list[np.ndarray]:
    """The integer share each organization kept of what it sent (its only release)."""
    return [_flat(next((tmp_path / "state" / org / "releases").glob("*.safetensors")))
            for org in ORGS]


@pytest.mark.slow  # measured time in docs/deployment.md
def test_ddp_secagg_runs_over_tls_and_decodes_the_mean_of_the_shares(
        federation: Federation, tmp_path: Path) -> None:
    # Prepare + Execute: each organization's policy accepts ddp-secagg as specified (sums of
    # >= min_survivors = 2 organizations); one round submitted with `flwr run` over TLS.
    started = time.monotonic()
    run_id, summary = run_one_round(federation, tmp_path, "ddp-secagg")

    # Assert: the run completed with every organization in the sum.
    (only,) = summary["rounds"]
    assert only["aggregation"] == "secagg"
    assert only["accepted"] == sorted(ORGS), only["rejections"]
    # Assert: the aggregate decodes: the provider's mean is scale * (sum of the integer shares
    # each organization kept of what it sent) / 3, exactly up to float32.
    mean = _flat(tmp_path / "out" / "round1" / "tinylm_update.safetensors")
    p = params_for(load_protocol("ddp-secagg"), int(mean.size))
    wires = _kept_shares(tmp_path)
    assert all(np.array_equal(w, np.rint(w)) and np.max(np.abs(w)) < p.modulus / 2
               for w in wires)  # integer shares in [-T/2, T/2)
    expected = np.sum(wires, axis=0) * p.scale / len(ORGS)
    assert float(np.max(np.abs(mean - expected))) < 1e-6
    assert only["mean_error_bound"] == p.scale
    # Assert: every organization's ledger records both units of this release; the
    # organization-level entry is the distributed discrete Gaussian with its condition.
    for org in ORGS:
        entries = [e for e in Ledger(tmp_path / "state" / org / "ledger.jsonl").entries()
                   if e.release_id == f"{org}-{run_id}-1"]
        assert sorted(e.unit for e in entries) == ["example", "organization"], org
        (org_entry,) = [e for e in entries if e.unit == "organization"]
        (mech,) = org_entry.mechanisms
        assert mech.kind == "distributed_discrete_gaussian"
        assert mech.condition.startswith("sum only: SecAgg+ holds, at most 0 of 10 "
                                          "organizations collude"), mech.condition
        assert (mech.min_survivors, mech.sigma) == (2, p.sigma)
        assert org_entry.protocol == "ddp-secagg"
    assert sorted(summary["delivery"]["evaluations"]) == sorted(ORGS)
    print(f"ddp-secagg deployment test: {time.monotonic() - started:.0f} s")


@pytest.mark.slow  # measured time in docs/deployment.md
def test_ddp_ckks_runs_over_tls_and_the_key_holder_releases_the_noisy_mean(
        federation: Federation, tmp_path: Path) -> None:
    # Prepare + Execute: each organization accepts ddp-ckks; one round, bank (first by id)
    # makes the CKKS keys on its node.
    started = time.monotonic()
    run_id, summary = run_one_round(federation, tmp_path, "ddp-ckks")

    # Assert: the key holder released the mean of the three shares, exactly on the CKKS grid.
    (only,) = summary["rounds"]
    assert only["aggregation"] == "ckks" and only["accepted"] == sorted(ORGS), only
    step = 2.0**-15
    mean = _flat(tmp_path / "out" / "round1" / "tinylm_update.safetensors")
    expected = np.sum(_kept_shares(tmp_path), axis=0) * step / len(ORGS)
    assert float(np.max(np.abs(mean - expected))) < 1e-6
    for org in ORGS:
        entries = Ledger(tmp_path / "state" / org / "ledger.jsonl").entries()
        assert sorted(e.unit for e in entries) == ["example", "organization"], org
        (mech,) = [m for e in entries if e.unit == "organization" for m in e.mechanisms]
        assert mech.condition.startswith("sum only: the CKKS key holder is honest"), org
    kept = sorted(p.name for p in (tmp_path / "state" / "bank" / "ckks").iterdir())
    assert kept == [f"{run_id}-1.done"]
    print(f"ddp-ckks deployment test: {time.monotonic() - started:.0f} s")
