"""Deployment engine: a real TLS SuperLink with SuperNode authentication, three SuperNodes, the
app submitted with ``flwr run``, and a SuperNode with an unregistered key refused.

Everything listens on free loopback ports; every process is stopped by the fixture's finalizer.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from gt_secure.deploy.federation import Federation
from gt_secure.organization.policy import policy_for

ORGS = ("hospital", "bank", "law")
pytestmark = pytest.mark.deployment


@pytest.mark.slow  # 278 s measured on the shared 2-core machine (load ~12)
def test_tls_authenticated_federation_runs_the_app(federation: Federation,
                                                    tmp_path: Path) -> None:
    # Prepare: the provider starts the SuperLink and registers the organizations' public keys.
    started = time.monotonic()
    federation.start_superlink(enable_auth=True)
    joined = federation.join(ORGS, policy_for("dp-ckks", budget_epsilon=10.0))
    rogue = federation.start_supernode("rogue", federation.new_node_key("rogue"))

    # Assert: the SuperNode whose key was never registered is refused.
    assert rogue.wait_for_log("Failed to activate SuperNode", timeout=180), rogue.log()[-2000:]
    online = federation.wait_online(len(ORGS), timeout=300)
    assert sorted(online) == sorted(i for i, _ in joined.values()), \
        [p.log()[-1000:] for _, p in joined.values()]

    # Execute: the app runs dp-ckks over TLS with `flwr run`; the key holder (bank, the first
    # participant) makes the round's CKKS keys on its own node; the provider holds none.
    out = tmp_path / "out"
    run_id = federation.run({"protocol": "dp-ckks", "num-rounds": 1, "min-orgs": len(ORGS),
                             "local-steps": 2, "num-texts": 64, "output-dir": str(out),
                             "round-timeout": 500.0})
    record = federation.wait_run(run_id, timeout=600)

    # Assert: the run completed and every registered organization contributed.
    assert record["status"] == "finished:completed", federation.run_log(run_id)[-5000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run_id"] == run_id
    (only,) = summary["rounds"]
    assert only["aggregation"] == "ckks"
    assert only["accepted"] == sorted(ORGS)
    assert only["rejections"] == []
    assert "rogue" not in json.dumps(summary)
    # Assert: each organization's node recorded its DP release in its own ledger, and the
    # provider exported the LLM adapter from the mean the key holder released. Only the key
    # holder's node made CKKS keys; it decrypted once and deleted the secret key.
    for org in ORGS:
        ledger = tmp_path / "state" / org / "ledger.jsonl"
        units = sorted(u for line in ledger.read_text().splitlines()
                       if (u := json.loads(line).get("unit")) is not None)  # not the header
        assert units == ["example", "organization"], org
        kept = sorted(p.name for p in (tmp_path / "state" / org / "ckks").iterdir())
        assert kept == ([f"{run_id}-1.done"] if org == "bank" else []), (org, kept)
    assert (tmp_path / "state" / "roster" / "law.pub.pem").exists()
    assert not list(out.rglob("ckks_secret.bin"))
    assert only["mean_error_bound"] == 2.0**-15 / 2
    adapter = Path(only["provider"]["adapter_dir"])
    assert (adapter / "adapter_config.json").exists()
    # Assert: the adapter reached every organization, which scored it on its own texts.
    assert sorted(summary["delivery"]["evaluations"]) == sorted(ORGS)
    for org in ORGS:
        assert (tmp_path / "state" / org / "adapters" / f"{run_id}-round1").is_dir()
    print(f"deployment test: {time.monotonic() - started:.0f} s")


def test_secagg_round_survives_a_supernode_killed_mid_round(federation: Federation,
                                                            tmp_path: Path) -> None:
    # Prepare: an authenticated TLS federation of the three organizations.
    started = time.monotonic()
    federation.start_superlink(enable_auth=True)
    # each organization accepts dp-secagg sums of >= 2 organizations (the majority threshold)
    joined = federation.join(ORGS, policy_for("dp-secagg", budget_epsilon=10.0,
                                              min_organizations=2))
    assert len(federation.wait_online(len(ORGS), timeout=300)) == len(ORGS)

    # Execute: dp-secagg with a majority threshold (2 of 3). SecAgg+ sends law three train
    # messages (setup, share keys, then the training instruction); once the third arrives its
    # key shares are out, and the SuperNode (with the training ClientApp) is SIGKILLed.
    out = tmp_path / "out"
    run_id = federation.run({"protocol": "dp-secagg", "secagg-params": "auto", "num-rounds": 1,
                             "local-steps": 2, "num-texts": 64,
                             "min-orgs": len(ORGS), "output-dir": str(out),
                             "round-timeout": 45.0})
    law_node, law = joined["law"]
    deadline = time.monotonic() + 400
    while law.log_count("Receiving: train message") < 3:
        assert time.monotonic() < deadline, law.log()[-2000:]
        time.sleep(0.2)
    law.kill()
    record = federation.wait_run(run_id, timeout=600)

    # Assert: the round finished with the two survivors; law's node is recorded as dropped;
    # the mean was unmasked with law's shares reconstructed by the others.
    assert record["status"] == "finished:completed", federation.run_log(run_id)[-5000:]
    summary = json.loads((out / "summary.json").read_text())
    (only,) = summary["rounds"]
    assert only["aggregation"] == "secagg"
    assert only["accepted"] == ["bank", "hospital"]
    assert [r["node_id"] for r in only["rejections"]] == [law_node]
    assert 0 < only["mean_error_bound"] < 1e-6
    assert only["provider"]["tinylm_update_hash"]
    print(f"secagg dropout deployment test: {time.monotonic() - started:.0f} s")
