"""ddp-ckks through the production ServerApp and ClientApp (Flower simulation engine, TenSEAL):
each organization adds its discrete Gaussian share on the CKKS grid before masking and
encrypting; the key holder decrypts the signed sum and releases only the noisy mean.

Closed form checked: the released mean's noise has variance ``(z C)^2 / (h n)`` per coordinate
(``h = min_survivors - max_colluders`` honest shares sized the noise, ``n`` organizations summed).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import chi2

from gt_secure.aggregation.ckks_ddp import ckks_ddp_params
from gt_secure.app.roles import release_id_of
from gt_secure.data.organizations import ORGANIZATIONS
from gt_secure.ledger.store import Ledger
from gt_secure.organization.policy import policy_for
from gt_secure.protocols import load_protocol
from gt_secure.update import UpdateVector
from tests.app.test_policy_simulation import assert_nothing_left, federate, refusals_by_org
from tests.app.test_simulation import global_after

RUN = {"protocol": "ddp-ckks", "min-orgs": 3, "round-timeout": 300.0}


@pytest.fixture(autouse=True)
def _ray_workers_import_repo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    monkeypatch.setenv("GT_SECURE_STATE_DIR", str(tmp_path / "orgs"))


@pytest.mark.slow
def test_key_holder_releases_the_mean_of_the_shares_with_the_configured_noise(
        tmp_path: Path) -> None:
    # Prepare: every organization accepts ddp-ckks as specified (z = 1, C = 1, shares sized for
    # min_survivors = 2 honest organizations; sums of >= 2 organizations).
    policy = policy_for("ddp-ckks", budget_epsilon=10.0)
    assert policy.min_organizations == 2

    # Execute: one round, three organizations; bank (first by id) holds the CKKS key.
    summary = federate(tmp_path, dict.fromkeys(ORGANIZATIONS, policy), RUN)

    # Assert: all three in the sum; the released mean is exactly step * (sum of the integer
    # shares the organizations kept) / 3: the CKKS error was rounded away.
    (record,) = summary["rounds"]
    orgs = sorted(ORGANIZATIONS)
    assert record["aggregation"] == "ckks" and record["accepted"] == orgs, record["rejections"]
    spec = load_protocol("ddp-ckks")
    p = ckks_ddp_params(spec, 2048)
    releases = {o: release_id_of(o, summary["run_id"], 1) for o in orgs}
    kept = [UpdateVector.load(tmp_path / "orgs" / o / "releases" / f"{r}.safetensors")
            .flat.astype(np.float64) for o, r in releases.items()]
    assert all(np.array_equal(w, np.rint(w)) for w in kept)  # integer shares left each org
    wires = np.sum(kept, axis=0)
    mean = global_after(tmp_path, 1).astype(np.float64)
    assert float(np.max(np.abs(mean - wires * p.scale / len(orgs)))) <= 1e-6
    # Assert: its noise has the configured variance (z C)^2 / (h n) per coordinate. The signal
    # (mean of clipped, grid-rounded updates) has norm <= Delta2 * step, so the noise norm lies
    # within that of ||mean||; both ends are compared with chi-square(d) quantiles at 1e-6.
    d, h, n = mean.size, 2, len(orgs)
    variance = (1.0 * 1.0) ** 2 / (h * n)
    signal = p.sensitivity * p.scale
    norm = float(np.linalg.norm(mean))
    low_stat = max(0.0, norm - signal) ** 2 / variance
    high_stat = (norm + signal) ** 2 / variance
    low, high = chi2.ppf(1e-6, d), chi2.ppf(1 - 1e-6, d)
    print(f"ddp-ckks noise statistic in [{low_stat:.0f}, {high_stat:.0f}], chi2({d}) 1e-6 "
          f"quantiles [{low:.0f}, {high:.0f}]")
    assert high_stat >= low and low_stat <= high, (low_stat, high_stat, low, high)
    # Positive controls: full noise per organization (dp-ckks: variance (z C)^2 / n) and shares
    # sized for all 3 organizations (variance (z C)^2 / n^2) are both rejected by this data.
    assert high_stat / 2 < low
    assert low_stat * n / h > high
    # Assert: each ledger records both units; the organization-level entry is the distributed
    # discrete Gaussian with its CKKS condition; the key holder decrypted once, kept no key.
    for org in orgs:
        entries = Ledger(tmp_path / "orgs" / org / "ledger.jsonl").entries()
        assert sorted(e.unit for e in entries) == ["example", "organization"], org
        (mech,) = [m for e in entries if e.unit == "organization" for m in e.mechanisms]
        assert mech.kind == "distributed_discrete_gaussian" and mech.sigma == p.sigma
        assert mech.condition.startswith(
            "sum only: the CKKS key holder is honest for decryption (decrypts only the signed "
            "sum), at most 0 of 100 organizations collude"), mech.condition
        assert all(e.protocol == "ddp-ckks" for e in entries)
    run_id = summary["run_id"]
    holder = sorted(q.name for q in (tmp_path / "orgs" / "bank" / "ckks").iterdir())
    assert holder == [f"{run_id}-1.done"]
    assert record["mean_error_bound"] == p.scale / 2
    assert math.isclose(record["mean_l2_norm"], norm, rel_tol=1e-6)


def test_a_noise_share_below_the_policy_is_refused_before_training(tmp_path: Path) -> None:
    # Prepare: every organization accepts ddp-ckks at the spec's noise (the sum's z >= 1). The
    # run asks for shares that sum to z = 0.5.
    policy = policy_for("ddp-ckks", budget_epsilon=10.0)

    # Execute
    summary = federate(tmp_path, dict.fromkeys(ORGANIZATIONS, policy),
                       RUN | {"noise-multiplier": 0.5})

    # Assert: every organization refused before training, naming the field and both values;
    # nothing was trained, encrypted or decrypted, nothing written but the policies.
    (record,) = summary["rounds"]
    refused = refusals_by_org(record | {"rejections": record["rejections"][:-1]})
    assert sorted(refused) == sorted(ORGANIZATIONS)
    assert record["rejections"][-1]["field"] == "len(participants)"  # nothing encrypted
    for message in refused.values():
        assert ("request.organization.noise_multiplier must be >= 1.0 (policy.organization."
                "min_noise_multiplier), got request.organization.noise_multiplier=0.5.") \
            in message
    assert_nothing_left(tmp_path, record)
