"""Run a protocol on Flower's simulation engine with one SuperNode per organization."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from gt_secure.data.organizations import ORGANIZATIONS

DEMO_BUDGET = 10.0  # epsilon per protected privacy unit in the demo organizations' policies

BACKEND: dict[str, dict[str, Any]] = {
    "client_resources": {"num_cpus": 1},
    "init_args": {"num_cpus": 2, "logging_level": "ERROR", "log_to_driver": False},
}


def run_protocol(
    protocol: str, out: Path, rounds: int = 0, local_steps: int = 32, num_texts: int = 512
) -> dict[str, Any]:
    """Run ``protocol`` with the real organization and provider steps; returns summary.json.

    Each organization trains on its first ``num_texts`` training texts for ``local_steps`` steps.
    An organization without a policy gets one that accepts exactly ``protocol`` as specified,
    with :data:`DEMO_BUDGET` per protected unit (:func:`write_demo_policies`); one that has a
    policy keeps it, and refuses what it does not accept.
    """
    from flwr.simulation import run_simulation

    from gt_secure.app.client_app import make_client_app
    from gt_secure.app.server_app import make_server_app

    write_demo_policies(protocol)
    overrides = {
        "protocol": protocol,
        "num-rounds": rounds,
        "local-steps": local_steps,
        "num-texts": num_texts,
        "output-dir": str(out / "provider"),
    }
    logging.getLogger("flwr").setLevel(logging.WARNING)
    run_simulation(
        make_server_app(overrides),
        make_client_app(overrides),
        num_supernodes=len(ORGANIZATIONS),
        backend_config=BACKEND,
    )
    summary_path = out / "provider" / "summary.json"
    if not summary_path.exists():
        raise RuntimeError(f"the federation wrote no summary at {summary_path}; see Flower's log")
    return json.loads(summary_path.read_text())


def write_demo_policies(protocol: str) -> list[Path]:
    """Write each shipped organization's policy into its state dir unless it has one; the
    paths written."""
    from gt_secure.app.policy_mod import policy_path
    from gt_secure.organization.policy import policy_for, write_policy

    policy = policy_for(protocol, budget_epsilon=DEMO_BUDGET)
    written = []
    for org in ORGANIZATIONS:
        path = policy_path(org, {})
        if not path.exists():
            written.append(write_policy(policy, path))
    return written
