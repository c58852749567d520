"""The deployment tests' federation (every process it started is stopped by the finalizer) and
one small round of a protocol on it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gt_secure.deploy.federation import Federation
from gt_secure.organization.policy import policy_for

REPO = Path(__file__).resolve().parents[2]
ORGS = ("hospital", "bank", "law")


@pytest.fixture
def federation(tmp_path: Path) -> Iterator[Federation]:
    fed = Federation(tmp_path, REPO)
    try:
        yield fed
    finally:
        fed.close()


def run_one_round(federation: Federation, tmp_path: Path,
                  protocol: str) -> tuple[int, dict[str, Any]]:
    """Start the TLS SuperLink (node auth), join the three organizations with policies that
    accept ``protocol`` as specified, run one small round with ``flwr run``; the run ID and the
    provider's summary (the run must have completed)."""
    federation.start_superlink(enable_auth=True)
    joined = federation.join(ORGS, policy_for(protocol, budget_epsilon=10.0))
    online = federation.wait_online(len(ORGS), timeout=300)
    assert sorted(online) == sorted(i for i, _ in joined.values()), \
        [p.log()[-1000:] for _, p in joined.values()]
    out = tmp_path / "out"
    run_id = federation.run({"protocol": protocol, "num-rounds": 1, "min-orgs": len(ORGS),
                             "local-steps": 2, "num-texts": 64, "output-dir": str(out),
                             "round-timeout": 500.0})
    record = federation.wait_run(run_id, timeout=600)
    assert record["status"] == "finished:completed", federation.run_log(run_id)[-5000:]
    summary: dict[str, Any] = json.loads((out / "summary.json").read_text())
    return run_id, summary
