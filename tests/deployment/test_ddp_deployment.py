"""ddp-secagg on the deployment engine: a TLS SuperLink with SuperNode authentication, three
SuperNodes and ``flwr run``; each organization adds its discrete Gaussian share inside Flower's
SecAgg+ and the provider decodes the mean of the shares.

Everything listens on free loopback ports; every process is stopped by the fixture's finalizer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from gt_secure.aggregation.ddp_round import params_for
from gt_secure.deploy.federation import Federation
from gt_secure.ledger.store import Ledger
from gt_secure.organization.policy import policy_for
from gt_secure.protocols import load_protocol

ORGS = ("hospital", "bank", "law")
pytestmark = pytest.mark.deployment


def _flat(path: Path) -> np.ndarray:
    return np.concatenate([v.reshape(-1) for v in load_file(str(path)).values()]).astype(
        np.float64)


@pytest.mark.slow  # measured time in docs/deployment.md
def test_ddp_secagg_runs_over_tls_and_decodes_the_mean_of_the_shares(
        federation: Federation, tmp_path: Path) -> None:
    # Prepare: the provider's TLS SuperLink with node authentication; each organization's policy
    # accepts ddp-secagg as specified (sums of >= min_survivors = 2 organizations).
    started = time.monotonic()
    federation.start_superlink(enable_auth=True)
    joined = federation.join(ORGS, policy_for("ddp-secagg", budget_epsilon=10.0))
    online = federation.wait_online(len(ORGS), timeout=300)
    assert sorted(online) == sorted(i for i, _ in joined.values()), \
        [p.log()[-1000:] for _, p in joined.values()]

    # Execute: one ddp-secagg round submitted with `flwr run` over TLS.
    out = tmp_path / "out"
    run_id = federation.run({"protocol": "ddp-secagg", "num-rounds": 1, "min-orgs": len(ORGS),
                             "local-steps": 2, "num-texts": 64, "output-dir": str(out),
                             "round-timeout": 500.0})
    record = federation.wait_run(run_id, timeout=600)

    # Assert: the run completed with every organization in the sum.
    assert record["status"] == "finished:completed", federation.run_log(run_id)[-5000:]
    summary = json.loads((out / "summary.json").read_text())
    (only,) = summary["rounds"]
    assert only["aggregation"] == "secagg"
    assert only["accepted"] == sorted(ORGS), only["rejections"]
    # Assert: the aggregate decodes: the provider's mean is scale * (sum of the integer shares
    # each organization kept of what it sent) / 3, exactly up to float32.
    p = params_for(load_protocol("ddp-secagg"), int(_flat(out / "round1" /
                                                         "tinylm_update.safetensors").size))
    wires = [_flat(next((tmp_path / "state" / org / "releases").glob("*.safetensors")))
             for org in ORGS]
    assert all(np.array_equal(w, np.rint(w)) and np.max(np.abs(w)) < p.modulus / 2
               for w in wires)  # integer shares in [-T/2, T/2)
    mean = _flat(out / "round1" / "tinylm_update.safetensors")
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
